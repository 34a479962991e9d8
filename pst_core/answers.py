"""Answer extraction and normalisation: the Zero-shot-CoT answer-cleansing rules, as pure functions.

Zero-shot-CoT (Kojima et al., 2022) asks the model a second question ("Therefore, the answer
(arabic numerals) is") and cleans the short completion per answer type: numbers lose their
commas and the first number wins; choice tasks take the first valid option letter; yes/no tasks
take the first "yes"/"no" word; last-letter concatenation keeps the whole completion without
quotes, dots and spaces. A trailing "." is dropped. `position="last"` takes the last candidate
instead, which is what a student that writes its answer at the end of a rationale needs.

Two additions make other teachers' answers count (Distilling Step-by-Step's PaLM-540B answers
"(c) wooded area.", "neutral." and "(10 * 45)."): a choice answer is also read from a leading
"(c)" marker or from the option's text, and a number answer that is wholly an arithmetic
expression is its value. `canonical=False` keeps Kojima's rules exactly (`reference_correct`).

Nothing here raises on any string, and every function runs in time about linear in its input:
unparseable text extracts to None and normalises to itself, and huge numbers ("1e50000000", a
5,000-digit integer) are written in scientific form instead of being expanded.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import string
import warnings
from decimal import Decimal
from functools import lru_cache

# The version of the extraction and normalisation rules below. Bump it whenever a rule changes
# (what `extract`, `normalize` or `is_correct` return for some text): stored teacher judgements
# (is_correct) carry the version they were made with, and rows judged under another version are
# re-judged from their stored text, so a rule fix reaches every existing store without a request.
# 2: choice answers also match by the option's text or a leading "(c)"; an answer that is wholly
#    arithmetic ("(10 * 45).") is its value; extractors and normalisers are total and bounded.
# 3: the same rules, finished (version 2 was stamped while they were still being changed).
EXTRACTOR_VERSION: int = 3

ANSWER_TYPES = ("number", "choice", "yes_no", "text")
DEFAULT_LETTERS = "ABCDE"

_NUMBER = re.compile(r"-?\d+\.?\d*")
# A "yes"/"no" word between Kojima's separators (quotes, newline, dot, space, colon, comma); the
# separator before it is checked by hand, as a leading look-behind would slow every search.
_YES_NO = re.compile(r"(?:yes|no)(?![^\"'\n.\s:,])")
_TEXT_NOISE = re.compile(r"[\"'\n.\s]")
# Relative tolerance for numeric answers; Zero-shot-CoT compared strings, which this contains.
_REL_TOL = 1e-6
# Numbers whose plain decimal form is longer than this are written "1.5e+5000": every finite
# float (up to 309 integer digits, down to 5e-324) still gets its plain form, and nothing
# ever expands "1e50000000" into fifty million digits.
_MAX_PLAIN_DIGITS = 400
# "(10 * 45)": numbers, + - * / and brackets only, short enough to evaluate instantly.
_EXPRESSION = re.compile(r"[\d\s.+\-*/()]{3,200}")
_BINARY_OP = re.compile(r"[\d)]\s*[-+*/]\s*[\d(]")  # an operator between operands, not a sign
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_NOT_WORD = re.compile(r"[\W_]+")
_LEAD_MARKER = re.compile(r"\s*\(?([A-Za-z])\)\s*")  # "(c) wooded area", "C) 5", stored "A) entailment"
_MARKER = re.compile(r"\(([A-Za-z])\)")
_CHOICE_ANSWER = re.compile(r"\(?([A-Za-z])\)?[.)]?")  # a normalised choice answer: "(c)", "B", "D."
_DECIMAL_STR = re.compile(r"(-?)(\d+)(?:\.(\d+))?(?:E([-+]\d+))?", re.IGNORECASE)


def letters_for(choices: list[str] | None) -> str:
    """The valid option letters: one per choice (A, B, ...), or A-E when choices are unknown."""
    if not choices:
        return DEFAULT_LETTERS
    return string.ascii_uppercase[: len(choices)]


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
        if canonical and (value := _expression_value(text)) is not None:
            return value
        picked = _pick(_NUMBER.findall(text.replace(",", "")), position)
        if picked is None:
            return None
        return normalize(picked, "number") if canonical else picked.rstrip(".") or None
    if answer_type == "choice":
        return _extract_choice(text, choices, position) if canonical else _kojima_letter(text, choices, position)
    if answer_type == "yes_no":  # Kojima's rule: the words between separators that are yes or no
        low = text.lower()
        words = (m.group(0) for m in _YES_NO.finditer(low) if m.start() == 0 or _yes_no_separator(low[m.start() - 1]))
        return _pick(list(words), "last") if position == "last" else next(words, None)
    if answer_type == "text":
        if position == "last":  # a rationale ending in 'the answer is "abcd".'
            words = [w for w in (_TEXT_NOISE.sub("", w) for w in text.split()) if w]
            return _pick(words, "last")
        cleaned = _TEXT_NOISE.sub("", text)
        return cleaned or None
    return None


def _yes_no_separator(char: str) -> bool:
    """Whether `char` ends a word for Kojima's yes/no rule (the `(?![...])` class of `_YES_NO`)."""
    return char in "\"'.:," or char.isspace()


def _kojima_letter(text: str, choices: list[str] | None, position: str) -> str | None:
    """Kojima's rule: the first (or last) valid option letter anywhere in the completion."""
    found = _letter_class(letters_for(choices)).search(text if position != "last" else text[::-1])
    return found.group(0) if found else None


@lru_cache(maxsize=32)
def _letter_class(letters: str) -> re.Pattern[str]:
    """`[ABCDE]`: one C-speed scan for Kojima's rule instead of a Python loop per character."""
    return re.compile(f"[{letters}]")


def _extract_choice(text: str, choices: list[str] | None, position: str) -> str | None:
    """The option letter of a choice answer, strongest evidence first.

    1. the answer, less a leading "(c)", is exactly one option's text ("Neutral.", "(e) wait
       for orders." when "wait for orders" is option D: the words outweigh a slipped letter);
    2. a leading marker, "(c) wooded area" or "C) 5" (any case), unless another option is
       marked too ("either (a) opera or (b) concert" is no single answer);
    3. Kojima's rule, an upper-case option letter anywhere;
    4. a bracketed "(c)" (any case), when it is the only option marked;
    5. the text of exactly one option, as whole words ("... is neutral because ...").
    Two options with the same text ("6 kmph" as B and E) match neither by text: only a letter
    tells them apart, and the gold may be either.
    Steps 1 and 2 read the start of the text, so `position="last"` (an answer at the end of a
    rationale, which may open by discussing another option) skips the leading marker.
    """
    letters, options = letters_for(choices), _option_texts(choices)
    marked = {m.upper() for m in _MARKER.findall(text)} & set(letters)
    lead = _LEAD_MARKER.match(text) if position == "first" else None
    said = _words(text[lead.end():] if lead else text) if options else ""
    exact = [letter for letter, option in options.items() if option == said]
    if len(exact) == 1:
        return exact[0]
    if lead and lead.group(1).upper() in letters and marked <= {lead.group(1).upper()}:
        return lead.group(1).upper()
    found = _kojima_letter(text, choices, position)
    if found is not None:
        return found
    if len(marked) == 1:
        return marked.pop()
    return _unique_option_mention(_words(text) if lead else said, options) if options else None


def _words(text: str) -> str:
    """Case- and punctuation-insensitive form: lower-case words joined by single spaces."""
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def _option_texts(choices: list[str] | None) -> dict[str, str]:
    """{letter: option text in `_words` form} for options that have a text beyond their letter.

    Stored choices read "A) entailment"; the "A) " label is not part of the text, and a choice
    that is only its letter (recorded questions give ["A", "B", ...]) has no text to match.
    """
    out: dict[str, str] = {}
    for letter, choice in zip(letters_for(choices), choices or []):
        if not isinstance(choice, str):
            continue
        label = _LEAD_MARKER.match(choice)
        words = _words(choice[label.end():] if label and label.group(1).upper() == letter else choice)
        if words and words != letter.lower():
            out[letter] = words
    return out


def _unique_option_mention(said: str, options: dict[str, str]) -> str | None:
    """The one option whose text the answer mentions as whole words (a mention inside a longer
    mentioned option, "air" in "air freshener", does not count); None when zero or several."""
    spans: dict[tuple[int, int], set[str]] = {}  # (start, end) in `padded` -> options found there
    padded = f" {said} "
    for letter, option in options.items():
        needle, start = f" {option} ", padded.find(f" {option} ")
        while start >= 0:
            spans.setdefault((start, start + len(needle)), set()).add(letter)
            start = padded.find(needle, start + 1)
    kept: set[str] = set()
    reach = -1  # by start, longest first: a span ending within `reach` lies inside an earlier, other span
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if end > reach:
            kept |= spans[(start, end)]
            reach = end
    return kept.pop() if len(kept) == 1 else None


def _expression_value(text: str) -> str | None:
    """The value of an answer whose first line is wholly arithmetic ("(10 * 45)." -> "450"), else None."""
    body = text.strip().split("\n", 1)[0].strip().rstrip(".").strip()  # "(15 * 19).\n\nQ" ends at the line
    if not _EXPRESSION.fullmatch(body) or not _BINARY_OP.search(body):
        return None
    try:
        with warnings.catch_warnings():  # "(2)(3)" parses with a SyntaxWarning, then is refused
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
        value = _evaluate(tree.body)
    except (SyntaxError, ValueError, ArithmeticError, RecursionError, MemoryError):
        return None
    return normalize(repr(value), "number") if math.isfinite(value) else None


def _evaluate(node: ast.AST) -> float:
    """Numbers and + - * / only; never Python's eval."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not arithmetic")


def normalize(answer: str, answer_type: str) -> str:
    """The canonical form of a gold or predicted answer ("18", "2.5", "C", "yes", "abcd")."""
    if not isinstance(answer, str):
        try:
            answer = str(answer)
        except ValueError:  # an int past str()'s 4,300-digit limit (a gold answer read from JSON)
            answer = str(Decimal(answer)) if isinstance(answer, int) else ""
    text = answer.strip()
    if answer_type == "number":
        return _normalize_number(text)
    if answer_type == "choice":
        match = _CHOICE_ANSWER.fullmatch(text)
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
    """'1,000' -> '1000', '18.0' -> '18', '2.50' -> '2.5', '-0' -> '0'; other text unchanged.

    Written from the decimal digits and exponent as strings, never through int(): int() of a
    5,000-digit number cannot be printed, and of "1e50000000" takes minutes.
    """
    cleaned = text.replace(",", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except (ArithmeticError, ValueError, TypeError):
        return text
    if not value.is_finite():
        return text
    # str() of a Decimal is ASCII "-123.45" or "1.2E+50000000" (unicode digits become ASCII).
    parsed = _DECIMAL_STR.fullmatch(str(value))
    if parsed is None:  # only under an unusual decimal context
        return text
    sign, whole, frac, power = parsed.groups()
    digits = (whole + (frac or "")).lstrip("0")
    stripped = digits.rstrip("0")
    exponent = int(power or 0) - len(frac or "") + len(digits) - len(stripped)  # trailing zeros move into it
    if not stripped:
        return "0"
    minus = "-" if sign else ""
    if exponent >= 0 and len(stripped) + exponent <= _MAX_PLAIN_DIGITS:
        return minus + stripped + "0" * exponent
    if exponent < 0 and max(len(stripped), -exponent) + 1 <= _MAX_PLAIN_DIGITS:
        whole, frac = stripped[:exponent] or "0", stripped[exponent:].rjust(-exponent, "0")
        return f"{minus}{whole}.{frac}"
    lead = len(stripped) - 1 + exponent  # the power of ten of the first digit
    mantissa = stripped[0] + (f".{stripped[1:]}" if len(stripped) > 1 else "")
    return f"{minus}{mantissa}e{lead:+d}"


def as_float(answer: str | None) -> float | None:
    """A number answer as float, or None when it is not a finite number."""
    if answer is None:
        return None
    try:
        value = float(answer.replace(",", ""))
    except (ValueError, AttributeError, OverflowError):
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
