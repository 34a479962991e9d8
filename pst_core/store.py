"""Parquet store primitives: atomic part files under hive-partitioned folders, on any fsspec root.

Layout: `<root>/<dataset>/<key>=<value>/.../part-<time>-<uuid>.parquet`. Partition columns live
in the folder names only (never inside the files), so `pandas.read_parquet(dir)`,
`pyarrow.dataset(dir, partitioning="hive")` and `datasets.load_dataset("parquet", ...)` all read
the store as-is. On a local disk a part is written under a dot-prefixed temporary name and renamed
when complete, so a crash never leaves a half-written part that readers would see (readers skip
`.`/`_` names). An object store has no rename, but it publishes an object only when its upload
completes (one PUT, or a multipart upload's final commit): a part is serialised in memory first
and uploaded whole, so neither an exception nor a kill mid-write leaves a partial object.
Object-store listings are never cached (`filesystem`): other processes add and remove parts.
Parts are immutable once published, but a writer may replace one of its parts by a larger one
(a new name, then the old one removed) and compaction removes the parts it merged, so a part
listed by a reader can vanish before it is opened: `retry_vanished` reads again from a fresh
listing, which holds the same rows under the new names.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pst_core.errors import DataError

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Reads retried when a listed part vanished meanwhile; each retry lists the folder again. A
# vanished part's rows are always in a part published before it was removed.
VANISHED_RETRIES = 8
T = TypeVar("T")


def filesystem(root: str):
    """Return (fsspec filesystem, path) for a local path or a URI such as s3://bucket/prefix.

    Remote listings are not cached: s3fs would otherwise keep serving a folder listing taken
    before another harvester added a part (or a compaction removed one). Credentials and the
    endpoint come from the client's own environment (AWS_* variables), never from pst.
    """
    import fsspec.core
    from fsspec.utils import get_protocol

    options = {} if get_protocol(str(root)) in ("file", "local") else {"use_listings_cache": False}
    fs, path = fsspec.core.url_to_fs(str(root), **options)
    return fs, path


def is_local(fs: Any) -> bool:
    """True for the local filesystem, where os.replace gives atomic renames."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def check_name(kind: str, value: str) -> str:
    """Reject partition values that would break paths (slashes, '=', leading dots)."""
    if not _SAFE.match(value):
        raise DataError(f"invalid {kind} name {value!r}: use letters, digits, '_', '-' or '.'")
    return value


def partition_path(root: str, dataset: str, **partitions: str) -> str:
    """`<root>/<dataset>/k=v/...` in the order given (values are validated)."""
    parts = [root.rstrip("/"), dataset] + [f"{k}={check_name(k, str(v))}" for k, v in partitions.items()]
    return "/".join(parts)


def new_part_name() -> str:
    """A part file name that sorts by creation time and never collides across processes."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def write_part(directory: str, table: pa.Table, schema: pa.Schema | None = None, name: str | None = None) -> str:
    """Atomically write `table` as one Parquet part in `directory`; returns the final path.

    With `name` given the part replaces any file of that name (idempotent rewrites); otherwise a
    fresh unique name is used (append).
    """
    if schema is not None:
        table = conform(table, schema)
    fs, path = filesystem(directory)
    fs.makedirs(path, exist_ok=True)
    final = f"{path}/{name or new_part_name()}"
    if is_local(fs):
        tmp = f"{path}/.tmp-{uuid.uuid4().hex}.parquet"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        # Never stream into fs.open(): its __exit__ commits the upload even when write_table raised
        # halfway, publishing a truncated part. The whole file is built first, then sent at once.
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        fs.pipe_file(final, sink.getvalue().to_pybytes())
    return final if is_local(fs) else f"{fs.unstrip_protocol(final)}"


def write_bytes(uri: str, data: bytes) -> None:
    """Replace the small file `uri` atomically: temp file + os.replace locally, one PUT on an object store."""
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table` to `schema` (missing nullable columns become nulls)."""
    cols = []
    for field in schema:
        if field.name in table.column_names:
            cols.append(table[field.name].cast(field.type))
        elif field.nullable:
            cols.append(pa.nulls(len(table), field.type))
        else:
            raise DataError(f"missing required column {field.name!r}")
    return pa.Table.from_arrays(cols, schema=schema)


def remove_part(path: str) -> bool:
    """Delete one part file; False when it is already gone (another compaction removed it)."""
    fs, p = filesystem(path)
    try:
        fs.rm(p)
    except FileNotFoundError:
        return False
    return True


def retry_vanished(read: Callable[[], T], retries: int = VANISHED_RETRIES) -> T:
    """Call `read` (which lists parts itself) again when a part it listed vanished before it was read."""
    for attempt in range(retries + 1):
        try:
            return read()
        except FileNotFoundError:
            if attempt == retries:
                raise
            time.sleep(0.01 * (attempt + 1))  # the writer that replaced the part is mid-publish
    raise AssertionError("unreachable")


def read_listed(files: list[str], relist: Callable[[], list[str]], read_one: Callable[[str], T],
                retries: int = VANISHED_RETRIES) -> list[T]:
    """`read_one` of every part in `files`; when some vanished, list again and read the parts not read yet.

    Re-reading everything after each vanished part rarely converges on an object store, where a
    read takes about as long as a busy writer takes to replace its part; reading only the new
    names does. A vanished part's rows are in a part published before it was removed, which the
    fresh listing holds (duplicates of rows already read are for the caller's dedupe).
    """
    done: set[str] = set()
    out: list[T] = []
    pending = list(files)
    for attempt in range(retries + 1):
        gone = False
        for f in pending:
            try:
                out.append(read_one(f))
            except FileNotFoundError:
                gone = True
                continue
            done.add(f)
        if not gone:
            return out
        time.sleep(0.01 * (attempt + 1))
        pending = [f for f in relist() if f not in done]
    raise FileNotFoundError(f"parts kept vanishing after {retries} fresh listings")


def list_parts(directory: str) -> list[str]:
    """Visible part files directly or recursively under `directory`, sorted by name.

    Local paths locally, full URIs (`s3://bucket/...`) on a remote filesystem, so each one names
    its filesystem again through `filesystem(part)`.
    """
    fs, path = filesystem(directory)
    if not fs.exists(path):
        return []
    files = fs.find(path)
    found = sorted(f for f in files if f.endswith(".parquet") and not any(seg.startswith((".", "_")) for seg in f[len(path):].split("/")))
    return found if is_local(fs) else [fs.unstrip_protocol(f) for f in found]


def read_dataset(
    root: str,
    dataset: str,
    schema: pa.Schema,
    partitions: dict[str, pa.DataType] | None = None,
    filters: dict[str, str | list[str] | None] | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read `<root>/<dataset>` with hive partitioning, filtered on partition values.

    `schema` is the file schema and `partitions` the partition columns (name -> type, in folder
    order); the result has file columns then partition columns. An absent dataset reads empty.
    """
    partitions = partitions or {}
    part_schema = pa.schema([(k, t) for k, t in partitions.items()])
    full = pa.schema(list(schema) + list(part_schema))
    fs, path = filesystem(f"{root.rstrip('/')}/{dataset}")
    expr = None
    for key, value in (filters or {}).items():
        if value is None:
            continue
        term = pads.field(key).isin(value) if isinstance(value, (list, tuple, set)) else pads.field(key) == value
        expr = term if expr is None else expr & term

    def read() -> pa.Table:
        if not fs.exists(path) or not list_parts(f"{root.rstrip('/')}/{dataset}"):
            empty = full.empty_table()
            return empty.select(columns) if columns else empty
        ds = pads.dataset(path, filesystem=fs, format="parquet", schema=full, partitioning=pads.partitioning(part_schema, flavor="hive"))
        return ds.to_table(columns=columns, filter=expr)

    try:
        return retry_vanished(read)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {root}/{dataset}: {str(exc).splitlines()[0]}") from None


def preview(path: str, rows: int = 20) -> dict[str, Any]:
    """Schema, row count and first rows of a Parquet file or folder (for `pst inspect` and UI artifacts)."""
    fs, p = filesystem(path)
    if not fs.exists(p):
        raise DataError(f"{path} does not exist")
    ds = pads.dataset(p, filesystem=fs, format="parquet", partitioning="hive")
    head = ds.head(rows)
    return {
        "path": path,
        "num_rows": ds.count_rows(),
        "num_files": len(ds.files),
        "schema": {f.name: str(f.type) for f in ds.schema},
        "head": head.to_pylist(),
    }
