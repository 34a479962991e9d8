"""`pst store ...`: maintenance of the Parquet store (compaction and re-scoring of the rationale request cache)."""

from __future__ import annotations

import typer

from pst_core import settings

store_app = typer.Typer(help="Maintain the store.", no_args_is_help=True)


@store_app.command("compact")
def compact(
    teacher: str = typer.Option(None, "--teacher", help="Only this teacher."),
    task: str = typer.Option(None, "--task", help="Only this task."),
    split: str = typer.Option(None, "--split", help="Only this split."),
) -> None:
    """Merge each rationale partition's part files into one part with one row per request key.

    Every harvest compacts its own partition when it ends; this is for stores written otherwise.
    Rows judged under an older extractor version are judged again on the way (no request sent).
    """
    from pst_core.harvest import rationales

    results = rationales.compact(settings.data_root(), teacher, task, split)
    if not results:
        typer.echo("nothing to compact")
    for r in results:
        rejudged = f"; {r.rejudged} re-judged, {r.changed} flag(s) changed" if r.rejudged else ""
        typer.echo(f"{r.partition}: {r.files_before} file(s), {r.rows_before} rows -> 1 file, {r.rows_after} rows{rejudged}")


@store_app.command("rescore")
def rescore(
    teacher: str = typer.Option(None, "--teacher", help="Only this teacher."),
    task: str = typer.Option(None, "--task", help="Only this task."),
    split: str = typer.Option(None, "--split", help="Only this split."),
) -> None:
    """Judge stored answers again under today's extraction rules and rewrite their partitions.

    Only rows judged under another extractor version are judged (from their stored completion,
    against the examples store); no request is sent. Each partition is rewritten atomically.
    """
    from pst_core.answers import EXTRACTOR_VERSION
    from pst_core.harvest import rationales

    results = rationales.rescore_store(settings.data_root(), teacher, task, split)
    if not results:
        typer.echo("no rationale partitions match")
    for r in results:
        if not r.rewritten:
            state = f"{r.unjudged} row(s) of an older extractor version left as stored (example or prompt kind not found)" if r.unjudged else "up to date"
            typer.echo(f"{r.partition}: {state} (extractor version {EXTRACTOR_VERSION})")
            continue
        flips = "".join(f", {n} {name}" for name, n in sorted(r.flips.items()))
        left = f"; {r.unjudged} left as stored (example or prompt kind not found)" if r.unjudged else ""
        typer.echo(f"{r.partition}: {r.rejudged} row(s) re-judged under extractor version {EXTRACTOR_VERSION}, {r.changed} flag(s) changed{flips}{left}")
    changed = sum(r.changed for r in results)
    if any(r.rewritten for r in results):
        typer.echo(f"{changed} is_correct flag(s) changed in total" + ("; training data built on these rows changes (its fingerprint too)" if changed else ""))


def register(app: typer.Typer) -> None:
    """Add the `store` group to the main app."""
    app.add_typer(store_app, name="store")
