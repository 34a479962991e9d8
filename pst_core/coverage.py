"""Rationale coverage: which (task, split) a teacher's stored rationales let a strategy train on.

A strategy that reads rationales trains on the teacher's usable rows of the train split (no error,
non-empty, correct only by default, test questions left out: exactly what `pst_core.train.data`
assembles) and, when it selects its checkpoint by validation loss, needs them for validation too
(`pst_core.train.run`). A teacher whose outputs cover only test questions has none after its
harvest; the pipeline asks here first and skips those runs with one line, instead of failing each at
training with "no usable ... rationales". A strategy that reads no rationale (answer_only) needs no
teacher at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pst_core.train.config import TrainConfig
from pst_core.train.strategies import STRATEGIES

CHECKED_SPLITS = ("train", "validation")


def uses_rationale(strategy: str) -> bool:
    """Whether `strategy` trains on a teacher's rationales (see `Strategy.uses_rationale`)."""
    return bool(STRATEGIES.get(strategy).uses_rationale)


@dataclass(frozen=True)
class Coverage:
    """Usable rationale rows per split for one (teacher, task, strategy config)."""

    teacher: str
    task: str
    strategy: str
    examples: dict[str, int] = field(default_factory=dict)  # split -> examples training would use
    usable: dict[str, int] = field(default_factory=dict)  # split -> (example, rationale) rows training would use
    blocking: tuple[str, ...] = ()  # uncovered splits without which training this strategy fails

    @property
    def missing(self) -> list[str]:
        """Splits with examples but no usable rationale."""
        return [s for s in CHECKED_SPLITS if self.examples.get(s, 0) > 0 and self.usable.get(s, 0) == 0]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (task results are persisted as JSON)."""
        return {"teacher": self.teacher, "task": self.task, "strategy": self.strategy, "examples": dict(self.examples),
                "usable": dict(self.usable), "missing": self.missing, "blocking": list(self.blocking)}


def usable_rows(root: str, cfg: TrainConfig, split: str) -> tuple[int, int]:
    """(examples, usable rationale rows) of `split` for `cfg`, counted as training assembles them."""
    from pst_core.train import data

    exs = {e.example_id: e for e in data.split_examples(root, cfg, split)[0]}
    if not exs:
        return 0, 0
    return len(exs), len(data.rationale_rows(data.load_rationales(root, cfg, split), exs, cfg))


def check(root: str, cfg: TrainConfig) -> Coverage:
    """The coverage of `cfg`'s teacher on its task; `blocking` names the splits that would fail its training."""
    examples: dict[str, int] = {}
    usable: dict[str, int] = {}
    if not uses_rationale(cfg.strategy):
        return Coverage(cfg.teacher, cfg.task, cfg.strategy)
    for split in CHECKED_SPLITS:
        examples[split], usable[split] = usable_rows(root, cfg, split)
    cover = Coverage(cfg.teacher, cfg.task, cfg.strategy, examples, usable)
    # Validation rationales are needed only to compute the validation loss (select_by: loss).
    blocking = tuple(s for s in cover.missing if s == "train" or cfg.select_by == "loss")
    return Coverage(cfg.teacher, cfg.task, cfg.strategy, examples, usable, blocking)


def skip_line(teacher: str, covers: list[dict[str, Any]], root: str) -> str | None:
    """One line naming the (task, split) `teacher` does not cover and the runs skipped there; None if all covered.

    `covers` are `Coverage.as_dict()` of this teacher's runs (one per task x rationale strategy).
    """
    missing = sorted({f"{c['task']}/{s}" for c in covers for s in c["missing"]})
    if not missing:
        return None
    skipped: dict[str, list[str]] = {}
    for c in covers:
        if c["blocking"]:
            skipped.setdefault(c["task"], []).append(c["strategy"])
    head = f"teacher {teacher!r} has no usable rationales for {', '.join(missing)} after its harvest"
    if not skipped:  # only validation is missing, and these runs select checkpoints by exact match
        return f"{head}; its runs train without them"
    what = "; ".join(f"{task}: {', '.join(names)}" for task, names in skipped.items())
    return (f"{head}; skipped its runs there ({what}), strategies that read no rationale still train; "
            f"see `pst inspect {root.rstrip('/')}/rationales/teacher={teacher}`")
