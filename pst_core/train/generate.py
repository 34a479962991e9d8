"""Validation exact match for model selection during training.

It decodes with the evaluation engine (`pst_core.evaluate.generate`) and the strategy's own
inference rule, so the checkpoint picked on validation is scored exactly as `pst eval` will score
it on test: same prompts (chat-templated ones too), left padding, per-row stop at SEM/EOS and answer parsing.
"""

from __future__ import annotations

from typing import Any

from pst_core import answers
from pst_core.train.strategies import Row, Strategy


def exact_match(model: Any, tokenizer: Any, strategy: Strategy, rows: list[Row], max_new_tokens: int,
                batch_size: int = 32) -> float:
    """Fraction of `rows` whose answer, extracted by the strategy's inference rule, equals the gold answer."""
    return score(model, tokenizer, strategy, rows, max_new_tokens, batch_size)["hits"] / len(rows) if rows else 0.0


def score(model: Any, tokenizer: Any, strategy: Strategy, rows: list[Row], max_new_tokens: int, batch_size: int = 32) -> dict[str, int]:
    """Counts over `rows` (so DDP ranks can add their shards): `hits` (answered correctly) and
    `delimited` (generations that contain the strategy's delimiter, SEP or SEM; every row for
    strategies without one). A real student that has not learnt its new token yet shows here first."""
    from pst_core.evaluate.generate import generate

    if not rows:
        return {"hits": 0, "delimited": 0}
    prompts = [strategy.inference_prompt(r.question, list(r.choices)) for r in rows]
    gens = generate(model, tokenizer, prompts, stop_strings=strategy.stop_strings(), max_new_tokens=max_new_tokens,
                    batch_size=batch_size, add_special_tokens=strategy.add_special_tokens)
    hits = delimited = 0
    for row, g in zip(rows, gens):
        pred = answers.extract(strategy.answer_text(g.text), row.answer_type, list(row.choices))
        hits += answers.is_correct(pred, row.answer, row.answer_type)
        delimited += strategy.delimiter is None or strategy.delimiter in g.text
    return {"hits": hits, "delimited": delimited}
