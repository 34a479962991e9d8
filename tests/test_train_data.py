"""Training data: test questions never train, and truncation keeps what a strategy must learn to write."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core import examples, schemas, store  # noqa: E402
from pst_core.errors import DataError  # noqa: E402
from pst_core.train import config, data, students  # noqa: E402
from pst_core.train.strategies import SEM, SEP, Row, get_strategy  # noqa: E402

# --- test questions in train -------------------------------------------------------------------


def _overlap_store(root: str) -> None:
    """toy train (4), validation (2) and test (2) splits: train 00001 and validation 00011 ask test
    questions; train 00003 asks one with other choices, which is another question."""
    q = [f"{n} has {i} apples . how many ?" for i, n in enumerate(F.NAMES)]
    splits = {
        "train": [("toy-00000", q[0], ()), ("toy-00001", q[6], ("A) 6", "B) 7")), ("toy-00002", q[2], ()), ("toy-00003", q[7], ())],
        "validation": [("toy-00010", q[4], ()), ("toy-00011", q[6] + " ", ("A) 6", "B) 7"))],
        "test": [("toy-00020", q[6], ("A) 6", "B) 7")), ("toy-00021", q[7], ("A) 7", "B) 8"))],
    }
    for split, rows in splits.items():
        examples.write_split(root, "toy", split, [examples.Example(i, "toy", split, text, "A", "choice", list(c)) for i, text, c in rows])
        table = pa.Table.from_pylist([{"request_key": f"{split}{k}", "example_id": i, "sample_index": 0, "rationale": "so it is A",
                                       "predicted_answer": "A", "is_correct": True} for k, (i, _, _) in enumerate(rows)])
        store.write_part(store.partition_path(root, "rationales", teacher="fake", task="toy", split=split), table, schemas.RATIONALES)


@pytest.mark.parametrize("name", ["answer_only", "pre_thinking"])
def test_train_and_validation_questions_asked_in_test_are_dropped_and_counted(store_root, name):
    _overlap_store(store_root)
    cfg = config.resolve({"strategy": name, "task": "toy", "teacher": "fake"})
    train = data.assemble(store_root, cfg, get_strategy(name), "train")
    val = data.assemble(store_root, cfg, get_strategy(name), "validation")
    assert [r.example_id for r in train.rows] == ["toy-00000", "toy-00002", "toy-00003"]
    assert [r.example_id for r in val.rows] == ["toy-00010"]
    assert train.notes["dropped_test_overlap"] == val.notes["dropped_test_overlap"] == 1
    kept = config.resolve({"strategy": name, "task": "toy", "teacher": "fake", "drop_test_overlap": False})
    everything = data.assemble(store_root, kept, get_strategy(name), "train")
    assert len(everything.rows) == 4 and everything.notes["dropped_test_overlap"] == 0


def _independent_overlap(datasets_dir: Path, task_file: str, split_file: str) -> int:
    """Train questions (by text) that the published split also puts in test, read with plain json."""
    questions = [r["sQuestion"].strip() for r in json.loads((datasets_dir / task_file).read_text())]
    split = json.loads((datasets_dir / split_file).read_text())
    test = {questions[i] for i in split["test"]}
    return sum(questions[i] in test for i in split["train"])


@pytest.mark.shared
def test_multiarith_published_split_repeats_five_test_questions_which_never_train(store_root, datasets_dir):
    from pst_core.prepare import PrepareConfig, prepare_task

    expected = _independent_overlap(datasets_dir, "zero_shot_cot/dataset/MultiArith/MultiArith.json",
                                    "reasoning_teacher/split/multiarith__default.json")
    assert expected == 5
    prepare_task("multiarith", PrepareConfig(datasets_dir=str(datasets_dir)), store_root)
    cfg = config.resolve({"strategy": "answer_only", "task": "multiarith", "teacher": "none", "max_val_examples": 0})
    strategy = get_strategy("answer_only")
    parts = {s: data.assemble(store_root, cfg, strategy, s) for s in ("train", "validation")}
    assert sum(p.notes["dropped_test_overlap"] for p in parts.values()) == expected
    test = {data.question_key(e) for e in examples.load(store_root, "multiarith", "test")}
    for split, part in parts.items():
        assert len(part.rows) == len(examples.load(store_root, "multiarith", split)) - part.notes["dropped_test_overlap"]
        assert not {data.question_key(r) for r in part.rows} & test


# --- truncation ----------------------------------------------------------------------------------

LONG = " ".join(["1 plus 2 is 3"] * 8)  # 40 tokens


@pytest.fixture(scope="module")
def tok():
    """The toy tokenizer with SEP and SEM added, as the training loop adds them."""
    t = F.tokenizer()
    students.add_special_tokens(F.causal(len(t)), t)
    return t


def _row(rationale: str = LONG, answer: str = "3") -> Row:
    return Row("toy-00000", "ann has 1 apples and gets 2 more . how many ?", answer, (), "number", rationale, "k")


def _one(tok, name: str, max_length: int, row: Row | None = None, enc_dec: bool = False) -> data.Tokenized:
    return data.tokenize([row or _row()], get_strategy(name), tok, max_length, enc_dec)


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("enc_dec", [False, True])
def test_pre_thinking_keeps_sep_answer_and_eos_and_cuts_the_rationale(tok, enc_dec):
    t = _one(tok, "pre_thinking", 32, enc_dec=enc_dec)
    target, prompt = t.target[0], t.prompt[0]
    sep, eos = tok.convert_tokens_to_ids(SEP), tok.eos_token_id
    assert target[-3:] == [sep, *_ids(tok, "3"), eos]
    assert len(target) == (32 if enc_dec else 32 - len(prompt)) and target[:-3] == _ids(tok, LONG)[: len(target) - 3]
    assert len(prompt) == 16  # the whole question still fits in its half


@pytest.mark.parametrize("name", ["post_thinking", "pst"])
def test_answer_first_strategies_cut_the_rationale_end_but_keep_sem_and_the_closing_eos(tok, name):
    t = _one(tok, name, 32)
    target = t.target[0]
    assert target[:2] == [*_ids(tok, "3"), tok.convert_tokens_to_ids(SEM)] and t.sem_index[0] == 1
    assert target[-1] == tok.eos_token_id and target[2:-1] == _ids(tok, LONG)[: len(target) - 3]
    assert len(t.prompt[0]) + len(target) == 32


def test_prefix_rationale_view_keeps_its_eos_and_the_label_view_stays_whole(tok):
    t = _one(tok, "prefix", 32)
    (label, rationale) = t.target
    assert label == [*_ids(tok, "3"), tok.eos_token_id]
    assert rationale[-1] == tok.eos_token_id and len(t.prompt[1]) + len(rationale) == 32
    assert t.prompt[1][-2:] == _ids(tok, "Answer:")  # the prompt lost its start, not "Answer:"


def test_a_short_target_leaves_the_prompt_all_the_room_it_needs(tok):
    t = _one(tok, "answer_only", 12)
    full = tok(get_strategy("answer_only").format(_row())[0].prompt)["input_ids"]
    assert t.target[0] == [*_ids(tok, "3"), tok.eos_token_id] and t.prompt[0] == full[-10:]


@pytest.mark.parametrize("name", ["answer_only", "pre_thinking", "post_thinking", "prefix"])
def test_rows_whose_answer_cannot_fit_are_dropped_and_counted(tok, name):
    long_answer = " ".join(str(i) for i in range(14))
    rows = [_row(), Row("toy-00001", _row().question, long_answer, (), "text", LONG, "k1")]
    strategy = get_strategy(name)
    with pytest.raises(DataError, match="toy-00001.*max_length=16"):
        data.tokenize(rows, strategy, tok, 16, False)
    kept = data.drop_too_long(data.TrainData(rows, F.targets(2), {"rows": 2}), strategy, tok, 16, False)
    assert [r.example_id for r in kept.rows] == ["toy-00000"] and kept.notes == {"rows": 2, "dropped_too_long": 1}
    assert (kept.targets == F.targets(2)[:1]).all()
    assert len(data.tokenize(kept.rows, strategy, tok, 16, False).target) == len(strategy.format(rows[0]))


def test_drop_too_long_measures_with_the_delimiters_without_changing_the_tokenizer(tok):
    raw = F.tokenizer()  # no SEP/SEM yet: "<|sep|>" would be three unknown words
    # max_length 16: the prompt keeps 8 tokens, so the target has 8: 1 of the rationale's 3 tokens,
    # SEP and the 5-token answer and EOS fit only with SEP as one token.
    row = _row(rationale="1 plus 2", answer="1 2 3 4 5")
    strategy = get_strategy("pre_thinking")
    assert data.drop_too_long(data.TrainData([row]), strategy, raw, 16, False).notes["dropped_too_long"] == 0
    assert SEP not in raw.get_vocab()
    assert data.tokenize([row], strategy, tok, 16, False).target[0][-7:] == [tok.convert_tokens_to_ids(SEP), *_ids(tok, "1 2 3 4 5"), tok.eos_token_id]
