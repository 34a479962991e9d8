"""A local, rule-based teacher for the generated tasks, served over real HTTP by the replay server.

Offline and without the datasets folder there is no recorded LLM output for generated
`coin_flip` / `last_letter_concatenation` questions. This teacher is **not an LLM**: a few lines
of code write a step-by-step rationale and the answer for each question, and the replay server
(`pst_core.replay`) answers harvest requests with them, so the harvester, its cache and the rest
of the pipeline run exactly as against a real endpoint. It is registered as `local-rules`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME = "local-rules"
MODEL = "local-rules (rule-based, not an LLM)"
TASKS = ("coin_flip", "last_letter_concatenation")
_FLIP = re.compile(r"(\w+) (does not flip|flips) the coin")
_WORDS = re.compile(r'"([^"]+)"')


def coin_flip_rationale(question: str) -> tuple[str, str]:
    """(rationale, answer completion) that track the coin through each person's turn."""
    heads, steps = True, ["The coin starts heads up."]
    for name, verb in _FLIP.findall(question):
        if verb == "flips":
            heads = not heads
            steps.append(f"{name} flips the coin, so it is now {'heads' if heads else 'tails'} up.")
        else:
            steps.append(f"{name} does not flip the coin, so it stays {'heads' if heads else 'tails'} up.")
    answer = "yes" if heads else "no"
    steps.append(f"The coin ends {'heads' if heads else 'tails'} up, so the answer is {answer}.")
    return " " + " ".join(steps), f" {answer.capitalize()}."


def last_letter_rationale(question: str) -> tuple[str, str]:
    """(rationale, answer completion) that name each word's last letter, then join them."""
    found = _WORDS.findall(question)
    words = found[0].split() if found else []
    steps = [f'The last letter of "{w}" is "{w[-1]}".' for w in words]
    joined = "".join(w[-1] for w in words).lower()
    steps.append(f'Concatenating them gives "{joined}". So the answer is {joined}.')
    return " " + " ".join(steps), f" {joined}."


RULES = {"coin_flip": coin_flip_rationale, "last_letter_concatenation": last_letter_rationale}


def records(root: str, tasks: list[str]) -> list[dict[str, str]]:
    """Replay records (question, rationale, answer completion) for every stored example of `tasks`."""
    from pst_core import examples

    out = []
    for task in tasks:
        rule = RULES.get(task)
        if rule is None:
            continue
        for question in examples.read(root, task, columns=["question"])["question"].to_pylist():
            rationale, answer = rule(question)
            out.append({"question": question, "rationale": rationale, "answer_completion": answer, "raw_completion": rationale + answer})
    return out


def write_records(root: str, tasks: list[str], path: str | Path) -> Path:
    """Write the records as the JSONL the replay server loads (`--records FILE`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records(root, tasks)))
    return path


@contextmanager
def serving(root: str, tasks: list[str], records_file: str | Path) -> Iterator[object]:
    """Run the rule-based teacher on a free localhost port for the block; yields the replay handle."""
    from pst_core.replay import records as replay_records
    from pst_core.replay import server

    index = replay_records.load(write_records(root, tasks, records_file))
    with server.running(index) as handle:
        yield handle
