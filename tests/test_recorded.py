"""Recorded teacher outputs: every record aligns to an example id, raw text is kept verbatim."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from pst_core import answers
from pst_core.recorded import RecordedOutput, _cut_palm, _palm_answer, alignment_report, load_recorded
from pst_core.tasks import get_task

# task -> (completion_data records, distinct examples) from the datasets README; all must align.
FINETUNE_COT_FILES = {
    "addsub": (395, 395), "coin_flip": (532, 500), "date_understanding": (401, 369),
    "last_letter_concatenation": (532, 500), "multiarith": (792, 600), "single_eq": (508, 508),
    "strategy_qa": (2290, 2290), "svamp": (1000, 1000), "tracking_shuffled_objects": (782, 750),
}
ZERO_SHOT_ROWS = {
    "addsub": 395, "aqua": 254, "coin_flip": 500, "commonsense_qa": 1221, "date_understanding": 369, "gsm8k": 1319,
    "last_letter_concatenation": 500, "multiarith": 600, "single_eq": 508, "strategy_qa": 2290, "svamp": 1000,
    "tracking_shuffled_objects": 750,
}


@functools.lru_cache(maxsize=1)
def _report(datasets_dir: Path) -> dict[tuple[str, str], object]:
    return {(a.task, a.source_file.split("/")[-1]): a for a in alignment_report(datasets_dir)}


@pytest.mark.parametrize("task", sorted(FINETUNE_COT_FILES))
def test_every_fine_tune_cot_completion_aligns_to_an_example_with_the_same_question(task: str, datasets_dir: Path) -> None:
    row = _report(datasets_dir)[(task, f"D_{task}.json.gz")]
    records, examples = FINETUNE_COT_FILES[task]
    assert (row.records, row.aligned, row.examples, row.question_matches) == (records, records, examples, records)


@pytest.mark.parametrize("task", sorted(ZERO_SHOT_ROWS))
def test_every_zero_shot_cot_log_row_aligns_to_an_example(task: str, datasets_dir: Path) -> None:
    row = _report(datasets_dir)[(task, f"{task}.jsonl")]
    n = ZERO_SHOT_ROWS[task]
    assert (row.records, row.aligned, row.examples) == (n, n, n)
    # Kojima's date/tracking runs listed the choices in another order than Fine-tune-CoT's data.
    assert row.question_matches == (0 if task in ("date_understanding", "tracking_shuffled_objects") else n)


def test_palm_outputs_align_except_anli_train_without_inputs(datasets_dir: Path) -> None:
    report = _report(datasets_dir)
    expected = {("cqa", "train_CoT_*"): (9741, 9741), ("cqa", "test_CoT_*"): (1221, 1221),
                ("svamp_dsbs", "train_CoT_*"): (800, 800), ("svamp_dsbs", "test_CoT_*"): (200, 200),
                ("anli1", "valid_CoT_*"): (1000, 1000), ("anli1", "test_CoT_*"): (1000, 1000),
                ("anli1", "train_CoT_*"): (16946, 0)}
    assert {k: (report[k].records, report[k].aligned) for k in expected} == expected


@pytest.mark.parametrize(("task", "low", "high"), [("cqa", 0.6, 0.9), ("svamp_dsbs", 0.6, 0.9), ("anli1", 0.55, 0.9)])
def test_palm_labels_agree_with_gold_as_often_as_the_readme_reports(task: str, low: float, high: float, datasets_dir: Path) -> None:
    records = load_recorded(task, datasets_dir, "palm-540b")
    agree = sum(r.predicted_answer == r.gold_answer for r in records) / len(records)
    assert low <= agree <= high  # misaligned rows would agree about 1/3 or 0 of the time


def test_records_keep_the_raw_text_verbatim(datasets_dir: Path) -> None:
    records = load_recorded("multiarith", datasets_dir, "text-davinci-002")
    first = next(r for r in records if r.source_file.endswith(".json.gz") and r.source_index == 0)
    assert first.raw_completion.startswith(" \n\nDebby and her sister") and first.rationale == first.raw_completion.strip()
    assert first.answer_completion == " 39." and first.predicted_answer == "39" == first.gold_answer
    assert len({r.completion_index for r in records if r.source_index == first.source_index}) >= 1
    several = [r for r in records if r.source_file.endswith(".json.gz")]
    assert max(r.completion_index for r in several) == 24  # eight samples carry 25 completions


def test_store_questions_are_what_the_teacher_saw(datasets_dir: Path) -> None:
    rows = get_task("gsm8k").rows(datasets_dir)
    for r in load_recorded("gsm8k", datasets_dir):
        assert isinstance(r, RecordedOutput) and r.question == rows[r.source_index].question
        assert r.example_id == f"gsm8k-{r.source_index:05d}"


def test_teacher_filter_selects_one_model(datasets_dir: Path) -> None:
    assert {r.teacher_model for r in load_recorded("cqa", datasets_dir)} == {"palm-540b"}
    assert load_recorded("cqa", datasets_dir, "text-davinci-002") == []
    assert load_recorded("gsm8k", datasets_dir, "palm-540b") == []


def test_palm_output_is_cut_like_the_official_loader() -> None:
    raw = "Beavers use wood. So the answer is (c) wooded area.\n\nQ: What is next?\nAnswer Choices:\n(a) x"
    rationale, answer = _cut_palm(raw, "Q:", "So the answer is")
    assert rationale == "Beavers use wood." and answer == " (c) wooded area.\n\n"
    assert _palm_answer(answer, "letter", ("A) rock", "B) sea", "C) wooded area")) == "C"
    assert _palm_answer(" (10 * 45).", "arithmetic") == "450"
    assert _palm_answer(" neutral.", "label", ("A) entailment", "B) neutral", "C) contradiction")) == "B"
    assert _cut_palm("no answer sentence", "Q:", "So the answer is") == ("no answer sentence", None)
    assert answers.normalize("450.0", "number") == "450"


def test_choice_answers_past_e_are_parsed_from_completion_data(datasets_dir: Path) -> None:
    """date_understanding offers (A)-(F): a recorded "(F)" must count as F, not as no answer."""
    recs = [r for r in load_recorded("date_understanding", datasets_dir, "text-davinci-002") if r.source_file.startswith("D_")]
    assert recs and any(r.predicted_answer == "F" for r in recs)
    unparsed = [r for r in recs if r.predicted_answer is None and "(F)" in (r.answer_completion or "")]
    assert not unparsed
