"""`pst harvest`: ask a registered teacher for rationales of a task split (cached per request).

A teacher that stops answering ends the command with one `error:` line (exit 2) and Ctrl-C with
one `interrupted:` line (exit 130); both say what is stored and the command that resumes.
"""

from __future__ import annotations

import json
import logging
import sys

import typer

from pst_core import settings


class _WarningLine(logging.Handler):
    """Prints each harvest warning as one `warning:` line on stderr (above the progress bar)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(f"warning: {record.getMessage()}", file=sys.stderr)


def harvest(
    teacher: str = typer.Option(..., "--teacher", help="Registered teacher (pst teacher list)."),
    task: str = typer.Option(..., "--task", help="Task in the example store."),
    split: str = typer.Option("train", "--split"),
    prompt: str = typer.Option("zs_cot", "--prompt", help="zs_cot, few_shot_cot or rationalize."),
    samples: int = typer.Option(1, "--samples", help="Samples per question (needs --temperature > 0 when > 1)."),
    temperature: float = typer.Option(0.0, "--temperature"),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Max rationale tokens."),
    answer_max_tokens: int = typer.Option(32, "--answer-max-tokens", help="Max tokens of the Zero-shot-CoT answer (stage 2)."),
    limit: int = typer.Option(0, "--limit", help="Only the first N examples (0 = all)."),
    mode: str = typer.Option("", "--mode", help="online or batch (default: the teacher's mode)."),
    rpm: float = typer.Option(None, "--rpm", help="Override the teacher's requests/min."),
    tpm: float = typer.Option(None, "--tpm", help="Override the teacher's tokens/min."),
    concurrency: int = typer.Option(None, "--concurrency", help="Override the teacher's concurrency."),
    max_attempts: int = typer.Option(None, "--max-attempts", help="Override attempts per request."),
    timeout_s: float = typer.Option(None, "--timeout", help="Override the per-request timeout (s)."),
    max_connection_failures: int = typer.Option(16, "--max-connection-failures", help="Stop after this many consecutive connection failures (at least the concurrency; 0 = never)."),
    poll_s: float = typer.Option(10.0, "--poll", help="Batch mode: seconds between polls."),
    flush_rows: int = typer.Option(256, "--flush-rows", help="Write a part file every N results (and at least every second)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Harvest rationales into data/rationales/teacher=NAME/task=T/split=S (each request sent once, ever)."""
    from pst_core.harvest import HarvestConfig
    from pst_core.harvest import harvest as run

    logger = logging.getLogger("pst.harvest")
    logger.setLevel(logging.WARNING)  # the summary is printed below; only warnings go out live
    if not any(isinstance(h, _WarningLine) for h in logger.handlers):
        logger.addHandler(_WarningLine())
    cfg = HarvestConfig(
        teacher=teacher, task=task, split=split, prompt=prompt, samples=samples, temperature=temperature, max_tokens=max_tokens,
        answer_max_tokens=answer_max_tokens, limit=limit, mode=mode, rpm=rpm, tpm=tpm, concurrency=concurrency, max_attempts=max_attempts,
        timeout_s=timeout_s, max_connection_failures=max_connection_failures, poll_s=poll_s, flush_rows=flush_rows, progress=not no_progress,
    )
    bar = None

    def progress(done: int, total: int, summary) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="question", desc=f"{teacher}/{task}/{split}", dynamic_ncols=True, initial=summary.cache_hits)
        bar.set_postfix_str(f"sent={summary.sent} failed={summary.failed}", refresh=False)
        bar.update(done - bar.n)

    try:
        summary = run(cfg, settings.data_root(), progress if cfg.progress and not as_json else None)
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.close()
            bar = None
        typer.secho(str(exc) or "interrupted", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), default=str, indent=2))
    else:
        for line in summary.lines():
            typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add `pst harvest` to the main app."""
    app.command("harvest")(harvest)
