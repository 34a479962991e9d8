"""Acceptance: harvesting multiarith and svamp train from the recorded text-davinci-002 outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pst_core import answers, examples, recorded, teachers
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.prepare import PrepareConfig, prepare_task
from pst_core.replay import load, running

pytestmark = pytest.mark.shared


@pytest.mark.parametrize("task", ["multiarith", "svamp"])
def test_replayed_train_harvest_stores_recorded_rationales_and_recorded_accuracy(task: str, store_root: str, datasets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")
    prepare_task(task, PrepareConfig(datasets_dir=str(datasets_dir)), store_root)
    train = examples.load(store_root, task, "train")
    first: dict[str, recorded.RecordedOutput] = {}
    for rec in recorded.load_recorded(task, datasets_dir, "text-davinci-002"):
        first.setdefault(rec.question.strip(), rec)  # the replay server answers with the first recording
    with running(load(datasets_dir, [task], "text-davinci-002")) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="davinci", base_url=h.url, model="text-davinci-002", api_key_env="PST_TEST_KEY"))
        s = harvest(HarvestConfig(teacher="davinci", task=task), store_root)
        assert h.stats().get("unmatched", 0) == 0
    rows = rationales.read(store_root, "davinci", task, "train").to_pylist()
    by_id = {e.example_id: e for e in train}
    # Identical questions share a request key, so every distinct train question has one row.
    assert {by_id[r["example_id"]].question for r in rows} == {e.question for e in train}
    recorded_correct = 0
    for r in rows:
        ex, rec = by_id[r["example_id"]], first[by_id[r["example_id"]].question.strip()]
        assert r["error"] is None and r["rationale"] == rec.rationale and r["answer_completion"] == rec.answer_completion
        recorded_correct += answers.is_correct(answers.extract(rec.answer_completion, ex.answer_type, ex.choices), ex.gold_answer, ex.answer_type)
    stored_rate = sum(r["is_correct"] for r in rows) / len(rows)
    assert stored_rate == recorded_correct / len(rows) == s.correct_rate
    assert 0.5 < stored_rate < 0.95  # text-davinci-002 Zero-shot-CoT: about 0.78 multiarith, 0.63 svamp
