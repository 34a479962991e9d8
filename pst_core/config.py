"""Helpers shared by every stage's frozen config dataclass.

Each stage defines one `@dataclass(frozen=True)` beside its code; fields are declared with
`option(default, "help")` and ranges are checked in `__post_init__` (via `check`). Configs load
from YAML/JSON files or dicts with unknown keys rejected and values checked against the field
annotations (a string where a float belongs fails here, not as a TypeError deep in training),
and are stored with every output.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pst_core.errors import ConfigError

C = TypeVar("C")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and a help string (shown by `pst ... --help` and docs)."""
    if isinstance(default, (list, dict, set)):  # mutable defaults need a factory
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


@contextlib.contextmanager
def section(prefix: str, where: str = "") -> Iterator[None]:
    """Prefix a ConfigError with the part of a config file it came from (`PaperConfig train.pst: ...`)."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(f"{prefix} {where}: {exc}" if where else f"{prefix} {exc}") from None


def check(ok: bool, cls_name: str, message: str) -> None:
    """Raise a ConfigError naming the config class when a range check fails."""
    if not ok:
        raise ConfigError(f"{cls_name}: {message}")


def check_keys(cls: type, keys: Any, where: str = "") -> None:
    """Raise a ConfigError for the first key that is not a field of `cls`, with its close match."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}{cls.__name__}: unknown option {key!r}{hint}; valid: {', '.join(sorted(names))}")


def from_dict(cls: type[C], values: dict[str, Any] | None = None, **overrides: Any) -> C:
    """Build `cls` from a dict (plus overrides), rejecting unknown keys and values of the wrong type."""
    merged = {**(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
    check_keys(cls, merged)
    hints = _field_types(cls)
    for key, value in merged.items():
        expected = hints.get(key, Any)
        if not _matches(value, expected):
            raise ConfigError(f"{cls.__name__}: option {key!r} must be {_describe(expected)}, got {type(value).__name__} {value!r}")
    try:
        return cls(**merged)
    except TypeError as exc:  # wrong arity or missing required field
        raise ConfigError(f"{cls.__name__}: {exc}") from None


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    # Modules use `from __future__ import annotations`, so annotations are strings until evaluated.
    return typing.get_type_hints(cls)


def _matches(value: Any, expected: Any) -> bool:
    """Whether `value` fits the annotation `expected` (JSON/YAML values: lists stand for tuples)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:  # an int is a float in every config file (`epochs: 10`)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin in (list, tuple) or expected in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: (0.9, 0.95)
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return all(_matches(v, args[0]) for v in value) if args else True
    if origin is dict or expected is dict:
        return isinstance(value, dict)
    return True  # an annotation these configs do not use: left to __post_init__


def _describe(expected: Any) -> str:
    """'a float', 'a string or null', 'a list of floats': the annotation in words."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    words = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string", type(None): "null"}
    if expected in words:
        return words[expected]
    if origin in (list, tuple) or expected in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_describe(args[0]).split(' ', 1)[1]}s"
        return f"a list of {_describe(args[0]).split(' ', 1)[1]}s" if args and args[0] is not Any else "a list"
    return "a mapping" if origin is dict or expected is dict else str(expected)


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (one clear error if it cannot be read)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            data = _yaml_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    return data


# YAML 1.1 (PyYAML) reads a float only with a dot: `1e-4` and `1E+3` stay strings, and `lr: 1e-4`
# would then fail as a string. This is the YAML 1.2 float rule: a dot or an exponent suffices.
_FLOAT = re.compile(r"""^(?:
    [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?   # 1.  1.5  1.5e-4
   |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+                 # 1e-4  1E+3
   |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?                  # .5  .5e3
   |[-+]?\.(?:inf|Inf|INF)
   |\.(?:nan|NaN|NAN))$""", re.X)


@functools.cache
def _yaml_loader() -> type:
    """A SafeLoader subclass with the YAML 1.2 float rule (PyYAML's own SafeLoader stays as it is)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # Added after PyYAML's int and float rules, so it only decides what those leave a string.
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return Loader


def _yaml_load(text: str) -> Any:
    """`yaml.safe_load`, except that `1e-4` is a float."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (stored beside every output)."""
    return dataclasses.asdict(cfg)
