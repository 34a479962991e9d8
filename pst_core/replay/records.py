"""Recorded teacher outputs indexed by question text, and how a prompt is answered from them.

A prompt is matched on the question between its last "Q: " and the following "\\nA:". Then:
- Zero-shot-CoT stage 1 (the prompt ends with "Let's think step by step.") -> the recorded
  rationale, verbatim (rationalisation prompts end the same way and get the same answer);
- stage 2 (a recorded rationale follows the trigger) -> the recorded answer completion;
- any other prompt (few-shot CoT) -> the recorded raw completion.
An unknown question is not an HTTP error: it gets the marked text `UNMATCHED` with
finish_reason "stop" and the response header `X-Replay-Match: none`, and /stats counts it, so a
harvest never retries it and a test can see it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pst_core.errors import ConfigError

TRIGGER = "Let's think step by step."
UNMATCHED = "[replay: no recorded output for this question]"
# Tasks with recorded text-davinci-002 or PaLM outputs in ../shared/datasets.
DEFAULT_TASKS = (
    "addsub", "single_eq", "multiarith", "svamp", "gsm8k", "aqua", "coin_flip", "last_letter_concatenation",
    "date_understanding", "tracking_shuffled_objects", "strategy_qa", "commonsense_qa",
)


@dataclass(frozen=True)
class Record:
    """One recorded answer to a question."""

    question: str
    rationale: str
    answer_completion: str | None
    raw_completion: str | None


class Index:
    """Records by question, answering prompts as the module docstring describes."""

    def __init__(self, records: list[Record]) -> None:
        self.by_question: dict[str, list[Record]] = {}
        for r in records:
            self.by_question.setdefault(r.question.strip(), []).append(r)
        self._draws: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.by_question)

    def answer(self, prompt: str, temperature: float = 0.0) -> tuple[str, str]:
        """(completion text, match kind: stage1 | stage2 | few_shot | none)."""
        i = prompt.rfind("Q: ")
        j = prompt.find("\nA:", i)
        if i < 0 or j < 0:
            return UNMATCHED, "none"
        recs = self.by_question.get(prompt[i + 3 : j].strip())
        if not recs:
            return UNMATCHED, "none"
        rest = prompt[j + 3 :]
        head, sep, after = rest.partition(TRIGGER)
        if not sep:
            r = recs[0]
            return (r.raw_completion or r.rationale), "few_shot"
        if not after.strip():
            return self._pick(recs, prompt, temperature).rationale, "stage1"
        for r in recs:
            if r.rationale and after.startswith(r.rationale):
                if r.answer_completion is not None:
                    return r.answer_completion, "stage2"
                raw = r.raw_completion or ""
                return (raw[len(r.rationale) :] if raw.startswith(r.rationale) else raw) or UNMATCHED, "stage2"
        return UNMATCHED, "none"

    def _pick(self, recs: list[Record], prompt: str, temperature: float) -> Record:
        """Greedy requests get the first recording; sampled ones cycle through the recordings."""
        if temperature <= 0 or len(recs) == 1:
            return recs[0]
        n = self._draws.get(prompt, 0)
        self._draws[prompt] = n + 1
        return recs[n % len(recs)]


def load(records: str | Path, tasks: list[str] | None = None, teacher_model: str | None = None) -> Index:
    """An index from a datasets folder (via pst_core.recorded) or a JSONL file of records."""
    path = Path(records)
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return Index([Record(r["question"], r.get("rationale") or "", r.get("answer_completion"), r.get("raw_completion")) for r in rows])
    if not path.is_dir():
        raise ConfigError(f"--records {path} is neither a datasets folder nor a JSONL file of records")
    from pst_core import recorded

    out: list[Record] = []
    for task in tasks or DEFAULT_TASKS:
        try:
            recs = recorded.load_recorded(task, path, teacher_model)
        except Exception as exc:
            if tasks:  # a task asked for by name must load
                raise ConfigError(f"cannot load recorded outputs for {task!r}: {exc}") from None
            continue
        out.extend(Record(r.question, r.rationale, r.answer_completion, r.raw_completion) for r in recs)
    if not out:
        raise ConfigError(f"no recorded teacher outputs found under {path}")
    return Index(out)
