"""Listings that stay readable anywhere: a table on a wide terminal, blocks on a narrow one, tabs in a pipe.

Identifiers (teacher, task and model names, URLs, ids, hashes) are never cut. A terminal table
shows every identifier column at its full width and lets only prose columns (descriptions) wrap;
when that does not fit the terminal, each row becomes a block of `field  value` lines. Piped
output is one header line and one line per row, columns separated by tabs (`cut -f2`, `awk -F'\\t'`,
`column -t -s$'\\t'`). `--json` prints the same rows as a list of objects.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer

# Narrowest a wrapping prose column may get before the table gives way to blocks.
PROSE_MIN_WIDTH = 16


@dataclass(frozen=True)
class Column:
    """One field of a listing: its key in each row, its header, and whether it is prose that may wrap."""

    key: str
    header: str
    prose: bool = False


def is_terminal() -> bool:
    """True when stdout is a terminal (tests patch this to render the terminal layouts)."""
    return sys.stdout.isatty()


def cell(value: Any) -> str:
    """A value as one line of text (newlines and tabs would break rows)."""
    if value is None:
        return "-"
    return str(value).replace("\r\n", "⏎").replace("\n", "⏎").replace("\t", " ")


def tsv(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Header line plus one tab-separated line per row."""
    lines = ["\t".join(c.header for c in columns)]
    lines += ["\t".join(cell(r.get(c.key)) for c in columns) for r in rows]
    return "\n".join(lines)


def blocks(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Each row as its first field on a line, then `  field  value` lines (any width, nothing cut)."""
    width = max(len(c.header) for c in columns[1:]) if len(columns) > 1 else 0
    out = []
    for r in rows:
        out.append(cell(r.get(columns[0].key)))
        out += [f"  {c.header.ljust(width)}  {cell(r.get(c.key))}" for c in columns[1:]]
    return "\n".join(out)


def table_width(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> int:
    """Columns a rich table needs with identifiers unbroken and prose at its minimum width."""
    widths = []
    for c in columns:
        if c.prose:
            widths.append(PROSE_MIN_WIDTH)
        else:  # headers may wrap at spaces, values may not
            header = max(len(word) for word in c.header.split())
            widths.append(max([header, *(len(cell(r.get(c.key))) for r in rows)]))
    return sum(widths) + 3 * len(columns) + 1  # "│ " + " │" borders and one space of padding each side


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[Column], as_json: bool = False, title: str | None = None) -> None:
    """Print `rows` as JSON, tab-separated lines (not a terminal), a table or blocks (narrow terminal)."""
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2, default=str))
        return
    if not is_terminal():
        typer.echo(tsv(rows, columns))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if table_width(rows, columns) > console.width:
        if title:
            typer.echo(title)
        typer.echo(blocks(rows, columns))
        return
    table = Table(title=title)
    for c in columns:
        # An identifier column is as wide as its longest value, so rich shrinks only prose.
        widest = max((len(cell(r.get(c.key))) for r in rows), default=0)
        table.add_column(c.header, no_wrap=not c.prose, overflow="fold", min_width=None if c.prose else widest)
    for r in rows:
        table.add_row(*(Text(cell(r.get(c.key))) for c in columns))  # Text: a "[...]" value is not markup
    console.print(table)
