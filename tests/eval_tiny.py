"""Tiny offline students for evaluation tests: a character tokenizer and random-init models.

Nothing is downloaded: the tokenizer is built from `string.printable` plus SEP/SEM, and the
models are 2-layer Llama (decoder-only) and T5 (encoder-decoder) configs with random weights.
`ScriptedLogits` forces a chosen continuation per row, so a test decides exactly what the
"student" would write (e.g. an answer, SEM, and then a rationale it must never reach).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import torch

SEP, SEM = "<|sep|>", "<|sem|>"


def char_tokenizer() -> Any:
    """A character-level fast tokenizer with pad/eos/bos and the SEP/SEM special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(["<pad>", "<eos>", "<bos>", *string.printable])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")
    tok.add_special_tokens({"additional_special_tokens": [SEP, SEM]})
    return tok


def causal_model(tok: Any, seed: int = 0) -> Any:
    """A 2-layer random-init Llama over `tok`'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(cfg).eval()


def seq2seq_model(tok: Any, seed: int = 0) -> Any:
    """A 1+1-layer random-init T5 over `tok`'s vocabulary."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=1,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
    return T5ForConditionalGeneration(cfg).eval()


class ScriptedLogits:
    """A logits processor that makes row i write `scripts[i]` (token ids), then EOS forever.

    It counts its calls, i.e. the decoding steps the batch actually ran.
    """

    def __init__(self, scripts: list[list[int]], eos_id: int) -> None:
        self.scripts, self.eos_id, self.calls, self.start = scripts, eos_id, 0, None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        self.calls += 1
        forced = torch.full_like(scores, float("-inf"))
        for row, script in enumerate(self.scripts):
            forced[row, script[step] if step < len(script) else self.eos_id] = 0.0
        return forced


def script(tok: Any, text: str) -> list[int]:
    """Token ids of `text` without BOS/EOS (special tokens like SEM become their single id)."""
    return tok(text, add_special_tokens=False)["input_ids"]


@dataclass
class TinyRun:
    """Duck-typed stand-in for pst_core.train.checkpoint.LoadedRun."""

    model: Any
    tokenizer: Any
    strategy: Any
    config: dict[str, Any] = field(default_factory=dict)
    head: Any = None
    is_encoder_decoder: bool = False


def tiny_run(strategy_name: str, task: str = "toy", seq2seq: bool = False, seed: int = 0) -> TinyRun:
    """A loaded-run stand-in with a random tiny student and the named strategy bound to its tokenizer."""
    from pst_core.train.strategies import get_strategy

    tok = char_tokenizer()
    model = seq2seq_model(tok, seed) if seq2seq else causal_model(tok, seed)
    strategy = get_strategy(strategy_name).bind(tok)
    config = {"strategy": strategy_name, "task": task, "teacher": "replay", "student": "tiny", "seed": seed}
    return TinyRun(model, tok, strategy, config, None, seq2seq)
