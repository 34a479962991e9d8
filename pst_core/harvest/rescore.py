"""Re-judging stored teacher answers under today's extraction rules, without sending a request.

Every row the harvest stores carries the `answers.EXTRACTOR_VERSION` its `predicted_answer` and
`is_correct` were made with (null: written before versions existed). When the rules change, a
successful row of another version is judged again from its stored completion text, exactly as
the harvester judges a fresh answer (`judge`), against the gold answer, answer type and choices
of its example in the examples store. Readers do it in memory (`rationales.read`, `cached`,
`success_digest`), so a rerun reports today's correct-rate at once; compaction (at the end of
every harvest) and `pst store rescore` write it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pst_core import answers, examples, prompts
from pst_core.errors import ConfigError

# The columns `rejudge` reads (besides the partition's task and split).
COLUMNS = ["example_id", "prompt_kind", "raw_completion", "answer_completion", "error", "extractor_version", "predicted_answer", "is_correct"]


def current() -> int:
    """The extraction rules' version now (read at call time, so a bump needs no restart of this module)."""
    return answers.EXTRACTOR_VERSION


def judge(kind: prompts.PromptKind, raw_completion: str | None, answer_completion: str | None, example: examples.Example) -> tuple[str | None, bool | None]:
    """(predicted answer, is_correct) of one successful row, as `JobFactory.row` judges it.

    Two-stage prompts (Zero-shot-CoT) take the answer from the stage-2 completion; single-stage
    ones from the tail the prompt kind splits off the completion (the first candidate when it
    split off an answer part, else the last).
    """
    text = answer_completion if kind.two_stage else raw_completion
    if text is None:
        return None, None
    if kind.two_stage:
        predicted = answers.extract(text, example.answer_type, example.choices)
    else:
        _, tail = kind.split(text)
        position = "first" if tail is not text else "last"
        predicted = answers.extract(tail, example.answer_type, example.choices, position=position)
    return predicted, answers.is_correct(predicted, example.gold_answer, example.answer_type)


def stale(table: pa.Table) -> pa.ChunkedArray:
    """Successful rows judged under another extractor version (or none recorded)."""
    version = table["extractor_version"]
    other = pc.fill_null(pc.not_equal(version, pa.scalar(current(), version.type)), True)
    return pc.and_(pc.is_null(table["error"]), other)


def count_stale(table: pa.Table) -> int:
    """How many successful rows of `table` need judging again."""
    if not table.num_rows:
        return 0
    return pc.sum(stale(table).cast(pa.int64())).as_py() or 0


@dataclass
class Rejudged:
    """A table with its stale rows judged again, and what that changed."""

    table: pa.Table
    rejudged: int = 0  # stale rows judged under today's rules
    changed: int = 0  # ... whose is_correct flag changed
    unjudged: int = 0  # stale rows left as stored: example no longer in the examples store, or unknown prompt kind


class _Lookup:
    """Examples and prompt kinds per (task, split), loaded once per `rejudge` call."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._examples: dict[tuple[str, str], Mapping[str, examples.Example]] = {}
        self._kinds: dict[tuple[str, str], prompts.PromptKind | None] = {}

    def example(self, task: str, split: str, example_id: str) -> examples.Example | None:
        if (task, split) not in self._examples:
            self._examples[(task, split)] = {e.example_id: e for e in examples.load(self.root, task, split)}
        return self._examples[(task, split)].get(example_id)

    def kind(self, name: str | None, task: str) -> prompts.PromptKind | None:
        if (name or "", task) not in self._kinds:
            try:
                self._kinds[(name or "", task)] = prompts.get(name, task) if name else None
            except (ConfigError, KeyError):  # a kind this version does not know, or few-shot exemplars gone
                self._kinds[(name or "", task)] = None
        return self._kinds[(name or "", task)]


def rejudge(table: pa.Table, root: str, task: str | None = None, split: str | None = None) -> Rejudged:
    """Judge `table`'s stale rows again (the rest is returned untouched).

    `table` needs `COLUMNS`, plus `task` and `split` columns unless they are given (one partition).
    """
    mask = stale(table) if table.num_rows else pa.chunked_array([], pa.bool_())
    rows = [i for i, s in enumerate(mask.to_pylist()) if s]
    if not rows:
        return Rejudged(table)
    lookup = _Lookup(root)
    picked = table.take(pa.array(rows, pa.int64()))
    col = {c: picked[c].to_pylist() for c in COLUMNS}
    tasks = picked["task"].to_pylist() if task is None else [task] * len(rows)
    splits = picked["split"].to_pylist() if split is None else [split] * len(rows)
    predicted = table["predicted_answer"].to_pylist()
    correct = table["is_correct"].to_pylist()
    version = table["extractor_version"].to_pylist()
    out = Rejudged(table)
    for j, i in enumerate(rows):
        example = lookup.example(tasks[j], splits[j], col["example_id"][j])
        kind = _kind_of(lookup, col["prompt_kind"][j], col["answer_completion"][j], tasks[j])
        if example is None or kind is None:
            out.unjudged += 1
            continue
        predicted[i], flag = judge(kind, col["raw_completion"][j], col["answer_completion"][j], example)
        out.rejudged += 1
        out.changed += flag != correct[i]
        correct[i], version[i] = flag, current()
    out.table = _replace(table, predicted_answer=pa.array(predicted, pa.string()), is_correct=pa.array(correct, pa.bool_()),
                         extractor_version=pa.array(version, table.schema.field("extractor_version").type))
    return out


def _kind_of(lookup: _Lookup, name: str | None, answer_completion: str | None, task: str) -> prompts.PromptKind | None:
    """The row's prompt kind; rows from before `prompt_kind` was stored are Zero-shot-CoT when they have a stage-2 answer."""
    if name is None and answer_completion is not None:
        name = "zs_cot"
    return lookup.kind(name, task)


def _replace(table: pa.Table, **columns: Any) -> pa.Table:
    """`table` with the named columns replaced (same positions, same field types)."""
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), values)
    return table
