"""Hugging Face Hub sources, for users with internet (never called offline or in tests).

Each returns the same `Row`s as the local reader with the same source indices, because the Hub
copies keep the official row order (GSM8K, AQuA-RAT, CommonsenseQA, CoS-E and ANLI are the
datasets Fine-tune-CoT and Distilling Step-by-Step themselves loaded). `datasets` is imported
inside the function so `pst_core` stays importable without it.
"""

from __future__ import annotations

from typing import Any

from pst_core.errors import DataError
from pst_core.tasks import loaders
from pst_core.tasks.spec import Row, Rows


def load_split(hub_id: str, config: str | None, split: str) -> list[dict[str, Any]]:
    """One split of a Hub dataset as a list of dicts (a download failure is one clear line)."""
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # network, auth or a renamed dataset: all user-fixable
        raise DataError(f"cannot load {hub_id} ({config or 'default'}, {split}) from the Hub: {exc}".splitlines()[0]) from None
    return [dict(r) for r in ds]


def _concat(hub_id: str, config: str | None, parts: list[tuple[str, str | None]], make) -> Rows:
    rows: list[Row] = []
    for split, origin in parts:
        offset = len(rows)
        source = f"hf:{hub_id}/{split}"
        rows += loaders.rows_of(source, load_split(hub_id, config, split), lambda i, r: make(offset + i, r, source, origin))
    return loaders.keyed(rows)


def gsm8k(hub_id: str, config: str | None) -> Rows:
    """openai/gsm8k (main): train then test."""
    return _concat(hub_id, config, [("train", "train"), ("test", "test")], loaders.gsm8k_record)


def aqua(hub_id: str, config: str | None) -> Rows:
    """deepmind/aqua_rat (raw): the full 97,467-row train set, then test."""
    return _concat(hub_id, config, [("train", "train"), ("test", "test")],
                   lambda i, r, s, o: loaders.aqua_record(i, r, s, o))


def commonsense_qa(hub_id: str, config: str | None) -> Rows:
    """tau/commonsense_qa: train then validation (the jsonl dev set), in the jsonl row layout."""
    def make(i: int, r: dict[str, Any], source: str, origin: str | None) -> Row:
        choices = [{"label": lab, "text": t} for lab, t in zip(r["choices"]["label"], r["choices"]["text"])]
        record = {"answerKey": r["answerKey"], "question": {"stem": r["question"], "choices": choices}}
        return loaders.csqa_record(i, record, source, origin)

    return _concat(hub_id, config, [("train", "train"), ("validation", "test")], make)


def cqa(hub_id: str, config: str | None) -> Rows:
    """cos_e (v1.11): train then validation, as Distilling Step-by-Step built cqa_{train,test}."""
    return _concat(hub_id, config, [("train", "train"), ("validation", "test")], loaders.cqa_record)


def anli1(hub_id: str, config: str | None) -> Rows:
    """facebook/anli round 1: train_r1, dev_r1 (validation), test_r1."""
    return _concat(hub_id, config, [("train_r1", "train"), ("dev_r1", "validation"), ("test_r1", "test")],
                   loaders.anli_record)
