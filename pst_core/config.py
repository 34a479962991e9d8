"""Helpers shared by every stage's frozen config dataclass.

Each stage defines one `@dataclass(frozen=True)` beside its code; fields are declared with
`option(default, "help")` and ranges are checked in `__post_init__` (via `check`). Configs load
from YAML/JSON files or dicts with unknown keys rejected, and are stored with every output.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, TypeVar

from pst_core.errors import ConfigError

C = TypeVar("C")


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and a help string (shown by `pst ... --help` and docs)."""
    if isinstance(default, (list, dict, set)):  # mutable defaults need a factory
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def check(ok: bool, cls_name: str, message: str) -> None:
    """Raise a ConfigError naming the config class when a range check fails."""
    if not ok:
        raise ConfigError(f"{cls_name}: {message}")


def from_dict(cls: type[C], values: dict[str, Any] | None = None, **overrides: Any) -> C:
    """Build `cls` from a dict (plus overrides), rejecting unknown keys with a close match."""
    merged = {**(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in merged:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{cls.__name__}: unknown option {key!r}{hint}; valid: {', '.join(sorted(names))}")
    try:
        return cls(**merged)
    except TypeError as exc:  # wrong arity or missing required field
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (one clear error if it cannot be read)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    return data


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (stored beside every output)."""
    return dataclasses.asdict(cfg)
