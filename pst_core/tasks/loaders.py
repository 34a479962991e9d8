"""Readers of the offline dataset files (layouts in ../shared/datasets/README.md) into `Row`s.

Each reader returns {source_index: Row}. Source indices follow Fine-tune-CoT's `sample_index`
(train rows first, then the eval file), so recorded teacher outputs align by index. Every row
is parsed inside `rows_of`, which turns a missing field or bad value into a DataError naming
the file and row. Parsed files are cached per process: the big ones are gzipped JSON.
"""

from __future__ import annotations

import ast
import functools
import gzip
import json
import operator
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pst_core.errors import DataError
from pst_core.tasks.spec import Row, Rows

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
R = TypeVar("R")


def resolve(datasets_dir: Path, relative: str) -> Path:
    """`relative` under the datasets folder, or its `.gz` twin; FileNotFoundError when neither."""
    path = datasets_dir / relative
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path} not found")


# `mtime` is unused in the body on purpose: it is part of the cache key, so an edited file is re-read.
@functools.lru_cache(maxsize=64)
def _read_cached(path: str, mtime: float, lines: bool) -> Any:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        text = fh.read()
    try:
        if lines:
            out = []
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}: row {len(out)} (line {n}) is not valid JSON: {exc.msg}") from None
            return out
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None


def read_json(path: Path, lines: bool = False) -> Any:
    """Parsed JSON (or JSON Lines) of `path`, gzip-aware, cached while the file is unchanged."""
    return _read_cached(str(path), path.stat().st_mtime, lines)


def rows_of(path: Path | str, records: Iterable[Any], make: Callable[[int, Any], R]) -> list[R]:
    """Apply `make(i, record)` to each record; any field error names the file and row."""
    out = []
    for i, record in enumerate(records):
        try:
            out.append(make(i, record))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, SyntaxError, ZeroDivisionError) as exc:
            raise DataError(f"{path}: row {i} is malformed ({type(exc).__name__}: {exc})") from None
    return out


def examples_list(data: Any, key: str | None = "examples") -> list[Any]:
    """The list of records in a file that is a list or a {key: list} object."""
    records = data[key] if key and isinstance(data, dict) else data
    if not isinstance(records, list):
        raise TypeError(f"expected a list of records, got {type(records).__name__}")
    return records


def text(value: Any) -> str:
    """A required non-empty string field."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected non-empty text, got {value!r}")
    return value


def choice_question(stem: str, options: list[str]) -> str:
    """Zero-shot-CoT's multiple-choice format: 'stem Answer Choices: (A) x (B) y ...'."""
    return stem.strip() + " Answer Choices: " + " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def labelled(options: list[str]) -> tuple[str, ...]:
    """The stored choices: 'A) x', 'B) y', ..."""
    return tuple(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))


def keyed(rows: list[Row]) -> Rows:
    """{source_index: row}."""
    return {r.source_index: r for r in rows}


# --- arithmetic word problems ------------------------------------------------------------------


def math_equations(datasets_dir: Path, relative: str) -> Rows:
    """AddSub / SingleEq / MultiArith: list of {sQuestion, lSolutions}; index = row."""
    path = resolve(datasets_dir, relative)
    return keyed(rows_of(path, examples_list(read_json(path), None), lambda i, r: Row(
        i, text(r["sQuestion"]).strip(), str(r["lSolutions"][0]), source=relative)))


def svamp(datasets_dir: Path) -> Rows:
    """SVAMP.json: 'Body Question', gold `Answer`."""
    relative = "zero_shot_cot/dataset/SVAMP/SVAMP.json"
    path = resolve(datasets_dir, relative)
    return keyed(rows_of(path, examples_list(read_json(path), None), lambda i, r: Row(
        i, text(r["Body"]).strip() + " " + text(r["Question"]).strip(), str(float(r["Answer"])), source=relative)))


def gsm8k_record(i: int, r: dict[str, Any], source: str, origin: str | None = None) -> Row:
    """A GSM8K {question, answer} row: the solution is the human rationale, '#### n' the gold."""
    solution, final = text(r["answer"]).split("####")
    return Row(i, text(r["question"]).strip(), final.strip().replace(",", ""),
               human_rationale=solution.strip(), source=source, origin=origin)


def gsm8k(datasets_dir: Path) -> Rows:
    """GSM8K train (sample_index 0-7472) then test (7473-8791)."""
    train_path = resolve(datasets_dir, "gsm8k/train.jsonl")
    test_path = resolve(datasets_dir, "gsm8k/test.jsonl")
    train = read_json(train_path, lines=True)
    rows = rows_of(train_path, train, lambda i, r: gsm8k_record(i, r, "gsm8k/train.jsonl"))
    rows += [Row(**{**vars(r), "source_index": r.source_index + len(train)}) for r in
             rows_of(test_path, read_json(test_path, lines=True), lambda i, r: gsm8k_record(i, r, "gsm8k/test.jsonl"))]
    return keyed(rows)


# --- multiple choice -----------------------------------------------------------------------------

AQUA_TRAIN_SIZE = 97467  # AQuA train rows precede test in Fine-tune-CoT's sample_index


def aqua_record(i: int, r: dict[str, Any], source: str, origin: str | None = None) -> Row:
    """An AQuA {question, options: ['A)..'], rationale, correct} row."""
    options = [o.split(")", 1)[1] for o in r["options"]]
    # Zero-shot-CoT's exact AQuA spacing (a space around every parenthesis), so its logs align.
    listed = ("(" + "(".join(r["options"])).replace("(", " (").replace(")", ") ")
    return Row(i, text(r["question"]).strip() + " Answer Choices:" + listed, text(r["correct"]).strip(),
               labelled(options), human_rationale=r.get("rationale"), source=source, origin=origin)


def aqua(datasets_dir: Path) -> Rows:
    """AQuA test only (the 97,467-row train set is not in the offline copy; use --source hub)."""
    relative = "zero_shot_cot/dataset/AQuA/test.json"
    path = resolve(datasets_dir, relative)
    rows = rows_of(path, read_json(path, lines=True), lambda i, r: aqua_record(AQUA_TRAIN_SIZE + i, r, relative))
    return keyed(rows)


def csqa_record(i: int, r: dict[str, Any], source: str, origin: str | None = None) -> Row:
    """A CommonsenseQA jsonl row {answerKey, question: {stem, choices: [{label, text}]}}."""
    options = [c["text"] for c in r["question"]["choices"]]
    return Row(i, choice_question(text(r["question"]["stem"]), options), text(r["answerKey"]),
               labelled(options), source=source, origin=origin)


def commonsense_qa(datasets_dir: Path) -> Rows:
    """CSQA train_rand_split (0-9740) then dev_rand_split (9741-10961)."""
    rows: list[Row] = []
    for relative in ("zero_shot_cot/dataset/CommonsenseQA/train_rand_split.jsonl",
                     "zero_shot_cot/dataset/CommonsenseQA/dev_rand_split.jsonl"):
        path = resolve(datasets_dir, relative)
        offset = len(rows)
        rows += rows_of(path, read_json(path, lines=True), lambda i, r: csqa_record(offset + i, r, relative))
    return keyed(rows)


def date_understanding(datasets_dir: Path) -> Rows:
    """Fine-tune-CoT's unified date file (its own shuffled choice order, matching its teacher data)."""
    relative = "reasoning_teacher/dataset/date_understanding.json"
    path = resolve(datasets_dir, relative)

    def make(i: int, r: dict[str, Any]) -> Row:
        question = text(r["question"])
        listed = question.rsplit("Answer choices:", 1)[1].strip().rstrip(".")
        options = [o.split(") ", 1)[1] for o in listed.split(", (")]
        return Row(int(r["sample_index"]), question, text(r["answer"]), labelled(options), source=relative)

    return keyed(rows_of(path, examples_list(read_json(path), "data"), make))


def tracking_shuffled_objects(datasets_dir: Path) -> Rows:
    """BIG-bench 3-object tracking in Fine-tune-CoT's format (choices in target_scores order)."""
    relative = "zero_shot_cot/dataset/Bigbench_object_tracking/task.json"
    path = resolve(datasets_dir, relative)

    def make(i: int, r: dict[str, Any]) -> Row:
        options = [k.rstrip(".") for k in r["target_scores"]]
        gold = LETTERS[[v for v in r["target_scores"].values()].index(1)]
        listed = ", ".join(f"({LETTERS[j]}) {o}" for j, o in enumerate(options))
        question = text(r["input"]) + "\nWhich choice is true? Answer choices: " + listed + "."
        return Row(i, question, gold, labelled(options), source=relative)

    return keyed(rows_of(path, examples_list(read_json(path)), make))


# --- yes/no and symbolic ---------------------------------------------------------------------------


def strategy_qa(datasets_dir: Path) -> Rows:
    """BIG-bench StrategyQA (index = sample_index); facts from the StrategyQA release as rationale."""
    relative = "zero_shot_cot/dataset/StrategyQA/task.json"
    path = resolve(datasets_dir, relative)
    facts = strategyqa_facts(datasets_dir)

    def make(i: int, r: dict[str, Any]) -> Row:
        gold = "yes" if r["target_scores"]["Yes"] == 1 else "no"
        return Row(i, text(r["input"]).strip(), gold, human_rationale=facts.get(i) or r.get("target"), source=relative)

    return keyed(rows_of(path, examples_list(read_json(path)), make))


def strategyqa_facts(datasets_dir: Path) -> dict[int, str]:
    """BIG-bench index -> the StrategyQA human facts, joined (empty when the files are absent)."""
    try:
        index_path = resolve(datasets_dir, "strategyqa/bigbench_index_to_qid.jsonl")
        facts: dict[str, str] = {}
        for relative in ("strategyqa/train.json", "strategyqa/dev.json"):
            path = resolve(datasets_dir, relative)
            for qid, joined in rows_of(path, read_json(path), lambda i, r: (text(r["qid"]), " ".join(r["facts"]))):
                facts[qid] = joined
        pairs = rows_of(index_path, read_json(index_path, lines=True), lambda i, r: (int(r["bigbench_index"]), r["qids"][0]))
    except FileNotFoundError:
        return {}
    return {index: facts[qid] for index, qid in pairs if qid in facts}


def simple_examples(datasets_dir: Path, relative: str) -> Rows:
    """coin_flip / last_letters: {"examples": [{question, answer}]}."""
    path = resolve(datasets_dir, relative)
    return keyed(rows_of(path, examples_list(read_json(path)), lambda i, r: Row(
        i, text(r["question"]), text(r["answer"]), source=relative)))


# --- Distilling Step-by-Step ----------------------------------------------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def arithmetic(expression: str) -> float:
    """Evaluate a SVAMP label such as '( 84.0 / 2.0 )' (numbers and + - * / only, no eval)."""
    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"unsupported expression {expression!r}")

    return ev(ast.parse(expression.strip(), mode="eval"))


def dsbs_files(datasets_dir: Path, ds: str, splits: tuple[str, ...], make: Callable[[int, Any, str, str], Row],
               first_index: dict[str, int] | None = None) -> Rows:
    """Rows of `<ds>/<ds>_<split>.json` files; index = position in train, then the later files."""
    rows: list[Row] = []
    for split in splits:
        relative = f"distilling_step_by_step/{ds}/{ds}_{split}.json"
        path = resolve(datasets_dir, relative)
        offset = (first_index or {}).get(split, len(rows))
        origin = "validation" if split == "valid" else split
        rows += rows_of(path, read_json(path, lines=True), lambda i, r: make(offset + i, r, relative, origin))
    return keyed(rows)


def cqa_record(i: int, r: dict[str, Any], source: str, origin: str | None) -> Row:
    """A CoS-E row {question, choices[5], answer (text), abstractive_explanation}."""
    options = list(r["choices"])
    return Row(i, choice_question(text(r["question"]), options), LETTERS[options.index(r["answer"])],
               labelled(options), human_rationale=r.get("abstractive_explanation"), source=source, origin=origin)


def svamp_dsbs_record(i: int, r: dict[str, Any], source: str, origin: str | None) -> Row:
    """A DSbS SVAMP row {input: 'Body\\nQuestion', label: '( 84.0 / 2.0 )'}."""
    return Row(i, text(r["input"]), str(arithmetic(text(r["label"]))), source=source, origin=origin)


ANLI_LABELS = ("entailment", "neutral", "contradiction")
ANLI_R1_TRAIN_SIZE = 16946  # HF facebook/anli train_r1; dev_r1 and test_r1 follow in source_index


def anli_record(i: int, r: dict[str, Any], source: str, origin: str | None) -> Row:
    """An ANLI row {premise, hypothesis, label 0/1/2, reason}."""
    question = (f"Premise: {text(r['premise']).strip()}\nHypothesis: {text(r['hypothesis']).strip()}\n"
                "Does the premise entail the hypothesis?")
    label = int(r["label"])
    if label not in (0, 1, 2):
        raise ValueError(f"label {label} is not 0, 1 or 2")
    return Row(i, choice_question(question, list(ANLI_LABELS)), LETTERS[label], labelled(list(ANLI_LABELS)),
               human_rationale=r.get("reason") or None, source=source, origin=origin)
