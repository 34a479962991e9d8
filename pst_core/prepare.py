"""`pst data prepare`: load a task from its source, split it, and write every split to the store.

The whole task is loaded and validated before anything is written, so a malformed data file
raises one DataError naming file and row and leaves the store as it was. Each split is then
replaced atomically (see `pst_core.examples.write_split`); re-running writes identical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pst_core import examples, settings
from pst_core.config import check, option
from pst_core.schemas import SPLITS
from pst_core.tasks import get_task
from pst_core.tasks.spec import GENERATED_OFFSET, SOURCES


@dataclass(frozen=True)
class PrepareConfig:
    """How tasks are read and split into the example store."""

    datasets_dir: str | None = option(None, "Folder of the offline dataset copies (default: PST_DATASETS_DIR or ../shared/datasets).")
    source: str = option("local", "Where rows come from: local files, the Hugging Face Hub, or the generator (synthetic tasks).")
    validation_fraction: float = option(0.1, "Share of train held out as validation (tasks without their own validation split).")
    seed: int = option(0, "Seed of the validation carve-out, seeded splits and generators.")
    generated_size: int = option(500, "Rows generated for coin_flip / last_letter_concatenation without files (published: 500).")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(self.source in SOURCES, name, f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        check(0.0 <= self.validation_fraction < 1.0, name, f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        check(self.seed >= 0, name, f"seed must be >= 0, got {self.seed}")
        check(0 < self.generated_size < GENERATED_OFFSET, name, f"generated_size must be in 1..{GENERATED_OFFSET - 1}, got {self.generated_size}")

    def resolved_datasets_dir(self) -> Path | None:
        """The datasets folder to read: the option, else the setting."""
        return Path(self.datasets_dir) if self.datasets_dir else settings.datasets_dir()


def load_task(task: str, cfg: PrepareConfig) -> dict[str, list[examples.Example]]:
    """All splits of `task` under `cfg`, fully loaded and validated (nothing written)."""
    return get_task(task).load(
        cfg.resolved_datasets_dir(), cfg.source, validation_fraction=cfg.validation_fraction,
        seed=cfg.seed, generated_size=cfg.generated_size,
    )


def prepare_task(task: str, cfg: PrepareConfig, root: str) -> dict[str, int]:
    """Write every split of `task` to the example store at `root`; returns rows per split."""
    splits = load_task(task, cfg)  # raises before any write when a file is malformed
    for split in SPLITS:
        examples.write_split(root, task, split, splits[split])
    return {split: len(splits[split]) for split in SPLITS}
