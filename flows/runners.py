"""Where a flow's tasks run: threads in the flow's process (default), or a Dask cluster.

`PST_TASK_RUNNER=dask` (the `pst[dask]` extra: prefect-dask) sends every submitted task to Dask:
a scheduler at `PST_DASK_ADDRESS` (e.g. `tcp://10.0.0.5:8786`, started with `dask scheduler`,
with `dask worker ADDRESS` on each machine), else a `distributed.LocalCluster` of
`PST_DASK_WORKERS` processes (default 2) of `PST_DASK_THREADS` threads each (default 1: a
training or embedding task holds a worker's CPU; harvest tasks are I/O-bound, so several may
share a process) on this machine. Every worker must
have pst installed and see the same store (`PST_DATA_DIR`).

A stage flow run on its own (a deployment) starts its own cluster; `distill_pipeline` starts one
for all of its stages (`for_stages`), so worker processes import torch and load the encoder once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from pst_core.errors import ConfigError

RUNNERS = ("threads", "dask")
INSTALL = "pip install 'pst[dask]'"


def kind() -> str:
    """The chosen runner (`PST_TASK_RUNNER`, default threads); an unknown name is one clear line."""
    name = os.environ.get("PST_TASK_RUNNER", "threads").strip().lower() or "threads"
    if name not in RUNNERS:
        raise ConfigError(f"PST_TASK_RUNNER={name!r} is not a task runner; valid: {', '.join(RUNNERS)}")
    return name


def _dask_runner_class() -> Any:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise ConfigError(f"PST_TASK_RUNNER=dask needs prefect-dask, which is not installed ({exc.name or exc}): {INSTALL}") from None
    return DaskTaskRunner


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        number = int(value) if value else default
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name}={value!r} must be a whole number of at least 1")
    return number


def local_cluster_options() -> dict[str, Any]:
    """`distributed.LocalCluster` arguments: worker processes (not threads: the GIL, and one
    encoder or student per process), no dashboard (no fixed port to collide on)."""
    return {"n_workers": _int_env("PST_DASK_WORKERS", 2), "threads_per_worker": _int_env("PST_DASK_THREADS", 1),
            "processes": True, "dashboard_address": None}


def task_runner() -> Any:
    """The task runner of a stage flow: threads (`PST_MAX_WORKERS`, default 4) or Dask."""
    if kind() == "threads":
        return ThreadPoolTaskRunner(max_workers=_int_env("PST_MAX_WORKERS", 4))
    runner = _dask_runner_class()
    address = os.environ.get("PST_DASK_ADDRESS", "").strip()
    return runner(address=address) if address else runner(cluster_kwargs=local_cluster_options())


@contextmanager
def for_stages() -> Iterator[Any]:
    """One task runner for every stage of a pipeline run: with Dask and no address, one local
    cluster for the whole run (each stage flow would otherwise start and stop its own)."""
    if kind() == "threads" or os.environ.get("PST_DASK_ADDRESS", "").strip():
        yield task_runner()
        return
    runner = _dask_runner_class()
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_options()) as cluster:
        yield runner(address=cluster.scheduler_address)


def in_own_process() -> bool:
    """True when the current flow's tasks run outside its process (Dask), so tasks that load the
    same model (the encoder) can run at once without sharing one process's cores and memory."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx is not None and not isinstance(ctx.task_runner, ThreadPoolTaskRunner)

