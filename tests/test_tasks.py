"""The task registry: row counts of the 15 tasks, deterministic splits, generators, Hub loaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pst_core import answers
from pst_core.errors import DataError
from pst_core.registry import UnknownName
from pst_core.tasks import TASKS, get_task
from pst_core.tasks import generators

# (train incl. validation, validation of the source itself or None, test) from ../shared/datasets/README.md.
# aqua: the split file lists 10,000 train indices of AQuA train, which the offline copy lacks;
# anli1: ANLI-R1 train inputs are absent too (both load from the Hub). Everything else is complete.
EXPECTED = {
    "addsub": (276, None, 119), "aqua": (0, None, 254), "coin_flip": (350, None, 150),
    "commonsense_qa": (9741, None, 1221), "date_understanding": (258, None, 111), "gsm8k": (7473, None, 1319),
    "last_letter_concatenation": (350, None, 150), "multiarith": (420, None, 180), "single_eq": (356, None, 152),
    "strategy_qa": (1603, None, 687), "svamp": (700, None, 300), "tracking_shuffled_objects": (525, None, 225),
    "cqa": (9741, None, 1221), "svamp_dsbs": (800, None, 200), "anli1": (0, 1000, 1000),
}


def test_registry_holds_the_fifteen_built_in_tasks_with_valid_answer_types() -> None:
    assert set(EXPECTED) <= set(TASKS.names())  # a task added with one `add` call does not break this
    assert all(get_task(n).answer_type in answers.ANSWER_TYPES for n in TASKS)


def test_unknown_task_lists_valid_names() -> None:
    with pytest.raises(UnknownName, match="gsm8k"):
        get_task("gsm8")


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_loaded_row_counts_match_the_datasets_readme(task: str, datasets_dir: Path) -> None:
    splits = get_task(task).load(datasets_dir)
    train, validation, test = EXPECTED[task]
    if validation is None:  # carved from train
        assert len(splits["train"]) + len(splits["validation"]) == train
        assert len(splits["validation"]) == round(0.1 * train)
    else:
        assert (len(splits["train"]), len(splits["validation"])) == (train, validation)
    assert len(splits["test"]) == test
    ids = [e.example_id for s in splits.values() for e in s]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(rf"{task}-\d{{5,}}", i) for i in ids)


@pytest.mark.parametrize("task", ["gsm8k", "svamp", "strategy_qa", "commonsense_qa"])
def test_validation_is_carved_from_the_published_train_split(task: str, datasets_dir: Path) -> None:
    published = json.loads((datasets_dir / "reasoning_teacher/split" / f"{task}__default.json").read_text())
    splits = get_task(task).load(datasets_dir)
    idx = {s: {e.source_index for e in v} for s, v in splits.items()}
    assert idx["train"] | idx["validation"] == set(published["train"])
    assert idx["test"] == set(published["test"])
    assert not idx["validation"] & idx["test"] and not idx["validation"] & idx["train"]


def test_splits_are_deterministic_by_seed(datasets_dir: Path) -> None:
    spec = get_task("svamp_dsbs")
    a, b = spec.load(datasets_dir, seed=0), spec.load(datasets_dir, seed=0)
    c = spec.load(datasets_dir, seed=1)
    assert a == b
    assert [e.example_id for e in a["validation"]] != [e.example_id for e in c["validation"]]
    assert a["test"] == c["test"]


def test_gold_answers_are_normalised_and_rationales_kept(datasets_dir: Path) -> None:
    gsm = get_task("gsm8k").load(datasets_dir)["test"][0]
    assert gsm.gold_answer == "18" and "<<" in (gsm.human_rationale or "")
    single = get_task("single_eq").load(datasets_dir)["test"][0]
    assert re.fullmatch(r"-?\d+(\.\d+)?", single.gold_answer)
    strategy = get_task("strategy_qa").load(datasets_dir)["train"][0]
    assert strategy.gold_answer in ("yes", "no") and strategy.human_rationale
    cqa = get_task("cqa").load(datasets_dir)["test"][0]
    assert cqa.gold_answer == "C" and cqa.choices[2] == "C) wooded area" and cqa.human_rationale
    anli = get_task("anli1").load(datasets_dir)["test"][0]
    assert anli.example_id == "anli1-17946" and anli.gold_answer == "A"
    svamp = get_task("svamp_dsbs").load(datasets_dir)["test"][0]
    assert svamp.gold_answer == "450"


@pytest.mark.parametrize("task", ["coin_flip", "last_letter_concatenation"])
def test_generated_tasks_work_with_no_files(task: str) -> None:
    splits = get_task(task).load(None, generated_size=100, seed=3)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [63, 7, 30]
    assert splits == get_task(task).load(None, generated_size=100, seed=3)
    assert splits != get_task(task).load(None, generated_size=100, seed=4)


def test_generators_match_the_published_format_and_gold(datasets_dir: Path) -> None:
    published = json.loads((datasets_dir / "zero_shot_cot/dataset/coin_flip/coin_flip.json").read_text())["examples"][0]
    shape = re.compile(r'A coin is heads up\.( \w+ (flips|does not flip) the coin\.){4} Is the coin still heads up\? '
                       r'Note that "flip" here means "reverse"\.')
    assert shape.fullmatch(published["question"])
    for row in generators.coin_flip(200, seed=0).values():
        assert shape.fullmatch(row.question)
        assert row.gold_answer == ("yes" if row.question.count(" flips the coin") % 2 == 0 else "no")
    for row in generators.last_letter_concatenation(200, seed=0).values():
        names = re.fullmatch(r'Take the last letters of each words in "([\w ]+)" and concatenate them\.', row.question)
        assert names and row.gold_answer == "".join(n[-1] for n in names.group(1).split()).lower()


def test_a_task_without_files_says_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="PST_DATASETS_DIR"):
        get_task("gsm8k").load(tmp_path)


def _fake_load_dataset(tables: dict[tuple[str, str | None, str], list[dict]]):
    import datasets

    calls = []

    def load_dataset(hub_id: str, config: str | None = None, split: str | None = None, **_: object):
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_list(tables[(hub_id, config, split)])

    return load_dataset, calls


def test_hub_loaders_read_in_memory_datasets_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    csqa = {"id": "x", "question": "Where?", "question_concept": "c", "answerKey": "B",
            "choices": {"label": list("ABCDE"), "text": ["a", "b", "c", "d", "e"]}}
    tables = {
        ("openai/gsm8k", "main", "train"): [{"question": f"q{i}", "answer": f"step\n#### {i},000"} for i in range(8)],
        ("openai/gsm8k", "main", "test"): [{"question": "t", "answer": "s\n#### 5"}],
        ("tau/commonsense_qa", None, "train"): [csqa] * 4,
        ("tau/commonsense_qa", None, "validation"): [csqa],
        ("facebook/anli", None, "train_r1"): [{"uid": "u", "premise": "p", "hypothesis": "h", "label": 2, "reason": ""}] * 3,
        ("facebook/anli", None, "dev_r1"): [{"uid": "u", "premise": "p", "hypothesis": "h", "label": 1, "reason": "r"}],
        ("facebook/anli", None, "test_r1"): [{"uid": "u", "premise": "p", "hypothesis": "h", "label": 0, "reason": "r"}],
    }
    fake, calls = _fake_load_dataset(tables)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    gsm = get_task("gsm8k").load(None, "hub")
    assert [e.example_id for e in gsm["test"]] == ["gsm8k-00008"]
    assert len(gsm["train"]) + len(gsm["validation"]) == 8 and gsm["train"][1].gold_answer == "1000"
    csqa_rows = get_task("commonsense_qa").load(None, "hub")
    assert csqa_rows["test"][0].gold_answer == "B" and "(B) b" in csqa_rows["test"][0].question
    anli = get_task("anli1").load(None, "hub")
    assert [len(anli[s]) for s in ("train", "validation", "test")] == [3, 1, 1]
    assert anli["train"][0].human_rationale is None and anli["test"][0].gold_answer == "A"
    assert ("openai/gsm8k", "main", "test") in calls


def test_hub_failure_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: object, **kwargs: object):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"cannot load openai/gsm8k .*no network$"):
        get_task("gsm8k").load(None, "hub")
