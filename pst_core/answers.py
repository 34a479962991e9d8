"""Answer extraction and normalisation: the Zero-shot-CoT answer-cleansing rules, as pure functions.

Zero-shot-CoT (Kojima et al., 2022) asks the model a second question ("Therefore, the answer
(arabic numerals) is") and cleans the short completion per answer type: numbers lose their
commas and the first number wins; choice tasks take the first valid option letter; yes/no tasks
take the first "yes"/"no" word; last-letter concatenation keeps the whole completion without
quotes, dots and spaces. A trailing "." is dropped. `position="last"` takes the last candidate
instead, which is what a student that writes its answer at the end of a rationale needs.

Nothing here raises on any string: unparseable text extracts to None and normalises to itself.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

# The version of the extraction and normalisation rules below. Bump it whenever a rule changes
# (what `extract`, `normalize` or `is_correct` return for some text): stored teacher judgements
# (is_correct) carry the version they were made with, and rows judged under another version are
# re-judged from their stored text, so a rule fix reaches every existing store without a request.
# 2: choice answers also match by the option's text; extractors are total and bounded.
EXTRACTOR_VERSION: int = 2

ANSWER_TYPES = ("number", "choice", "yes_no", "text")
DEFAULT_LETTERS = "ABCDE"

_NUMBER = re.compile(r"-?\d+\.?\d*")
_YES_NO_SEPARATORS = re.compile(r"[\"'\n.\s:,]")
_TEXT_NOISE = re.compile(r"[\"'\n.\s]")
# Relative tolerance for numeric answers; Zero-shot-CoT compared strings, which this contains.
_REL_TOL = 1e-6


def letters_for(choices: list[str] | None) -> str:
    """The valid option letters: one per choice (A, B, ...), or A-E when choices are unknown."""
    if not choices:
        return DEFAULT_LETTERS
    return "".join(chr(ord("A") + i) for i in range(min(len(choices), 26)))


def _pick(candidates: list[str], position: str) -> str | None:
    if not candidates:
        return None
    return candidates[-1] if position == "last" else candidates[0]


def extract(
    text: str, answer_type: str, choices: list[str] | None = None, *, position: str = "first", canonical: bool = True
) -> str | None:
    """The answer in free model text by the Zero-shot-CoT cleansing rules, or None.

    Numbers come back in canonical form ("12.30" -> "12.3"); `canonical=False` keeps the string
    exactly as Zero-shot-CoT kept it, which its exact-string scoring needs (see `reference_correct`).
    """
    if not isinstance(text, str):
        return None
    if answer_type == "number":
        picked = _pick(_NUMBER.findall(text.replace(",", "")), position)
        if picked is None:
            return None
        return normalize(picked, "number") if canonical else picked.rstrip(".") or None
    if answer_type == "choice":
        # Kojima's rule: the first option letter anywhere in the completion (it is short).
        letters = letters_for(choices)
        return _pick([c for c in text if c in letters], position)
    if answer_type == "yes_no":
        words = _YES_NO_SEPARATORS.sub(" ", text.lower()).split(" ")
        return _pick([w for w in words if w in ("yes", "no")], position)
    if answer_type == "text":
        if position == "last":  # a rationale ending in 'the answer is "abcd".'
            words = [w for w in (_TEXT_NOISE.sub("", w) for w in text.split()) if w]
            return _pick(words, "last")
        cleaned = _TEXT_NOISE.sub("", text)
        return cleaned or None
    return None


def normalize(answer: str, answer_type: str) -> str:
    """The canonical form of a gold or predicted answer ("18", "2.5", "C", "yes", "abcd")."""
    if not isinstance(answer, str):
        answer = str(answer)
    text = answer.strip()
    if answer_type == "number":
        return _normalize_number(text)
    if answer_type == "choice":
        match = re.fullmatch(r"\(?([A-Za-z])\)?[.)]?", text)
        return match.group(1).upper() if match else text
    if answer_type == "yes_no":
        low = text.lower().rstrip(".")
        if low in ("yes", "true", "1"):
            return "yes"
        if low in ("no", "false", "0"):
            return "no"
        return low
    return _TEXT_NOISE.sub("", text) if answer_type == "text" else text


def _normalize_number(text: str) -> str:
    """'1,000' -> '1000', '18.0' -> '18', '2.50' -> '2.5', '-0' -> '0'; other text unchanged."""
    cleaned = text.replace(",", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except (InvalidOperation, ValueError):
        return text
    if not value.is_finite():
        return text
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def as_float(answer: str | None) -> float | None:
    """A number answer as float, or None when it is not a finite number."""
    if answer is None:
        return None
    try:
        value = float(answer.replace(",", ""))
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def is_correct(predicted: str | None, gold: str, answer_type: str) -> bool:
    """Whether a prediction matches the gold answer (numbers with a small relative tolerance)."""
    if predicted is None or not isinstance(gold, str):
        return False
    if answer_type == "number":
        p, g = as_float(normalize(predicted, "number")), as_float(normalize(gold, "number"))
        if p is None or g is None:
            return normalize(predicted, "number") == normalize(gold, "number")
        return math.isclose(p, g, rel_tol=_REL_TOL, abs_tol=_REL_TOL)
    return normalize(predicted, answer_type) == normalize(gold, answer_type)


def reference_correct(completion: str, gold: str, answer_type: str, choices: list[str] | None = None) -> bool:
    """Zero-shot-CoT's own scoring: the cleansed answer string equals the gold string exactly.

    It reproduces the published accuracies; it calls "12.30" vs "12.3" and float round-off like
    0.6666666666666667 vs 0.6666666666666666 wrong, which `is_correct` (used everywhere else) does not.
    """
    predicted = extract(completion, answer_type, choices, canonical=False)
    return predicted is not None and predicted == normalize(gold, answer_type)
