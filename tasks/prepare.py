"""Prefect task: prepare one task's splits into the example store."""

from __future__ import annotations

from typing import Any

from prefect import task

from pst_core import settings, store
from pst_core.config import from_dict
from tasks.artifacts import publish_preview
from tasks.policy import RETRY_OPTIONS, store_cache


def _reads(inputs: dict[str, Any]) -> list[Any]:
    # Source files are immutable copies; which folder they come from is part of the state.
    cfg = inputs.get("config") or {}
    return [{"datasets_dir": str(cfg.get("datasets_dir") or settings.datasets_dir())}]


@task(name="prepare", cache_policy=store_cache(_reads), persist_result=True, **RETRY_OPTIONS)
def prepare(root: str, task: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every split of `task` to `<root>/examples/task=T/split=S/` and preview each split."""
    from pst_core.prepare import PrepareConfig, prepare_task

    counts = prepare_task(task, from_dict(PrepareConfig, config), root)
    outputs = [store.partition_path(root, "examples", task=task, split=s) for s, n in counts.items() if n]
    for path in outputs:
        publish_preview(path)
    return {"task": task, "counts": counts, "outputs": outputs}
