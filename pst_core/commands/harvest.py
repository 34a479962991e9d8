"""`pst harvest`: ask a registered teacher for rationales of a task split (cached per request)."""

from __future__ import annotations

import json

import typer

from pst_core import settings


def harvest(
    teacher: str = typer.Option(..., "--teacher", help="Registered teacher (pst teacher list)."),
    task: str = typer.Option(..., "--task", help="Task in the example store."),
    split: str = typer.Option("train", "--split"),
    prompt: str = typer.Option("zs_cot", "--prompt", help="zs_cot, few_shot_cot or rationalize."),
    samples: int = typer.Option(1, "--samples", help="Samples per question (needs --temperature > 0 when > 1)."),
    temperature: float = typer.Option(0.0, "--temperature"),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Max rationale tokens."),
    limit: int = typer.Option(0, "--limit", help="Only the first N examples (0 = all)."),
    mode: str = typer.Option("", "--mode", help="online or batch (default: the teacher's mode)."),
    rpm: float = typer.Option(None, "--rpm", help="Override the teacher's requests/min."),
    tpm: float = typer.Option(None, "--tpm", help="Override the teacher's tokens/min."),
    concurrency: int = typer.Option(None, "--concurrency", help="Override the teacher's concurrency."),
    max_attempts: int = typer.Option(None, "--max-attempts", help="Override attempts per request."),
    timeout_s: float = typer.Option(None, "--timeout", help="Override the per-request timeout (s)."),
    poll_s: float = typer.Option(10.0, "--poll", help="Batch mode: seconds between polls."),
    flush_rows: int = typer.Option(256, "--flush-rows", help="Write a part file every N results (and at least every second)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Harvest rationales into data/rationales/teacher=NAME/task=T/split=S (each request sent once, ever)."""
    import logging

    from pst_core.harvest import HarvestConfig
    from pst_core.harvest import harvest as run

    logging.getLogger("pst.harvest").setLevel(logging.WARNING)
    cfg = HarvestConfig(
        teacher=teacher, task=task, split=split, prompt=prompt, samples=samples, temperature=temperature, max_tokens=max_tokens,
        limit=limit, mode=mode, rpm=rpm, tpm=tpm, concurrency=concurrency, max_attempts=max_attempts, timeout_s=timeout_s, poll_s=poll_s, flush_rows=flush_rows,
        progress=not no_progress,
    )
    bar = None

    def progress(done: int, total: int, summary) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="row", desc=f"{teacher}/{task}/{split}", dynamic_ncols=True, initial=summary.cache_hits)
        bar.set_postfix_str(f"sent={summary.sent} failed={summary.failed}", refresh=False)
        bar.update(done - bar.n)

    try:
        summary = run(cfg, settings.data_root(), progress if cfg.progress and not as_json else None)
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
