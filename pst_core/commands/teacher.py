"""`pst teacher ...`: register OpenAI-compatible teachers and serve the offline replay teacher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pst_core import hooks, settings
from pst_core.errors import PstError

teacher_app = typer.Typer(help="Register teacher endpoints (teachers.yaml under the store root).", no_args_is_help=True)
# Teachers `pst teacher add` is saving in this process: a failed announcement of one fails the command.
_adding: set[str] = set()


def _event_failed(name: str, message: str, **_: Any) -> None:
    """Hook "teacher_event_failed" (fired by an orchestrator that could not deliver the new-teacher event):
    while `pst teacher add` saves `name`, its one line becomes the command's error and exit status."""
    if name in _adding:
        raise PstError(message)


@teacher_app.command("add")
def add(
    name: str = typer.Argument(..., help="Teacher name (used in store partitions)."),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible base URL, e.g. https://api.openai.com/v1."),
    model: str = typer.Option(..., "--model", help="Model name sent with each request."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable that holds the key (read at call time)."),
    rpm: float = typer.Option(0, "--rpm", help="Requests per minute (0 = unlimited)."),
    tpm: float = typer.Option(0, "--tpm", help="Tokens per minute (0 = unlimited)."),
    concurrency: int = typer.Option(64, "--concurrency", help="Requests in flight."),
    price_in: float = typer.Option(0, "--price-in", help="Price per 1M prompt tokens."),
    price_out: float = typer.Option(0, "--price-out", help="Price per 1M completion tokens."),
    timeout_s: float = typer.Option(60, "--timeout", help="Per-request timeout (s)."),
    max_attempts: int = typer.Option(5, "--max-attempts", help="Attempts for retryable errors."),
    endpoint: str = typer.Option("chat", "--endpoint", help="chat or completions (legacy)."),
    mode: str = typer.Option("online", "--mode", help="Default harvest mode: online or batch."),
    http: str = typer.Option("aiohttp", "--http", help="HTTP path: aiohttp (lean) or openai (SDK)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing teacher of that name."),
) -> None:
    """Register a teacher (no key is stored: only the name of its environment variable). With a Prefect
    server configured it is announced there; when that fails the teacher stays saved and the command
    exits non-zero with one line saying what to run instead."""
    from pst_core import teachers

    cfg = teachers.TeacherConfig(
        name=name, base_url=base_url, model=model, api_key_env=api_key_env, rpm=rpm, tpm=tpm, concurrency=concurrency,
        price_in=price_in, price_out=price_out, timeout_s=timeout_s, max_attempts=max_attempts, endpoint=endpoint, mode=mode, http=http,
    )
    hooks.subscribe("teacher_event_failed", _event_failed)
    _adding.add(name)
    try:
        teachers.add(settings.data_root(), cfg, replace=replace)
    finally:
        _adding.discard(name)
    typer.echo(f"teacher {name!r} saved to {settings.data_root()}/teachers.yaml (key read from ${api_key_env} at call time)")


TEACHER_COLUMNS = [("name", "name"), ("base_url", "base_url"), ("model", "model"), ("api_key_env", "key env"), ("rpm", "rpm"),
                   ("tpm", "tpm"), ("concurrency", "concurrency"), ("price", "price in/out"), ("endpoint", "endpoint"), ("mode", "mode")]


@teacher_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print every teacher's stored config as JSON.")) -> None:
    """Show the registered teachers (full names and URLs, whatever the terminal width)."""
    from pst_core import teachers
    from pst_core.commands.listing import Column, emit

    found = teachers.load_all(settings.data_root())
    if as_json:
        emit([t.public() for t in found.values()], [], as_json=True)
        return
    if not found:
        typer.echo("no teachers yet: run `pst teacher add NAME --base-url URL --model MODEL`")
        return
    rows = [{**t.public(), "rpm": f"{t.rpm:g}", "tpm": f"{t.tpm:g}", "price": f"{t.price_in:g}/{t.price_out:g}"} for t in found.values()]
    emit(rows, [Column(key, header) for key, header in TEACHER_COLUMNS])


@teacher_app.command("remove")
def remove(name: str = typer.Argument(..., help="Teacher to remove (its stored rationales stay).")) -> None:
    """Remove a teacher from the registry."""
    from pst_core import teachers

    teachers.remove(settings.data_root(), name)
    typer.echo(f"teacher {name!r} removed")


@teacher_app.command("serve-replay")
def serve_replay(
    records: Path = typer.Option(None, "--records", help="Datasets folder (default: PST_DATASETS_DIR) or a records file (JSON Lines or a JSON list; see README)."),
    task: list[str] = typer.Option(None, "--task", help="Tasks to load from the datasets folder (repeatable; default: all recorded)."),
    teacher_model: str = typer.Option(None, "--teacher-model", help="Only records of text-davinci-002 or palm-540b."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", help="Port (0 = a free one)."),
    latency_ms: float = typer.Option(0, "--latency-ms", help="Added latency per request."),
    rate_429: float = typer.Option(0, "--rate-429", help="Fraction answered 429 with Retry-After."),
    retry_after: float = typer.Option(1.0, "--retry-after", help="Retry-After seconds of the 429s."),
    rate_500: float = typer.Option(0, "--rate-500", help="Fraction answered 500 (batch: failed lines)."),
    rate_hang: float = typer.Option(0, "--rate-hang", help="Fraction that hang for --hang-s."),
    hang_s: float = typer.Option(30, "--hang-s", help="How long a hang lasts."),
    rate_malformed: float = typer.Option(0, "--rate-malformed", help="Fraction answered with malformed JSON."),
    rate_empty: float = typer.Option(0, "--rate-empty", help="Fraction answered with empty content."),
    batch_delay_s: float = typer.Option(0.2, "--batch-delay", help="Seconds until a batch completes."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fault draws."),
) -> None:
    """Serve recorded teacher outputs over the OpenAI API (offline teacher for tests, benches, quickstart)."""
    from pst_core.errors import ConfigError
    from pst_core.replay import Faults, load, serve

    source = records or settings.datasets_dir()
    if source is None:
        raise ConfigError("no records: pass --records DATASETS_DIR or set PST_DATASETS_DIR")
    faults = Faults(latency_ms, rate_429, retry_after, rate_500, rate_hang, hang_s, rate_malformed, rate_empty, seed, batch_delay_s)
    serve(load(source, task or None, teacher_model), faults, host, port)


def register(app: typer.Typer) -> None:
    """Add the `teacher` group to the main app."""
    app.add_typer(teacher_app, name="teacher")
