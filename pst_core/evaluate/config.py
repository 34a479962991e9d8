"""Evaluation configuration: one frozen `EvalConfig`, stored in every metrics.json it produced."""

from __future__ import annotations

from dataclasses import dataclass

from pst_core.config import check, option
from pst_core.schemas import SPLITS


@dataclass(frozen=True)
class EvalConfig:
    """How a run is evaluated: which split, how generation is batched and bounded, how CIs are drawn."""

    split: str = option("test", "Split to evaluate (test for reported numbers; validation while tuning).")
    batch_size: int = option(32, "Prompts per generation batch (sorted by length, left padded).")
    max_new_tokens: int = option(256, "Generation budget per example; Pre-Thinking needs room for its rationale.")
    rationale_max_new_tokens: int = option(256, "Budget for the rationale that --with-rationale continues after SEM.")
    with_rationale: bool = option(False, "Answer-first strategies also generate the rationale after SEM (not timed).")
    device: str = option("auto", "Torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps.")
    dtype: str = option("auto", "Weights while generating: auto (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16.")
    max_examples: int = option(0, "Evaluate only the first N examples of the split (0 = all); for smoke runs.")
    sort_by_length: bool = option(True, "Batch prompts of similar length together (less padding, same results).")
    bootstrap_samples: int = option(1000, "Bootstrap resamples for the accuracy interval.")
    confidence: float = option(0.95, "Confidence level of the accuracy interval.")
    seed: int = option(0, "Seed of the bootstrap resampling.")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(self.split in SPLITS, name, f"split must be one of {', '.join(SPLITS)}")
        check(self.batch_size >= 1, name, "batch_size must be >= 1")
        check(self.max_new_tokens >= 1 and self.rationale_max_new_tokens >= 1, name, "token budgets must be >= 1")
        check(self.max_examples >= 0, name, "max_examples must be >= 0")
        check(self.dtype in ("auto", "float32", "bfloat16"), name, "dtype must be auto, float32 or bfloat16")
        check(self.bootstrap_samples >= 1, name, "bootstrap_samples must be >= 1")
        check(0.0 < self.confidence < 1.0, name, "confidence must be in (0, 1)")

    def torch_dtype(self, device: str) -> str:
        """The weight dtype on `device`: bf16 halves the memory traffic of decoding on a GPU."""
        return ("bfloat16" if device.startswith("cuda") else "float32") if self.dtype == "auto" else self.dtype

