"""`pst data ...`: prepare task splits into the example store and list what is there."""

from __future__ import annotations

import typer

from pst_core import settings

data_app = typer.Typer(help="Prepare and list the example store.", no_args_is_help=True)


@data_app.command("list")
def list_() -> None:
    """Show every (task, split) in the example store with its row count."""
    from rich.console import Console
    from rich.table import Table

    from pst_core import examples

    counts = examples.counts(settings.data_root())
    table = Table("task", "split", "rows", title=f"examples in {settings.data_root()}")
    for (task, split), n in counts.items():
        table.add_row(task, split, str(n))
    Console().print(table if counts else "no examples yet: run `pst data prepare --task TASK`")


def register(app: typer.Typer) -> None:
    """Add the `data` group to the main app."""
    app.add_typer(data_app, name="data")
