"""Greedy answers of a student for validation exact match (model selection during training).

The evaluation stage has its own generator; this one is the small, batch-greedy version the
training loop needs to pick the best checkpoint by answer accuracy on validation questions.
"""

from __future__ import annotations

from typing import Any

from pst_core import answers
from pst_core.train.strategies import SEM, Row, Strategy


def stop_token_ids(strategy: Strategy, tokenizer: Any) -> list[int]:
    """Token ids that end a generation: EOS, plus SEM for answer-first strategies."""
    ids = [tokenizer.eos_token_id]
    if strategy.answer_first:
        ids.append(tokenizer.convert_tokens_to_ids(SEM))
    return ids


def greedy(model: Any, tokenizer: Any, strategy: Strategy, rows: list[Row], max_new_tokens: int,
           batch_size: int = 32) -> list[str]:
    """Decoded greedy continuations (special tokens kept, padding and EOS removed)."""
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    texts = []
    try:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            enc = tokenizer([strategy.inference_prompt(r.question, list(r.choices)) for r in chunk], return_tensors="pt", padding=True).to(device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_token_ids(strategy, tokenizer),
                                     pad_token_id=tokenizer.pad_token_id)
            new = out if model.config.is_encoder_decoder else out[:, enc["input_ids"].shape[1]:]
            for seq in new.tolist():
                keep = [t for t in seq if t not in (tokenizer.pad_token_id, tokenizer.eos_token_id)]
                texts.append(tokenizer.decode(keep, skip_special_tokens=False))
    finally:
        tokenizer.padding_side = side
    return texts


def exact_match(model: Any, tokenizer: Any, strategy: Strategy, rows: list[Row], max_new_tokens: int) -> float:
    """Fraction of `rows` whose extracted answer equals the gold answer."""
    if not rows:
        return 0.0
    texts = greedy(model, tokenizer, strategy, rows, max_new_tokens)
    hits = 0
    for row, text in zip(rows, texts):
        pred = answers.extract(strategy.answer_text(text), row.answer_type, list(row.choices))
        hits += answers.is_correct(pred, row.answer, row.answer_type)
    return hits / len(rows)
