"""A synthetic arithmetic task with matching recorded answers, for benches and tests at any size.

`write(root, task, n)` stores `n` distinct addition questions as the task's train split and
returns replay records whose rationales and answers are right for every question but every
`wrong_every`-th one, so correct-rationale rates are known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

from pst_core import examples
from pst_core.examples import Example
from pst_core.replay.records import Record


def question(i: int) -> str:
    return f"Ann has {i} apples and buys {i + 7} more. How many apples does she have now?"


def write(root: str, task: str, n: int, split: str = "train", wrong_every: int = 4, offset: int = 0) -> list[Record]:
    """Store `n` examples (ids offset..offset+n-1) and return their records."""
    exs, recs = [], []
    for i in range(offset, offset + n):
        gold = 2 * i + 7
        exs.append(Example(examples.make_id(task, i), task, split, question(i), str(gold), "number", source="synthetic", source_index=i))
        said = gold + 1 if wrong_every and i % wrong_every == 0 else gold
        recs.append(Record(question(i), f" \n\nShe had {i} and bought {i + 7}, so {i} + {i + 7} = {said}.", f" {said}.", None))
    examples.write_split(root, task, split, exs)
    return recs


def dump(records: list[Record], path: str | Path) -> Path:
    """Write records as the JSONL file `pst teacher serve-replay --records` reads."""
    path = Path(path)
    path.write_text("".join(json.dumps(r.__dict__) + "\n" for r in records))
    return path
