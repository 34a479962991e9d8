"""Shared builders for the training tests: a word-level tokenizer, tiny random students, 16 rows.

Imported by the test_train_*/test_strategies/test_losses modules (no tests here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from pst_core.train.strategies import Row

NAMES = ["ann", "bob", "cid", "dan", "eve", "fay", "gus", "hal"]


def rows(n: int = 16) -> list[Row]:
    """n arithmetic questions with a short rationale each; answers are distinct-ish numbers."""
    out = []
    for i in range(n):
        a, b = i % 5 + 1, i // 5 + 2
        name = NAMES[i % len(NAMES)]
        out.append(Row(example_id=f"toy-{i:05d}", question=f"{name} has {a} apples and gets {b} more . how many ?",
                       answer=str(a + b), answer_type="number",
                       rationale=f"{a} plus {b} is {a + b}", request_key=f"k{i}"))
    return out


def targets(n: int = 16, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Unit-norm fake sentence embeddings."""
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tokenizer():
    """A word-level fast tokenizer over the toy vocabulary (offline, no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"[PAD]", "[EOS]", "[UNK]", "[label]", "[rationale]", "Question", "Answer", "Choices", ":", "[", "]", "label", "rationale"}
    for r in rows(16):
        words.update((r.question + " " + r.rationale + " starts with adds so").split())
    words.update(str(i) for i in range(20))
    vocab = {w: i for i, w in enumerate(sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]")


def causal(vocab: int, seed: int = 0):
    """A tiny random-init Llama."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def seq2seq(vocab: int, pad_id: int, eos_id: int, seed: int = 0):
    """A tiny random-init T5."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=vocab, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
                   pad_token_id=pad_id, eos_token_id=eos_id, decoder_start_token_id=pad_id, dropout_rate=0.0)
    return T5ForConditionalGeneration(cfg)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny models on one CPU thread: with other processes on the machine, two threads of a
    64-wide model spend their time waiting on each other (seen: 3 s vs 2 min for the same run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """`one_thread` for a whole test module: `from test_train_fixtures import single_thread` makes it autouse there."""
    with one_thread():
        yield


class Killed(Exception):
    """Stands in for a process killed between two checkpoints."""
