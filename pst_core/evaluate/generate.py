"""Batched greedy generation that stops each row at its own stop token (the inference rules' engine).

Prompts are tokenised, sorted by length and batched (less padding; greedy decoding makes the
order irrelevant to the results), left padded for decoder-only students so every row's last
prompt token sits at the same position, and decoded greedily with the KV cache. Stop tokens
(the strategy's `SEM` for answer-first strategies, always EOS) are passed to `generate` as
end-of-sequence ids: a row that emits one is finished — it gets only padding afterwards, and the
batch ends as soon as every row has finished — so an answer-first student never spends compute
past `SEM`. Each row's text is cut after its first stop token and `new_tokens` counts the tokens
up to and including it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Generation:
    """One prompt's continuation: the text up to and including the stop, and what it cost."""

    text: str
    new_tokens: int  # generated tokens up to and including the stop token (or the whole budget)
    latency_ms: float  # this row's share of its batch's wall time (batch time / rows in batch)
    stopped: bool  # True when a stop token or stop string ended the row, False when the budget did


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def split_stops(tokenizer: Any, stop_strings: Sequence[str]) -> tuple[list[int], list[str]]:
    """Stop strings that are single tokens become token ids (fast, exact); the rest stay strings."""
    ids: list[int] = []
    strings: list[str] = []
    for stop in stop_strings:
        encoded = tokenizer.convert_tokens_to_ids(stop) if stop in tokenizer.get_vocab() else None
        if isinstance(encoded, int) and encoded != tokenizer.unk_token_id:
            ids.append(encoded)
        else:
            strings.append(stop)
    if tokenizer.eos_token_id is not None:  # every strategy ends at EOS at the latest
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids)), strings


def _cut(ids: list[int], stop_ids: set[int]) -> tuple[list[int], bool]:
    """The row's tokens up to and including the first stop id, and whether one was found."""
    for k, tok in enumerate(ids):
        if tok in stop_ids:
            return ids[: k + 1], True
    return ids, False


def _cut_at_string(tokenizer: Any, ids: list[int], strings: list[str], drop: set[int]) -> tuple[list[int], bool]:
    """The shortest prefix whose text contains a stop string (rare: multi-token stops only)."""
    for k in range(1, len(ids) + 1):
        text = tokenizer.decode([t for t in ids[:k] if t not in drop], skip_special_tokens=False)
        if any(s in text for s in strings):
            return ids[:k], True
    return ids, False


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    stop_strings: Sequence[str] = (),
    max_new_tokens: int = 256,
    batch_size: int = 32,
    is_encoder_decoder: bool | None = None,
    sort_by_length: bool = True,
    add_special_tokens: bool = True,
    logits_processor: Any = None,
) -> list[Generation]:
    """Greedy continuations of `prompts`, in input order, each stopped at its first stop token."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    if not prompts:
        return []
    if is_encoder_decoder is None:
        is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    device = next(model.parameters()).device
    stop_ids, stop_texts = split_stops(tokenizer, stop_strings)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Tokens that are never part of the visible text: padding, and EOS/BOS (unless they are the
    # strategy's own stop, like SEM, which stays in the text so the parse can see it).
    drop = {t for t in (pad_id, tokenizer.eos_token_id, tokenizer.bos_token_id) if t is not None}
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, use_cache=True,
        eos_token_id=stop_ids, pad_token_id=pad_id,
        decoder_start_token_id=getattr(model.generation_config, "decoder_start_token_id", None),
        bos_token_id=tokenizer.bos_token_id,
    )
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"]]
    # Longest first: the largest batch runs first, so an out-of-memory error shows up at once.
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i]) if sort_by_length else list(range(len(prompts)))
    results: list[Generation | None] = [None] * len(prompts)
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = "right" if is_encoder_decoder else "left"
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(device)
            _sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    **enc, generation_config=config,
                    logits_processor=LogitsProcessorList(logits_processor or []),
                    **({"stop_strings": stop_texts, "tokenizer": tokenizer} if stop_texts else {}),
                )
            _sync(device)
            per_row_ms = (time.perf_counter() - t0) * 1000.0 / len(rows)
            # Decoder-only outputs repeat the prompt; encoder-decoder ones start with the decoder start token.
            new = out[:, 1:] if is_encoder_decoder else out[:, enc["input_ids"].shape[1] :]
            for row, ids in zip(rows, new.tolist()):
                kept, stopped = _cut(ids, set(stop_ids))
                if stop_texts and not stopped:
                    kept, stopped = _cut_at_string(tokenizer, kept, stop_texts, drop)
                text = tokenizer.decode([t for t in kept if t not in drop], skip_special_tokens=False)
                results[row] = Generation(text=text, new_tokens=len(kept), latency_ms=per_row_ms, stopped=stopped)
    finally:
        tokenizer.padding_side = saved_side
    return [r for r in results if r is not None]


def _sync(device: Any) -> None:
    """Wait for queued GPU work so wall-clock timings cover the whole generation."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)
