"""The strategy registry, formatters and inference helpers; each strategy drives a tiny student to 100 % EM."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.errors import ConfigError  # noqa: E402
from pst_core.registry import UnknownName  # noqa: E402
from pst_core.train import config, data, generate, loop  # noqa: E402
from pst_core.train.strategies import LABEL_PREFIX, SEM, SEP, STRATEGIES, Row, get_strategy  # noqa: E402



@pytest.fixture(autouse=True)
def _one_thread():
    with F.one_thread():
        yield


ALL = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]
ROW = Row("t-00001", "2 plus 3 ?", "5", ("A) 5", "B) 6"), "choice", "2 plus 3 is 5", "k")


def test_registry_holds_the_five_strategies_and_unknown_names_list_them():
    assert STRATEGIES.names() == ALL
    with pytest.raises(UnknownName, match="Valid: answer_only, post_thinking, pre_thinking, prefix, pst"):
        get_strategy("pst2")
    with pytest.raises(ConfigError, match="alpha"):
        config.resolve({"strategy": "prefix", "alpha": 1.5})
    with pytest.raises(ConfigError, match="unknown option 'alpha'"):
        config.resolve({"strategy": "pst", "alpha": 0.5})  # a knob of another strategy is rejected


def test_formatters_put_answer_rationale_and_special_tokens_in_order():
    text = {n: [("".join(t or "<eos>" for t, _ in s.pieces), s.prompt) for s in get_strategy(n).format(ROW)] for n in ALL}
    assert text["answer_only"][0][0] == " 5<eos>"
    assert text["pre_thinking"][0][0] == f" 2 plus 3 is 5{SEP} 5<eos>"
    assert text["post_thinking"][0][0] == text["pst"][0][0] == f" 5{SEM} 2 plus 3 is 5<eos>"
    (label, lp), (rat, rp) = text["prefix"]
    assert (label, rat) == (" 5<eos>", " 2 plus 3 is 5<eos>")
    assert lp.startswith("[label] ") and rp.startswith("[rationale] ") and lp.endswith("Choices: A) 5 B) 6\nAnswer:")


def test_inference_helpers_follow_the_evaluation_contract():
    tok = F.tokenizer()
    s = {n: get_strategy(n).bind(tok) for n in ALL}
    assert s["prefix"].inference_prompt("q", []).startswith(LABEL_PREFIX)
    assert s["pst"].stop_strings() == [SEM, "[EOS]"] and s["pre_thinking"].stop_strings() == ["[EOS]"]
    assert s["pst"].answer_first and s["post_thinking"].answer_first and not s["pre_thinking"].answer_first
    assert s["pst"].answer_text(f" 5{SEM} because") == " 5" and s["pst"].rationale_text(f" 5{SEM} because") == "because"
    assert s["pre_thinking"].answer_text(f" 2 and 3{SEP} 5") == " 5"
    assert s["pre_thinking"].rationale_text(f" 2 and 3{SEP} 5") == "2 and 3"
    assert s["answer_only"].answer_text(" 5") == " 5" and s["answer_only"].rationale_text(" 5") is None


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
@pytest.mark.parametrize("name", ALL)
def test_strategy_drives_tiny_student_to_full_exact_match(name, kind, tmp_path):
    tok = F.tokenizer()
    rows = F.rows(16)
    cfg = config.resolve({"strategy": name, "task": "toy", "teacher": "t", "lr": 5e-3, "max_steps": 100, "batch_size": 16,
                          "eval_every": 0, "progress": False, "warmup_ratio": 0.1, "seed": 0,
                          "new_token_init": "mean"})  # a random-init toy has no EOS prior to borrow (real students: eos)
    strategy = get_strategy(name, cfg)
    model = F.causal(len(tok) + 2) if kind == "causal" else F.seq2seq(len(tok) + 2, tok.pad_token_id, tok.eos_token_id)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = data.TrainData(rows, F.targets(16) if strategy.uses_semantic else None)
    metrics = loop.fit(cfg, strategy, model, tok, kind == "seq2seq", train, None, str(tmp_path))
    assert all(v == v and abs(v) < 1e6 for v in metrics["final"].values())  # finite terms
    assert any(not v.equal(model.state_dict()[k]) for k, v in before.items() if k in model.state_dict())
    assert generate.exact_match(model, tok, strategy, rows, 40) == 1.0
