"""Deterministic splits: Fine-tune-CoT's published index files, file splits, or a seeded split.

Order of preference for train/test: (1) `reasoning_teacher/split/<task>__default.json` for the
Fine-tune-CoT tasks, (2) the split each source file belongs to (Distilling Step-by-Step), (3) a
seeded shuffle. Validation is the source's own validation split when it has one (ANLI), otherwise
a seeded `validation_fraction` of train, so test rows never leak into model selection.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pst_core.errors import DataError
from pst_core.tasks.spec import Rows, TaskSpec

SPLIT_DIR = Path("reasoning_teacher") / "split"


def split_file(datasets_dir: Path | None, task: str) -> Path | None:
    """The Fine-tune-CoT split index file of `task`, when present."""
    if datasets_dir is None:
        return None
    path = datasets_dir / SPLIT_DIR / f"{task}__default.json"
    return path if path.is_file() else None


def read_split_file(path: Path) -> dict[str, list[int]]:
    """`{"train": [...], "test": [...]}` of sample indices (a malformed file raises DataError)."""
    try:
        data = json.loads(path.read_text())
        return {k: [int(i) for i in data[k]] for k in ("train", "test")}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a split index file ({type(exc).__name__}: {exc})") from None


def seeded_sample(indices: list[int], fraction: float, seed: int, salt: str) -> set[int]:
    """A deterministic `fraction` of `indices` (same seed and salt -> same rows on any machine)."""
    ordered = sorted(indices)
    random.Random(f"{salt}:{seed}").shuffle(ordered)
    return set(ordered[: round(fraction * len(ordered))])


def build(spec: TaskSpec, rows: Rows, datasets_dir: Path | None, validation_fraction: float, seed: int) -> dict[str, list[int]]:
    """Source indices per split ("train", "validation", "test"), each sorted ascending."""
    path = split_file(datasets_dir, spec.name) if spec.family == "finetune_cot" else None
    if path is not None:
        published = read_split_file(path)
        # Rows the split names but the local files lack (AQuA train) are left out, not invented.
        train = [i for i in published["train"] if i in rows]
        test = [i for i in published["test"] if i in rows]
        validation: list[int] = []
    elif any(r.origin for r in rows.values()):
        by = {s: [i for i, r in rows.items() if r.origin == s] for s in ("train", "validation", "test")}
        train, validation, test = by["train"], by["validation"], by["test"]
    else:
        test_set = seeded_sample(list(rows), spec.test_fraction, seed, f"{spec.name}:test")
        train = [i for i in rows if i not in test_set]
        test = [i for i in rows if i in test_set]
        validation = []
    if not validation:
        held = seeded_sample(train, validation_fraction, seed, f"{spec.name}:validation")
        validation = [i for i in train if i in held]
        train = [i for i in train if i not in held]
    return {"train": sorted(train), "validation": sorted(validation), "test": sorted(test)}
