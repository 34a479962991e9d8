"""The replay teacher never fabricates a success: unmatched questions are HTTP errors, stored as
`unmatched` failures that are neither embedded nor trained on; records files are checked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pst_core import teachers
from pst_core.embed.run import iter_rationales, rationale_parts
from pst_core.errors import ConfigError
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.replay import Index, Record, load, running, synthetic
from pst_core.replay.records import coverage_lines
from pst_core.train.config import TrainConfig
from pst_core.train.data import load_rationales

KEY_ENV = "PST_TEST_KEY"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "k")


def register(root: str, url: str, **kw) -> None:
    teachers.add(root, teachers.TeacherConfig(name="rep", base_url=url, model="m", api_key_env=KEY_ENV, **kw), replace=True)


def test_unknown_questions_are_stored_as_unmatched_failures_never_embedded_or_trained_on(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", 12)
    known = recs[:8]  # the teacher has no record of the last four questions
    with running(Index(known)) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        stats = h.stats()
    assert stats == {"ok": 16, "unmatched": 4, "total": 20}  # one request each: unmatched is not retried
    assert (s.succeeded, s.failed, dict(s.failures)) == (8, 4, {"unmatched": 4})
    rows = rationales.read(store_root, deduped=False).to_pylist()
    failed = [r for r in rows if r["error"] is not None]
    assert len(rows) == 12 and {r["error"] for r in failed} == {"unmatched"}
    assert all(r["is_correct"] is None and r["answer_completion"] is None for r in failed)
    texts = [t for _, batch in iter_rationales(store_root, rationale_parts(store_root, "rep", "synth"), 100) for t in batch]
    assert sorted(texts) == sorted(r.rationale for r in known)
    trained = load_rationales(store_root, TrainConfig(task="synth", teacher="rep"), "train")
    assert sorted(trained["rationale"].to_pylist()) == sorted(r.rationale for r in known)


def test_a_record_without_an_answer_gets_an_unmatched_stage_two_not_placeholder_text(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", 2)
    bare = Record(recs[1].question, recs[1].rationale, None, recs[1].rationale)  # raw adds nothing after the rationale
    with running(Index([recs[0], bare])) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        assert h.stats() == {"ok": 3, "unmatched": 1, "total": 4}
    assert (s.succeeded, dict(s.failures)) == (1, {"unmatched": 1})
    row = next(r for r in rationales.read(store_root, deduped=False).to_pylist() if r["example_id"] == "synth-00001")
    assert row["error"] == "unmatched" and row["answer_completion"] is None


def test_stage_two_uses_what_the_raw_completion_adds_and_tolerates_a_space_after_the_trigger() -> None:
    rec = Record("What is 1 plus 1?", "1 + 1 = 2.", None, " 1 + 1 = 2. So the answer is 2.")
    index = Index([rec])
    stage1 = "Q: What is 1 plus 1?\nA: Let's think step by step."
    assert index.answer(stage1) == ("1 + 1 = 2.", "stage1")
    for joined in (stage1 + rec.rationale, stage1 + " " + rec.rationale):
        assert index.answer(joined + " Therefore, the answer (arabic numerals) is") == (" So the answer is 2.", "stage2")
    text, kind = index.answer(stage1 + " 1 + 1 = 3. Therefore, the answer (arabic numerals) is")
    assert kind == "none" and "not a recorded one" in text


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_batch_lines_without_a_record_are_stored_as_unmatched_once(store_root: str, max_attempts: int) -> None:
    """No record now means no record on a resubmit: stored after one submission whatever max_attempts."""
    recs = synthetic.write(store_root, "synth", 6)
    with running(Index(recs[:4])) as h:
        register(store_root, h.url, mode="batch", max_attempts=max_attempts)
        s = harvest(HarvestConfig(teacher="rep", task="synth", poll_s=0.02), store_root)
        assert h.stats()["batch_unmatched"] == 2
    assert (s.succeeded, dict(s.failures)) == (4, {"unmatched": 2})
    assert sorted(r["error"] or "" for r in rationales.read(store_root, deduped=False).to_pylist()) == [""] * 4 + ["unmatched"] * 2


def test_records_file_may_be_json_lines_or_a_json_list(tmp_path: Path) -> None:
    rows = [{"question": "What is 2 plus 3?", "rationale": "2 + 3 = 5.", "answer_completion": " 5."},
            {"question": "Name a colour.", "raw_completion": "Red. The answer is red.", "task": "extra fields are ignored"}]
    listed, lines = tmp_path / "records.json", tmp_path / "records.jsonl"
    listed.write_text(json.dumps(rows, indent=2))
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in (listed, lines):
        index = load(path)
        assert len(index) == 2 and index.answer("Q: Name a colour.\nA:") == ("Red. The answer is red.", "few_shot")


@pytest.mark.parametrize(("content", "message"), [
    ('{"question": "q", "rationale": "r"}\nnot json\n', "line 2 is not valid JSON"),
    ('[{"question": "q", "rationale": "r"}, {"rationale": "r"}]', 'item 1: "question" must be a non-empty string'),
    ('[{"question": "q", "rationale": 5}]', '"rationale" must be a string or null'),
    ('[{"question": "q"}]', 'needs a non-empty "rationale" or "raw_completion"'),
    ('[["q", "r"]]', "item 0 is a list"),
    ("[]", "holds no records"),
])
def test_a_malformed_records_file_is_one_line_naming_the_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "records.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_server_says_at_start_how_many_of_the_task_questions_it_has_records_for(
        store_root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recs = synthetic.write(store_root, "synth", 10)
    path = synthetic.dump(recs[:7], tmp_path / "records.jsonl")
    index = load(path, tasks=["synth"])  # the task's questions come from the prepared store
    assert index.coverage == {"synth": {"train": (7, 10)}}
    assert coverage_lines(index) == ["synth: records for 7/10 questions (train 7/10)"]
    with caplog.at_level(logging.INFO, logger="pst.replay"), running(index) as h:
        assert h.coverage_lines() == coverage_lines(index)
    assert "synth: records for 7/10 questions" in caplog.text


def test_a_datasets_folder_reports_coverage_of_each_task_it_loads(datasets_dir: Path) -> None:
    index = load(datasets_dir, tasks=["anli1"], teacher_model="palm-540b")
    assert index.coverage["anli1"] == {"train": (0, 0), "validation": (1000, 1000), "test": (1000, 1000)}
