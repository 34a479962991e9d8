"""The `pst` command line: one module per stage (`pst_core.commands.*`, plus `flows.commands`).

Each command module exposes `register(app)`. User errors (`PstError`) print one line and exit 2.
"""

from __future__ import annotations

import importlib
import json
import sys

import typer

from pst_core.errors import PstError

app = typer.Typer(
    name="pst",
    help="Distil reasoning from teacher LLMs into small students with Post-Semantic-Thinking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command modules, in pipeline order; each adds its commands or sub-groups to `app`.
# Modules outside pst_core (the Prefect side, `flows.commands`) are optional: skipped when
# their dependencies are not installed, so the library CLI works without Prefect.
COMMAND_MODULES = ["pst_core.commands.data", "pst_core.commands.teacher", "pst_core.commands.harvest", "pst_core.commands.store", "pst_core.commands.embed", "pst_core.commands.train", "pst_core.commands.evaluate", "pst_core.commands.export"]
OPTIONAL_COMMAND_MODULES: list[str] = ["flows.commands"]


@app.command()
def inspect(
    path: str = typer.Argument(..., help="A Parquet file or folder of the store (local path or URI)."),
    rows: int = typer.Option(5, "--rows", "-n", help="How many rows to show."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Print schema, row count and the first rows of any Parquet artifact."""
    from pst_core import store

    info = store.preview(path, rows=rows)
    if as_json:
        typer.echo(json.dumps(info, default=str, indent=2))
        return
    from pst_core.commands.listing import Column, blocks, emit

    typer.echo(f"{info['path']}: {info['num_rows']} rows in {info['num_files']} file(s)")
    emit([{"column": name, "type": typ} for name, typ in info["schema"].items()], [Column("column", "column"), Column("type", "type")])
    # One block per row (`column  value` lines): a store row has too many columns for a table at any width.
    heads = [{"__row__": f"row {i}", **{c: _short(r.get(c)) for c in info["schema"]}} for i, r in enumerate(info["head"], 1)]
    if heads:
        typer.echo(f"\nfirst {len(heads)} rows")
        typer.echo(blocks(heads, [Column("__row__", "row"), *(Column(c, c) for c in info["schema"])]))


def _short(value: object, width: int = 60) -> str:
    """One preview value on one line: prose and lists (rationales, vectors) are cut at `width`,
    identifiers (one word: ids, hashes, names, URLs) never are."""
    text = str(value).replace("\n", "⏎")
    prose = isinstance(value, (list, tuple, dict)) or any(ch.isspace() for ch in text)
    return text if len(text) <= width or not prose else text[: width - 1] + "…"


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)
for _name in OPTIONAL_COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ImportError:
        continue
    _module.register(app)


def main() -> None:
    """Console entry point: run the app, turning user errors into one clear line."""
    try:
        app()
    except PstError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
