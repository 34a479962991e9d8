"""Recorded teacher outputs in ../shared/datasets, read as records aligned to example ids.

Three sources (layouts in the datasets README):
* `reasoning_teacher/completion_data/.../D_<task>.json.gz`: text-davinci-002 Zero-shot-CoT on
  train and test of 9 Fine-tune-CoT tasks; a few samples have several completions, all kept
  (`completion_index`).
* `zero_shot_cot/text-davinci-002_zero_shot_cot/<task>.jsonl`: the same model on the eval sets
  of the 12 tasks (Kojima's runs; the only rationales for gsm8k, aqua and commonsense_qa).
* `distilling_step_by_step/<ds>/llm/<split>_CoT_<k>.json`: PaLM-540B few-shot CoT for cqa,
  svamp_dsbs and anli1, cut as the official loader does.

`question` is the text as the teacher saw it, which equals the example store's question except
for Kojima's date/tracking runs (their choices were shuffled differently; `alignment_report`
counts them). `raw_completion` is the model's reasoning output verbatim; `rationale` is it
stripped (PaLM: cut before the next few-shot example and the answer sentence).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pst_core import answers
from pst_core.examples import make_id
from pst_core.tasks import get_task, loaders

TEACHERS = ("text-davinci-002", "palm-540b")
COMPLETIONS = "reasoning_teacher/completion_data/B_text-davinci-002__C_zs_cot"
ZERO_SHOT_LOGS = "zero_shot_cot/text-davinci-002_zero_shot_cot"
# task -> (DSbS folder, input split files in order, rows per LLM chunk, text that starts the next
# few-shot example, the answer sentence's lead-in); index offsets follow pst_core.tasks.loaders.
DSBS = {
    "cqa": ("cqa", ("train", "test"), 1000, "Q:", "So the answer is"),
    "svamp_dsbs": ("svamp", ("train", "test"), 500, "Q:", "The answer is"),
    "anli1": ("anli1", ("train", "valid", "test"), 5000, "Premise:", "So the answer is"),
}
ANLI_FIRST_INDEX = {"train": 0, "valid": loaders.ANLI_R1_TRAIN_SIZE, "test": loaders.ANLI_R1_TRAIN_SIZE + 1000}


@dataclass(frozen=True)
class RecordedOutput:
    """One recorded teacher completion for one example."""

    task: str
    example_id: str
    source_index: int
    question: str
    rationale: str
    raw_completion: str
    answer_completion: str | None
    teacher_model: str
    source_file: str
    completion_index: int = 0
    predicted_answer: str | None = None  # normalised, extracted from answer_completion
    gold_answer: str | None = None  # the gold answer the source file carries, normalised


@dataclass(frozen=True)
class Alignment:
    """How one source's records of a task align to the task's example ids."""

    task: str
    teacher_model: str
    source_file: str
    records: int
    aligned: int  # records whose example id exists in the task
    examples: int  # distinct aligned example ids
    question_matches: int  # aligned records whose question equals the stored question


def load_recorded(task: str, datasets_dir: Path, teacher_model: str | None = None) -> list[RecordedOutput]:
    """Every recorded output of `task` whose example can be identified (optionally one teacher)."""
    out: list[RecordedOutput] = []
    for _, records, _ in _sources(task, datasets_dir, teacher_model):
        out += records
    return out


def alignment_report(datasets_dir: Path, tasks: list[str] | None = None) -> list[Alignment]:
    """Per task and source file: records, aligned records, distinct examples, question matches."""
    from pst_core.tasks import TASKS

    report = []
    for task in tasks or TASKS.names():
        rows = get_task(task).rows(datasets_dir)
        for label, records, unaligned in _sources(task, datasets_dir, None):
            aligned = [r for r in records if r.source_index in rows]
            report.append(Alignment(
                task, records[0].teacher_model if records else "palm-540b", label, len(records) + unaligned,
                len(aligned), len({r.example_id for r in aligned}),
                sum(r.question == rows[r.source_index].question for r in aligned),
            ))
    return report


def _sources(task: str, datasets_dir: Path, teacher: str | None) -> Iterator[tuple[str, list[RecordedOutput], int]]:
    """(source file, records, records without a known question) for each source of `task`."""
    spec = get_task(task)
    if teacher in (None, "text-davinci-002"):
        try:
            path = loaders.resolve(datasets_dir, f"{COMPLETIONS}/D_{task}.json")
            yield str(path.relative_to(datasets_dir)), list(_completion_data(task, path, spec.answer_type)), 0
        except FileNotFoundError:
            pass
        path = datasets_dir / ZERO_SHOT_LOGS / f"{task}.jsonl"
        if path.is_file():
            yield str(path.relative_to(datasets_dir)), list(_zero_shot_log(task, path, spec.answer_type)), 0
    if teacher in (None, "palm-540b") and task in DSBS:
        yield from _palm(task, datasets_dir)


def _choice_letters(question: str, answer_type: str) -> list[str] | None:
    """The option letters a multiple-choice question offers ("(A)" ... "(F)"), so "F" can be parsed."""
    return [c for c in "ABCDEFGHIJ" if f"({c})" in question] if answer_type == "choice" else None


def _completion_data(task: str, path: Path, answer_type: str) -> Iterator[RecordedOutput]:
    data = loaders.read_json(path)["data"]
    for key in sorted(data, key=int):
        for c in data[key]:
            yield RecordedOutput(
                task, make_id(task, int(c["sample_index"])), int(c["sample_index"]), c["question"],
                c["reasoning_completion"].strip(), c["reasoning_completion"], c.get("completion"),
                "text-davinci-002", path.name, int(c.get("completion_index", 0)),
                answers.extract(c.get("completion") or "", answer_type, _choice_letters(c["question"], answer_type)),
                answers.normalize(str(c["answer"]), answer_type),
            )


def _zero_shot_log(task: str, path: Path, answer_type: str) -> Iterator[RecordedOutput]:
    for r in loaders.read_json(path, lines=True):
        choices = _choice_letters(r["question"], answer_type)
        index = int(r["finetune_cot_sample_index"])
        yield RecordedOutput(
            task, make_id(task, index), index, r["question"], r["rationale"].strip(), r["rationale"],
            r["answer_completion"], "text-davinci-002", path.name, 0,
            answers.extract(r["answer_completion"], answer_type, choices), answers.normalize(r["gold"], answer_type),
        )


def _palm(task: str, datasets_dir: Path) -> Iterator[tuple[str, list[RecordedOutput], int]]:
    ds, splits, batch, next_example, lead_in = DSBS[task]
    spec = get_task(task)
    rows, answer_type = spec.rows(datasets_dir), spec.answer_type
    first = 0
    for split in splits:
        chunks = sorted((datasets_dir / "distilling_step_by_step" / ds / "llm").glob(f"{split}_CoT_*.json*"),
                        key=lambda p: int(re.search(r"_CoT_(\d+)", p.name).group(1)))
        start = ANLI_FIRST_INDEX[split] if task == "anli1" else first
        records, unknown, n = [], 0, 0
        for chunk in chunks:
            k = int(re.search(r"_CoT_(\d+)", chunk.name).group(1))
            for j, raw in enumerate(loaders.examples_list(loaders.read_json(chunk), None)):
                index = start + k * batch + j
                n = max(n, k * batch + j + 1)
                if index not in rows:  # ANLI train inputs are not in the offline copy
                    unknown += 1
                    continue
                rationale, answer = _cut_palm(raw, next_example, lead_in)
                records.append(RecordedOutput(
                    task, make_id(task, index), index, rows[index].question, rationale, raw, answer, "palm-540b",
                    str(chunk.relative_to(datasets_dir)), 0, _palm_answer(task, answer),
                    answers.normalize(rows[index].gold_answer, answer_type),
                ))
        first = start + n
        if chunks:
            yield f"distilling_step_by_step/{ds}/llm/{split}_CoT_*", records, unknown


def _cut_palm(raw: str, next_example: str, lead_in: str) -> tuple[str, str | None]:
    """The official DSbS cut: text before the next few-shot example, split at the answer sentence."""
    head = raw.split(next_example)[0]
    parts = head.split(lead_in)
    return parts[0].strip(), (parts[1] if len(parts) > 1 else None)


def _palm_answer(task: str, answer: str | None) -> str | None:
    """The normalised answer in a PaLM answer sentence: '(c) wooded area.', '(10 * 45).', 'neutral.'."""
    if answer is None:
        return None
    if task == "cqa":
        match = re.search(r"\(([a-eA-E])\)", answer)
        return match.group(1).upper() if match else None
    if task == "svamp_dsbs":
        try:
            return answers.normalize(repr(loaders.arithmetic(answer.strip().rstrip("."))), "number")
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
            return answers.extract(answer, "number")
    words = re.findall(r"[a-z]+", answer.lower())
    labels = [w for w in words if w in loaders.ANLI_LABELS]
    return loaders.LETTERS[loaders.ANLI_LABELS.index(labels[0])] if labels else None
