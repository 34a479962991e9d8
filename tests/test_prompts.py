"""Prompts: versioned templates, Zero-shot-CoT's two stages, few-shot CoT and rationalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pst_core import prompts
from pst_core.errors import ConfigError


def test_zero_shot_cot_prompts_match_the_recorded_format() -> None:
    kind = prompts.get("zs_cot", "multiarith")
    p = kind.render("How many?", [], "3", "number")
    assert p.text == "Q: How many?\nA: Let's think step by step." and p.two_stage
    # The recorded Fine-tune-CoT stage-2 prompt: reasoning prompt + rationale + " " + trigger.
    assert prompts.stage2_text(p, " 1 + 2 = 3.") == "Q: How many?\nA: Let's think step by step. 1 + 2 = 3. Therefore, the answer (arabic numerals) is"


def test_prompt_version_is_a_hash_of_the_template() -> None:
    a, b = prompts.get("zs_cot", "t"), prompts.get("rationalize", "t")
    assert a.version == prompts.version_of(a.template) and a.version != b.version and len(a.version) == 12
    assert prompts.get("zs_cot", "other_task").version == a.version


def test_answer_trigger_depends_on_answer_type() -> None:
    assert "arabic numerals" in prompts.answer_trigger("number")
    assert "A through C" in prompts.answer_trigger("choice", ["A) x", "B) y", "C) z"])
    assert "Yes or No" in prompts.answer_trigger("yes_no")


def test_choices_are_appended_when_the_question_lacks_them() -> None:
    assert prompts.question_text("Pick one.", ["A) 12", "B) 14"]) == "Pick one. Answer Choices: (A) 12 (B) 14"
    assert prompts.question_text("Pick one. Answer Choices: (A) 12", ["A) 12"]) == "Pick one. Answer Choices: (A) 12"


def test_rationalisation_gives_the_gold_answer() -> None:
    p = prompts.get("rationalize", "t").render("How many?", [], "42", "number")
    assert "42" in p.text and not p.two_stage


def test_few_shot_cot_uses_task_exemplars_and_splits_the_answer(datasets_dir: Path) -> None:
    kind = prompts.get("few_shot_cot", "multiarith", datasets_dir)
    p = kind.render("How many?", [], "3", "number")
    assert p.text.startswith("Q: There are 15 trees") and p.text.endswith("\nQ: How many?\nA:")
    assert kind.split(" 1 + 2 = 3. The answer is 3.\n\nQ: next") == (" 1 + 2 = 3.", " 3.")
    with pytest.raises(ConfigError, match="no few-shot"):
        prompts.get("few_shot_cot", "no_such_task", datasets_dir)


def test_unknown_prompt_kind_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="zs_cot"):
        prompts.get("zero_shot", "t")
