"""The online harvester: send every uncached request once, store each result as it arrives.

A fixed pool of `concurrency` workers pulls jobs from a queue. A retryable failure does not hold
its worker: the job is put back on the queue after its backoff (or the server's Retry-After) by
the event loop's timer, and the worker takes the next job at once. A fatal answer (bad key,
unknown model) stops the pool, flushes what is done, and raises one clear `TeacherError`.

A circuit breaker guards against a teacher that dies: after `max_connection_failures`
consecutive connection failures (no HTTP answer in between) the pool stops at once, whatever is
stored stays stored, the questions not yet answered stay unattempted (no error rows), and one
transient `TeacherUnreachable` line names the teacher, the counts and the command that resumes.
A request whose attempts all end in connection errors is stored as a `connection` failure only
if the harvest then finishes (the breaker never tripped). Ctrl-C ends the same way, as
`HarvestInterrupted` (a KeyboardInterrupt) with the same facts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable

from pst_core import examples as examples_mod
from pst_core import prompts
from pst_core.errors import ConfigError, DataError, PstError, TeacherError
from pst_core.harvest import client, rationales
from pst_core.harvest.config import HarvestConfig
from pst_core.harvest.jobs import Job, JobFactory
from pst_core.harvest.limiter import RateLimiter
from pst_core.harvest.summary import HarvestSummary, note_model, resume_command
from pst_core.teachers import TeacherConfig

log = logging.getLogger("pst.harvest")
NO_RESPONSE = ("connection", "timeout")  # retryable reasons where the endpoint never answered
Progress = Callable[[int, int, HarvestSummary], None]
PROGRESS_EVERY_S = 0.25
SPLITS = ("train", "validation", "test")



class TeacherUnreachable(TeacherError):
    """No response at all from the teacher's base URL; transient, so orchestrators may retry later."""

    transient = True


class TeacherStopped(TeacherUnreachable):
    """The teacher answered at first, then stopped (the circuit breaker tripped); transient too."""


class HarvestInterrupted(KeyboardInterrupt):
    """Ctrl-C during a harvest: its message says what was stored and how to resume (exit 130 in the CLI)."""


_HINTS = {
    401: "check the key in the teacher's api_key_env variable",
    403: "the key has no access to this model or endpoint",
    404: "check the teacher's --model and --base-url",
}


def effective(teacher: TeacherConfig, cfg: HarvestConfig) -> dict:
    """The teacher's limits with the harvest's overrides applied."""
    pick = lambda override, default: default if override is None else override  # noqa: E731
    return {
        "rpm": pick(cfg.rpm, teacher.rpm),
        "tpm": pick(cfg.tpm, teacher.tpm),
        "concurrency": pick(cfg.concurrency, teacher.concurrency),
        "max_attempts": pick(cfg.max_attempts, teacher.max_attempts),
        "timeout_s": pick(cfg.timeout_s, teacher.timeout_s),
        "max_connection_failures": cfg.max_connection_failures,
    }


def plan(cfg: HarvestConfig, teacher: TeacherConfig, root: str, datasets_dir: str | None = None) -> tuple[JobFactory, list[Job], list[Job], rationales.Cached]:
    """(factory, all jobs, jobs still to send, cache) for a harvest; reads the cache keys only."""
    exs = examples_mod.load(root, cfg.task, cfg.split)
    if not exs:
        raise _no_examples(cfg, root)
    if cfg.limit:
        exs = exs[: cfg.limit]
    kind = prompts.get(cfg.prompt, cfg.task, datasets_dir)
    factory = JobFactory(teacher.model, teacher.endpoint, kind, cfg.max_tokens, cfg.answer_max_tokens, cfg.temperature)
    jobs = factory.jobs(exs, cfg.samples)
    cache = rationales.cached(root, cfg.teacher, cfg.task, cfg.split)
    seen: set[str] = set()
    todo = []
    for job in jobs:  # identical questions share a key: send it once
        if job.key not in cache.ok and job.key not in seen:
            seen.add(job.key)
            todo.append(job)
    return factory, jobs, todo, cache


def _no_examples(cfg: HarvestConfig, root: str) -> PstError:
    """Why a split has no examples: a misspelt split or task name, or data not prepared yet."""
    from pst_core.tasks import TASKS

    if cfg.split not in SPLITS:
        return ConfigError(f"unknown split {cfg.split!r}; valid: {', '.join(SPLITS)}")
    if cfg.task not in TASKS and not examples_mod.read(root, cfg.task, columns=["example_id"]).num_rows:
        TASKS.get(cfg.task)  # raises UnknownName with close matches and the valid tasks
    return DataError(f"no examples for task={cfg.task} split={cfg.split} in {root}; run `pst data prepare --task {cfg.task}` first")


def count_cached(summary: HarvestSummary, jobs: list[Job], todo: list[Job], cache: rationales.Cached) -> None:
    """Fill the request, duplicate, cache-hit and correctness counts, per unique request key.

    Identical questions share a key: they are one request and one stored row, so they count once
    here (as duplicates of the first), exactly as the rows a first run stores count once.
    """
    keys = dict.fromkeys(job.key for job in jobs)
    summary.requested, summary.duplicates = len(jobs), len(jobs) - len(keys)
    summary.cache_hits = len(keys) - len(todo)
    for key in keys:
        correct = cache.ok.get(key)
        if correct is not None:
            summary.judged += 1
            summary.correct += bool(correct)


class Runner:
    """Runs the jobs of one harvest against one transport with a worker pool."""

    def __init__(self, factory: JobFactory, transport, limits: dict, writer: rationales.Writer, summary: HarvestSummary, progress: Progress | None, seed: int, total: int) -> None:
        self.factory, self.transport, self.writer, self.summary = factory, transport, writer, summary
        self.concurrency, self.max_attempts = limits["concurrency"], limits["max_attempts"]
        # A dead teacher fails every in-flight request at once; never trip on fewer than one pool's worth.
        self.breaker = max(limits["max_connection_failures"], self.concurrency) if limits["max_connection_failures"] else 0
        self.streak = 0  # consecutive connection failures since the last HTTP answer
        self.deferred: list[Job] = []  # attempts used up on connection errors: stored only if the harvest finishes
        self.limiter = RateLimiter(limits["rpm"], limits["tpm"])
        self.progress, self.total = progress, total
        self.rng = random.Random(seed)
        self.fatal: client.Fatal | client.Retryable | None = None
        self.responded = False  # any HTTP answer at all (even a 429) proves the endpoint is reachable
        self._last_progress = 0.0

    async def run(self, todo: list[Job]) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        for job in todo:
            self.queue.put_nowait(job)
        self.pending = len(todo)
        if not todo:
            return
        loop = asyncio.get_running_loop()
        self.loop = loop
        flusher = loop.create_task(self._flush_periodically())
        try:
            await asyncio.gather(*(self._worker() for _ in range(min(self.concurrency, len(todo)))))
            if self.fatal is None:  # the teacher kept answering, so these really failed
                for job in self.deferred:
                    self._record(job, None, "connection")
        finally:  # every row received reaches disk, whatever ends the run (a stop, Ctrl-C, a bug)
            flusher.cancel()
            self.writer.flush()

    async def _flush_periodically(self) -> None:
        while True:  # results trickling in slowly still reach disk within flush_s
            await asyncio.sleep(self.writer.flush_s)
            self.writer.flush()

    async def _worker(self) -> None:
        while True:
            job = await self.queue.get()
            if job is None or self.fatal is not None:
                return
            while job is not None and self.fatal is None:  # a stopped pool sends no second stage either
                job = await self._attempt(job)

    def _finish(self, job: Job, text: str | None, error: str | None) -> None:
        self._record(job, text, error)
        self._done()

    def _done(self) -> None:
        """One job fewer to wait for; the last one stops the pool."""
        self.pending -= 1
        if self.pending == 0:
            self._stop()
        s = self.summary
        if self.progress is not None:
            now = time.monotonic()
            if now - self._last_progress >= PROGRESS_EVERY_S or self.pending == 0:
                self._last_progress = now
                self.progress(s.succeeded + s.failed + s.cache_hits, self.total, s)

    def _record(self, job: Job, text: str | None, error: str | None) -> None:
        """Store a finished job's row and count it."""
        s = self.summary
        row = self.factory.row(job, text, error)
        self.writer.add(row)
        s.prompt_tokens += job.prompt_tokens
        s.completion_tokens += job.completion_tokens
        if error is None:
            s.succeeded += 1
            if row["is_correct"] is not None:
                s.judged += 1
                s.correct += bool(row["is_correct"])
        else:
            s.failed += 1
            s.failures[error] += 1

    def _abort(self, exc: client.Fatal | client.Retryable) -> None:
        """Stop the pool after the first failure that retries cannot fix (results so far are flushed)."""
        if self.fatal is None:
            self.fatal = exc
            self.pending = 0
            self._stop()

    def _stop(self) -> None:
        for _ in range(self.concurrency):
            self.queue.put_nowait(None)

    async def _attempt(self, job: Job) -> Job | None:
        """Send the job's current stage once; returns the job to continue at once (stage 2), else None."""
        factory = self.factory
        est = factory.est_tokens(job) if self.limiter.tpm > 0 else 0.0
        await self.limiter.acquire(est)
        if self.fatal is not None:
            return None
        body = factory.body(job)
        job.attempts += 1
        job.stage_attempts += 1
        self.summary.sent += 1
        t0 = time.perf_counter()
        try:
            comp = await self.transport.send(body)
        except client.Retryable as exc:
            job.latency_s += time.perf_counter() - t0
            if self.fatal is not None:
                return None  # the pool is stopping: the job stays unattempted
            if exc.reason == "connection":
                self.streak += 1
                if self.breaker and self.streak >= self.breaker:
                    self._abort(exc)
                    return None
            elif exc.reason not in NO_RESPONSE:  # any HTTP answer, even a 429, proves the teacher is up
                self.responded, self.streak = True, 0
            if exc.reason == "rate_limited":
                self.limiter.on_rate_limited()
            if job.stage_attempts >= self.max_attempts:
                if not self.responded:
                    self._abort(exc)
                elif exc.reason == "connection":
                    self.deferred.append(job)
                    self._done()
                else:
                    self._finish(job, None, exc.reason)
                return None
            self.summary.retries[exc.reason] += 1
            delay = client.backoff(job.stage_attempts, exc.retry_after, rng=self.rng)
            self.loop.call_later(delay, self.queue.put_nowait, job)  # waits without holding a worker
            return None
        except client.BadContent as exc:
            job.latency_s += time.perf_counter() - t0
            self.responded, self.streak = True, 0
            self._finish(job, None, exc.reason)
            return None
        except client.Fatal as exc:
            self._abort(exc)
            return None
        job.latency_s += time.perf_counter() - t0
        self.responded, self.streak = True, 0
        note_model(self.summary, self.factory.model, comp.model)
        self.limiter.on_success()
        job.prompt_tokens += comp.prompt_tokens or 0
        job.completion_tokens += comp.completion_tokens or 0
        if self.limiter.tpm > 0:
            self.limiter.settle(est, (comp.prompt_tokens or 0) + (comp.completion_tokens or 0))
        if job.stage == 1:
            job.raw_completion, job.finish_reason = comp.text, comp.finish_reason
            if job.prompt.two_stage:
                job.rationale, job.stage, job.stage_attempts = comp.text, 2, 0
                return job
        self._finish(job, comp.text, None)
        return None


def _fatal_error(cfg: HarvestConfig, teacher: TeacherConfig, runner: Runner, key: str) -> TeacherError:
    """The one line for a stopped pool: what went wrong, what is stored, and how to resume."""
    exc, summary = runner.fatal, runner.summary
    facts = f"{summary.stored()}; resume with: {resume_command(cfg)}"
    if isinstance(exc, client.Retryable):
        what = f"connection failed: {exc.detail}" if exc.reason == "connection" else "timed out"
        if runner.responded:
            return TeacherStopped(f"teacher {teacher.name!r} stopped answering at {teacher.base_url} ({runner.streak} consecutive connection failures: {exc.detail}); {facts}")
        return TeacherUnreachable(
            f"teacher {teacher.name!r} is unreachable at {teacher.base_url} ({what}; no response to {summary.sent} requests); "
            f"check its --base-url and that the server is up; {facts}"
        )
    detail = exc.detail.replace(key, "***") if key else exc.detail
    hint = _HINTS.get(exc.status, "the endpoint rejected the request; check the model name and the harvest settings")
    return TeacherError(f"teacher {teacher.name!r} answered HTTP {exc.status} ({detail[:160]}); {hint}; {summary.stored()}")


async def run_online(cfg: HarvestConfig, teacher: TeacherConfig, root: str, progress: Progress | None = None, datasets_dir: str | None = None, summary: HarvestSummary | None = None) -> HarvestSummary:
    """The online harvest as a coroutine (see `harvest` for the sync entry point); fills `summary` as it goes."""
    t0 = time.perf_counter()
    summary = summary or HarvestSummary(cfg.teacher, cfg.task, cfg.split)
    factory, jobs, todo, cache = plan(cfg, teacher, root, datasets_dir)
    count_cached(summary, jobs, todo, cache)
    if todo:
        limits = effective(teacher, cfg)
        key = teacher.api_key()
        writer = rationales.Writer(root, cfg.teacher, cfg.task, cfg.split, cfg.flush_rows, cfg.flush_s)
        async with client.transport(teacher.http, teacher.base_url, key, teacher.endpoint, limits["timeout_s"], limits["concurrency"]) as tr:
            runner = Runner(factory, tr, limits, writer, summary, progress, cfg.seed, summary.unique)
            await runner.run(todo)
        if runner.fatal is not None:
            raise _fatal_error(cfg, teacher, runner, key)
    elif progress is not None:
        progress(summary.unique, summary.unique, summary)
    rationales.compact(root, cfg.teacher, cfg.task, cfg.split)  # one deduped part, today's judgements: plain readers see one row per key
    summary.price(teacher.price_in, teacher.price_out)
    summary.elapsed_s = time.perf_counter() - t0
    for line in summary.lines():
        log.info(line)
    return summary


def harvest(cfg: HarvestConfig, root: str, progress: Progress | None = None, datasets_dir: str | None = None) -> HarvestSummary:
    """Harvest one teacher x task split into the rationale store (sync; Prefect tasks call this)."""
    from pst_core import teachers

    teacher = teachers.get(root, cfg.teacher)
    summary = HarvestSummary(cfg.teacher, cfg.task, cfg.split)
    try:
        if (cfg.mode or teacher.mode) == "batch":
            from pst_core.harvest import batch

            return batch.run(cfg, teacher, root, progress, datasets_dir, summary)
        coro = run_online(cfg, teacher, root, progress, datasets_dir, summary)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)  # Ctrl-C cancels the pool, which flushes what it received
        return _run_in_thread(coro)  # called from inside an event loop (a notebook, an async flow)
    except KeyboardInterrupt:
        raise HarvestInterrupted(f"interrupted: harvest of teacher {cfg.teacher!r} task={cfg.task} split={cfg.split} stopped; {summary.stored()}; resume with: {resume_command(cfg)}") from None


def _run_in_thread(coro) -> HarvestSummary:
    """Run the harvest on its own event loop in a thread; Ctrl-C in the caller cancels it (so it flushes) before re-raising."""
    result: dict = {}

    async def main() -> HarvestSummary:
        result["loop"], result["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await coro

    def target() -> None:
        try:
            result["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="pst-harvest")
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        try:
            result["loop"].call_soon_threadsafe(result["task"].cancel)
        except (KeyError, RuntimeError):  # not started yet, or already finished (its loop is closed)
            pass
        thread.join()
        raise
    if "error" in result:
        raise result["error"]
    return result["value"]
