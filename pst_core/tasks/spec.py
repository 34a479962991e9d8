"""The declarative task entry: what a task is (answer type, sources) and how its splits are built.

A task is data plus two small functions: `local(datasets_dir)` and optionally `hub()` return
the task's rows keyed by source index (`Row`); `TaskSpec.load` turns them into the
train/validation/test `Example` lists with the deterministic split rules of `splits`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pst_core import answers
from pst_core.errors import ConfigError, DataError
from pst_core.examples import Example, make_id

SOURCES = ("local", "hub", "generated")
# Generated rows get indices from here on (see generators), so they never collide with file ids.
GENERATED_OFFSET = 100_000


@dataclass(frozen=True)
class Row:
    """One source row before splitting; `origin` is the split its source file assigns, if any."""

    source_index: int
    question: str
    gold_answer: str
    choices: tuple[str, ...] = ()
    human_rationale: str | None = None
    source: str | None = None
    origin: str | None = None


Rows = dict[int, Row]


@dataclass(frozen=True)
class TaskSpec:
    """One reasoning task: answer type, sources, and the split rule (see `splits.build`)."""

    name: str
    answer_type: str  # one of pst_core.answers.ANSWER_TYPES
    local: Callable[[Path], Rows] | None = None
    hub: Callable[[str, str | None], Rows] | None = None  # (hub_id, hub_config) -> rows
    hub_id: str | None = None
    hub_config: str | None = None
    answer_position: str = "first"  # Zero-shot-CoT takes the first candidate for every task
    family: str = "finetune_cot"  # "finetune_cot": split/<name>__default.json; "dsbs": file splits
    generator: Callable[[int, int], Rows] | None = None  # (size, seed) -> rows, for synthetic tasks
    test_fraction: float = 0.3  # seeded split when no split file or file splits exist
    description: str = ""
    missing_note: dict[str, str] = field(default_factory=dict)  # split -> why rows may be absent locally

    def rows(self, datasets_dir: Path | None, source: str = "local", *, seed: int = 0, generated_size: int = 500) -> Rows:
        """All rows of the task from `source` (local files, the Hub, or the generator)."""
        if source not in SOURCES:
            raise ConfigError(f"unknown data source {source!r}; valid: {', '.join(SOURCES)}")
        if source == "hub":
            if self.hub is None:
                raise ConfigError(f"task {self.name} has no Hugging Face Hub source; use --source local")
            return self.hub(self.hub_id, self.hub_config)
        if source == "generated":
            if self.generator is None:
                raise ConfigError(f"task {self.name} has no generator; use --source local or hub")
            return self.generator(generated_size, seed)
        if self.local is None:
            raise ConfigError(f"task {self.name} has no local files; use --source hub")
        try:
            if datasets_dir is None or not datasets_dir.is_dir():
                raise FileNotFoundError(f"datasets folder {datasets_dir} not found")
            return self.local(datasets_dir)
        except FileNotFoundError as exc:
            if self.generator is not None:  # synthetic tasks work with no files at all
                return self.generator(generated_size, seed)
            raise DataError(
                f"task {self.name}: {exc}; set PST_DATASETS_DIR (or --datasets-dir) to the datasets folder, "
                "or use --source hub"
            ) from None

    def load(
        self,
        datasets_dir: Path | None,
        source: str = "local",
        *,
        validation_fraction: float = 0.1,
        seed: int = 0,
        generated_size: int = 500,
    ) -> dict[str, list[Example]]:
        """The task's "train", "validation" and "test" examples (validation carved from train)."""
        from pst_core.tasks import splits  # splits imports this module

        rows = self.rows(datasets_dir, source, seed=seed, generated_size=generated_size)
        generated = bool(rows) and min(rows) >= GENERATED_OFFSET  # published split files do not apply
        assignment = splits.build(self, rows, None if generated else datasets_dir, validation_fraction, seed)

        out: dict[str, list[Example]] = {}
        for split, indices in assignment.items():
            out[split] = [
                Example(
                    example_id=make_id(self.name, i), task=self.name, split=split,
                    question=rows[i].question, gold_answer=answers.normalize(rows[i].gold_answer, self.answer_type),
                    answer_type=self.answer_type, choices=list(rows[i].choices),
                    human_rationale=rows[i].human_rationale, source=rows[i].source, source_index=i,
                )
                for i in indices
            ]
        return out
