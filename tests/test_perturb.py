"""Robustness perturbations as maths: identity at rate 0, full coverage at rate 1, determinism."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pst_core.errors import ConfigError
from pst_core.perturb import perturb_rationales, perturbation_plan, shuffle_donors

RATIONALES = [f"Tom has {i} apples and buys {i + 3} more, so {2 * i + 3}." for i in range(20)]
texts = st.lists(st.text(min_size=0, max_size=30), min_size=2, max_size=30)
rates = st.floats(min_value=0.0, max_value=1.0)


@given(texts, st.sampled_from(["shuffle", "numbers"]), st.integers(0, 10**6))
@settings(max_examples=60, deadline=None)
def test_rate_zero_is_identity(rationales: list[str], kind: str, seed: int) -> None:
    assert perturb_rationales(rationales, kind, 0.0, seed) == rationales


@given(st.integers(0, 200), rates, st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_plan_picks_rounded_fraction_of_distinct_indices(n: int, rate: float, seed: int) -> None:
    plan = perturbation_plan(n, rate, seed)
    assert len(plan) == round(rate * n)
    assert plan == sorted(set(plan)) and all(0 <= i < n for i in plan)
    assert plan == perturbation_plan(n, rate, seed)


@given(texts, rates, st.integers(0, 10**6))
@settings(max_examples=60, deadline=None)
def test_numbers_changes_exactly_the_planned_rationales_with_digits(rationales: list[str], rate: float, seed: int) -> None:
    out = perturb_rationales(rationales, "numbers", rate, seed)
    planned = set(perturbation_plan(len(rationales), rate, seed))
    for i, (before, after) in enumerate(zip(rationales, out)):
        has_digits = re.search(r"\d", before) is not None
        assert (before != after) == (i in planned and has_digits)
        # Only digits move: the text around the numbers is untouched.
        assert re.sub(r"\d", "#", before) == re.sub(r"\d", "#", after)


def test_numbers_at_rate_one_alters_every_rationale_with_digits() -> None:
    out = perturb_rationales(RATIONALES + ["no digits here"], "numbers", 1.0, seed=3)
    assert all(a != b for a, b in zip(out[:-1], RATIONALES))
    assert out[-1] == "no digits here"


def test_numbers_maps_a_repeated_number_consistently() -> None:
    (out,) = perturb_rationales(["5 cats and 5 dogs make 10"], "numbers", 1.0, seed=0)
    first, second, total = re.findall(r"\d+", out)
    assert first == second != "5" and total != "10" and len(total) == 2


@given(st.integers(2, 60), rates, st.integers(0, 10**6))
@settings(max_examples=100, deadline=None)
def test_shuffle_never_maps_a_rationale_to_itself(n: int, rate: float, seed: int) -> None:
    plan = perturbation_plan(n, rate, seed)
    donors = shuffle_donors(n, plan, seed)
    assert sorted(donors) == plan
    assert all(i != j for i, j in donors.items())
    out = perturb_rationales([f"r{i}" for i in range(n)], "shuffle", rate, seed)
    assert [i for i in range(n) if out[i] != f"r{i}"] == plan
    assert all(out[i] == f"r{donors[i]}" for i in plan)


def test_shuffle_donor_comes_from_another_question() -> None:
    groups = ["q1", "q1", "q1", "q2"]  # three diverse rationales of q1, one of q2
    donors = shuffle_donors(4, [0, 1, 2, 3], seed=5, groups=groups)
    assert donors[0] == donors[1] == donors[2] == 3
    assert donors[3] in (0, 1, 2)


def test_perturbation_is_deterministic_by_seed() -> None:
    for kind in ("shuffle", "numbers"):
        a = perturb_rationales(RATIONALES, kind, 0.5, seed=7)
        assert a == perturb_rationales(RATIONALES, kind, 0.5, seed=7)
        assert a != perturb_rationales(RATIONALES, kind, 0.5, seed=8)
        assert a != RATIONALES


def test_perturbation_rejects_unknown_kind_and_bad_rate() -> None:
    with pytest.raises(ConfigError, match="valid: shuffle, numbers"):
        perturb_rationales(RATIONALES, "typos", 0.5, 0)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        perturb_rationales(RATIONALES, "shuffle", 1.5, 0)
    with pytest.raises(ConfigError, match="two different questions"):
        shuffle_donors(2, [0], 0, groups=["q", "q"])
