"""Recount published test accuracies without importing pst.

Every figure the README quotes from bench/results/paper-cpu/ is read from the `metrics.json` pst
wrote. This script counts them again from scratch: the gold answer comes from the raw dataset file in
../shared/datasets (not from pst's store or its `gold_answer` column), and the predicted answer is cut
out of the student's raw generated text with the delimiter rule of PST.md and a plain normaliser
written here. It prints, per run, the recount beside pst's figure, and exits 1 where they differ.

    python bench/recount.py bench/results/paper-cpu/runs/paper-cpu-coin_flip-pst-c0-s0 [...]
    python bench/recount.py --all bench/results/paper-cpu      # every evaluated run of the tasks below

Only pyarrow and the standard library are used.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

SEP, SEM = "<|sep|>", "<|sem|>"
# task -> its raw file under the datasets folder ({"examples": [{question, answer}]})
RAW = {
    "coin_flip": "zero_shot_cot/dataset/coin_flip/coin_flip.json",
    "last_letter_concatenation": "zero_shot_cot/dataset/last_letters/last_letters.json",
}


def answer_text(generated: str, strategy: str) -> str:
    """The answer part of a generation, by each strategy's output format (PST.md): Pre-Thinking's
    answer follows SEP (none without SEP), answer-first strategies' answer precedes SEM."""
    if strategy == "pre_thinking":
        return generated.rsplit(SEP, 1)[1] if SEP in generated else ""
    if strategy in ("post_thinking", "pst"):
        return generated.split(SEM, 1)[0]
    return generated


def normalise(task: str, text: str) -> str:
    """The first yes/no word (coin_flip), or the first line in lower case without quotes, stops and
    spaces (last_letter), before any special token."""
    text = text.split("<|", 1)[0].strip().lower()  # up to the next special token (EOS, a delimiter)
    if task == "coin_flip":
        found = re.search(r"\b(yes|no)\b", text)
        return found.group(1) if found else ""
    line = text.split("\n", 1)[0]
    return re.sub(r"[\"'.\s]", "", line)  # Zero-shot-CoT's cleansing: quotes, stops, spaces go ("l y a n" is "lyan"); "e-e-e-i" stays wrong


def golds(task: str, datasets: Path) -> list[str]:
    """Gold answers in file order: sample index i is the i-th example (../shared/datasets/README.md)."""
    examples = json.loads((datasets / RAW[task]).read_text())["examples"]
    return [normalise(task, e["answer"]) for e in examples]


def recount(run: Path, datasets: Path) -> tuple[int, int, float]:
    """(correct, questions, pst's accuracy) of one published run's test predictions."""
    config = json.loads((run / "config.json").read_text())
    task, strategy = config["task"], config["strategy"]
    gold = golds(task, datasets)
    rows = pq.read_table(run / "predictions.parquet", columns=["example_id", "generated"]).to_pylist()
    correct = 0
    for row in rows:
        index = int(row["example_id"].rsplit("-", 1)[1])
        correct += normalise(task, answer_text(row["generated"] or "", strategy)) == gold[index]
    published = json.loads((run / "metrics.json").read_text())["accuracy"]
    return correct, len(rows), published


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", type=Path, help="published run folders, or with --all the results folder")
    p.add_argument("--all", action="store_true", help="every run under <path>/runs/ with test predictions of a task above")
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = p.parse_args()
    runs = [r for base in args.paths for r in sorted((base / "runs").iterdir())] if args.all else args.paths
    runs = [r for r in runs if (r / "predictions.parquet").is_file() and (r / "config.json").is_file()
            and json.loads((r / "config.json").read_text()).get("task") in RAW]
    if not runs:
        sys.exit("no published run with test predictions of " + ", ".join(RAW))
    differ = 0
    for run in runs:
        correct, n, published = recount(run, args.datasets)
        same = abs(correct / n - published) < 1e-9
        differ += not same
        print(f"{run.name}: recount {correct}/{n} = {100 * correct / n:.1f} %, pst {100 * published:.1f} %"
              f"{'' if same else '  DIFFERS'}")
    print(f"{len(runs) - differ} of {len(runs)} runs agree")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
