"""An independent count of PaLM-540B's correct answers in Distilling Step-by-Step's files.

It imports nothing from pst, so it can check pst's judgement. It follows the official loader
(google-research/distilling-step-by-step, data_utils.py): `<ds>/llm/<split>_CoT_<k>.json` holds
the outputs for input rows k*chunk .. of `<ds>/<ds>_<split>.json`; an output is cut before the
next few-shot example ("Q:" or "Premise:") and split once at the answer sentence ("So the
answer is" / "The answer is", anything but exactly one is unparsed); the label is
* cqa: the text after the "(x)" option marker, less a final "." (compared with the answer text);
* svamp: the bracketed expression "(...)", evaluated (compared with the evaluated gold equation);
* anli1: the words after the lead-in, less their last character (compared with the label word).

`strict=False` (what pst is held to) corrects two artefacts of the official comparison: cqa
text is compared case-insensitively ("Michigan" is the option "michigan"), and a svamp answer
that is wholly an expression counts whole (the greedy "(...)" keeps only "(12 - 2)" of
"(12 - 2) - 7"). `strict=True` is the official rule as published.
"""

from __future__ import annotations

import ast
import gzip
import json
import operator
import re
from pathlib import Path

FOLDER = "distilling_step_by_step"
CHUNK = {"cqa": 1000, "svamp": 500, "anli1": 5000}  # rows per LLM file, as the official loaders batch them
NEXT_EXAMPLE = {"cqa": "Q:", "svamp": "Q:", "anli1": "Premise:"}
LEAD_IN = {"cqa": "So the answer is", "svamp": "The answer is", "anli1": "So the answer is"}
NLI_LABELS = ("entailment", "neutral", "contradiction")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def read_text(path: Path) -> str:
    """A file, or its `.gz` twin."""
    return path.read_text() if path.is_file() else gzip.decompress(path.with_name(path.name + ".gz").read_bytes()).decode()


def llm_files(datasets_dir: Path, ds: str, split: str) -> list[Path]:
    """The LLM output files of one split in chunk order (names without `.gz`)."""
    found = {Path(str(p).removesuffix(".gz")) for p in (datasets_dir / FOLDER / ds / "llm").glob(f"{split}_CoT_*.json*")}
    return sorted(found, key=lambda p: int(re.search(r"_CoT_(\d+)", p.name).group(1)))


def answer_sentence(ds: str, output: str) -> str | None:
    """The text after the lead-in, or None when the output has not exactly one."""
    head = output.split(NEXT_EXAMPLE[ds])[0].rstrip()
    parts = head.split(LEAD_IN[ds])
    return parts[1] if len(parts) == 2 else None


def evaluate(expression: str) -> float | int | None:
    """+ - * / arithmetic as Python's eval computes it (the official loader calls eval), or None."""
    def ev(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(expression)

    try:
        return ev(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ArithmeticError):
        return None


def label(ds: str, output: str, strict: bool = True) -> str | None:
    """The LLM label the official loader parses from one output (None when it parses none)."""
    sentence = answer_sentence(ds, output)
    if sentence is None:
        return None
    if ds == "anli1":
        return sentence.lstrip()[:-1]
    if ds == "svamp":
        whole = sentence.strip().removesuffix(".")
        if not strict and evaluate(whole) is not None:
            return whole
        bracketed = re.search(r"\(.*\)", sentence)
        return bracketed.group(0) if bracketed else None
    pieces = re.split(r"\(.\)", sentence)
    text = pieces[1].strip() if len(pieces) > 1 else ""
    return text.removesuffix(".") or None


def correct(ds: str, output: str, row: dict, strict: bool = True) -> bool:
    """Whether the parsed label equals the input row's gold answer."""
    found = label(ds, output, strict)
    if found is None:
        return False
    if ds == "svamp":
        value, gold = evaluate(found), evaluate(row["label"])
        return value is not None and value == gold
    gold = row["answer"] if ds == "cqa" else NLI_LABELS[int(row["label"])]
    return found == gold if strict else found.casefold() == gold.casefold()


def count(datasets_dir: Path, ds: str, split: str, chunk_file: str, strict: bool = True) -> tuple[int, int]:
    """(correct, outputs) of one LLM file, aligned to its input rows as the official loader does."""
    inputs = [json.loads(line) for line in read_text(datasets_dir / FOLDER / ds / f"{ds}_{split}.json").splitlines() if line.strip()]
    path = datasets_dir / FOLDER / ds / "llm" / chunk_file
    k = int(re.search(r"_CoT_(\d+)", chunk_file).group(1))
    outputs = json.loads(read_text(path))
    hits = sum(correct(ds, out, inputs[k * CHUNK[ds] + j], strict) for j, out in enumerate(outputs))
    return hits, len(outputs)
