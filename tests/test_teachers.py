"""Teachers registry: human-readable file, no secrets, key read only at call time."""

from __future__ import annotations

import pytest

from pst_core import hooks, teachers
from pst_core.errors import ConfigError, DataError, PstError


def make(name: str = "gpt", **kw) -> teachers.TeacherConfig:
    kw.setdefault("base_url", "http://localhost:1/v1")
    return teachers.TeacherConfig(name=name, model="m", api_key_env="PST_TEST_KEY", **kw)


def test_teacher_add_list_remove_round_trip(store_root: str) -> None:
    teachers.add(store_root, make(rpm=600, price_in=1.5))
    teachers.add(store_root, make("other"))
    loaded = teachers.load_all(store_root)
    assert set(loaded) == {"gpt", "other"} and loaded["gpt"].rpm == 600 and loaded["gpt"].price_in == 1.5
    teachers.remove(store_root, "other")
    assert set(teachers.load_all(store_root)) == {"gpt"}


def test_teachers_file_is_human_readable_and_holds_no_key(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "sk-secret-123")
    teachers.add(store_root, make())
    text = open(f"{store_root}/teachers.yaml").read()
    assert "gpt:" in text and "PST_TEST_KEY" in text and "sk-secret-123" not in text


def test_teacher_add_fires_registered_hook_without_secrets(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setenv("PST_TEST_KEY", "sk-secret-123")
    hooks.subscribe("teacher_registered", lambda **kw: seen.append(kw))
    teachers.add(store_root, make())
    assert seen[-1]["name"] == "gpt" and seen[-1]["teacher"]["model"] == "m"
    assert "sk-secret-123" not in repr(seen[-1])


def test_duplicate_teacher_needs_replace(store_root: str) -> None:
    teachers.add(store_root, make())
    with pytest.raises(ConfigError, match="--replace"):
        teachers.add(store_root, make())
    teachers.add(store_root, make(rpm=5), replace=True)
    assert teachers.get(store_root, "gpt").rpm == 5


def test_missing_key_variable_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PST_TEST_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        make().api_key()
    assert "PST_TEST_KEY" in str(err.value) and "\n" not in str(err.value)


def test_invalid_teacher_settings_are_rejected(store_root: str) -> None:
    with pytest.raises(DataError):
        make("bad/name")
    with pytest.raises(ConfigError, match="base_url"):
        teachers.TeacherConfig(name="x", base_url="localhost", model="m")
    with pytest.raises(ConfigError, match="credentials"):  # would end up in teachers.yaml and events
        teachers.TeacherConfig(name="x", base_url="https://user:sk-secret@api.example.com/v1", model="m")
    assert make(base_url="http://localhost:1/v1/path@odd").base_url.endswith("@odd")  # only the host part is checked
    with pytest.raises(ConfigError, match="concurrency"):
        make(concurrency=0)
    with pytest.raises(PstError, match="unknown teacher"):
        teachers.get(store_root, "nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("teachers: [a, b\n", "not valid YAML at line"),
        ("teachers: {x: 5}\n", "teacher 'x' must be a mapping"),
        ("teachers: {x: {base_url: 'http://h/v1', model: m, rpmm: 1}}\n", "teacher 'x': TeacherConfig: unknown option 'rpmm'"),
        ("- just a list\n", "must hold 'teachers:"),
    ],
)
def test_broken_teachers_file_is_one_error_naming_the_file(store_root: str, text: str, expected: str) -> None:
    import os

    os.makedirs(store_root, exist_ok=True)
    with open(f"{store_root}/teachers.yaml", "w") as fh:
        fh.write(text)
    with pytest.raises(ConfigError) as err:
        teachers.load_all(store_root)
    message = str(err.value)
    assert expected in message and "teachers.yaml" in message and "\n" not in message
