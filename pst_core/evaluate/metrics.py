"""Accuracy and its percentile-bootstrap confidence interval (pure functions, numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction of correct predictions (0.0 for no predictions)."""
    return float(np.mean(np.asarray(correct, dtype=bool))) if len(correct) else 0.0


def bootstrap_ci(correct: Sequence[bool], *, samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the accuracy: resample examples with replacement."""
    values = np.asarray(correct, dtype=np.float64)
    if values.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    # Counts of each example in each resample (multinomial == sampling indices with replacement),
    # drawn in chunks so memory stays small for large test sets.
    means = []
    for start in range(0, samples, 256):
        size = min(256, samples - start)
        counts = rng.multinomial(values.size, np.full(values.size, 1.0 / values.size), size=size)
        means.append(counts @ values / values.size)
    stats = np.concatenate(means)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(correct: Sequence[bool], new_tokens: Sequence[int], latency_ms: Sequence[float], *,
              samples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """The metrics.json numbers: accuracy, interval, n, mean new tokens, latency and throughput."""
    low, high = bootstrap_ci(correct, samples=samples, confidence=confidence, seed=seed)
    total_s = float(np.sum(latency_ms)) / 1000.0
    n = len(correct)
    return {
        "accuracy": accuracy(correct),
        "ci_low": low,
        "ci_high": high,
        "confidence": confidence,
        "n": n,
        "mean_new_tokens": float(np.mean(new_tokens)) if n else 0.0,
        "mean_latency_ms": float(np.mean(latency_ms)) if n else 0.0,
        "examples_per_s": n / total_s if total_s > 0 else 0.0,
    }
