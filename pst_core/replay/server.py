"""An OpenAI-compatible teacher that answers from recorded outputs, with fault injection.

Serves `/v1/chat/completions`, `/v1/completions`, `/v1/models`, a minimal Batch API
(`/v1/files`, `/v1/batches`, see `batch_api`) and `/stats` (GET counts, POST /stats/reset, GET /stats/arrivals: arrival times).
Faults are drawn per request from an RNG seeded with (seed, request body, how many times this
body was seen), so a rerun of the same client run sees the same faults, and every request is
counted under exactly one outcome: ok, unmatched, rate_limited, server_error, hang, malformed,
empty. `total` is their sum. An unmatched request (no recorded output fits, see `records`) is
answered HTTP 404 with a JSON error naming why and the header `X-Replay-Match: none`, never with
made-up text; a batch line gets the same answer in the error file, with error code "unmatched".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pst_core.harvest.client import _dumps, _loads
from pst_core.replay.records import Index, coverage_lines

log = logging.getLogger("pst.replay")


@dataclass(frozen=True)
class Faults:
    """Fractions of requests answered with each fault (the rest are answered normally)."""

    latency_ms: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0  # seconds, sent as Retry-After (and retry-after-ms)
    rate_500: float = 0.0
    rate_hang: float = 0.0
    hang_s: float = 30.0  # a hang answers after this long; clients time out first
    rate_malformed: float = 0.0
    rate_empty: float = 0.0
    seed: int = 0
    batch_delay_s: float = 0.2  # a batch completes this long after it is created
    api_key: str | None = None  # when set, other keys get 401 (as a real endpoint would)

    @property
    def any(self) -> bool:
        return self.rate_429 + self.rate_500 + self.rate_hang + self.rate_malformed + self.rate_empty > 0


class Replay:
    """The server state: record index, fault settings and counters."""

    def __init__(self, index: Index, faults: Faults) -> None:
        self.index, self.faults = index, faults
        self.stats: Counter = Counter()
        self.seen: Counter = Counter()
        self.arrivals: list[float] = []  # monotonic arrival time of each completion request
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}

    def fault(self, raw: bytes) -> str | None:
        """The fault for this request, or None; deterministic per (seed, body, attempt)."""
        f = self.faults
        if not f.any:
            return None
        digest = hashlib.blake2b(raw, digest_size=8).hexdigest()
        n = self.seen[digest]
        self.seen[digest] = n + 1
        u = random.Random(f"{f.seed}:{digest}:{n}").random()
        for name, rate in (("rate_limited", f.rate_429), ("server_error", f.rate_500), ("hang", f.rate_hang), ("malformed", f.rate_malformed), ("empty", f.rate_empty)):
            if u < rate:
                return name
            u -= rate
        return None

    def complete(self, body: dict, chat: bool) -> tuple[dict, str]:
        """(completion JSON, "ok") for a well-formed request body, or (error JSON, "unmatched")."""
        if chat:
            prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        else:
            prompt = body.get("prompt", "")
            prompt = prompt[0] if isinstance(prompt, list) else prompt
        text, match = self.index.answer(prompt, float(body.get("temperature") or 0.0))
        if match == "none":  # `text` says why nothing recorded fits
            return {"error": {"message": text, "type": "invalid_request_error", "code": "unmatched"}}, "unmatched"
        return completion_json(body.get("model", "replay"), text, prompt, chat), "ok"


def completion_json(model: str, text: str, prompt: str, chat: bool, finish: str = "stop") -> dict:
    """A chat or legacy completion response; token counts are 4-characters-per-token estimates."""
    choice = {"index": 0, "finish_reason": finish, "logprobs": None}
    choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
    usage = {"prompt_tokens": len(prompt) // 4 + 1, "completion_tokens": len(text) // 4 + 1}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": f"replay-{time.time_ns()}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


def make_app(replay: Replay):
    """The aiohttp application for a Replay state."""
    from aiohttp import web

    from pst_core.replay import batch_api

    faults = replay.faults

    def respond(obj: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.Response(body=_dumps(obj), status=status, content_type="application/json", headers=headers)

    async def completions(request: web.Request) -> web.Response:
        chat = request.path.endswith("chat/completions")
        replay.arrivals.append(time.monotonic())
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if faults.api_key is not None and given != faults.api_key:
            replay.stats["unauthorized"] += 1
            replay.stats["total"] += 1
            # Echo the key like real endpoints do, so clients must redact it from their errors.
            return respond({"error": {"message": f"Incorrect API key provided: {given}", "type": "invalid_request_error", "code": "invalid_api_key"}}, 401)
        raw = await request.read()
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        fault = replay.fault(raw)
        if fault is not None:
            replay.stats[fault] += 1
            replay.stats["total"] += 1
        if fault == "rate_limited":
            ra = faults.retry_after
            return respond({"error": {"message": "Rate limit reached (replay fault)", "type": "requests", "code": "rate_limit_exceeded"}}, 429, {"Retry-After": f"{ra:g}", "retry-after-ms": f"{ra * 1000:g}"})
        if fault == "server_error":
            return respond({"error": {"message": "The server had an error (replay fault)", "type": "server_error"}}, 500)
        if fault == "hang":
            await asyncio.sleep(faults.hang_s)
            return respond({"error": {"message": "hung (replay fault)"}}, 504)
        if fault == "malformed":
            return web.Response(body=b'{"choices": [{"message": {"content": "trunc', content_type="application/json")
        try:
            body = _loads(raw)
        except ValueError:
            replay.stats["bad_request"] += 1
            replay.stats["total"] += 1
            return respond({"error": {"message": "request body is not JSON", "type": "invalid_request_error"}}, 400)
        obj, outcome = replay.complete(body, chat)
        if fault is None:
            replay.stats[outcome] += 1
            replay.stats["total"] += 1
        if outcome == "unmatched":
            return respond(obj, 404, headers={"X-Replay-Match": "none"})
        if fault == "empty":
            obj["choices"][0]["message" if chat else "text"] = {"role": "assistant", "content": ""} if chat else ""
        return respond(obj, headers={"X-Replay-Match": "recorded"})

    async def models(request: web.Request) -> web.Response:
        return respond({"object": "list", "data": [{"id": "replay", "object": "model", "owned_by": "pst"}]})

    async def stats(request: web.Request) -> web.Response:
        return respond(dict(replay.stats))

    async def reset(request: web.Request) -> web.Response:
        replay.stats.clear()
        replay.arrivals.clear()
        return respond({})

    async def arrivals(request: web.Request) -> web.Response:
        return respond({"arrivals": replay.arrivals})

    app = web.Application(client_max_size=256 * 1024**2)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/stats", stats)
    app.router.add_post("/stats/reset", reset)
    app.router.add_get("/stats/arrivals", arrivals)
    batch_api.add_routes(app, replay)
    return app


class Handle:
    """A running server: its base URL (ending in /v1) and counters."""

    def __init__(self, replay: Replay, port: int) -> None:
        self.replay, self.port = replay, port
        self.url = f"http://127.0.0.1:{port}/v1"

    def stats(self) -> dict:
        return dict(self.replay.stats)

    def reset(self) -> None:
        self.replay.stats.clear()

    def coverage_lines(self) -> list[str]:
        """Per task with known questions: how many of them the records answer (what `serve` prints)."""
        return coverage_lines(self.replay.index)


async def start(replay: Replay, host: str = "127.0.0.1", port: int = 0):
    """Start the app on `port` (0 = a free one); returns (runner, bound port)."""
    from aiohttp import web

    runner = web.AppRunner(make_app(replay), access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


@contextmanager
def running(index: Index, faults: Faults | None = None) -> Iterator[Handle]:
    """Run a replay server on a free port in a background thread for the duration of the block."""
    replay = Replay(index, faults or Faults())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict = {}

    def target() -> None:
        asyncio.set_event_loop(loop)
        box["runner"], box["port"] = loop.run_until_complete(start(replay))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=target, name="pst-replay", daemon=True)
    thread.start()
    ready.wait(10)
    for line in coverage_lines(index):
        log.info("replay teacher: %s", line)
    try:
        yield Handle(replay, box["port"])
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def serve(index: Index, faults: Faults, host: str, port: int) -> None:
    """Serve until interrupted (the CLI's `pst teacher serve-replay`)."""

    async def main() -> None:
        runner, bound = await start(Replay(index, faults), host, port)
        print(f"replay teacher on http://{host}:{bound}/v1 ({len(index)} questions); stats at http://{host}:{bound}/stats", flush=True)
        for line in coverage_lines(index):
            print(f"  {line}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
