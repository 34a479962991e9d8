"""The loss terms as maths: masking, weights, SEM placement, PST vs Post-Thinking, gradients, prefix."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import config, data, losses, students  # noqa: E402
from pst_core.train.losses import ANSWER, RATIONALE  # noqa: E402
from pst_core.train.strategies import SEM, get_strategy  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    with F.one_thread():
        yield


@pytest.fixture(scope="module")
def tok():
    return F.tokenizer()


def _setup(tok, name: str, seq2seq: bool = False, **knobs):
    """A tiny student with special tokens, the strategy and one collated batch of 4 rows."""
    cfg = config.resolve({"strategy": name, **knobs})
    strategy = get_strategy(name, cfg)
    model = F.seq2seq(len(tok) + 2, tok.pad_token_id, tok.eos_token_id) if seq2seq else F.causal(len(tok) + 2)
    students.add_special_tokens(model, tok)
    rows = F.rows(4)
    tokens = data.tokenize(rows, strategy, tok, 128, seq2seq)
    batch = data.collate(tokens, [0, 1, 2, 3], data.seq_index(tokens), tok.pad_token_id, seq2seq,
                         getattr(cfg, "sem_pool", "token"), F.targets(4), tok.pad_token_id)
    return strategy, model, tokens, batch


def _manual_ce(model, batch):
    """Per-position CE [B, T-1] from a plain full forward (the reference for the fast path)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    tgt = batch["labels"][:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt.clamp(min=0), reduction="none")
    return ce, tgt, batch["roles"][:, 1:]


def test_no_loss_on_prompt_tokens_and_fast_path_matches_full_forward(tok):
    strategy, model, tokens, batch = _setup(tok, "post_thinking")
    out = students.forward(model, None, batch, False)
    ce, tgt, roles = _manual_ce(model, batch)
    assert len(out.ce) == int((tgt != -100).sum()) == sum(len(t) for t in tokens.target)
    assert torch.allclose(out.ce, ce[tgt != -100], atol=1e-5)
    # prompt positions are never targets: each row's first len(prompt) labels are masked
    for i, p in enumerate(tokens.prompt):
        assert (batch["labels"][i, : len(p)] == -100).all()
        assert (batch["labels"][i, len(p): len(p) + len(tokens.target[i])] != -100).all()
    # changing the prompt's logits cannot change the loss: only target positions are gathered
    assert set(out.roles.tolist()) == {ANSWER, RATIONALE}


def test_post_thinking_weights_are_exactly_as_configured(tok):
    strategy, model, _, batch = _setup(tok, "post_thinking", w_answer=0.3, w_rationale=1.7)
    out = students.forward(model, None, batch, False)
    ce, tgt, roles = _manual_ce(model, batch)
    ans = ce[(roles == ANSWER) & (tgt != -100)].mean()
    rat = ce[(roles == RATIONALE) & (tgt != -100)].mean()
    total, terms = strategy.loss(out, batch)
    assert torch.allclose(terms["ntp_answer"], ans, atol=1e-5) and torch.allclose(terms["ntp_rationale"], rat, atol=1e-5)
    assert torch.allclose(total, 0.3 * ans + 1.7 * rat, atol=1e-5)


def test_zero_weight_turns_a_term_off(tok):
    strategy, model, _, batch = _setup(tok, "post_thinking", w_answer=1.0, w_rationale=0.0)
    out = students.forward(model, None, batch, False)
    total, terms = strategy.loss(out, batch)
    assert torch.allclose(total, terms["ntp_answer"])


@pytest.mark.parametrize("seq2seq", [False, True])
def test_sem_position_is_where_the_formatter_put_it(tok, seq2seq):
    _, _, tokens, batch = _setup(tok, "pst", seq2seq=seq2seq)
    sem_id = tok.convert_tokens_to_ids(SEM)
    model_inputs = batch["decoder_input_ids"] if seq2seq else batch["input_ids"]
    for i in range(4):
        (pos,) = batch["sem_mask"][i].nonzero()[0].tolist()
        assert batch["sem_mask"][i].sum() == 1
        assert model_inputs[i, pos] == sem_id  # the head reads the hidden state of the SEM input token
        offset = 1 if seq2seq else len(tokens.prompt[i])
        assert pos == offset + tokens.sem_index[i]
        # SEM comes right after the answer tokens and before the rationale
        assert tokens.roles[i][: tokens.sem_index[i] + 1] == [ANSWER] * (tokens.sem_index[i] + 1)
        assert tokens.roles[i][tokens.sem_index[i] + 1] == RATIONALE


@pytest.mark.parametrize("seq2seq", [False, True])
def test_mean_pool_reads_exactly_the_rationale_text_positions(tok, seq2seq):
    cfg = config.resolve({"strategy": "pst", "sem_pool": "mean"})
    tokens = data.tokenize(F.rows(4), get_strategy("pst", cfg), tok, 128, seq2seq)
    batch = data.collate(tokens, [0, 1, 2, 3], data.seq_index(tokens), tok.pad_token_id, seq2seq, "mean", F.targets(4),
                         tok.pad_token_id, eos_id=tok.eos_token_id)
    model_inputs = batch["decoder_input_ids"] if seq2seq else batch["input_ids"]
    for i, row in enumerate(F.rows(4)):
        read = model_inputs[i][batch["sem_mask"][i].bool()].tolist()
        assert tok.decode(read) == row.rationale  # not SEM, not the answer, not EOS


def test_pst_with_zero_sem_weight_equals_post_thinking(tok):
    pst, model, _, batch = _setup(tok, "pst", lambda_sem=0.0, lambda_r=0.4)
    post = get_strategy("post_thinking", config.resolve({"strategy": "post_thinking", "w_answer": 1.0, "w_rationale": 0.4}))
    assert not pst.uses_semantic  # no head is built at lambda_sem = 0
    out = students.forward(model, None, batch, False)
    a, _ = pst.loss(out, batch)
    b, _ = post.loss(out, batch)
    assert torch.equal(a, b)


def test_pst_loss_adds_weighted_semantic_term_and_head_gets_gradient(tok):
    pst, model, _, batch = _setup(tok, "pst", lambda_sem=2.0, lambda_r=0.5)
    head = students.make_head(students.hidden_size(model), 8)
    out = students.forward(model, head, batch, False)
    total, terms = pst.loss(out, batch)
    expected_sem = (1 - torch.nn.functional.cosine_similarity(out.sem_pred, batch["sem_target"], dim=-1)).mean()
    assert torch.allclose(terms["sem"], expected_sem, atol=1e-6)
    assert torch.allclose(total, terms["ntp_answer"] + 0.5 * terms["ntp_rationale"] + 2.0 * terms["sem"], atol=1e-6)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_prefix_computes_both_views_with_weight_alpha(tok):
    strategy, model, tokens, batch = _setup(tok, "prefix", alpha=0.3)
    assert batch["input_ids"].shape[0] == 8 and batch["view"].tolist() == [0, 1] * 4
    out = students.forward(model, None, batch, False)
    ce, tgt, roles = _manual_ce(model, batch)
    label_rows, rat_rows = batch["view"] == 0, batch["view"] == 1
    label = ce[label_rows][tgt[label_rows] != -100].mean()
    rat = ce[rat_rows][tgt[rat_rows] != -100].mean()
    total, terms = strategy.loss(out, batch)
    assert torch.allclose(total, 0.3 * label + 0.7 * rat, atol=1e-5)
    assert tokens.prompt[0] != tokens.prompt[1]  # the [label] and [rationale] prompts differ


def test_semantic_losses_match_their_formulas():
    torch.manual_seed(0)
    p, t = torch.randn(5, 8), torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    cos = torch.nn.functional.cosine_similarity(p, t, dim=-1)
    assert torch.allclose(losses.sem_loss(p, t, "cosine"), (1 - cos).mean())
    assert torch.allclose(losses.sem_loss(p, t, "mse"), ((2 - 2 * cos) / 8).mean(), atol=1e-6)
    assert losses.sem_loss(t, t, "cosine") < 1e-6
    # InfoNCE with identical, well-separated pairs approaches 0; with a shuffled target it is large
    eye = torch.eye(5)
    assert losses.sem_loss(eye, eye, "infonce", 0.05) < 1e-6
    assert losses.sem_loss(eye, eye.roll(1, 0), "infonce", 0.05) > 10
    assert math.isclose(float(losses.masked_mean(torch.ones(3), torch.zeros(3, dtype=torch.bool))), 0.0)


def _uneven(tok, name: str, **knobs):
    """Like `_setup`, but the rationales have 5, 7, 9 and 11 words, so token and sequence means differ."""
    import dataclasses

    cfg = config.resolve({"strategy": name, **knobs})
    strategy = get_strategy(name, cfg)
    model = F.causal(len(tok) + 2)
    students.add_special_tokens(model, tok)
    rows = [dataclasses.replace(r, rationale=r.rationale + " so" * (2 * i)) for i, r in enumerate(F.rows(4))]
    tokens = data.tokenize(rows, strategy, tok, 128, False)
    batch = data.collate(tokens, [0, 1, 2, 3], data.seq_index(tokens), tok.pad_token_id, False,
                         getattr(cfg, "sem_pool", "token"), F.targets(4), tok.pad_token_id)
    return strategy, model, batch


def test_ntp_is_each_sequence_mean_then_the_mean_over_sequences(tok):
    strategy, model, batch = _uneven(tok, "post_thinking", w_answer=1.0, w_rationale=1.0)
    out = students.forward(model, None, batch, False)
    ce, tgt, roles = _manual_ce(model, batch)
    _, terms = strategy.loss(out, batch)
    rat = (roles == RATIONALE) & (tgt != -100)
    per_seq = torch.stack([ce[i][rat[i]].mean() for i in range(4)]).mean()
    pooled = ce[rat].mean()
    assert not torch.allclose(per_seq, pooled, atol=1e-4)  # the batch really is uneven
    assert torch.allclose(terms["ntp_rationale"], per_seq, atol=1e-5)
    token = get_strategy("post_thinking", config.resolve({"strategy": "post_thinking", "ntp_reduction": "token"}))
    assert torch.allclose(token.loss(out, batch)[1]["ntp_rationale"], pooled, atol=1e-5)


def test_infonce_does_not_use_a_duplicate_rationale_as_a_negative():
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]]), dim=-1)
    # the two copies of the same rationale are positives of each other, not negatives: loss ~ 0
    assert losses.sem_loss(t, t, "infonce", 0.05) < 1e-6


def test_sequences_cut_before_sem_are_left_out_of_the_semantic_loss(tok):
    pst, model, _, batch = _setup(tok, "pst", lambda_sem=1.0)
    batch["sem_mask"][1] = 0  # as if truncation had removed row 1's SEM
    head = students.make_head(students.hidden_size(model), 8)
    out = students.forward(model, head, batch, False)
    _, terms = pst.loss(out, batch)
    keep = torch.tensor([0, 2, 3])
    expected = (1 - torch.nn.functional.cosine_similarity(out.sem_pred[keep], batch["sem_target"][keep], dim=-1)).mean()
    assert torch.allclose(terms["sem"], expected, atol=1e-6)
    for kind in ("mse", "infonce"):
        whole = losses.sem_loss(out.sem_pred[keep], batch["sem_target"][keep], kind, 0.05)
        assert torch.allclose(losses.sem_loss(out.sem_pred, batch["sem_target"], kind, 0.05, batch["sem_mask"].any(-1)), whole, atol=1e-5)


def test_seq2seq_forward_matches_the_models_own_loss(tok):
    _, model, _, batch = _setup(tok, "post_thinking", seq2seq=True)
    out = students.forward(model, None, batch, True)
    ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=batch["decoder_input_ids"],
                decoder_attention_mask=batch["decoder_attention_mask"], labels=batch["labels"]).loss
    assert torch.allclose(out.ce.mean(), ref, atol=1e-5)
    # the encoder sees the prompt only: no target token leaks into its input
    assert not (batch["input_ids"] == tok.convert_tokens_to_ids(SEM)).any()
