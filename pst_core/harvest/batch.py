"""OpenAI Batch API mode: JSONL in, poll, JSONL out, ingested into the same rationale store.

Rounds: upload the pending requests (custom_id = request key, plus ":2" for a Zero-shot-CoT
answer request), create the batch, save its id in `_batch-state.json` in the partition folder
(readers skip `_` files), poll, download the output and error files, store successes; failed
lines are resubmitted in the next round until `max_attempts`, then stored with their error. A
rerun finds the saved batch id and resumes polling instead of submitting again, and stage-1
rationales of two-stage prompts wait in the state file until their answer requests are done.
"""

from __future__ import annotations

import json
import os
import time

from pst_core import store
from pst_core.errors import TeacherError
from pst_core.harvest import client as http
from pst_core.harvest import rationales
from pst_core.harvest.config import HarvestConfig
from pst_core.harvest.harvester import Progress, TeacherUnreachable, count_cached, effective, log, plan
from pst_core.harvest.jobs import Job, JobFactory
from pst_core.harvest.summary import HarvestSummary, note_model
from pst_core.teachers import TeacherConfig

STATE_FILE = "_batch-state.json"
TERMINAL = ("completed", "failed", "expired", "cancelled")


class State:
    """The resumable state of a partition's batch harvest, saved atomically after each change."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = json.loads(open(path).read()) if os.path.exists(path) else {"active": None, "stage1": {}, "attempts": {}}

    def save(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            json.dump(self.data, fh)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


def _custom_id(job: Job, stage: int) -> str:
    return job.key if stage == 1 else f"{job.key}:2"


def _parse_line(line: dict, endpoint: str) -> http.Completion | str:
    """A Completion, or the error reason of one output/error-file line (a line of the wrong shape is `malformed`)."""
    error = line.get("error")
    if error:
        return str(error.get("code") or "batch_error") if isinstance(error, dict) else "batch_error"
    resp = line.get("response")
    status = resp.get("status_code", 0) if isinstance(resp, dict) else 0
    if not isinstance(status, int) or isinstance(status, bool):
        return "malformed"
    if status != 200:
        return "rate_limited" if status == 429 else f"http_{status}"
    try:
        return http.parse_body(http._dumps(resp.get("body")), endpoint)
    except (http.Retryable, http.BadContent) as exc:
        return exc.reason


def _lines(content: bytes) -> list[dict]:
    """The JSON objects of an output or error file; an unreadable line is skipped (its request is resubmitted)."""
    out = []
    for raw in content.splitlines():
        try:
            line = json.loads(raw) if raw.strip() else None
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            out.append(line)
    return out


class BatchRunner:
    """Submits, polls and ingests rounds of batches for one harvest."""

    def __init__(self, cfg: HarvestConfig, teacher: TeacherConfig, factory: JobFactory, writer: rationales.Writer, summary: HarvestSummary, state: State) -> None:
        import openai

        self.cfg, self.teacher, self.factory, self.writer, self.summary, self.state = cfg, teacher, factory, writer, summary, state
        self.max_attempts = effective(teacher, cfg)["max_attempts"]
        self.key = teacher.api_key()
        self.client = openai.OpenAI(base_url=teacher.base_url, api_key=self.key, timeout=teacher.timeout_s, max_retries=5)
        self.endpoint = "/v1/chat/completions" if teacher.endpoint == "chat" else "/v1/completions"

    def submit(self, stage: int, jobs: list[Job]) -> dict:
        """Upload and create one batch; the state holds its id before anything else can fail."""
        lines = b"".join(
            http._dumps({"custom_id": _custom_id(j, stage), "method": "POST", "url": self.endpoint, "body": self.factory.body(j)}) + b"\n" for j in jobs
        )
        try:
            upload = self.client.files.create(file=("pst-batch.jsonl", lines), purpose="batch")
            batch = self.client.batches.create(input_file_id=upload.id, endpoint=self.endpoint, completion_window="24h", metadata={"pst": f"{self.cfg.teacher}/{self.cfg.task}/{self.cfg.split}"})
        except Exception as exc:
            raise self._error(exc) from None
        attempts = self.state.data["attempts"]
        for j in jobs:
            cid = _custom_id(j, stage)
            attempts[cid] = attempts.get(cid, 0) + 1
        self.state.data["active"] = {"id": batch.id, "stage": stage, "ids": [_custom_id(j, stage) for j in jobs]}
        self.state.save()
        self.summary.sent += len(jobs)
        self.summary.batch_ids.append(batch.id)
        log.info("submitted batch %s: %d stage-%d requests", batch.id, len(jobs), stage)
        return self.state.data["active"]

    def collect(self, active: dict) -> dict[str, http.Completion | str]:
        """Poll the active batch to a terminal status and return results by custom id."""
        while True:
            try:
                batch = self.client.batches.retrieve(active["id"])
            except Exception as exc:
                raise self._error(exc) from None
            if batch.status in TERMINAL:
                break
            time.sleep(self.cfg.poll_s)
        if batch.status == "failed":
            errs = getattr(batch, "errors", None)
            msg = errs.data[0].message if errs and getattr(errs, "data", None) else "no details"
            raise TeacherError(f"batch {batch.id} of teacher {self.teacher.name!r} failed validation ({msg}); check the model and endpoint")
        results: dict[str, http.Completion | str] = {}
        for fid in (batch.output_file_id, batch.error_file_id):
            if fid:
                for line in _lines(self.client.files.content(fid).content):
                    results[line["custom_id"]] = _parse_line(line, self.teacher.endpoint)
        for cid in active["ids"]:  # expired or cancelled batches leave lines without a result
            results.setdefault(cid, f"batch_{batch.status}")
        return results

    def _error(self, exc: Exception) -> TeacherError:
        status = getattr(exc, "status_code", None)
        detail = str(exc).replace(self.key, "***").splitlines()[0][:160]
        # No HTTP status: the SDK gave up on connection errors or timeouts (a transient outage).
        cls = TeacherError if status else TeacherUnreachable
        return cls(f"batch API of teacher {self.teacher.name!r} failed ({'HTTP ' + str(status) if status else type(exc).__name__}: {detail}); check the base URL, model and key")


def run(cfg: HarvestConfig, teacher: TeacherConfig, root: str, progress: Progress | None = None, datasets_dir: str | None = None, summary: HarvestSummary | None = None) -> HarvestSummary:
    """Harvest through the Batch API (resumable); returns (and fills) the same summary as online mode."""
    t0 = time.perf_counter()
    summary = summary or HarvestSummary(cfg.teacher, cfg.task, cfg.split)
    factory, jobs, todo, cache = plan(cfg, teacher, root, datasets_dir)
    count_cached(summary, jobs, todo, cache)
    directory = rationales.partition(root, cfg.teacher, cfg.task, cfg.split)
    fs, local = store.filesystem(directory)
    state = State(f"{local}/{STATE_FILE}")
    if todo:
        writer = rationales.Writer(root, cfg.teacher, cfg.task, cfg.split, cfg.flush_rows, cfg.flush_s)
        runner = BatchRunner(cfg, teacher, factory, writer, summary, state)
        pending = {j.key: j for j in todo}
        _restore_stage1(pending, state)
        while pending:
            active = state.data["active"]
            if active is None:
                stage = 1 if any(j.stage == 1 for j in pending.values()) else 2
                active = runner.submit(stage, [j for j in pending.values() if j.stage == stage])
            results = runner.collect(active)
            _ingest(active, results, pending, runner)
            writer.flush()  # rows reach the store before the batch is marked ingested
            state.data["active"] = None
            state.save()
            if progress is not None:
                progress(summary.cache_hits + summary.succeeded + summary.failed, summary.unique, summary)
        state.clear()
    rationales.compact(root, cfg.teacher, cfg.task, cfg.split)  # one deduped part, today's judgements: plain readers see one row per key
    summary.price(teacher.price_in, teacher.price_out)
    summary.elapsed_s = time.perf_counter() - t0
    for line in summary.lines():
        log.info(line)
    return summary


def _restore_stage1(pending: dict[str, Job], state: State) -> None:
    """Jobs whose rationale came back in an earlier run continue at stage 2."""
    for key, saved in state.data["stage1"].items():
        job = pending.get(key)
        if job is not None and job.prompt.two_stage:
            job.rationale = job.raw_completion = saved["text"]
            job.finish_reason, job.prompt_tokens, job.completion_tokens = saved["finish_reason"], saved["prompt_tokens"], saved["completion_tokens"]
            job.batch_id, job.stage = saved["batch_id"], 2


def _ingest(active: dict, results: dict, pending: dict[str, Job], runner: BatchRunner) -> None:
    """Store finished jobs, advance two-stage ones, and leave failed ones pending for the next round."""
    stage, attempts, summary = active["stage"], runner.state.data["attempts"], runner.summary
    for cid in active["ids"]:
        key = cid.split(":", 1)[0]
        job = pending.get(key)
        if job is None:
            continue
        result = results[cid]
        job.attempts = sum(attempts.get(c, 0) for c in (key, f"{key}:2"))
        if isinstance(result, str):
            # An empty or unmatched answer (the replay teacher has no record) is the same on a resubmit.
            if result not in ("empty", "unmatched") and attempts.get(cid, 0) < runner.max_attempts:
                summary.retries[result] += 1
                continue
            runner.writer.add(runner.factory.row(job, None, result))
            summary.failed += 1
            summary.failures[result] += 1
            del pending[key]
            continue
        note_model(summary, runner.factory.model, result.model)
        job.prompt_tokens += result.prompt_tokens or 0
        job.completion_tokens += result.completion_tokens or 0
        summary.prompt_tokens += result.prompt_tokens or 0
        summary.completion_tokens += result.completion_tokens or 0
        if stage == 1:
            job.raw_completion, job.finish_reason, job.batch_id = result.text, result.finish_reason, active["id"]
            if job.prompt.two_stage:
                job.rationale, job.stage = result.text, 2
                runner.state.data["stage1"][key] = {
                    "text": result.text, "finish_reason": result.finish_reason, "prompt_tokens": job.prompt_tokens,
                    "completion_tokens": job.completion_tokens, "batch_id": active["id"],
                }
                continue
        row = runner.factory.row(job, result.text, None)
        runner.writer.add(row)
        summary.succeeded += 1
        if row["is_correct"] is not None:
            summary.judged += 1
            summary.correct += bool(row["is_correct"])
        del pending[key]
        runner.state.data["stage1"].pop(key, None)
