"""Prefect events from pst_core hooks: a registered teacher becomes `pst.teacher.registered`.

`pst teacher add` (pst_core) fires the in-process hook "teacher_registered"; this module, loaded
with the CLI's Prefect-side commands, turns it into a Prefect event on the resource
`pst.teacher.<name>`. The `distill-new-teacher` deployment's trigger matches that event and runs
`distill_pipeline` for this teacher only. Only non-secret teacher fields travel in the payload.

The API is asked for its health first: Prefect's event sender drops events it cannot deliver (a log
line after the command has returned), so an unreachable server is found before sending, and the
subscriber fires the pst_core hook "teacher_event_failed" with one line saying what to run instead.
`pst teacher add` fails with that line; library callers (`teachers.add`) only get it as a log warning.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pst_core import hooks
from pst_core.errors import PstError

EVENT = "pst.teacher.registered"
RESOURCE_PREFIX = "pst.teacher."
FAILED_HOOK = "teacher_event_failed"
HEALTH_TIMEOUT_S = 10.0
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


class EventNotDelivered(PstError):
    """The Prefect API did not answer, so `pst.teacher.registered` was not sent."""


def api_url() -> str | None:
    """The configured Prefect API URL (settings, else the environment), or None."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or None


def api_error(timeout_s: float = HEALTH_TIMEOUT_S) -> Exception | None:
    """Why the configured Prefect API does not answer its health check, or None when it does."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True, httpx_settings={"timeout": timeout_s}) as client:
            return client.api_healthcheck()
    except Exception as exc:  # noqa: BLE001 - any failure to build or use the client means not delivered
        return exc


def not_delivered(name: str, url: str, exc: BaseException) -> str:
    """The one line `pst teacher add` prints when the event cannot be sent."""
    reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
    return (f"teacher {name!r} is saved, but the Prefect event {EVENT} was not delivered: the Prefect API at {url} "
            f"does not answer ({reason}); start it (`prefect server start`, then `pst serve`) and run "
            f"`pst run pipeline --teacher {name}` to distil this teacher")


def emit_teacher_registered(name: str, teacher: Any = None, **_: Any) -> bool:
    """Send `pst.teacher.registered` for `name` to the configured Prefect API; True if sent.

    Without `PREFECT_API_URL` there is no server to hear it, so nothing is sent (a temporary
    server started just for one event would have no deployments to trigger). A configured API
    that does not answer raises `EventNotDelivered`.
    """
    url = api_url()
    if not url:
        log.info("PREFECT_API_URL is not set: teacher %s registered without a Prefect event", name)
        return False
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # A URL exported after Prefect was imported is in the environment only: without it in the
    # settings the client would start a temporary server and report that one healthy.
    with temporary_settings({PREFECT_API_URL: url}):
        error = api_error()
        if error is not None:
            raise EventNotDelivered(not_delivered(name, url, error))
        event = emit_event(
            event=EVENT,
            resource={"prefect.resource.id": f"{RESOURCE_PREFIX}{name}", "prefect.resource.name": name},
            payload=teacher_payload(teacher),
        )
        # The CLI exits right after `pst teacher add`: flush the background sender first.
        EventsWorker.drain_all(timeout=10)
    return event is not None


def _on_teacher_registered(name: str, teacher: Any = None, **payload: Any) -> None:
    """Hook subscriber: a failure to reach Prefect never undoes the registration; it is announced on the
    "teacher_event_failed" hook (where `pst teacher add` fails with it), else logged as a warning."""
    if getattr(_suppressed, "on", False):
        return
    try:
        emit_teacher_registered(name, teacher, **payload)
    except Exception as exc:  # noqa: BLE001 - the teacher is saved; the event is best-effort
        message = str(exc) if isinstance(exc, EventNotDelivered) else not_delivered(name, api_url() or "?", exc)
        hooks.fire(FAILED_HOOK, name=name, message=message)  # `pst teacher add` raises here: its one error line
        log.warning("%s", message)


def install() -> None:
    """Subscribe to pst_core's hooks (idempotent)."""
    hooks.subscribe("teacher_registered", _on_teacher_registered)
