"""One small generic registry for tasks, teachers, strategies, embedders and prompts.

Registration is by decorator (or `add` for data entries); duplicates and wrong base classes
are rejected at import time, and an unknown name lists the valid ones with close matches.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pst_core.errors import ConfigError

T = TypeVar("T")


class UnknownName(ConfigError, KeyError):
    """Raised for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A name -> object mapping with decorator registration and helpful lookup errors."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register `obj` under `name`; a duplicate name or a wrong base class raises."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if self.base is not None and isinstance(obj, type) and not issubclass(obj, self.base):
            raise TypeError(f"{self.kind} {name!r} must subclass {self.base.__name__}")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        """Return the entry for `name`, or raise `UnknownName` listing the valid names."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownName(f"unknown {self.kind} {name!r}.{hint} Valid: {valid}") from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
