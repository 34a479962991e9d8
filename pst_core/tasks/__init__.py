"""The task registry: 15 reasoning tasks, their loaders, splits and generators.

`get_task(name).load(datasets_dir)` -> {"train", "validation", "test"} lists of `Example`.
"""

from __future__ import annotations

from pst_core.tasks.definitions import TASKS
from pst_core.tasks.spec import Row, TaskSpec

__all__ = ["TASKS", "Row", "TaskSpec", "get_task"]


def get_task(name: str) -> TaskSpec:
    """The registered task `name` (an unknown name raises UnknownName listing the valid ones)."""
    return TASKS.get(name)
