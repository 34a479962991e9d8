"""The run summary every harvest returns (and the CLI prints): counts, failures, tokens, cost."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class HarvestSummary:
    """What one harvest did; `cost` is None when the teacher has no prices."""

    teacher: str
    task: str
    split: str
    requested: int = 0  # rows (example x sample) asked for
    cache_hits: int = 0  # rows already stored with a success
    sent: int = 0  # HTTP requests sent, retries included
    succeeded: int = 0  # new rows stored with a success
    failed: int = 0  # new rows stored with an error
    failures: Counter = field(default_factory=Counter)  # final error reason -> rows
    retries: Counter = field(default_factory=Counter)  # retried reason -> attempts
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    correct: int = 0  # successful rows (cached and new) whose answer matches the gold answer
    judged: int = 0  # successful rows with a known correctness
    elapsed_s: float = 0.0
    batch_ids: list[str] = field(default_factory=list)

    @property
    def correct_rate(self) -> float | None:
        return self.correct / self.judged if self.judged else None

    def price(self, price_in: float, price_out: float) -> None:
        """Set `cost` from prices per 1M tokens (left None when both are 0)."""
        if price_in or price_out:
            self.cost = (self.prompt_tokens * price_in + self.completion_tokens * price_out) / 1e6

    def as_dict(self) -> dict:
        """A JSON-ready dict (for artifacts and --json)."""
        out = {k: v for k, v in self.__dict__.items()}
        out["failures"], out["retries"] = dict(self.failures), dict(self.retries)
        out["correct_rate"] = self.correct_rate
        return out

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        rate = f"{self.sent / self.elapsed_s:.1f} req/s" if self.elapsed_s > 0 and self.sent else "-"
        out = [
            f"teacher={self.teacher} task={self.task} split={self.split}: {self.requested} requested, {self.cache_hits} cache hits",
            f"sent {self.sent} HTTP requests in {self.elapsed_s:.1f}s ({rate}); {self.succeeded} new successes, {self.failed} failures",
        ]
        if self.failures:
            out.append("failures by reason: " + ", ".join(f"{k}={v}" for k, v in self.failures.most_common()))
        if self.retries:
            out.append("retried attempts: " + ", ".join(f"{k}={v}" for k, v in self.retries.most_common()))
        out.append(f"tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion" + (f", cost ${self.cost:.4f}" if self.cost is not None else ""))
        if self.correct_rate is not None:
            out.append(f"correct rationales: {self.correct}/{self.judged} = {self.correct_rate:.2%}")
        return out
