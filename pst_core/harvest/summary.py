"""The run summary every harvest returns (and the CLI prints): counts, failures, tokens, cost.

Everything is counted per unique request (question x sample), the way the store keys rows:
identical questions share one request key, are sent once and stored once, and are reported as
`duplicates`, never as cache hits. So the correct-rate of a first run and of an immediate cached
rerun of the same store have the same denominator.

A harvest that stops early (teacher gone, Ctrl-C) reports `stored()` and `resume_command(cfg)`;
`note_model` warns once when the server names another model than the teacher's.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from collections import Counter
from dataclasses import dataclass, field

from pst_core.harvest.config import HarvestConfig

log = logging.getLogger("pst.harvest")


@dataclass
class HarvestSummary:
    """What one harvest did; `cost` is None when the teacher has no prices."""

    teacher: str
    task: str
    split: str
    requested: int = 0  # rows (example x sample) asked for, duplicates included
    duplicates: int = 0  # rows whose request key equals an earlier row's (identical questions): sent and stored once
    cache_hits: int = 0  # unique requests already stored with a success before this run
    sent: int = 0  # HTTP requests sent, retries included
    succeeded: int = 0  # new rows stored with a success
    failed: int = 0  # new rows stored with an error
    failures: Counter = field(default_factory=Counter)  # final error reason -> rows
    retries: Counter = field(default_factory=Counter)  # retried reason -> attempts
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    correct: int = 0  # unique successful requests (cached and new) whose answer matches the gold answer
    judged: int = 0  # unique successful requests with a known correctness
    elapsed_s: float = 0.0
    batch_ids: list[str] = field(default_factory=list)
    served_model: str | None = None  # the model name the server reported in its first reply
    warnings: list[str] = field(default_factory=list)

    @property
    def unique(self) -> int:
        """Unique requests: what the store holds one row each for once the harvest is complete."""
        return self.requested - self.duplicates

    @property
    def not_attempted(self) -> int:
        """Unique requests with no row from this run or before (a stopped or interrupted harvest)."""
        return max(0, self.unique - self.cache_hits - self.succeeded - self.failed)

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
        out["unique"], out["not_attempted"], out["correct_rate"] = self.unique, self.not_attempted, self.correct_rate
        return out

    def stored(self) -> str:
        """What the store holds for this harvest, in a few words (for the stop and interrupt lines)."""
        done = self.cache_hits + self.succeeded + self.failed
        return (
            f"{done}/{self.unique} questions stored ({self.cache_hits} before this run, {self.succeeded} new successes, "
            f"{self.failed} new failures), {self.not_attempted} not attempted"
        )

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        rate = f"{self.sent / self.elapsed_s:.1f} req/s" if self.elapsed_s > 0 and self.sent else "-"
        dup = f" ({self.unique} unique, {self.duplicates} duplicate questions sent and stored once)" if self.duplicates else ""
        out = [
            f"teacher={self.teacher} task={self.task} split={self.split}: {self.requested} requested{dup}, {self.cache_hits} cache hits",
            f"sent {self.sent} HTTP requests in {self.elapsed_s:.1f}s ({rate}); {self.succeeded} new successes, {self.failed} failures",
        ]
        if self.not_attempted:
            out.append(f"{self.not_attempted} not attempted (rerun the same command to send them)")
        if self.failures:
            out.append("failures by reason: " + ", ".join(f"{k}={v}" for k, v in self.failures.most_common()))
        if self.retries:
            out.append("retried attempts: " + ", ".join(f"{k}={v}" for k, v in self.retries.most_common()))
        out.append(f"tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion" + (f", cost ${self.cost:.4f}" if self.cost is not None else ""))
        if self.correct_rate is not None:
            out.append(f"correct rationales: {self.correct}/{self.judged} = {self.correct_rate:.2%}")
        return out


# HarvestConfig fields the `pst harvest` command line can set, for the resume command.
FLAGS = {
    "prompt": "--prompt", "samples": "--samples", "temperature": "--temperature", "max_tokens": "--max-tokens",
    "answer_max_tokens": "--answer-max-tokens", "limit": "--limit", "mode": "--mode", "rpm": "--rpm", "tpm": "--tpm",
    "concurrency": "--concurrency", "max_attempts": "--max-attempts", "timeout_s": "--timeout",
    "max_connection_failures": "--max-connection-failures", "flush_rows": "--flush-rows", "poll_s": "--poll",
}


def resume_command(cfg: HarvestConfig) -> str:
    """The `pst harvest` command that continues this harvest (same request keys, so only missing rows are sent)."""
    defaults = {f.name: f.default for f in dataclasses.fields(HarvestConfig)}
    parts = ["pst", "harvest", "--teacher", cfg.teacher, "--task", cfg.task, "--split", cfg.split]
    for name, flag in FLAGS.items():
        value = getattr(cfg, name)
        if value is not None and value != defaults[name]:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts)


def same_model(asked: str, reported: str) -> bool:
    """Whether the server's model name is the one asked for, or a dated/tagged snapshot of it (gpt-4o-mini-2024-07-18)."""
    a, r = asked.strip().casefold(), reported.strip().casefold()
    return r == a or any(r.startswith(a + sep) for sep in "-:@")


def note_model(summary: HarvestSummary, asked: str, reported: str | None) -> None:
    """Warn (one line, once per harvest) when the first reply names another model than the teacher's."""
    if summary.served_model is not None or not reported:
        return
    summary.served_model = reported
    if not same_model(asked, reported):
        line = (f"teacher {summary.teacher!r} asks for model {asked!r} but the server reports {reported!r}; rows are stored "
                f"under {asked!r} (re-register the teacher with --model {shlex.quote(reported)} if that is the model it serves)")
        summary.warnings.append(line)
        log.warning(line)
