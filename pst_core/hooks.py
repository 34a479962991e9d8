"""Named in-process hooks, so pst_core can announce events without importing an orchestrator.

The Prefect side (`flows/`) subscribes, e.g. to emit a `pst.teacher.registered` event when
`pst teacher add` saves a new teacher; plain-library users simply have no subscribers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

_subscribers: dict[str, list[Callable[..., Any]]] = defaultdict(list)


def subscribe(event: str, fn: Callable[..., Any]) -> None:
    """Call `fn(**payload)` whenever `event` fires (idempotent for the same function)."""
    if fn not in _subscribers[event]:
        _subscribers[event].append(fn)


def fire(event: str, **payload: Any) -> None:
    """Notify every subscriber of `event`; a library without subscribers does nothing."""
    for fn in list(_subscribers[event]):
        fn(**payload)
