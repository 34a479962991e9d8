"""A recorded-teacher task is one registry entry: its output layout is data in the TaskSpec, and
functions that walk the registry skip tasks whose files are absent."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from pst_core import recorded
from pst_core.replay import load
from pst_core.tasks import TASKS, TaskSpec, get_task, loaders
from pst_core.tasks.definitions import add, palm
from pst_core.tasks.spec import RecordedLayout

ANLI = "distilling_step_by_step/anli1"


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    """The task registry, restored after the test (tasks added here do not leak into others)."""
    monkeypatch.setattr(TASKS, "_items", dict(TASKS._items))
    return TASKS


def nli_task(name: str, ds: str) -> TaskSpec:
    """A Distilling Step-by-Step task with PaLM rationales, in anli1's layout: the one entry a user writes."""
    return add(TaskSpec(
        name, "choice",
        partial(loaders.dsbs_files, ds=ds, splits=("valid", "test"), make=loaders.anli_record),
        family="dsbs", description="an NLI task in DSbS's layout",
        recorded=palm(ds, ("valid", "test"), 5000, "Premise:", "So the answer is", "label"),
    ))


def copy_as(datasets_dir: Path, dest: Path, ds: str) -> Path:
    """anli1's validation/test inputs and PaLM outputs under another dataset name."""
    target = dest / "distilling_step_by_step" / ds
    (target / "llm").mkdir(parents=True)
    for split in ("valid", "test"):
        shutil.copy(datasets_dir / ANLI / f"anli1_{split}.json", target / f"{ds}_{split}.json")
        shutil.copy(datasets_dir / ANLI / "llm" / f"{split}_CoT_0.json", target / "llm" / f"{split}_CoT_0.json")
    return dest


def test_a_registered_task_whose_files_are_absent_leaves_the_registry_walks_unchanged(registry, datasets_dir: Path) -> None:
    registry._items = {"anli1": get_task("anli1")}  # a small registry keeps the walks fast
    before = recorded.alignment_report(datasets_dir)
    nli_task("esnli", "esnli")  # no such files in the shared datasets folder
    assert recorded.recorded_tasks("palm-540b") == ["anli1", "esnli"] and not get_task("esnli").has_local_files(datasets_dir)
    assert recorded.alignment_report(datasets_dir) == before and {a.task for a in before} == {"anli1"}
    index = load(datasets_dir, teacher_model="palm-540b")  # every palm task: the absent one is skipped
    assert set(index.coverage) == {"anli1"} and len(index) == 2000


def test_a_new_dsbs_task_is_one_entry_and_its_records_load(registry, datasets_dir: Path, tmp_path: Path) -> None:
    copy = copy_as(datasets_dir, tmp_path / "datasets", "nli")
    nli_task("nli", "nli")
    report = {a.source_file: a for a in recorded.alignment_report(copy)}  # the 15 others have no files here
    assert {k: (a.task, a.teacher_model, a.records, a.aligned, a.examples, a.question_matches) for k, a in report.items()} == {
        "distilling_step_by_step/nli/llm/valid_CoT_*": ("nli", "palm-540b", 1000, 1000, 1000, 1000),
        "distilling_step_by_step/nli/llm/test_CoT_*": ("nli", "palm-540b", 1000, 1000, 1000, 1000),
    }
    ours = recorded.load_recorded("nli", copy)
    theirs = recorded.load_recorded("anli1", datasets_dir)
    assert len(ours) == 2000
    # Without first_index the splits follow each other from 0, as the loader numbers the rows.
    assert [r.source_index for r in ours] == list(range(2000))
    assert [(r.rationale, r.predicted_answer, r.gold_answer) for r in ours] == [(r.rationale, r.predicted_answer, r.gold_answer) for r in theirs]
    index = load(copy, tasks=["nli"])
    assert index.coverage["nli"]["test"] == (1000, 1000)


def test_a_layout_is_checked_when_the_entry_is_written() -> None:
    with pytest.raises(ValueError, match="not one of"):
        RecordedLayout("palm-540b", "csv", "x")
    with pytest.raises(ValueError, match="chunk_rows"):
        RecordedLayout("palm-540b", "dsbs", "x", ("test",), 0)
    one = TaskSpec("t", "number", recorded=RecordedLayout("m", "zero_shot_log", "t.jsonl"))
    assert one.recorded_by("m") == one.recorded and one.recorded_by("other") == ()
    assert isinstance(one.recorded, tuple)


def test_every_registered_task_names_its_recorded_outputs() -> None:
    """What used to be a hard-coded table in pst_core.recorded is now the tasks' own entries."""
    assert recorded.teacher_models() == ["text-davinci-002", "palm-540b"]
    assert recorded.recorded_tasks("palm-540b") == ["cqa", "svamp_dsbs", "anli1"]
    assert len(recorded.recorded_tasks("text-davinci-002")) == 12
    anli = get_task("anli1").recorded_by("palm-540b")[0]
    assert (anli.chunk_rows, anli.splits, anli.next_example, anli.answer) == (5000, ("train", "valid", "test"), "Premise:", "label")
    assert anli.first_index["valid"] == loaders.ANLI_R1_TRAIN_SIZE
