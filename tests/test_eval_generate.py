"""Generation and the strategies' inference rules on tiny random-init students."""

from __future__ import annotations

import pytest

from eval_tiny import SEM, SEP, ScriptedLogits, char_tokenizer, causal_model, script, seq2seq_model, tiny_run
from pst_core import answers
from pst_core.evaluate.generate import generate, split_stops


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return causal_model(tok)


def test_stop_strings_that_are_tokens_become_ids_and_eos_is_always_a_stop(tok) -> None:
    ids, strings = split_stops(tok, [SEM, "###"])
    assert ids == sorted({tok.convert_tokens_to_ids(SEM), tok.eos_token_id})
    assert strings == ["###"]


@pytest.mark.parametrize("name", ["post_thinking", "pst"])
@pytest.mark.parametrize("seq2seq", [False, True])
def test_answer_first_generation_stops_at_sem_and_never_past_it(name: str, seq2seq: bool) -> None:
    run = tiny_run(name, seq2seq=seq2seq)
    tok, strategy = run.tokenizer, run.strategy
    # Each row would go on writing a rationale after SEM; the answer-first rule must cut it off.
    wants = [" 12" + SEM + " because 5+7=12", " no" + SEM + " a long rationale that must not be generated"]
    forcing = ScriptedLogits([script(tok, w) for w in wants], tok.eos_token_id)
    prompts = [strategy.inference_prompt("What is 5+7?", []), strategy.inference_prompt("Is it?", [])]
    gens = generate(run.model, tok, prompts, stop_strings=strategy.stop_strings(), max_new_tokens=60,
                    batch_size=2, sort_by_length=False, logits_processor=[forcing], is_encoder_decoder=seq2seq)
    assert [g.text for g in gens] == [" 12" + SEM, " no" + SEM]
    assert [g.new_tokens for g in gens] == [4, 4]  # three answer characters + SEM, nothing after
    assert all(g.stopped for g in gens)
    assert forcing.calls == 4  # the batch stopped decoding once both rows reached SEM
    assert answers.extract(strategy.answer_text(gens[0].text), "number") == "12"
    assert answers.extract(strategy.answer_text(gens[1].text), "yes_no") == "no"


def test_finished_rows_stop_counting_while_others_continue(tok, model) -> None:
    run = tiny_run("pst")
    wants = [" 1" + SEM + " r", " 12345" + SEM + " r"]
    forcing = ScriptedLogits([script(tok, w) for w in wants], tok.eos_token_id)
    gens = generate(model, tok, ["a", "b"], stop_strings=run.strategy.stop_strings(), max_new_tokens=30,
                    batch_size=2, sort_by_length=False, logits_processor=[forcing])
    assert [g.new_tokens for g in gens] == [3, 7]
    assert [g.text for g in gens] == [" 1" + SEM, " 12345" + SEM]
    assert forcing.calls == 7


def test_pre_thinking_generates_the_rationale_and_parses_the_answer_after_sep(tok, model) -> None:
    strategy = tiny_run("pre_thinking").strategy
    want = " 3 and 4 make 7, 8 is wrong" + SEP + " 7"
    forcing = ScriptedLogits([script(tok, want) + [tok.eos_token_id]], tok.eos_token_id)
    (gen,) = generate(model, tok, [strategy.inference_prompt("3+4?", [])], stop_strings=strategy.stop_strings(),
                      max_new_tokens=80, logits_processor=[forcing])
    assert gen.text == want  # EOS ends the row and is not part of the text
    assert gen.new_tokens == len(script(tok, want)) + 1
    assert SEM not in strategy.stop_strings()  # Pre-Thinking must not stop before its answer
    assert answers.extract(strategy.answer_text(gen.text), "number") == "7"
    assert strategy.rationale_text(gen.text) == "3 and 4 make 7, 8 is wrong"


def test_budget_exhaustion_is_reported_as_not_stopped(tok, model) -> None:
    strategy = tiny_run("pst").strategy
    forcing = ScriptedLogits([script(tok, "x" * 50)], tok.eos_token_id)
    (gen,) = generate(model, tok, ["q"], stop_strings=strategy.stop_strings(), max_new_tokens=5, logits_processor=[forcing])
    assert (gen.text, gen.new_tokens, gen.stopped) == ("xxxxx", 5, False)


def test_multi_token_stop_strings_cut_the_text(tok, model) -> None:
    forcing = ScriptedLogits([script(tok, " 42 END and more")], tok.eos_token_id)
    (gen,) = generate(model, tok, ["q"], stop_strings=["END"], max_new_tokens=30, logits_processor=[forcing])
    assert gen.text == " 42 END" and gen.stopped and gen.new_tokens == 7


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(tok, model) -> None:
    prompts = ["Question: a\nAnswer:", "Question: a much longer question here\nAnswer:", "Q: mid length?\nAnswer:"]
    alone = [generate(model, tok, [p], max_new_tokens=12)[0].text for p in prompts]
    batched = generate(model, tok, prompts, max_new_tokens=12, batch_size=3)
    unsorted = generate(model, tok, prompts, max_new_tokens=12, batch_size=2, sort_by_length=False)
    assert [g.text for g in batched] == alone == [g.text for g in unsorted]
    assert tok.padding_side == "right"  # restored after generation


def test_seq2seq_batched_generation_equals_one_prompt_at_a_time(tok) -> None:
    model = seq2seq_model(tok)
    prompts = ["short", "a much longer encoder input"]
    alone = [generate(model, tok, [p], max_new_tokens=8)[0].text for p in prompts]
    assert [g.text for g in generate(model, tok, prompts, max_new_tokens=8, batch_size=2)] == alone
