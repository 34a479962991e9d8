"""Recorded teacher outputs in ../shared/datasets, read as records aligned to example ids.

Where a task's outputs are and how to cut them is data in its registry entry
(`TaskSpec.recorded`, a `RecordedLayout` per source); this module only reads the three formats
(layouts in the datasets README):
* "completion_data" (`reasoning_teacher/completion_data/.../D_<task>.json.gz`): text-davinci-002
  Zero-shot-CoT on train and test of 9 Fine-tune-CoT tasks; a few samples have several
  completions, all kept (`completion_index`).
* "zero_shot_log" (`zero_shot_cot/text-davinci-002_zero_shot_cot/<task>.jsonl`): the same model
  on the eval sets of the 12 tasks (Kojima's runs; the only rationales for gsm8k, aqua and
  commonsense_qa).
* "dsbs" (`distilling_step_by_step/<ds>/llm/<split>_CoT_<k>.json`): PaLM-540B few-shot CoT for
  cqa, svamp_dsbs and anli1, cut as the official loader does.

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
from pst_core.tasks import TASKS, get_task, loaders
from pst_core.tasks.spec import RecordedLayout, TaskSpec


def teacher_models() -> list[str]:
    """Every teacher model with recorded outputs in some registered task, in registration order."""
    return list(dict.fromkeys(r.teacher_model for name in TASKS for r in get_task(name).recorded))


def recorded_tasks(teacher_model: str) -> list[str]:
    """The registered tasks with recorded outputs of `teacher_model`."""
    return [name for name in TASKS if get_task(name).recorded_by(teacher_model)]


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
    for _, _, records, _ in _sources(task, datasets_dir, teacher_model):
        out += records
    return out


def alignment_report(datasets_dir: Path, tasks: list[str] | None = None) -> list[Alignment]:
    """Per task and source file: records, aligned records, distinct examples, question matches.

    Without `tasks` it walks the registry and skips tasks whose input files are absent, so
    registering a task whose files are not here leaves the report of the others unchanged.
    """
    report = []
    for task in tasks or [n for n in TASKS if get_task(n).has_local_files(datasets_dir)]:
        rows = get_task(task).rows(datasets_dir)
        for layout, label, records, unaligned in _sources(task, datasets_dir, None):
            aligned = [r for r in records if r.source_index in rows]
            report.append(Alignment(
                task, layout.teacher_model, label, len(records) + unaligned,
                len(aligned), len({r.example_id for r in aligned}),
                sum(r.question == rows[r.source_index].question for r in aligned),
            ))
    return report


def _sources(task: str, datasets_dir: Path, teacher: str | None) -> Iterator[tuple[RecordedLayout, str, list[RecordedOutput], int]]:
    """(layout, source file, records, records without a known question) for each present source of `task`."""
    spec = get_task(task)
    for layout in spec.recorded_by(teacher):
        if layout.format == "dsbs":
            for label, records, unknown in _palm(spec, layout, datasets_dir):
                yield layout, label, records, unknown
            continue
        try:
            path = loaders.resolve(datasets_dir, layout.path)
        except FileNotFoundError:  # a declared source that is not in this datasets folder
            continue
        read = _completion_data if layout.format == "completion_data" else _zero_shot_log
        yield layout, str(path.relative_to(datasets_dir)), list(read(spec, layout, path)), 0


def _choice_letters(question: str, answer_type: str) -> list[str] | None:
    """The option letters a multiple-choice question offers ("(A)" ... "(F)"), so "F" can be parsed."""
    return [c for c in "ABCDEFGHIJ" if f"({c})" in question] if answer_type == "choice" else None


def _completion_data(spec: TaskSpec, layout: RecordedLayout, path: Path) -> Iterator[RecordedOutput]:
    task, answer_type = spec.name, spec.answer_type
    data = loaders.read_json(path)["data"]
    for key in sorted(data, key=int):
        for c in data[key]:
            yield RecordedOutput(
                task, make_id(task, int(c["sample_index"])), int(c["sample_index"]), c["question"],
                c["reasoning_completion"].strip(), c["reasoning_completion"], c.get("completion"),
                layout.teacher_model, path.name, int(c.get("completion_index", 0)),
                answers.extract(c.get("completion") or "", answer_type, _choice_letters(c["question"], answer_type)),
                answers.normalize(str(c["answer"]), answer_type),
            )


def _zero_shot_log(spec: TaskSpec, layout: RecordedLayout, path: Path) -> Iterator[RecordedOutput]:
    task, answer_type = spec.name, spec.answer_type
    for r in loaders.read_json(path, lines=True):
        choices = _choice_letters(r["question"], answer_type)
        index = int(r["finetune_cot_sample_index"])
        yield RecordedOutput(
            task, make_id(task, index), index, r["question"], r["rationale"].strip(), r["rationale"],
            r["answer_completion"], layout.teacher_model, path.name, 0,
            answers.extract(r["answer_completion"], answer_type, choices), answers.normalize(r["gold"], answer_type),
        )


def _chunk_number(path: Path) -> int:
    return int(re.search(r"_CoT_(\d+)", path.name).group(1))


def _palm(spec: TaskSpec, layout: RecordedLayout, datasets_dir: Path) -> Iterator[tuple[str, list[RecordedOutput], int]]:
    """Records of each split's `<split>_CoT_<k>.json` chunks; row j of chunk k is `first + k * chunk_rows + j`."""
    folder = datasets_dir / layout.path
    chunks_of = {split: sorted(folder.glob(f"{split}_CoT_*.json*"), key=_chunk_number) for split in layout.splits}
    if not any(chunks_of.values()):  # no outputs here: do not ask for the task's rows either
        return
    rows = spec.rows(datasets_dir)
    first = 0
    for split in layout.splits:
        start = layout.first_index.get(split, first)
        records, unknown, n = [], 0, 0
        for chunk in chunks_of[split]:
            k = _chunk_number(chunk)
            for j, raw in enumerate(loaders.examples_list(loaders.read_json(chunk), None)):
                index = start + k * layout.chunk_rows + j
                n = max(n, k * layout.chunk_rows + j + 1)
                if index not in rows:  # e.g. ANLI train: outputs without inputs in the offline copy
                    unknown += 1
                    continue
                row = rows[index]
                rationale, answer = _cut_palm(raw, layout.next_example, layout.lead_in)
                records.append(RecordedOutput(
                    spec.name, make_id(spec.name, index), index, row.question, rationale, raw, answer, layout.teacher_model,
                    str(chunk.relative_to(datasets_dir)), 0, _palm_answer(answer, layout.answer, row.choices),
                    answers.normalize(row.gold_answer, spec.answer_type),
                ))
        first = start + n
        if chunks_of[split]:
            yield f"{layout.path}/{split}_CoT_*", records, unknown


def _cut_palm(raw: str, next_example: str, lead_in: str) -> tuple[str, str | None]:
    """The official DSbS cut: text before the next few-shot example, split at the answer sentence."""
    head = raw.split(next_example)[0]
    parts = head.split(lead_in)
    return parts[0].strip(), (parts[1] if len(parts) > 1 else None)


def _palm_answer(answer: str | None, kind: str, choices: tuple[str, ...] = ()) -> str | None:
    """The normalised answer in a DSbS answer sentence (`RecordedLayout.answer` says how to read it).

    "letter": '(c) wooded area.' -> C; "arithmetic": '(10 * 45).' -> 450; "label": 'neutral.' ->
    the letter of the first option (`choices`, stored as 'B) neutral') the sentence names.
    """
    if answer is None:
        return None
    if kind == "letter":
        letters = "".join(c[0] for c in choices) or "ABCDE"
        match = re.search(rf"\(([{letters}])\)", answer, flags=re.IGNORECASE)
        return match.group(1).upper() if match else None
    if kind == "arithmetic":
        try:
            return answers.normalize(repr(loaders.arithmetic(answer.strip().rstrip("."))), "number")
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
            return answers.extract(answer, "number")
    words = re.findall(r"[a-z]+", answer.lower())
    options = {tuple(re.findall(r"[a-z]+", c.split(") ", 1)[-1].lower())): c[0] for c in choices}
    for i in range(len(words)):
        for option, letter in options.items():
            if option and tuple(words[i : i + len(option)]) == option:
                return letter
    return None
