"""Where a task body ran, recorded in the results of the tasks that scale out (harvest, embed)."""

from __future__ import annotations

import os
import socket


def executor() -> str:
    """A Dask worker's address when the task runs on one, else host:pid of this process (the flow
    run's process, which a Prefect worker started): shows how the work spread over machines."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
