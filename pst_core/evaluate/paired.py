"""Paired comparison of two strategies on the same test questions: which differences are real.

Two students scored on the same questions are not independent samples, so comparing their
accuracy intervals throws away the pairing and hides most real differences (and a few spurious
ones). For each task, PST and a baseline are paired question by question and seed by seed
(seed s of one against seed s of the other) and the pairs are pooled over seeds:

* McNemar's exact test on the discordant pairs (b: PST right and the baseline wrong; c: the
  reverse); two-sided p = P(Binomial(b + c, 1/2) <= min(b, c)) x 2.
* A paired bootstrap of the accuracy difference that resamples questions (each keeping all its
  seeds, so the seeds of one question stay together) for a percentile interval.

The "all tasks" row pools every task's pairs (questions keyed by task).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

Outcomes = Mapping[str, bool]  # example_id -> correct


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (1.0 when there are none)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(a: Sequence[Outcomes], b: Sequence[Outcomes], *, samples: int = 2000, confidence: float = 0.95,
            seed: int = 0) -> dict[str, Any]:
    """Strategy A against B: `a[i]` and `b[i]` are the outcomes of seed i of each, over the same questions
    (only questions both scored count). Returns the accuracy difference A - B, its paired-bootstrap
    interval, the discordant counts and McNemar's p."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired comparison needs the same seeds on both sides (got {len(a)} and {len(b)})")
    questions = sorted(set.intersection(*(set(x) for x in (*a, *b))))
    if not questions:
        raise ValueError("paired comparison needs questions scored by both strategies")
    # Per question: (A right and B wrong) - (A wrong and B right), summed over seeds.
    diff = [sum(int(sa[q]) - int(sb[q]) for sa, sb in zip(a, b)) for q in questions]
    wins = sum(sa[q] and not sb[q] for sa, sb in zip(a, b) for q in questions)
    losses = sum(sb[q] and not sa[q] for sa, sb in zip(a, b) for q in questions)
    seeds, n = len(a), len(questions)
    rng = random.Random(seed)
    boot = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) / (n * seeds) for _ in range(samples))
    lo = boot[int((1 - confidence) / 2 * (samples - 1))]
    hi = boot[int((1 + confidence) / 2 * (samples - 1))]
    acc = [sum(s[q] for s in side for q in questions) / (n * seeds) for side in (a, b)]
    return {"questions": n, "seeds": seeds, "accuracy_a": acc[0], "accuracy_b": acc[1], "difference": acc[0] - acc[1],
            "ci_low": lo, "ci_high": hi, "a_only": wins, "b_only": losses, "p_mcnemar": mcnemar_exact(wins, losses)}


def pooled(pairs: Sequence[tuple[Sequence[Outcomes], Sequence[Outcomes]]]) -> tuple[list[dict[str, bool]], list[dict[str, bool]]]:
    """Several tasks' (a, b) seed lists as one, questions keyed by their position in `pairs`."""
    seeds = min(len(a) for a, _ in pairs)
    side_a = [{f"{t}/{q}": v for t, (a, _) in enumerate(pairs) for q, v in a[s].items()} for s in range(seeds)]
    side_b = [{f"{t}/{q}": v for t, (_, b) in enumerate(pairs) for q, v in b[s].items()} for s in range(seeds)]
    return side_a, side_b


def markdown(rows: list[dict[str, Any]], reference: str, confidence: float = 0.95) -> str:
    """One line per (task, baseline): difference, interval, discordant counts, p, and the verdict."""
    level = round(100 * confidence)
    lines = [f"# Paired comparison: {reference} against each baseline on the same test questions (seeds paired, pooled)", "",
             f"Difference = {reference} accuracy - baseline accuracy, in points; {level} % paired-bootstrap interval over "
             f"questions; McNemar's exact test on the discordant pairs ({reference} only right / baseline only right). "
             "A difference is called real when p < 0.05 and the interval excludes 0.", "",
             f"| task | baseline | questions x seeds | {reference} % | baseline % | difference | {level} % interval | "
             f"{reference} only | baseline only | p (McNemar) | verdict |",
             "|---|---|--:|--:|--:|--:|---|--:|--:|--:|---|"]
    for r in rows:
        real = r["p_mcnemar"] < 0.05 and (r["ci_low"] > 0 or r["ci_high"] < 0)
        verdict = (f"{reference} better" if r["difference"] > 0 else "baseline better") if real else "no real difference"
        lines.append(f"| {r['task']} | {r['baseline']} | {r['questions']} x {r['seeds']} | {100 * r['accuracy_a']:.1f} | "
                     f"{100 * r['accuracy_b']:.1f} | {100 * r['difference']:+.1f} | [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | "
                     f"{r['a_only']} | {r['b_only']} | {r['p_mcnemar']:.3g} | {verdict} |")
    return "\n".join(lines) + "\n"
