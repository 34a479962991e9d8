"""The example store: one hive partition per (task, split), rewritten atomically and idempotently.

`data/examples/task=T/split=S/part-00000.parquet`. Preparing a task twice writes identical
bytes under the same name, so reruns are no-ops for readers and never leave stale parts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pyarrow as pa

from pst_core import schemas, store

DATASET = "examples"
PART_NAME = "part-00000.parquet"


@dataclass(frozen=True)
class Example:
    """One question of a task split, with its gold answer in normalised form."""

    example_id: str
    task: str
    split: str
    question: str
    gold_answer: str
    answer_type: str
    choices: list[str] = field(default_factory=list)
    human_rationale: str | None = None
    source: str | None = None
    source_index: int | None = None


def make_id(task: str, source_index: int) -> str:
    """Stable example id: the task and the row's index in its source (Fine-tune-CoT sample_index)."""
    return f"{task}-{source_index:05d}"


def to_table(examples: list[Example]) -> pa.Table:
    """Examples -> an Arrow table of the file schema (partition columns dropped)."""
    rows = [{k: v for k, v in dataclasses.asdict(e).items() if k not in ("task", "split")} for e in examples]
    return pa.Table.from_pylist(rows, schema=schemas.EXAMPLES)


def write_split(root: str, task: str, split: str, examples: list[Example]) -> str:
    """Replace the (task, split) partition with `examples` atomically; returns the part path."""
    bad = [e.example_id for e in examples if e.task != task or e.split != split]
    if bad:
        raise ValueError(f"examples {bad[:3]} do not belong to task={task} split={split}")
    directory = store.partition_path(root, DATASET, task=task, split=split)
    path = store.write_part(directory, to_table(examples), name=PART_NAME)
    for stale in store.list_parts(directory):  # parts from another writer version
        if not stale.endswith(PART_NAME):
            store.filesystem(stale)[0].rm(stale)
    return path


def read(root: str, task: str | list[str] | None = None, split: str | list[str] | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read examples (all, or filtered by task/split) as one Arrow table."""
    return store.read_dataset(root, DATASET, schemas.EXAMPLES, schemas.EXAMPLES_PARTITIONS, {"task": task, "split": split}, columns)


def load(root: str, task: str, split: str) -> list[Example]:
    """Read one (task, split) as Example records, in stored order."""
    table = read(root, task, split)
    return [Example(**row) for row in table.to_pylist()]


def counts(root: str) -> dict[tuple[str, str], int]:
    """Row counts per (task, split) in the store."""
    table = read(root, columns=["task", "split"])
    out: dict[tuple[str, str], int] = {}
    for task, split in zip(table["task"].to_pylist(), table["split"].to_pylist()):
        out[(task, split)] = out.get((task, split), 0) + 1
    return dict(sorted(out.items()))
