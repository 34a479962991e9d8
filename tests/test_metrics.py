"""Accuracy and the bootstrap interval as maths."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pst_core.evaluate.metrics import accuracy, bootstrap_ci, summarize


@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(0, 1000))
@settings(max_examples=50, deadline=None)
def test_interval_brackets_the_accuracy_and_stays_in_unit_range(correct: list[bool], seed: int) -> None:
    low, high = bootstrap_ci(correct, samples=200, seed=seed)
    assert 0.0 <= low <= accuracy(correct) <= high <= 1.0 or low == high == accuracy(correct)


def test_all_right_or_all_wrong_has_a_degenerate_interval() -> None:
    assert bootstrap_ci([True] * 30) == (1.0, 1.0)
    assert bootstrap_ci([False] * 30) == (0.0, 0.0)


def test_interval_matches_the_normal_approximation_for_a_large_sample() -> None:
    rng = random.Random(0)
    correct = [rng.random() < 0.6 for _ in range(2000)]
    p = accuracy(correct)
    low, high = bootstrap_ci(correct, samples=2000, seed=1)
    half = 1.96 * (p * (1 - p) / len(correct)) ** 0.5  # ≈ 0.0215
    assert low == pytest.approx(p - half, abs=0.004) and high == pytest.approx(p + half, abs=0.004)


def test_interval_narrows_with_more_examples_and_is_seeded() -> None:
    small, large = [True, False] * 10, [True, False] * 500
    assert (lambda lo, hi: hi - lo)(*bootstrap_ci(large)) < (lambda lo, hi: hi - lo)(*bootstrap_ci(small))
    assert bootstrap_ci(small, seed=4) == bootstrap_ci(small, seed=4)


def test_summarize_reports_throughput_from_latency() -> None:
    out = summarize([True, False, True, True], [3, 5, 4, 4], [10.0, 10.0, 20.0, 20.0], samples=50)
    assert out["accuracy"] == 0.75 and out["n"] == 4
    assert out["mean_new_tokens"] == 4.0 and out["mean_latency_ms"] == 15.0
    assert out["examples_per_s"] == pytest.approx(4 / 0.06)
    assert summarize([], [], [])["n"] == 0
