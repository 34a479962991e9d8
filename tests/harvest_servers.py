"""Test helpers: 127.0.0.1 teacher servers a harvest test can kill and start again, and that record what they got.

`Served` runs any aiohttp application on a fixed port in a background thread; `kill()` closes
its socket and drops open connections (as a dead `llama-server` would), `start()` brings it back
on the same port. `scripted_app` is an OpenAI-compatible teacher whose reply to each request a
test writes as a function, and which keeps every request body it received.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable

from aiohttp import web

# (request body, chat?) -> reply: a dict sent as JSON with status 200, or raw bytes
Reply = Callable[[dict, bool], "dict | bytes"]


def completion(text, chat: bool, model: str = "m", **extra) -> dict:
    """A well-formed reply carrying `text` (any JSON value: tests pass malformed ones too)."""
    choice = {"index": 0, "finish_reason": "stop", **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
    return {"object": "chat.completion", "model": model, "choices": [choice], "usage": {"prompt_tokens": 5, "completion_tokens": 3}, **extra}


def prompt_of(body: dict, chat: bool) -> str:
    """The text a request asked about (the user message or the legacy prompt)."""
    return body["messages"][-1]["content"] if chat else body["prompt"]


def scripted_app(reply: Reply, received: list[dict]) -> web.Application:
    """An OpenAI-compatible app answering with `reply`, appending each request body to `received`."""

    async def completions(request: web.Request) -> web.Response:
        chat = request.path.endswith("chat/completions")
        body = json.loads(await request.read())
        received.append(body)
        out = reply(body, chat)
        return web.Response(body=out if isinstance(out, bytes) else json.dumps(out).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    return app


class Served:
    """An aiohttp app on 127.0.0.1 in a thread, which a test can kill and restart on the same port."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self.make_app, self.port, self.runner = make_app, 0, None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-teacher", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> None:
        self.runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def start(self) -> Served:
        """Listen (again) on the server's port (a free one the first time)."""
        self._call(self._start())
        return self

    def kill(self) -> None:
        """Stop listening and drop every open connection, like a killed server."""
        if self.runner is not None:
            self._call(self.runner.cleanup())
            self.runner = None

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def pst(root: str, *args: str) -> subprocess.Popen:
    """`pst ARGS` in a subprocess on store `root` (stdout and stderr piped, text mode)."""
    env = {**os.environ, "PST_DATA_DIR": root, "PST_TEST_KEY": "k"}
    cmd = [sys.executable, "-c", "from pst_core.cli import main; main()", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
