"""HarvestConfig: what to ask which teacher, and how hard to push it."""

from __future__ import annotations

from dataclasses import dataclass

from pst_core import store
from pst_core.config import check, option


@dataclass(frozen=True)
class HarvestConfig:
    """One harvest: a registered teacher, a task split and the sampling settings (limits default to the teacher's)."""

    teacher: str = option("", "Registered teacher name (see `pst teacher list`).")
    task: str = option("", "Task whose examples are sent (from the example store).")
    split: str = option("train", "Split of the task.")
    prompt: str = option("zs_cot", "Prompt kind: zs_cot, few_shot_cot or rationalize.")
    samples: int = option(1, "Samples per question (sample_index 0..K-1); K > 1 needs temperature > 0.")
    temperature: float = option(0.0, "Sampling temperature.")
    max_tokens: int = option(128, "Max tokens of the rationale completion (Zero-shot-CoT used 128).")
    answer_max_tokens: int = option(32, "Max tokens of the Zero-shot-CoT answer completion.")
    limit: int = option(0, "Only the first N examples of the split (0 = all).")
    mode: str = option("", "online or batch; empty = the teacher's default mode.")
    rpm: float | None = option(None, "Override the teacher's requests/min (0 = unlimited).")
    tpm: float | None = option(None, "Override the teacher's tokens/min (0 = unlimited).")
    concurrency: int | None = option(None, "Override the teacher's concurrency.")
    max_attempts: int | None = option(None, "Override the teacher's attempts per request.")
    timeout_s: float | None = option(None, "Override the teacher's per-request timeout.")
    max_connection_failures: int = option(16, "Stop after this many consecutive connection failures (the teacher died), at least the concurrency; 0 = never.")
    flush_rows: int = option(256, "Flush results to a new part file every N rows...")
    flush_s: float = option(1.0, "...or every S seconds, whichever comes first.")
    poll_s: float = option(10.0, "Batch mode: seconds between status polls.")
    seed: int = option(0, "Seed of the backoff jitter.")
    progress: bool = option(True, "Show a live progress bar (CLI).")

    def __post_init__(self) -> None:
        n = "HarvestConfig"
        check(bool(self.teacher) and bool(self.task), n, "teacher and task are required")
        for kind, value in (("teacher", self.teacher), ("task", self.task), ("split", self.split)):
            store.check_name(kind, value)
        check(self.samples >= 1, n, "samples must be >= 1")
        check(self.temperature >= 0, n, "temperature must be >= 0")
        check(self.samples == 1 or self.temperature > 0, n, f"--samples {self.samples} needs --temperature > 0 (greedy samples would all be identical)")
        check(self.max_tokens >= 1 and self.answer_max_tokens >= 1, n, "max_tokens must be >= 1")
        check(self.limit >= 0, n, "limit must be >= 0")
        check(self.mode in ("", "online", "batch"), n, "mode must be online or batch")
        check(self.concurrency is None or self.concurrency >= 1, n, "concurrency must be >= 1")
        check(self.max_attempts is None or self.max_attempts >= 1, n, "max_attempts must be >= 1")
        check(self.max_connection_failures >= 0, n, "max_connection_failures must be >= 0 (0 = never stop)")
        check(self.flush_rows >= 1 and self.flush_s > 0, n, "flush_rows must be >= 1 and flush_s > 0")
        check(self.poll_s > 0, n, "poll_s must be > 0")
