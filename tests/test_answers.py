"""Answer extraction and normalisation: the Zero-shot-CoT cleansing rules, and robustness to any text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pst_core import answers


@pytest.mark.parametrize(
    ("text", "answer_type", "expected"),
    [
        (" 1,792.", "number", "1792"),
        (" $40,000. \n\nI hope", "number", "40000"),
        ("-3.50 apples", "number", "-3.5"),
        ("18.0", "number", "18"),
        ("no digits here", "number", None),
        (" probably (A), (B), (C)", "choice", "A"),
        (" (D).", "choice", "D"),
        (' "Yes, the coin is heads up."', "yes_no", "yes"),
        (" that it is not common", "yes_no", None),
        (" No.", "yes_no", "no"),
        (' "fnenl".', "text", "fnenl"),
    ],
)
def test_extract_follows_zero_shot_cot_cleansing(text: str, answer_type: str, expected: str | None) -> None:
    assert answers.extract(text, answer_type) == expected


def test_extract_choice_only_accepts_letters_of_the_choices() -> None:
    assert answers.extract("Definitely E, or maybe B", "choice", ["x", "y", "z"]) == "B"
    assert answers.extract("E F", "choice", ["1", "2", "3", "4", "5", "6"]) == "E"


def test_extract_last_position_takes_the_final_candidate() -> None:
    rationale = "3 apples plus 4 apples is 7. So the answer is 7 and not 12"
    assert answers.extract(rationale, "number") == "3"
    assert answers.extract(rationale, "number", position="last") == "12"
    assert answers.extract('so the answer is "abcd".', "text", position="last") == "abcd"
    assert answers.extract("yes at first, but no", "yes_no", position="last") == "no"


def test_extract_raw_number_keeps_the_zero_shot_cot_string() -> None:
    assert answers.extract(" 12.30.", "number", canonical=False) == "12.30"
    assert answers.extract(" 12.30.", "number") == "12.3"


@pytest.mark.parametrize(
    ("answer", "answer_type", "expected"),
    [("43.0", "number", "43"), ("2.50", "number", "2.5"), ("1,000", "number", "1000"), ("-0", "number", "0"),
     ("(c)", "choice", "C"), ("B", "choice", "B"), ("Yes", "yes_no", "yes"), ("False", "yes_no", "no"),
     (" yajo ", "text", "yajo")],
)
def test_normalize_gives_canonical_gold_answers(answer: str, answer_type: str, expected: str) -> None:
    assert answers.normalize(answer, answer_type) == expected


def test_is_correct_compares_numbers_numerically_and_none_is_wrong() -> None:
    assert answers.is_correct("12.30", "12.3", "number")
    assert answers.is_correct("0.6666666666666667", "0.6666666666666666", "number")
    assert not answers.is_correct("12", "13", "number")
    assert not answers.is_correct(None, "13", "number")
    assert answers.is_correct("c", "C", "choice")
    assert not answers.is_correct("A", "C", "choice")


def test_reference_scoring_is_exact_string_like_zero_shot_cot() -> None:
    assert not answers.reference_correct(" 12.30.", "12.3", "number")
    assert answers.reference_correct(" 43.", "43.0", "number")


@settings(max_examples=300, deadline=None)
@given(text=st.text(), answer_type=st.sampled_from(answers.ANSWER_TYPES + ("bogus",)),
       position=st.sampled_from(["first", "last"]),
       choices=st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=8)))
def test_extractors_take_any_text_without_raising(text: str, answer_type: str, position: str, choices: list[str] | None) -> None:
    out = answers.extract(text, answer_type, choices, position=position)
    assert out is None or isinstance(out, str)
    assert isinstance(answers.extract(text, answer_type, canonical=False) or "", str)


@settings(max_examples=300, deadline=None)
@given(text=st.text(), gold=st.text(), answer_type=st.sampled_from(answers.ANSWER_TYPES))
def test_normalisers_and_scorers_take_any_text_without_raising(text: str, gold: str, answer_type: str) -> None:
    assert isinstance(answers.normalize(text, answer_type), str)
    assert isinstance(answers.is_correct(text, gold, answer_type), bool)
    assert isinstance(answers.reference_correct(text, gold, answer_type), bool)


@settings(max_examples=200, deadline=None)
@given(value=st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, allow_infinity=False, places=4))
def test_number_normalisation_round_trips_through_extraction(value) -> None:
    text = f"The answer is {value}."
    assert answers.is_correct(answers.extract(text, "number"), str(value), "number")


NLI = ["A) entailment", "B) neutral", "C) contradiction"]


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        (" neutral.", NLI, "B"),  # PaLM-540B's anli1 answers
        (" Neutral", NLI, "B"),
        (' "contradiction!"', NLI, "C"),
        (" entailment", NLI, "A"),  # the E of "Entailment" is no option of three
        (" (c) wooded area.", ["A) bank", "B) river", "C) wooded area", "D) zoo", "E) lake"], "C"),
        (" it is neutral, as nothing is said", NLI, "B"),
        (" air freshener.", ["A) air", "B) air freshener", "C) window"], "B"),  # "air" inside it does not count
    ],
)
def test_choice_answers_match_by_option_text(text: str, choices: list[str], expected: str) -> None:
    assert answers.extract(text, "choice", choices) == expected


@pytest.mark.parametrize(
    ("clear", "letter", "ambiguous", "choices"),
    [
        (" neutral.", "B", " neutral or entailment", NLI),  # two options named
        (" 15 kmph.", "A", " 6 kmph.", ["A) 15 kmph", "B) 6 kmph", "C) 12 kmph", "D) 14 kmph", "E) 6 kmph"]),  # shared text
        (" (a) opera.", "A", " either (a) opera or (b) concert.", ["A) opera", "B) concert", "C) basement"]),  # two marked
        (" (b)", "B", " a", ["A", "B", "C"]),  # letter-only choices have no text to match
    ],
)
def test_choice_text_matches_only_when_unambiguous(clear: str, letter: str, ambiguous: str, choices: list[str]) -> None:
    assert answers.extract(clear, "choice", choices) == letter
    assert answers.extract(ambiguous, "choice", choices) is None


def test_choice_words_outweigh_a_slipped_leading_letter() -> None:
    choices = ["A) fight enemy", "B) go to war", "C) fight for freedom", "D) wait for orders", "E) follow instructions"]
    assert answers.extract(" (e) wait for orders.", "choice", choices) == "D"
    assert answers.extract(" (e) follow orders.", "choice", choices) == "E"


def test_reference_scoring_keeps_kojimas_letter_rule() -> None:
    assert answers.extract(" neutral.", "choice", NLI, canonical=False) is None
    assert not answers.reference_correct(" neutral.", "B", "choice", NLI)
    assert answers.is_correct(answers.extract(" neutral.", "choice", NLI), "B", "choice")


def test_an_answer_that_is_wholly_arithmetic_is_its_value() -> None:
    assert answers.extract(" (10 * 45).", "number") == "450"
    assert answers.extract(" (10 - (3 + 6)).\n\nQ: next question", "number") == "1"
    assert answers.extract(" (12 - 2) - 7.", "number") == "3"
    assert answers.extract(" (10 * 45).", "number", canonical=False) == "10"  # Kojima's first number
    assert answers.extract(" 5 + 3 = 8", "number") == "5"  # not wholly an expression
    assert answers.extract(" 1/0", "number") == "1"


def test_extractor_version_is_an_int_of_at_least_2() -> None:
    assert isinstance(answers.EXTRACTOR_VERSION, int) and answers.EXTRACTOR_VERSION >= 2
