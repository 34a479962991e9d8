"""Gradient checkpointing (TrainConfig.gradient_checkpointing): activations are recomputed in the
backward pass, and the loss and gradients on a fixed batch are those without it (float noise)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import config, data, loop, students  # noqa: E402
from pst_core.train.strategies import StepOutput, get_strategy  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    with F.one_thread():
        yield


def loss_and_grads(model, head, enc_dec: bool, tok, checkpointing: bool):
    """PST loss and every gradient on one fixed batch of 8 rows; counts the first block's MLP forwards."""
    model, head = copy.deepcopy(model), copy.deepcopy(head)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    block = (model.encoder.block[0].layer[-1] if enc_dec else model.model.layers[0].mlp)
    calls = []
    # a pre-hook: recomputation stops early, once the last saved tensor is back, before the block returns
    block.register_forward_pre_hook(lambda *a: calls.append(1))
    strategy = get_strategy("pst").bind(tok)
    rows = F.rows(8)
    tokens = data.tokenize(rows, strategy, tok, 64, enc_dec)
    batch = data.collate(tokens, list(range(8)), data.seq_index(tokens), tok.pad_token_id, enc_dec, "token", F.targets(8),
                         model.config.decoder_start_token_id if enc_dec else None, eos_id=tok.eos_token_id)
    module = students.train_module(model, head, enc_dec).train()
    out = StepOutput(**module(**{k: v for k, v in batch.items() if k not in loop.NOT_MODEL_INPUTS}))
    loss, _ = strategy.loss(out, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, len(calls)


@pytest.mark.parametrize("enc_dec", [False, True], ids=["llama", "t5"])
def test_checkpointing_recomputes_and_gives_the_same_loss_and_gradients(enc_dec):
    tok = F.tokenizer()
    model = F.seq2seq(len(tok) + 2, tok.pad_token_id, tok.eos_token_id) if enc_dec else F.causal(len(tok) + 2)
    students.add_special_tokens(model, tok)
    torch.manual_seed(0)
    head = students.make_head(64, 8)
    plain, plain_grads, plain_calls = loss_and_grads(model, head, enc_dec, tok, checkpointing=False)
    ckpt, ckpt_grads, ckpt_calls = loss_and_grads(model, head, enc_dec, tok, checkpointing=True)
    assert (plain_calls, ckpt_calls) == (1, 2)  # the block ran again in backward: checkpointing is on
    assert ckpt == pytest.approx(plain, rel=1e-6)
    assert plain_grads.keys() == ckpt_grads.keys() and len(plain_grads) > 10
    for name, g in plain_grads.items():
        assert torch.allclose(ckpt_grads[name], g, rtol=1e-4, atol=1e-6), name


def _losses(tmp_path: Path, name: str, **extra) -> list[float]:
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 3e-3, "max_steps": 4, "batch_size": 4, "eval_every": 0,
                          "log_every": 1, "progress": False, "seed": 3, **extra})
    loop.fit(cfg, get_strategy("pst", cfg), F.causal(len(tok) + 2, seed=3), tok, False, data.TrainData(F.rows(8), F.targets(8)),
             None, str(tmp_path / name))
    lines = [json.loads(ln) for ln in (tmp_path / name / "history.jsonl").read_text().splitlines()]
    return [h["loss"] for h in lines if "loss" in h]


@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_the_config_switch_trains_to_the_same_losses(tmp_path, lora):
    """Also under LoRA, where the frozen embeddings give the checkpointed blocks no input that needs a gradient."""
    plain = _losses(tmp_path, "plain", lora_r=lora)
    ckpt = _losses(tmp_path, "ckpt", lora_r=lora, gradient_checkpointing=True)
    assert ckpt == pytest.approx(plain, rel=1e-5) and ckpt[-1] < ckpt[0]
