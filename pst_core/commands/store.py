"""`pst store ...`: maintenance of the Parquet store (compaction of the rationale request cache)."""

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
    """Merge each rationale partition's small part files into one deduped part (content unchanged)."""
    from pst_core.harvest import rationales

    results = rationales.compact(settings.data_root(), teacher, task, split)
    if not results:
        typer.echo("nothing to compact")
    for r in results:
        typer.echo(f"{r.partition}: {r.files_before} file(s), {r.rows_before} rows -> 1 file, {r.rows_after} rows")


def register(app: typer.Typer) -> None:
    """Add the `store` group to the main app."""
    app.add_typer(store_app, name="store")
