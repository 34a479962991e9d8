"""The answer functions are total and bounded: no teacher reply can make them raise or hang.

One hostile reply used to abort a whole harvest or evaluation: a number of more than 4,300
digits raised ValueError (str(int(...))) and normalize("1e50000000") expanded fifty million
digits. Here 10,000 seeded random and adversarial strings (huge integers and exponents, unicode
digits and minus signs, fractions, expressions, empty and very long text) go through every
public entry point for every answer type. They run in a child process with a timeout, so a
hang fails the test instead of stalling the suite; hypothesis then explores the same tokens
(less the exponents that hung, which only the child process may meet).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pst_core import answers

N_STRINGS = 10_000
SECONDS = 20  # what the 10,000 strings may take on a slow shared CPU (about 3 s unloaded)
TYPES = answers.ANSWER_TYPES + ("bogus",)
CHOICE_SETS: tuple[list[str] | None, ...] = (
    None,
    ["A", "B", "C", "D"],  # recorded questions give letters only
    ["A) entailment", "B) neutral", "C) contradiction"],
    ["A) 15 kmph", "B) 6 kmph", "C) air", "D) air freshener", "E) 6 kmph"],  # duplicates, nested texts
    ["", "(", "a" * 2_000, "\ud800", "A) ", "1e50000000", *(f"opt {i}" for i in range(30))],
)
# Pieces that broke or could break a parser: huge and odd numbers, unicode digits and minus
# signs, fractions, expressions, markers, brackets, control and surrogate characters.
TOKENS = (
    "0", "7", "-3.50", "1,000", "12.30", "1e5", "1e999999999999999999999", "٣٤٥", "१२३", "𝟙𝟚", "１２",
    "١٢٫٥", "−5", "‐3", "–7", "﹣4", "－5", "½", "⅓", "1/2", "3 1/2", "22/7", "1/0", "0/0", "(10 * 45)",
    "((1+1))", "1--1", "-(-(1))", "nan", "-Infinity",
    "sNaN", "1_000", "0x10", "1.2.3", "(a)", "(C)", "E)", " neutral", "Neutral.", "yes", "No.", "true",
    "either (a) or (b)", "air freshener", "6 kmph", '"', "'", ".", ",", ":", "\n", "\t", " ", "\x00",
    "\ud800", "ß", "İ", "ﬁ", "answer", "is", "Therefore,",
)
# Exponents that made normalize() expand millions of digits (it never returned): only in the
# child process, where a timeout turns a hang into a failure.
HANGS = ("1e50000000", "1E+999999999", "-1e-50000000", "12.5e-400000")
# Numbers past int()'s 4,300-digit limit and brackets past the parser's nesting limit: in one
# random string in twenty, as each costs about as much as the thousands of characters it has.
HUGE = ("9" * 4_301, "-" + "1" * 6_000, "0." + "3" * 5_000, "(" * 150, ")" * 150, "9" * 150 + "*" + "9" * 40)
# Very long replies (a real one is a few kB): linear time is what keeps these cheap.
LONG = (
    "", " ", "the answer is " * 10_000, "a" * 300_000, "(A) " * 25_000, "yes no " * 15_000,
    "neutral " * 12_000, "1 " * 50_000, "(" * 20_000 + "1" + ")" * 20_000, "9" * 300_000,
    "1e" + "9" * 100_000, "air " * 25_000 + "freshener", *HANGS,
)


def hostile_strings(n: int = N_STRINGS, seed: int = 0) -> list[str]:
    """`n` strings: the long adversarial ones, then random joins of tokens and random characters."""
    rng = random.Random(seed)
    out = list(LONG)
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 8)):
            roll = rng.random()
            if roll < 0.25:
                parts.append("".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 12))))
            elif roll < 0.26:
                parts.append(rng.choice(HUGE + HANGS))
            else:
                parts.append(rng.choice(TOKENS))
        out.append(rng.choice(("", " ", "")).join(parts))
    return out


def exercise(text: str, k: int) -> None:
    """`text` through every public entry point of answers, for every answer type."""
    choices = CHOICE_SETS[k % len(CHOICE_SETS)]
    assert isinstance(answers.letters_for(choices), str)
    assert answers.as_float(text) is None or isinstance(answers.as_float(text), float)
    for answer_type in TYPES:
        for position in ("first", "last"):
            for canonical in (True, False):
                out = answers.extract(text, answer_type, choices, position=position, canonical=canonical)
                assert out is None or isinstance(out, str)
        assert isinstance(answers.normalize(text, answer_type), str)
        assert isinstance(answers.is_correct(text, text, answer_type), bool)
        assert isinstance(answers.is_correct("5", text, answer_type), bool)
        assert isinstance(answers.reference_correct(text, "A", answer_type, choices), bool)


def _run_all(n: int, seed: int) -> float:
    """CPU seconds to exercise `hostile_strings(n, seed)` (run in the child process; CPU time, so
    a busy machine does not count against it)."""
    texts = hostile_strings(n, seed)
    start = time.process_time()
    for k, text in enumerate(texts):
        exercise(text, k)
    return time.process_time() - start


def test_ten_thousand_hostile_strings_pass_every_entry_point_in_seconds() -> None:
    child = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
             f"import test_answers_property as t; print(json.dumps(t._run_all({N_STRINGS}, 0)))")
    try:
        done = subprocess.run([sys.executable, "-c", child], check=False, capture_output=True, text=True, timeout=6 * SECONDS,
                              cwd=Path(__file__).parent.parent)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{N_STRINGS} strings did not finish in {6 * SECONDS} s: an answer function hangs") from None
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) < SECONDS


def test_huge_numbers_keep_a_short_canonical_form() -> None:
    assert answers.normalize("1e50000000", "number") == "1e+50000000"
    huge = "9" * 5_000
    assert answers.normalize(huge, "number") == "9." + "9" * 4_999 + "e+4999"
    assert answers.extract(f"The answer is {huge}.", "number") == answers.normalize(huge, "number")
    assert answers.is_correct(huge, huge, "number") and not answers.is_correct(huge, "9" * 4_999, "number")
    assert answers.normalize("1" + "0" * 300, "number") == "1" + "0" * 300  # every float keeps its plain form
    assert answers.normalize("-1E-50000000", "number") == "-1e-50000000"


_ALPHABET = st.sampled_from(TOKENS + HUGE) | st.text(max_size=6)


@settings(max_examples=500, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=8), sep=st.sampled_from(["", " "]), k=st.integers(0, len(CHOICE_SETS) - 1))
def test_hostile_token_mixes_never_raise(parts: list[str], sep: str, k: int) -> None:
    exercise(sep.join(parts), k)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=4))
def test_normalised_numbers_are_fixed_points(parts: list[str]) -> None:
    once = answers.normalize("".join(parts), "number")
    assert answers.normalize(once, "number") == once
