"""Recorded teacher outputs indexed by question text, and how a prompt is answered from them.

Records file (`pst teacher serve-replay --records FILE`): JSON Lines, one object per line, or
one JSON list of such objects. Fields:
- `question` (required, non-empty string): the question exactly as the harvester renders it
  between "Q: " and "\\nA:", i.e. the example store's question, with " Answer Choices: (A) x
  (B) y ..." appended when a multiple-choice question does not list its options already
  (`pst_core.prompts.question_text`). Matching ignores surrounding whitespace only.
- `rationale` (string): the Zero-shot-CoT stage-1 answer, sent verbatim.
- `answer_completion` (string, optional): the stage-2 answer to "... <rationale> <answer trigger>".
- `raw_completion` (string, optional): the answer to a few-shot CoT prompt; when
  `answer_completion` is absent, stage 2 gets what `raw_completion` adds after the rationale.
At least one of `rationale` and `raw_completion` must be non-empty; other fields are ignored.
Several records of one question are several samples: greedy requests get the first, sampled
ones (temperature > 0) cycle through them.

A prompt is matched on the question between its last "Q: " and the following "\\nA:". Then:
- Zero-shot-CoT stage 1 (the prompt ends with "Let's think step by step.") -> the recorded
  rationale, verbatim (rationalisation prompts end the same way and get the same answer);
- stage 2 (a recorded rationale follows the trigger) -> the recorded answer completion;
- any other prompt (few-shot CoT) -> the recorded raw completion.
Nothing is ever made up: an unknown question, a stage-2 rationale that is not a recorded one, or
a record with no text for the stage is unmatched, which the server answers with HTTP 404, a JSON
error naming the reason and the header `X-Replay-Match: none` (the harvest stores the request as
failed with reason `unmatched`; see `pst_core.harvest.client.classify_status`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError, DataError

TRIGGER = "Let's think step by step."
DEFAULT_TEACHER = "text-davinci-002"  # a datasets folder without --teacher-model replays this model's tasks
NO_QUESTION = "no recorded output for this question"
NO_RATIONALE = "the rationale in this answer prompt is not a recorded one"
NO_ANSWER = "the recorded output of this question has no answer completion"
NO_TEXT = "the recorded output of this question has no text for this prompt"
FIELDS = ("rationale", "answer_completion", "raw_completion")
SPLIT_ORDER = ("train", "validation", "test")


@dataclass(frozen=True)
class Record:
    """One recorded answer to a question."""

    question: str
    rationale: str
    answer_completion: str | None
    raw_completion: str | None


class Index:
    """Records by question, answering prompts as the module docstring describes.

    `coverage` maps task -> split -> (questions with a record, questions) when the task's
    questions are known (see `load` and `task_coverage`); the server prints it at start.
    """

    def __init__(self, records: list[Record]) -> None:
        self.by_question: dict[str, list[Record]] = {}
        for r in records:
            self.by_question.setdefault(r.question.strip(), []).append(r)
        self._draws: dict[str, int] = {}
        self.coverage: dict[str, dict[str, tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self.by_question)

    def covered(self, questions: Iterable[str]) -> tuple[int, int]:
        """(distinct questions with a record, distinct questions) of rendered question texts."""
        unique = {q.strip() for q in questions}
        return sum(q in self.by_question for q in unique), len(unique)

    def answer(self, prompt: str, temperature: float = 0.0) -> tuple[str, str]:
        """(completion text, match kind: stage1 | stage2 | few_shot), or (why, "none") when unmatched."""
        i = prompt.rfind("Q: ")
        j = prompt.find("\nA:", i)
        recs = self.by_question.get(prompt[i + 3 : j].strip()) if i >= 0 and j >= 0 else None
        if not recs:
            return NO_QUESTION, "none"
        _, sep, after = prompt[j + 3 :].partition(TRIGGER)
        if not sep:
            text = recs[0].raw_completion or recs[0].rationale
            return (text, "few_shot") if text else (NO_TEXT, "none")
        if not after.strip():
            with_rationale = [r for r in recs if r.rationale]
            return (self._pick(with_rationale, prompt, temperature).rationale, "stage1") if with_rationale else (NO_TEXT, "none")
        return _stage2(recs, after)

    def _pick(self, recs: list[Record], prompt: str, temperature: float) -> Record:
        """Greedy requests get the first recording; sampled ones cycle through the recordings."""
        if temperature <= 0 or len(recs) == 1:
            return recs[0]
        n = self._draws.get(prompt, 0)
        self._draws[prompt] = n + 1
        return recs[n % len(recs)]


def _stage2(recs: list[Record], after: str) -> tuple[str, str]:
    """The answer to a stage-2 prompt whose text after the trigger is `after` (rationale + answer trigger).

    The rationale is compared without its surrounding whitespace (clients may join it to the
    trigger with a space); of several recorded rationales that fit, the longest is the one sent.
    """
    sent = after.lstrip()
    fits = [r for r in recs if r.rationale.strip() and sent.startswith(r.rationale.strip())]
    if not fits:
        return NO_RATIONALE, "none"
    r = max(fits, key=lambda rec: len(rec.rationale.strip()))
    if r.answer_completion is not None:
        return r.answer_completion, "stage2"
    raw = (r.raw_completion or "").lstrip()
    rest = raw[len(r.rationale.strip()) :] if raw.startswith(r.rationale.strip()) else ""
    return (rest, "stage2") if rest.strip() else (NO_ANSWER, "none")


def parse_records(text: str, source: str) -> list[Record]:
    """Records from JSON Lines or one JSON list (the contract in the module docstring)."""
    if text.lstrip().startswith("["):
        try:
            rows: list[Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
        where = [f"item {n}" for n in range(len(rows))]
    else:
        rows, where = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{source}: line {n} is not valid JSON ({exc.msg}); expected one record per line or one JSON list") from None
                where.append(f"line {n}")
    out = [_record(row, f"{source}: {at}") for row, at in zip(rows, where)]
    if not out:
        raise ConfigError(f"{source} holds no records; expected JSON Lines or a JSON list of {{\"question\", \"rationale\", ...}}")
    return out


def _record(row: Any, at: str) -> Record:
    """One checked record; a wrong shape is one line naming the file, the row and the field."""
    if not isinstance(row, dict):
        raise ConfigError(f"{at} is a {type(row).__name__}, not an object with \"question\" and \"rationale\"")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{at}: \"question\" must be a non-empty string")
    for name in FIELDS:
        if row.get(name) is not None and not isinstance(row[name], str):
            raise ConfigError(f"{at}: \"{name}\" must be a string or null, got {type(row[name]).__name__}")
    if not (row.get("rationale") or row.get("raw_completion")):
        raise ConfigError(f"{at}: needs a non-empty \"rationale\" or \"raw_completion\"")
    return Record(question, row.get("rationale") or "", row.get("answer_completion"), row.get("raw_completion"))


def rendered_questions(task: str, datasets_dir: str | Path | None = None, root: str | None = None) -> dict[str, list[str]]:
    """split -> the task's questions as the harvester renders them: from the store when prepared there, else the datasets folder."""
    from pst_core import examples, prompts
    from pst_core.tasks import get_task

    found: dict[str, list[str]] = {}
    if root is not None:
        table = examples.read(root, task, columns=["split", "question", "choices"]).to_pylist()
        for row in table:
            found.setdefault(row["split"], []).append(prompts.question_text(row["question"], row["choices"]))
    if not found and datasets_dir is not None:
        for split, exs in get_task(task).load(Path(datasets_dir)).items():
            found[split] = [prompts.question_text(e.question, e.choices) for e in exs]
    return found


def task_coverage(index: Index, task: str, datasets_dir: str | Path | None = None, root: str | None = None) -> dict[str, tuple[int, int]]:
    """split -> (questions with a record, questions) of `task`; stored in `index.coverage` when known."""
    try:
        questions = rendered_questions(task, datasets_dir, root)
    except (DataError, ConfigError, FileNotFoundError):  # questions unknown here: nothing to report
        return {}
    if questions:
        order = sorted(questions, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))
        index.coverage[task] = {split: index.covered(questions[split]) for split in order}
    return index.coverage.get(task, {})


def coverage_lines(index: Index) -> list[str]:
    """One line per task with known questions: how many of them the records answer, per split."""
    lines = []
    for task, splits in index.coverage.items():
        hit, total = sum(h for h, _ in splits.values()), sum(t for _, t in splits.values())
        parts = ", ".join(f"{split} {h}/{t}" for split, (h, t) in splits.items())
        lines.append(f"{task}: records for {hit}/{total} questions ({parts})")
    return lines


def load(records: str | Path, tasks: list[str] | None = None, teacher_model: str | None = None) -> Index:
    """An index from a datasets folder (via pst_core.recorded) or a records file (module docstring).

    The index's `coverage` counts, per task loaded (folder) or named (file), how many of the
    task's questions have a record, so the server can say so at start.
    """
    path = Path(records)
    if path.is_file():
        index = Index(parse_records(path.read_text(), str(path)))
        if tasks:  # the questions of named tasks: as prepared in the store, else in the datasets folder
            from pst_core import settings

            for task in tasks:
                task_coverage(index, task, settings.datasets_dir(), settings.data_root())
        return index
    if not path.is_dir():
        raise ConfigError(f"--records {path} is neither a datasets folder nor a records file (JSON Lines or a JSON list)")
    from pst_core import recorded

    out: list[Record] = []
    loaded = []
    for task in tasks or recorded.recorded_tasks(teacher_model or DEFAULT_TEACHER):
        try:
            recs = recorded.load_recorded(task, path, teacher_model)
        except (DataError, FileNotFoundError) as exc:
            if tasks:  # a task asked for by name must load
                raise ConfigError(f"cannot load recorded outputs for {task!r}: {exc}") from None
            continue
        out.extend(Record(r.question, r.rationale, r.answer_completion, r.raw_completion) for r in recs)
        loaded.append(task)
    if not out:
        raise ConfigError(f"no recorded teacher outputs found under {path}")
    index = Index(out)
    for task in loaded:
        task_coverage(index, task, path)
    return index
