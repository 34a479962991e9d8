"""Harvest jobs: one per (example, sample), with its request body, request key and result row.

The request key is the sha256 of the canonical JSON (sorted keys, no spaces) of the model, the
messages (or the legacy prompt), the sampling parameters and the sample index; for Zero-shot-CoT
the stage-2 trigger and length are sampling parameters too, since they shape the stored answer.
The key never contains the API key or the base URL, so moving a teacher keeps its cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pst_core import prompts
from pst_core.examples import Example

try:
    import orjson

    def canonical(obj: object) -> bytes:
        """Canonical JSON bytes: sorted keys, no spaces, UTF-8."""
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
except ImportError:  # pragma: no cover
    import json

    def canonical(obj: object) -> bytes:
        """Canonical JSON bytes: sorted keys, no spaces, UTF-8."""
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body(model: str, endpoint: str, text: str, max_tokens: int, temperature: float) -> dict:
    """The request body in the OpenAI wire format of the endpoint flavour."""
    if endpoint == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "temperature": temperature}
    return {"model": model, "prompt": text, "max_tokens": max_tokens, "temperature": temperature}


def request_key(model: str, endpoint: str, text: str, params: dict, sample_index: int) -> str:
    """sha256 of the canonical request (model, messages or prompt, params, sample index)."""
    content = {"messages": [{"role": "user", "content": text}]} if endpoint == "chat" else {"prompt": text}
    return hashlib.sha256(canonical({"model": model, **content, "params": params, "sample_index": sample_index})).hexdigest()


@dataclass
class Job:
    """One (example, sample) request, possibly two stages, and its progress."""

    key: str
    example: Example
    sample_index: int
    prompt: prompts.Prompt
    stage: int = 1
    rationale: str | None = None
    raw_completion: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0  # HTTP attempts over both stages
    stage_attempts: int = 0
    batch_id: str | None = None
    extra: dict = field(default_factory=dict)


class JobFactory:
    """Builds jobs and their bodies for one teacher model, prompt kind and sampling settings."""

    def __init__(self, model: str, endpoint: str, kind: prompts.PromptKind, max_tokens: int, answer_max_tokens: int, temperature: float) -> None:
        self.model, self.endpoint, self.kind = model, endpoint, kind
        self.max_tokens, self.answer_max_tokens, self.temperature = max_tokens, answer_max_tokens, temperature

    def jobs(self, examples: list[Example], samples: int) -> list[Job]:
        """A job per (example, sample index), in example order."""
        out = []
        for ex in examples:
            prompt = self.kind.render(ex.question, ex.choices, ex.gold_answer, ex.answer_type)
            params: dict = {"max_tokens": self.max_tokens, "temperature": self.temperature}
            if prompt.two_stage:
                params.update(answer_trigger=prompt.answer_trigger, answer_max_tokens=self.answer_max_tokens)
            for s in range(samples):
                out.append(Job(request_key(self.model, self.endpoint, prompt.text, params, s), ex, s, prompt))
        return out

    def body(self, job: Job) -> dict:
        """The body of the job's current stage."""
        if job.stage == 1:
            return body(self.model, self.endpoint, job.prompt.text, self.max_tokens, self.temperature)
        text = prompts.stage2_text(job.prompt, job.rationale or "")
        return body(self.model, self.endpoint, text, self.answer_max_tokens, self.temperature)

    def est_tokens(self, job: Job) -> float:
        """A pre-send token estimate for the tokens/min bucket (4 characters per token)."""
        n = len(job.prompt.text) // 4
        return n + (self.max_tokens if job.stage == 1 else len(job.rationale or "") // 4 + self.answer_max_tokens)

    def row(self, job: Job, text: str | None, error: str | None) -> dict:
        """The store row of a finished job; `text` is the last stage's completion."""
        from pst_core import answers

        ex = job.example
        rationale, answer_text, predicted, correct = job.rationale, None, None, None
        if error is None and text is not None:
            if job.prompt.two_stage:
                answer_text = text
                predicted = answers.extract(text, ex.answer_type, ex.choices)
            else:
                rationale, tail = self.kind.split(text)
                position = "first" if tail is not text else "last"
                predicted = answers.extract(tail, ex.answer_type, ex.choices, position=position)
            correct = answers.is_correct(predicted, ex.gold_answer, ex.answer_type)
        elif not job.prompt.two_stage:
            rationale = None
        return {
            "request_key": job.key,
            "example_id": ex.example_id,
            "sample_index": job.sample_index,
            "model": self.model,
            "prompt_version": job.prompt.version,
            "prompt_kind": job.prompt.kind,
            "rationale": rationale,
            "raw_completion": job.raw_completion,
            "answer_completion": answer_text,
            "predicted_answer": predicted,
            "is_correct": correct,
            "finish_reason": job.finish_reason,
            "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.completion_tokens,
            "latency_ms": job.latency_s * 1000.0,
            "attempts": job.attempts,
            "error": error,
            "created_at": datetime.now(timezone.utc),
            "batch_id": job.batch_id,
        }
