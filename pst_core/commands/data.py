"""`pst data ...`: prepare task splits into the example store and list what is there."""

from __future__ import annotations

import typer

from pst_core import settings

data_app = typer.Typer(help="Prepare and list the example store.", no_args_is_help=True)


@data_app.command("prepare")
def prepare(
    task: list[str] = typer.Option(None, "--task", "-t", help="Task to prepare (repeatable); see `pst data tasks`."),
    all_tasks: bool = typer.Option(False, "--all", help="Prepare every registered task."),
    datasets_dir: str = typer.Option(None, "--datasets-dir", help="Offline datasets folder (default: PST_DATASETS_DIR or ../shared/datasets)."),
    source: str = typer.Option("local", "--source", help="local | hub | generated."),
    seed: int = typer.Option(0, "--seed", help="Seed of validation carve-out, seeded splits and generators."),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction", help="Share of train held out as validation."),
    generated_size: int = typer.Option(500, "--generated-size", help="Rows for generated tasks when no files exist."),
) -> None:
    """Write train/validation/test of each task to data/examples/task=T/split=S/."""
    from rich.console import Console
    from rich.table import Table

    from pst_core.errors import ConfigError
    from pst_core.prepare import PrepareConfig, prepare_task
    from pst_core.tasks import TASKS, get_task

    names = TASKS.names() if all_tasks else list(task or [])
    if not names:
        raise ConfigError("name at least one --task TASK, or use --all")
    for name in names:
        get_task(name)  # unknown names fail before any work
    cfg = PrepareConfig(datasets_dir, source, validation_fraction, seed, generated_size)
    root = settings.data_root()
    table = Table("task", "train", "validation", "test", title=f"prepared into {root}/examples")
    notes = []
    for name in names:
        counts = prepare_task(name, cfg, root)
        table.add_row(name, *(str(counts[s]) for s in ("train", "validation", "test")))
        notes += [f"{name} {s}: {why}" for s, why in get_task(name).missing_note.items() if counts[s] == 0]
    console = Console()
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note[/yellow] {note}")


@data_app.command("tasks")
def tasks(as_json: bool = typer.Option(False, "--json", help="Print the tasks as JSON.")) -> None:
    """List the registered tasks with answer type, Hub id and description."""
    from pst_core.commands.listing import Column, emit
    from pst_core.tasks import TASKS

    rows = []
    for name in TASKS:
        spec = TASKS.get(name)
        rows.append({"task": name, "answer_type": spec.answer_type, "hub_id": spec.hub_id, "description": spec.description})
    emit(rows, [Column("task", "task"), Column("answer_type", "answer type"), Column("hub_id", "hub id"),
                Column("description", "description", prose=True)], as_json=as_json)


@data_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print the (task, split, rows) counts as JSON.")) -> None:
    """Show every (task, split) in the example store with its row count."""
    from pst_core import examples
    from pst_core.commands.listing import Column, emit

    root = settings.data_root()
    rows = [{"task": task, "split": split, "rows": n} for (task, split), n in examples.counts(root).items()]
    if not rows and not as_json:
        typer.echo("no examples yet: run `pst data prepare --task TASK`")
        return
    emit(rows, [Column("task", "task"), Column("split", "split"), Column("rows", "rows")], as_json=as_json, title=f"examples in {root}")


def register(app: typer.Typer) -> None:
    """Add the `data` group to the main app."""
    app.add_typer(data_app, name="data")
