"""Prefect task: which splits a teacher's stored rationales cover for one training run (read after the harvest)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="coverage", cache_policy=NO_CACHE)
def coverage(root: str, config: dict[str, Any]) -> dict[str, Any]:
    """Usable rationale rows per split for `config` (a TrainConfig dict) and the splits that would fail its training.

    Not cached and not retried: a read of the store as it is now, cheap next to any training.
    """
    from pst_core.coverage import check
    from pst_core.train.config import resolve

    return check(root, resolve(config)).as_dict()
