"""The declarative task entry: what a task is (answer type, sources) and how its splits are built.

A task is data plus two small functions: `local(datasets_dir)` and optionally `hub()` return
the task's rows keyed by source index (`Row`); `TaskSpec.load` turns them into the
train/validation/test `Example` lists with the deterministic split rules of `splits`.
`TaskSpec.recorded` says where recorded teacher outputs of the task live (`RecordedLayout`, read
by `pst_core.recorded`), so a task with recorded rationales is still one registry entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pst_core import answers
from pst_core.errors import ConfigError, DataError
from pst_core.examples import Example, make_id

SOURCES = ("local", "hub", "generated")
# Recorded-output file formats (readers in pst_core.recorded; layouts in the datasets README):
# "completion_data": Fine-tune-CoT's D_<task>.json(.gz); "zero_shot_log": Kojima's derived JSONL;
# "dsbs": Distilling Step-by-Step's <folder>/<split>_CoT_<k>.json chunks of raw LLM outputs.
RECORDED_FORMATS = ("completion_data", "zero_shot_log", "dsbs")
# How the answer sentence of a DSbS output is read: "letter" '(c) wooded area.' -> C; "arithmetic"
# '(10 * 45).' -> 450; "label" 'neutral.' -> the letter of the first option named (row choices).
DSBS_ANSWERS = ("letter", "arithmetic", "label")
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
class RecordedLayout:
    """Where one teacher's recorded outputs of a task are, and how each output is cut and aligned.

    `path` is relative to the datasets folder: a file for "completion_data" / "zero_shot_log"
    (whose records carry their own sample index), the folder of `<split>_CoT_<k>.json` chunks for
    "dsbs". A DSbS output row j of chunk k of `split` belongs to source index
    `first_index[split] + k * chunk_rows + j`; a split missing from `first_index` starts where the
    previous split's outputs ended (as the task's rows are numbered by `loaders.dsbs_files`).
    """

    teacher_model: str  # e.g. "text-davinci-002", "palm-540b"
    format: str  # one of RECORDED_FORMATS
    path: str
    splits: tuple[str, ...] = ()  # dsbs: the chunk files' split names, in source-index order
    chunk_rows: int = 0  # dsbs: outputs per chunk file
    next_example: str = "Q:"  # dsbs: text that starts the next few-shot example (cut there)
    lead_in: str = "So the answer is"  # dsbs: what starts the answer sentence (rationale before it)
    answer: str = "letter"  # dsbs: one of DSBS_ANSWERS
    first_index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in RECORDED_FORMATS:
            raise ValueError(f"recorded format {self.format!r} is not one of {', '.join(RECORDED_FORMATS)}")
        if self.format == "dsbs" and (not self.splits or self.chunk_rows <= 0 or self.answer not in DSBS_ANSWERS):
            raise ValueError(f"a dsbs layout needs splits, chunk_rows > 0 and answer in {', '.join(DSBS_ANSWERS)}")


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
    recorded: RecordedLayout | tuple[RecordedLayout, ...] = ()  # recorded teacher outputs, any number of teachers

    def __post_init__(self) -> None:
        if isinstance(self.recorded, RecordedLayout):  # one layout is accepted as is; stored as a tuple
            object.__setattr__(self, "recorded", (self.recorded,))

    def recorded_by(self, teacher_model: str | None = None) -> tuple[RecordedLayout, ...]:
        """The recorded-output layouts of the task, optionally of one teacher model."""
        return tuple(r for r in self.recorded if teacher_model in (None, r.teacher_model))

    def has_local_files(self, datasets_dir: Path | None) -> bool:
        """Whether the task's local files are present (registry walkers skip tasks without them).

        Only a missing file counts as absent: a malformed one still raises its DataError.
        """
        if self.local is None or datasets_dir is None or not Path(datasets_dir).is_dir():
            return False
        try:
            self.local(Path(datasets_dir))
        except FileNotFoundError:
            return False
        return True

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
