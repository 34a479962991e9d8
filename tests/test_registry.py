import pytest

from pst_core.registry import Registry, UnknownName


def test_registry_registers_by_decorator_and_lists_names():
    reg: Registry[type] = Registry("strategy", base=object)

    @reg.register("a")
    class A: ...

    assert reg.get("a") is A and reg.names() == ["a"] and "a" in reg


def test_unknown_name_lists_valid_names_and_close_match():
    reg: Registry[int] = Registry("task")
    reg.add("gsm8k", 1)
    reg.add("svamp", 2)
    with pytest.raises(UnknownName, match=r"unknown task 'gsm8j'.*Did you mean gsm8k.*Valid: gsm8k, svamp"):
        reg.get("gsm8j")


def test_registry_rejects_duplicates_and_wrong_base():
    reg: Registry[type] = Registry("strategy", base=int)
    reg.add("x", bool)
    with pytest.raises(ValueError):
        reg.add("x", bool)
    with pytest.raises(TypeError):
        reg.add("y", str)
