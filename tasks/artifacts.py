"""UI artifacts: a preview table for every Parquet output, Markdown metrics, harvest progress.

Artifacts are what users open in the Prefect UI to check a stage without a shell: the preview
shows the first rows, the row count, the schema and the path of a store partition (the same facts
as `pst inspect`, from `pst_core.store.preview`). Keys must be lowercase letters, digits and
dashes, so they are derived from the path by `artifact_key`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from pst_core import store

PREVIEW_ROWS = 20
CELL_CHARS = 160  # long rationales would make the table unreadable; the path leads to the rest
KEY_CHARS = 100


def artifact_key(*parts: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) from free text such as a path."""
    text = "-".join(p for p in parts if p)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[-KEY_CHARS:].strip("-") or "pst"


def cell(value: Any) -> Any:
    """One table cell: scalars as-is, vectors summarised, long text truncated."""
    if isinstance(value, (list, tuple)):
        if len(value) > 8 and all(isinstance(v, (int, float)) for v in value[:8]):
            return f"[{', '.join(f'{v:.4g}' for v in value[:4])}, ... ({len(value)} values)]"
        value = str(list(value))
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > CELL_CHARS:
        return value[: CELL_CHARS - 1] + "…"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def preview_table(path: str, rows: int = PREVIEW_ROWS) -> tuple[list[dict[str, Any]], str]:
    """(table rows, Markdown description with path, row count and schema) for a Parquet path."""
    info = store.preview(path, rows=rows)
    table = [{k: cell(v) for k, v in row.items()} for row in info["head"]]
    schema = "\n".join(f"| `{name}` | `{typ}` |" for name, typ in info["schema"].items())
    description = (
        f"**{info['path']}**: {info['num_rows']} rows in {info['num_files']} file(s); "
        f"first {len(table)} shown.\n\n| column | type |\n|---|---|\n{schema}"
    )
    return table, description


def publish_preview(path: str, key: str | None = None) -> str:
    """Create a table artifact previewing the Parquet file or folder at `path`; returns the key."""
    key = key or artifact_key("preview", path.rstrip("/").split("/data/")[-1])
    table, description = preview_table(path)
    create_table_artifact(table=table, key=key, description=description)
    return key


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of dict rows (floats to 4 significant digits)."""
    if not rows:
        return "_no rows_"
    columns = list(columns or rows[0].keys())
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)).replace("|", "\\|") for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def publish_metrics(title: str, rows: Sequence[dict[str, Any]], key: str | None = None, note: str = "") -> str:
    """Create a Markdown artifact holding a metrics table; returns the key."""
    key = key or artifact_key("metrics", title)
    body = f"# {title}\n\n{markdown_table(rows)}\n" + (f"\n{note}\n" if note else "")
    create_markdown_artifact(markdown=body, key=key, description=title)
    return key


def progress_reporter(key: str, description: str, min_interval_s: float = 1.0) -> Callable[[int, int], None]:
    """A `callback(done, total)` that keeps one progress artifact up to date (throttled).

    Updates are rate-limited because each one is an API call; the final 100 % always goes out.
    """
    artifact_id = create_progress_artifact(progress=0.0, key=key, description=description)
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < min_interval_s:
            return
        last[0] = now
        percent = 100.0 * done / total if total else 100.0
        update_progress_artifact(artifact_id=artifact_id, progress=percent, description=f"{description}: {done}/{total}")

    return report
