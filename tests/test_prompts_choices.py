"""Answer choices appear exactly once in every student and teacher prompt.

Fine-tune-CoT's multiple-choice questions already end in "Answer Choices: (A) ..."; listing the
stored choices again would show every option twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pst_core import prompts
from pst_core.tasks import TASKS
from pst_core.train.strategies import STRATEGIES, get_strategy, question_prompt


def _squash(text: str) -> str:
    return "".join(text.split()).casefold()


def shown(prompt: str, choice: str) -> int:
    """How often the stored option `choice` ('A) x') is shown in `prompt`, as '(A) x' or 'A) x',
    ignoring whitespace and case (AQuA's question spaces its options differently)."""
    return _squash(prompt).count(_squash(choice))


def test_choices_listed_in_the_question_are_not_listed_again():
    choices = ["A) 12", "B) 14"]
    listed = question_prompt("Pick one. Answer Choices: (A) 12 (B) 14", choices)
    assert "Choices: A)" not in listed and [shown(listed, c) for c in choices] == [1, 1]
    assert question_prompt("Pick one.", choices) == "Question: Pick one.\nChoices: A) 12 B) 14\nAnswer:"
    # a question naming only some options, or an option in passing, does not list them
    assert "Choices: A) 12 B) 14" in question_prompt("Pick one. Answer Choices: (A) 12", choices)
    assert "Choices: A) 12 B) 14" in question_prompt("Is 12 more than 14?", choices)


def test_listed_choices_are_recognised_whatever_their_spacing_and_punctuation():
    aqua = ["A) 5(√3 + 1)", "B) 6(√3 + √2)"]
    q = "After how much more time? Answer Choices: (A) 5 (√3 + 1)  (B) 6 (√3 + √2)"
    assert question_prompt(q, aqua) == f"Question: {q}\nAnswer:"
    date = ["A) 06/12/2021", "B) 03/11/2021"]
    q = "What is the date today?\nWhich choice is true? Answer choices: (A) 06/12/2021, (B) 03/11/2021."
    assert question_prompt(q, date) == f"Question: {q}\nAnswer:"


def test_teacher_prompts_follow_the_same_rule():
    choices = ["A) 12", "B) 14"]
    assert prompts.question_text("Pick one.", choices) == "Pick one. Answer Choices: (A) 12 (B) 14"
    spaced = "Pick one. Answer Choices: (A)  12 (B) 14"
    assert prompts.question_text(spaced, choices) == spaced
    assert prompts.lists_choices(spaced, choices) and not prompts.lists_choices("Pick one. (A) 12", choices)


@pytest.mark.shared
@pytest.mark.parametrize("task", TASKS.names())
def test_every_option_of_every_recorded_question_is_shown_once(task: str, datasets_dir: Path):
    from pst_core.prepare import PrepareConfig, load_task
    from pst_core.tasks import get_task

    if not get_task(task).has_local_files(datasets_dir):  # a registered task whose files are not in this datasets folder
        pytest.skip(f"{task}: files absent from {datasets_dir}")
    splits = load_task(task, PrepareConfig(datasets_dir=str(datasets_dir)))
    exs = [e for split in splits.values() for e in split]
    assert exs, f"{task}: no examples in {datasets_dir}"
    teacher = prompts.get("zs_cot", task)
    strategies = [get_strategy(n) for n in STRATEGIES.names()]
    for e in exs:
        student = {s.name: s.inference_prompt(e.question, e.choices) for s in strategies}
        assert all(p.endswith(question_prompt(e.question, e.choices)) for p in student.values())
        x = question_prompt(e.question, e.choices)
        t = teacher.render(e.question, e.choices, e.gold_answer, e.answer_type).text
        bad = [c for c in e.choices if shown(x, c) != 1 or shown(t, c) != 1]
        assert not bad, f"{e.example_id}: options {bad} not shown exactly once in\n{x}\n--- teacher:\n{t}"
        if not e.choices:
            assert "\nChoices:" not in x
