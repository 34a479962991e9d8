"""The rationale store, which is also the request cache.

`<root>/rationales/teacher=NAME/task=T/split=S/part-*.parquet`, one row per teacher request keyed
by `request_key`. Writers only ever add small atomic parts (several processes may write the same
partition at once), so the same key can appear more than once: every read dedupes, preferring a
success and then the latest row, and `compact` rewrites a partition's parts as one deduped part.
A key stored with a success is never requested again (see `cached`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pst_core import schemas, store
from pst_core.errors import DataError

DATASET = "rationales"


def partition(root: str, teacher: str, task: str, split: str) -> str:
    """The partition folder of one (teacher, task, split)."""
    return store.partition_path(root, DATASET, teacher=teacher, task=task, split=split)


# What pyarrow raises for a file that is not Parquet, is truncated, or has incompatible columns.
UNREADABLE = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError)


def unreadable_part(files: list[str]) -> str | None:
    """The first of `files` whose Parquet footer or schema cannot be read (None when all can)."""
    for f in files:
        fs, path = store.filesystem(f)
        try:
            with fs.open(path, "rb") as fh:
                store.conform(pq.ParquetFile(fh).schema_arrow.empty_table(), schemas.RATIONALES)
        except (*UNREADABLE, DataError):
            return f
    return None


@contextmanager
def readable(files: list[str]) -> Iterator[None]:
    """Turn a pyarrow failure on a damaged part into one DataError that names the file.

    pst writes parts atomically, so a damaged one was copied or edited by hand; it holds at most
    one flush of results, which a rerun requests again once the file is moved away.
    """
    try:
        yield
    except UNREADABLE as exc:
        bad = unreadable_part(files)
        what = f"part file {bad} is not a readable rationale part" if bad else "the rationale store cannot be read"
        detail = str(exc).splitlines()[0].split("': ")[-1][:120]  # pyarrow repeats the path first
        raise DataError(f"{what} ({detail}); move it out of the store and rerun (its requests are sent again)") from None


@dataclass
class Cached:
    """What the store already holds for a partition: successful keys and their correctness."""

    ok: dict[str, bool | None]  # request_key -> is_correct, successes only
    failed: set[str]  # keys stored only with an error (they are sent again)


def cached(root: str, teacher: str, task: str, split: str) -> Cached:
    """Read the keys of a partition (three small columns only, never the texts)."""
    files = store.list_parts(partition(root, teacher, task, split))
    if not files:
        return Cached({}, set())
    fs, _ = store.filesystem(files[0])
    paths = [store.filesystem(f)[1] for f in files]
    with readable(files):
        table = pads.dataset(paths, format="parquet", filesystem=fs, schema=schemas.RATIONALES).to_table(columns=["request_key", "error", "is_correct"])
    success = pc.is_null(table["error"])
    good = table.filter(success)
    ok = dict(zip(good["request_key"].to_pylist(), good["is_correct"].to_pylist()))
    failed = set(table.filter(pc.invert(success))["request_key"].to_pylist()) - ok.keys()
    return Cached(ok, failed)


def success_digest(directory: str) -> str:
    """sha256 of the successful (request_key, is_correct) pairs under a rationale folder ("empty" if none).

    What stages that read successes depend on: a new rationale changes it, while an error row
    appended when a failed request is retried (and fails again) does not, so nothing retrains.
    """
    files = store.list_parts(directory)
    if not files:
        return "empty"
    fs, _ = store.filesystem(files[0])
    with readable(files):
        table = pads.dataset([store.filesystem(f)[1] for f in files], format="parquet", filesystem=fs, schema=schemas.RATIONALES).to_table(
            columns=["request_key", "is_correct"], filter=pc.field("error").is_null()
        )
    pairs = sorted(set(zip(table["request_key"].to_pylist(), table["is_correct"].to_pylist())), key=lambda kv: (kv[0], str(kv[1])))
    digest = hashlib.sha256()
    for key, correct in pairs:
        digest.update(f"{key}:{correct}\n".encode())
    return digest.hexdigest()


def dedupe(table: pa.Table) -> pa.Table:
    """One row per request key (per partition when partition columns are present): a success wins, then the latest."""
    if table.num_rows == 0:
        return table
    by = [c for c in ("teacher", "task", "split") if c in table.column_names] + ["request_key"]
    work = table.append_column("_ok", pc.is_null(table["error"])).append_column("_i", pa.array(range(table.num_rows)))
    order = pc.sort_indices(work, sort_keys=[(c, "ascending") for c in by] + [("_ok", "descending"), ("created_at", "descending"), ("_i", "descending")])
    work = work.take(order)
    keep = None
    for c in by:  # a row starts a new group when any key column differs from the previous row
        col = work[c].combine_chunks()
        diff = pc.not_equal(col.slice(1), col.slice(0, len(col) - 1)).fill_null(True)
        keep = diff if keep is None else pc.or_(keep, diff)
    mask = pa.concat_arrays([pa.array([True]), keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep])
    return work.filter(mask).drop_columns(["_ok", "_i"])


def read(root: str, teacher: str | list[str] | None = None, task: str | list[str] | None = None, split: str | list[str] | None = None, *, columns: list[str] | None = None, deduped: bool = True) -> pa.Table:
    """Read rationales (filtered on partitions), one row per request key unless `deduped=False`."""
    table = store.read_dataset(root, DATASET, schemas.RATIONALES, schemas.RATIONALES_PARTITIONS, {"teacher": teacher, "task": task, "split": split})
    if deduped:
        table = dedupe(table)
    return table.select(columns) if columns else table


class Writer:
    """Buffers result rows and flushes them as small atomic parts (every `flush_rows` rows or `flush_s` seconds)."""

    def __init__(self, root: str, teacher: str, task: str, split: str, flush_rows: int = 256, flush_s: float = 1.0) -> None:
        self.directory = partition(root, teacher, task, split)
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.rows: list[dict] = []
        self.written = 0
        self.parts: list[str] = []
        self._last = time.monotonic()

    def add(self, row: dict) -> None:
        """Queue one row; flushes when the buffer is full or old."""
        self.rows.append(row)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one part (a no-op when empty)."""
        self._last = time.monotonic()
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        table = pa.Table.from_pylist(rows, schema=schemas.RATIONALES)
        self.parts.append(store.write_part(self.directory, table))
        self.written += len(rows)


def partitions(root: str) -> list[str]:
    """Every partition folder of the rationale store."""
    fs, path = store.filesystem(f"{root.rstrip('/')}/{DATASET}")
    if not fs.exists(path):
        return []
    found = fs.glob(f"{path}/teacher=*/task=*/split=*")
    return sorted(f if store.is_local(fs) else fs.unstrip_protocol(f) for f in found if fs.isdir(f))


@dataclass
class CompactResult:
    """What `compact` did to one partition."""

    partition: str
    files_before: int
    rows_before: int
    rows_after: int


def compact_partition(directory: str) -> CompactResult | None:
    """Merge a partition's parts into one deduped part: write the merged part, then delete its inputs."""
    files = store.list_parts(directory)
    if not files:
        return None
    fs, _ = store.filesystem(files[0])
    tables = []
    with readable(files):  # a damaged part stops compaction before anything is deleted
        for f in files:
            with fs.open(store.filesystem(f)[1], "rb") as fh:
                tables.append(store.conform(pq.read_table(fh), schemas.RATIONALES))
    merged = pa.concat_tables(tables)
    deduped = dedupe(merged)
    if len(files) == 1 and deduped.num_rows == merged.num_rows:
        return CompactResult(directory, 1, merged.num_rows, merged.num_rows)
    sort = pc.sort_indices(deduped, sort_keys=[("created_at", "ascending"), ("request_key", "ascending")])
    store.write_part(directory, deduped.take(sort), schemas.RATIONALES)
    for f in files:  # parts written meanwhile by a running harvest are not in `files` and stay
        fs.rm(store.filesystem(f)[1])
    return CompactResult(directory, len(files), merged.num_rows, deduped.num_rows)


def compact(root: str, teacher: str | None = None, task: str | None = None, split: str | None = None) -> list[CompactResult]:
    """Compact every matching partition of the rationale store."""
    results = []
    for directory in partitions(root):
        values = dict(seg.split("=", 1) for seg in directory.rstrip("/").split("/")[-3:])
        if any(want is not None and values[k] != want for k, want in (("teacher", teacher), ("task", task), ("split", split))):
            continue
        result = compact_partition(directory)
        if result is not None:
            results.append(result)
    return results
