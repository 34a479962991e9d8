"""Teacher prompts, versioned: Zero-shot-CoT (two stages), few-shot CoT and rationalisation.

Every template's `prompt_version` is a short sha256 of its template text (for few-shot CoT the
exemplar block is part of the template), so a changed prompt gets new request keys and a new
version in the store, and old rows stay readable beside new ones.

Zero-shot-CoT (Kojima et al., 2022) asks twice: stage 1 "Q: ...\\nA: Let's think step by step."
returns the rationale; stage 2 appends the rationale and an answer trigger per answer type and
returns a short answer completion, which `pst_core.answers.extract` cleans.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pst_core.errors import ConfigError
from pst_core.registry import Registry

COT_TRIGGER = "Let's think step by step."
FEW_SHOT_FILE = "reasoning_teacher/few_shot_cot_prompts.json"
# Few-shot exemplars end every answer with this phrase; the rationale is the text before it.
FEW_SHOT_ANSWER = "The answer is"


def version_of(template: str) -> str:
    """The short content hash that names a template version."""
    return hashlib.sha256(template.encode()).hexdigest()[:12]


def answer_trigger(answer_type: str, choices: list[str] | None = None) -> str:
    """Zero-shot-CoT's answer-extraction phrase for an answer type."""
    if answer_type == "number":
        return "Therefore, the answer (arabic numerals) is"
    if answer_type == "choice":
        last = chr(ord("A") + max(len(choices or "ABCDE"), 1) - 1)
        return f"Therefore, among A through {last}, the answer is"
    if answer_type == "yes_no":
        return "Therefore, the answer (Yes or No) is"
    return "Therefore, the answer is"


def _squashed(text: str) -> str:
    return "".join(text.split()).casefold()


def lists_choices(question: str, choices: list[str] | tuple[str, ...] | None) -> bool:
    """Whether `question` already shows every stored option ('A) x'), in order, as '(A) x' or 'A) x'.

    Fine-tune-CoT's and Zero-shot-CoT's multiple-choice questions end in their options ("Answer
    Choices: (A) ..."), so prompts must not list them again. Whitespace and case are ignored
    (AQuA's question spaces its options differently from the stored ones); a question that names
    only some options, or an option's text in passing, does not count.
    """
    if not choices:
        return False
    text, at = _squashed(question), 0
    for choice in choices:
        found = text.find(_squashed(choice), at)
        if found < 0:
            return False
        at = found + len(_squashed(choice))
    return True


def question_text(question: str, choices: list[str] | None) -> str:
    """The question as shown to the teacher, options appended as Zero-shot-CoT did when absent."""
    if not choices or lists_choices(question, choices):
        return question
    opts = " ".join(f"({c[0]}) {c[2:].strip()}" if len(c) > 2 and c[1] == ")" else c for c in choices)
    return f"{question} Answer Choices: {opts}"


@dataclass(frozen=True)
class Prompt:
    """A rendered stage-1 prompt and what the harvester needs to finish the request."""

    kind: str
    text: str
    version: str
    two_stage: bool  # a stage-2 answer prompt follows (Zero-shot-CoT)
    answer_trigger: str | None = None  # stage-2 trigger; part of the request key


class PromptKind:
    """One prompting method: renders a stage-1 prompt and splits a completion into rationale/answer."""

    template = ""
    two_stage = False

    def __init__(self, task: str, datasets_dir: str | Path | None = None) -> None:
        self.task = task
        self.version = version_of(self.template_text())

    def template_text(self) -> str:
        """The full template whose hash is the prompt version."""
        return self.template

    def render(self, question: str, choices: list[str] | None, gold: str, answer_type: str) -> Prompt:
        """The stage-1 prompt for one example."""
        text = self.template.format(question=question_text(question, choices), gold=gold)
        trigger = answer_trigger(answer_type, choices) if self.two_stage else None
        return Prompt(self.kind, text, self.version, self.two_stage, trigger)

    def split(self, completion: str) -> tuple[str, str]:
        """(rationale, text to extract the answer from) for a single-stage completion."""
        return completion, completion

    @property
    def kind(self) -> str:
        return type(self).name  # type: ignore[attr-defined]


prompt_kinds: Registry[type[PromptKind]] = Registry("prompt kind", PromptKind)


@prompt_kinds.register("zs_cot")
class ZeroShotCoT(PromptKind):
    """Zero-shot-CoT: rationale first, then the answer-extraction prompt (two requests)."""

    name = "zs_cot"
    template = "Q: {question}\nA: " + COT_TRIGGER
    two_stage = True


def stage2_text(prompt: Prompt, rationale: str) -> str:
    """The Zero-shot-CoT answer prompt: stage 1 + rationale + ' ' + answer trigger, as Kojima et al. built it.

    A completions endpoint continues the prompt, so its rationale starts with the space (or the
    newlines) after "step by step."; a chat endpoint answers a fresh message with no leading
    space ("15 pictures..."), and so do stripped recorded rationales. Those get one space, never
    a second one, so both read "... step by step. 15 pictures ...".
    """
    sep = "" if not rationale or rationale[0].isspace() else " "
    return f"{prompt.text}{sep}{rationale} {prompt.answer_trigger}"


@prompt_kinds.register("few_shot_cot")
class FewShotCoT(PromptKind):
    """Few-shot CoT with the Fine-tune-CoT exemplars of the task (one request)."""

    name = "few_shot_cot"

    def __init__(self, task: str, datasets_dir: str | Path | None = None) -> None:
        self.exemplars = _exemplars(task, str(datasets_dir) if datasets_dir else None)
        self.template = self.exemplars.replace("{", "{{").replace("}", "}}") + "\nQ: {question}\nA:"
        super().__init__(task, datasets_dir)

    def split(self, completion: str) -> tuple[str, str]:
        # The model keeps writing new "Q:" exemplars after its answer; only the first block counts.
        first = completion.split("\nQ:", 1)[0].rstrip()
        head, sep, tail = first.rpartition(FEW_SHOT_ANSWER)
        return (head.rstrip(), tail) if sep else (first, first)


@cache
def _exemplars(task: str, datasets_dir: str | None) -> str:
    from pst_core import settings

    base = Path(datasets_dir) if datasets_dir else settings.datasets_dir()
    if base is None or not (base / FEW_SHOT_FILE).is_file():
        raise ConfigError(f"few-shot CoT needs {FEW_SHOT_FILE}; set PST_DATASETS_DIR to the datasets folder")
    data = json.loads((base / FEW_SHOT_FILE).read_text())
    if task not in data:
        raise ConfigError(f"no few-shot CoT exemplars for task {task!r}; tasks with exemplars: {', '.join(sorted(data))}")
    return data[task]["prompt"].rstrip("\n")


@prompt_kinds.register("rationalize")
class Rationalize(PromptKind):
    """Rationalisation (STaR): the gold answer is given and the teacher explains it (one request)."""

    name = "rationalize"
    template = "Q: {question}\nA: (The correct answer is {gold}.) " + COT_TRIGGER

    def split(self, completion: str) -> tuple[str, str]:
        return completion, completion


def get(kind: str, task: str, datasets_dir: str | Path | None = None) -> PromptKind:
    """An instance of the named prompt kind for a task (unknown names list the valid ones)."""
    return prompt_kinds.get(kind)(task, datasets_dir)
