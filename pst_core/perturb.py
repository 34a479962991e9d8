"""Rationale perturbations for the robustness experiment (PST.md, claim 2), as pure functions.

The paper's robustness claim is that a student trained with the answer first and the rationale
constrained semantically suffers less from noisy teacher rationales than one trained to write the
rationale before the answer. Two kinds of noise are applied to a fraction `rate` of the *training*
rationales:

- `shuffle`: the rationale is replaced by another question's rationale (a fluent, well-formed
  rationale that argues for the wrong thing);
- `numbers`: every number in the rationale is replaced by a different number of the same length
  (the reasoning reads the same but its arithmetic is wrong).

Which rows are perturbed depends only on `(n, rate, seed)` (`perturbation_plan`), so training can
tell which rows carry noise (for example to pick the donor's precomputed embedding for a shuffled
rationale: `shuffle_donors`) without re-running the text functions. Everything is deterministic
by seed and never mutates its inputs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from pst_core.errors import ConfigError

KINDS = ("shuffle", "numbers")

_NUMBER = re.compile(r"\d+")


def _check(kind: str | None, rate: float) -> None:
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown perturbation {kind!r}; valid: {', '.join(KINDS)}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"perturbation rate must be in [0, 1], got {rate}")


def perturbation_plan(n: int, rate: float, seed: int) -> list[int]:
    """The sorted indices (round(rate * n) of range(n)) that a perturbation at `rate` changes."""
    _check(None, rate)
    k = round(rate * n)
    # A dedicated Random keeps the plan independent of any global RNG state.
    return sorted(random.Random(f"plan:{seed}").sample(range(n), k))


def shuffle_donors(n: int, indices: Sequence[int], seed: int, groups: Sequence[str] | None = None) -> dict[int, int]:
    """For each perturbed index, the index whose rationale replaces it (never itself nor its group).

    `groups` (e.g. example ids) keeps a question's other rationales (diverse reasoning) from
    serving as its donor: the donor must argue about *another* question.
    """
    groups = list(groups) if groups is not None else [str(i) for i in range(n)]
    if len(groups) != n:
        raise ConfigError(f"groups has {len(groups)} entries for {n} rationales")
    if indices and len(set(groups)) < 2:
        raise ConfigError("shuffle needs rationales of at least two different questions")
    rng = random.Random(f"donors:{seed}")
    donors: dict[int, int] = {}
    for i in indices:
        # Rejection sampling: uniform over the other groups' rationales, O(1) expected per draw
        # unless one question owns nearly all of them (O(n) per draw at worst, never O(n^2) set-up).
        j = rng.randrange(n)
        while groups[j] == groups[i]:
            j = rng.randrange(n)
        donors[i] = j
    return donors


def alter_numbers(text: str, rng: random.Random) -> str:
    """Replace every number in `text` by a different number of the same length.

    The same number maps to the same replacement within one text, so the altered rationale stays
    internally consistent ("3 apples ... 3 apples") while its values are wrong.
    """
    mapping: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        old = match.group(0)
        if old not in mapping:
            new = old
            while new == old:  # a same-length draw can repeat the original; draw again
                first = str(rng.randint(1, 9)) if len(old) > 1 else str(rng.randint(0, 9))
                new = first + "".join(str(rng.randint(0, 9)) for _ in range(len(old) - 1))
            mapping[old] = new
        return mapping[old]

    return _NUMBER.sub(replace, text)


def perturb_rationales(
    rationales: list[str], kind: str, rate: float, seed: int, *, groups: Sequence[str] | None = None
) -> list[str]:
    """A copy of `rationales` with the planned fraction `rate` perturbed by `kind` (deterministic)."""
    _check(kind, rate)
    out = list(rationales)
    indices = perturbation_plan(len(rationales), rate, seed)
    if kind == "shuffle":
        for i, j in shuffle_donors(len(rationales), indices, seed, groups).items():
            out[i] = rationales[j]  # donors read the originals, never already-swapped text
    else:
        for i in indices:
            # A per-row generator: row i's noise does not depend on which other rows are planned.
            out[i] = alter_numbers(rationales[i], random.Random(f"numbers:{seed}:{i}"))
    return out
