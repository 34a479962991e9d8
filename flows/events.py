"""Prefect events from pst_core hooks: a registered teacher becomes `pst.teacher.registered`.

`pst teacher add` (pst_core) fires the in-process hook "teacher_registered"; this module, loaded
with the CLI's Prefect-side commands, turns it into a Prefect event on the resource
`pst.teacher.<name>`. The `distill-new-teacher` deployment's trigger matches that event and runs
`distill_pipeline` for this teacher only. Only non-secret teacher fields travel in the payload.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pst_core import hooks

EVENT = "pst.teacher.registered"
RESOURCE_PREFIX = "pst.teacher."
# Teacher fields that may appear in an event; anything else (keys, headers) stays local.
PUBLIC_FIELDS = ("model", "base_url", "api_key_env", "rpm", "tpm", "concurrency")

log = logging.getLogger(__name__)
_suppressed = threading.local()


@contextmanager
def suppressed() -> Iterator[None]:
    """Register teachers without events inside the block (the quickstart's short-lived local
    teacher must not trigger a served pipeline that would outlive it)."""
    _suppressed.on = True
    try:
        yield
    finally:
        _suppressed.on = False


def teacher_payload(teacher: Any) -> dict[str, Any]:
    """The non-secret fields of a teacher record (a dataclass, a mapping or None)."""
    if teacher is None:
        return {}
    data = teacher if isinstance(teacher, dict) else getattr(teacher, "__dict__", {})
    return {k: data[k] for k in PUBLIC_FIELDS if data.get(k) is not None}


def emit_teacher_registered(name: str, teacher: Any = None, **_: Any) -> bool:
    """Send `pst.teacher.registered` for `name` to the configured Prefect API; True if sent.

    Without `PREFECT_API_URL` there is no server to hear it, so nothing is sent (a temporary
    server started just for one event would have no deployments to trigger).
    """
    from prefect.settings import PREFECT_API_URL

    if not (PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")):
        log.info("PREFECT_API_URL is not set: teacher %s registered without a Prefect event", name)
        return False
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    event = emit_event(
        event=EVENT,
        resource={"prefect.resource.id": f"{RESOURCE_PREFIX}{name}", "prefect.resource.name": name},
        payload=teacher_payload(teacher),
    )
    # The CLI exits right after `pst teacher add`: flush the background sender first.
    EventsWorker.drain_all(timeout=10)
    return event is not None


def _on_teacher_registered(name: str, teacher: Any = None, **payload: Any) -> None:
    """Hook subscriber: a failure to reach Prefect never fails the registration itself."""
    if getattr(_suppressed, "on", False):
        return
    try:
        emit_teacher_registered(name, teacher, **payload)
    except Exception as exc:  # noqa: BLE001 - the teacher is saved; the event is best-effort
        log.warning("teacher %s saved, but the Prefect event could not be sent: %s", name, exc)


def install() -> None:
    """Subscribe to pst_core's hooks (idempotent)."""
    hooks.subscribe("teacher_registered", _on_teacher_registered)
