"""The rationale store, which is also the request cache.

`<root>/rationales/teacher=NAME/task=T/split=S/part-*.parquet`, one row per teacher request keyed
by `request_key`. Several processes may write one partition at once, and a failed request that is
retried adds a row beside its earlier error, so the same key can appear in more than one row or
part: every pst reader (`read`, `cached`, `success_digest`) dedupes, preferring a success and then
the latest row, and re-judges rows judged under an older extractor version (`rescore`). A
`Writer` keeps a harvest's rows in few large parts, and `compact` (run at the end of every
harvest, and by `pst store compact`) rewrites a partition as one deduped, re-judged part, so
plain `pandas.read_parquet` sees one row per key too. A key stored with a success is never
requested again (see `cached`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pst_core import answers, schemas, store
from pst_core.errors import DataError
from pst_core.harvest import rescore

DATASET = "rationales"
# A writer's part is sealed (no longer rewritten on each flush) at this many rows or bytes: a
# harvest of a few thousand questions is one part, and each flush rewrites at most this much.
PART_ROWS = 4096
PART_BYTES = 16 << 20


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
    one part of results (`PART_ROWS`), which a rerun requests again once the file is moved away.
    """
    try:
        yield
    except FileNotFoundError:  # replaced or merged since it was listed: `store.retry_vanished` lists again
        raise
    except UNREADABLE as exc:
        bad = unreadable_part(files)
        what = f"part file {bad} is not a readable rationale part" if bad else "the rationale store cannot be read"
        detail = str(exc).splitlines()[0].split("': ")[-1][:120]  # pyarrow repeats the path first
        raise DataError(f"{what} ({detail}); move it out of the store and rerun (its requests are sent again)") from None


def where(directory: str) -> tuple[str, str, str, str]:
    """(root, teacher, task, split) of a partition folder `<root>/rationales/teacher=../task=../split=..`."""
    segments = directory.rstrip("/").split("/")
    values = dict(seg.split("=", 1) for seg in segments[-3:] if "=" in seg)
    if segments[-4:-3] != [DATASET] or set(values) != {"teacher", "task", "split"}:
        raise DataError(f"{directory} is not a rationale partition folder (<root>/{DATASET}/teacher=T/task=T/split=S)")
    return "/".join(segments[:-4]), values["teacher"], values["task"], values["split"]


def _read(directory: str, files: list[str], columns: list[str], filter: pc.Expression | None = None) -> pa.Table:
    """`columns` of these parts of `directory` (old parts lacking a newer column read it as nulls).

    All at once; when a listed part vanished meanwhile (a writer replaced it, a compaction merged
    it), part by part from fresh listings instead (`store.read_listed`).
    """
    fs, _ = store.filesystem(directory)

    def scan(parts: list[str]) -> pa.Table:
        with readable(parts):
            ds = pads.dataset([store.filesystem(f)[1] for f in parts], format="parquet", filesystem=fs, schema=schemas.RATIONALES)
            return ds.to_table(columns=columns, filter=filter)

    try:
        return scan(files)
    except FileNotFoundError:
        tables = store.read_listed(files, lambda: store.list_parts(directory), lambda f: scan([f]))
        return pa.concat_tables(tables) if tables else schemas.RATIONALES.empty_table().select(columns)


def judged(directory: str) -> tuple[pa.Table, int]:
    """One partition's (request_key, error, is_correct, created_at), one row per key, judged by today's rules.

    Reads the small columns only; the completion texts only of rows judged under another
    extractor version, which are judged again in memory (the store is not changed). Returns the
    table and how many rows were re-judged.
    """
    root, _, task, split = where(directory)

    def load() -> tuple[pa.Table, int]:
        files = store.list_parts(directory)
        narrow = ["request_key", "error", "is_correct", "extractor_version", "created_at"]
        if not files:
            return schemas.RATIONALES.empty_table().select(narrow), 0
        table = dedupe(_read(directory, files, narrow))
        if not rescore.count_stale(table):
            return table, 0
        keys = table.filter(rescore.stale(table))["request_key"].combine_chunks()
        stale = dedupe(_read(directory, files, ["request_key", "created_at", *rescore.COLUMNS], pc.field("request_key").isin(keys)))
        done = rescore.rejudge(stale, root, task, split)
        flags = dict(zip(done.table["request_key"].to_pylist(), done.table["is_correct"].to_pylist()))
        correct = [flags.get(k, c) for k, c in zip(table["request_key"].to_pylist(), table["is_correct"].to_pylist())]
        return table.set_column(table.schema.get_field_index("is_correct"), "is_correct", pa.array(correct, pa.bool_())), done.rejudged

    return store.retry_vanished(load)


@dataclass
class Cached:
    """What the store already holds for a partition: successful keys and their correctness."""

    ok: dict[str, bool | None]  # request_key -> is_correct (by today's extraction rules), successes only
    failed: set[str]  # keys stored only with an error (they are sent again)
    rejudged: int = 0  # successes judged under an older extractor version, re-judged on this read


def cached(root: str, teacher: str, task: str, split: str) -> Cached:
    """Read the keys of a partition (small columns only; texts only of rows to re-judge)."""
    table, rejudged = judged(partition(root, teacher, task, split))
    success = pc.is_null(table["error"])
    good = table.filter(success)
    ok = dict(zip(good["request_key"].to_pylist(), good["is_correct"].to_pylist()))
    failed = set(table.filter(pc.invert(success))["request_key"].to_pylist())
    return Cached(ok, failed, rejudged)


def partition_folders(directory: str) -> list[str]:
    """The partition folders holding parts under `directory` (a partition, a teacher's folder, the whole store)."""
    fs, _ = store.filesystem(directory)
    parents = sorted({f.rsplit("/", 1)[0] for f in store.list_parts(directory)})
    return parents if store.is_local(fs) else [fs.unstrip_protocol(p) for p in parents]


def success_digest(directory: str) -> str:
    """sha256 of the successful (request_key, is_correct) pairs under a rationale folder ("empty" if none).

    What stages that read successes depend on: a new rationale, or a flag changed by today's
    extraction rules, changes it, while an error row appended when a failed request is retried
    (and fails again) does not, so nothing retrains.
    """
    pairs: set[tuple[str, bool | None]] = set()
    for folder in partition_folders(directory):
        table, _ = judged(folder)
        good = table.filter(pc.is_null(table["error"]))
        pairs.update(zip(good["request_key"].to_pylist(), good["is_correct"].to_pylist()))
    if not pairs:
        return "empty"
    digest = hashlib.sha256()
    for key, correct in sorted(pairs, key=lambda kv: (kv[0], str(kv[1]))):
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
    """Read rationales (filtered on partitions), one row per request key judged by today's rules.

    `deduped=False` returns every stored row as stored (the raw parts, for inspection).
    """
    table = store.read_dataset(root, DATASET, schemas.RATIONALES, schemas.RATIONALES_PARTITIONS, {"teacher": teacher, "task": task, "split": split})
    if deduped:
        table = rescore.rejudge(dedupe(table), root).table
    return table.select(columns) if columns else table


class Writer:
    """Buffers result rows and keeps them on disk in few, large parts.

    Every `flush_rows` rows or `flush_s` seconds the buffered rows reach disk: the open part is
    written again, atomically and under a new name, with every row it holds so far, and only
    then is its previous version removed. So a crash (even kill -9) loses at most the rows of
    the last `flush_s` seconds, readers always see every flushed row (for a moment twice, which
    `dedupe` hides), and a harvest leaves one part per `part_rows` rows or `part_bytes` bytes,
    not one per flush. Rows are stamped with the extractor version that judged them.
    """

    def __init__(self, root: str, teacher: str, task: str, split: str, flush_rows: int = 256, flush_s: float = 1.0, *,
                 part_rows: int = PART_ROWS, part_bytes: int = PART_BYTES) -> None:
        self.directory = partition(root, teacher, task, split)
        self.flush_rows, self.flush_s = flush_rows, flush_s
        self.part_rows, self.part_bytes = part_rows, part_bytes
        self.rows: list[dict] = []  # buffered, not on disk yet
        self.written = 0
        self.parts: list[str] = []  # this writer's parts now on disk (sealed ones, then the open one)
        self._open: pa.Table | None = None  # rows of the open part
        self._last = time.monotonic()

    def add(self, row: dict) -> None:
        """Queue one row; flushes when the buffer is full or old."""
        self.rows.append(row)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self._last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows into the open part (a no-op when empty); seals it when it is full."""
        self._last = time.monotonic()
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        stamped = [{"extractor_version": answers.EXTRACTOR_VERSION, **r} for r in rows]
        table = pa.Table.from_pylist(stamped, schema=schemas.RATIONALES)
        segment = table if self._open is None else pa.concat_tables([self._open, table])
        try:
            path = store.write_part(self.directory, segment)
        except BaseException:
            self.rows = rows + self.rows  # still buffered: the next flush tries again
            raise
        if self._open is not None:
            store.remove_part(self.parts.pop())  # every row of it is in the new part
        self.parts.append(path)
        self.written += len(rows)
        full = segment.num_rows >= self.part_rows or segment.nbytes >= self.part_bytes
        self._open = None if full else segment


def partitions(root: str) -> list[str]:
    """Every partition folder of the rationale store."""
    fs, path = store.filesystem(f"{root.rstrip('/')}/{DATASET}")
    if not fs.exists(path):
        return []
    found = fs.glob(f"{path}/teacher=*/task=*/split=*")
    return sorted(f if store.is_local(fs) else fs.unstrip_protocol(f) for f in found if fs.isdir(f))


@dataclass
class CompactResult:
    """What `compact` or `rescore` did to one partition."""

    partition: str
    files_before: int
    rows_before: int
    rows_after: int
    rejudged: int = 0  # rows judged again under today's extraction rules
    changed: int = 0  # ... whose is_correct flag changed
    unjudged: int = 0  # rows of an older extractor version that could not be judged (example or prompt kind gone)
    rewritten: bool = True  # False: the partition was already one deduped, current part
    flips: dict[str, int] = field(default_factory=dict)  # "false->true" etc. -> rows


def _load_parts(directory: str) -> tuple[list[str], pa.Table]:
    """(parts read, their rows) of a partition; a part that vanished meanwhile was merged or
    replaced by another writer into a part that is not in this listing, so it is skipped."""
    fs, _ = store.filesystem(directory)
    files = store.list_parts(directory)
    read, tables = [], []
    with readable(files):  # a damaged part stops compaction before anything is deleted
        for f in files:
            try:
                with fs.open(store.filesystem(f)[1], "rb") as fh:
                    tables.append(store.conform(pq.read_table(fh), schemas.RATIONALES))
            except FileNotFoundError:
                continue
            read.append(f)
    return read, pa.concat_tables(tables) if tables else schemas.RATIONALES.empty_table()


def compact_partition(directory: str, *, only_stale: bool = False) -> CompactResult | None:
    """Merge a partition's parts into one deduped part with today's judgements; then delete its inputs.

    With `only_stale` (rescoring) a partition without rows of an older extractor version is left
    as it is. Parts written meanwhile by a running harvest are not among the inputs and stay.
    """
    root, _, task, split = where(directory)
    shape = store.retry_vanished(lambda: _shape(directory))
    if shape is None:
        return None
    n_files, rows, keys, stale = shape
    if not stale and (only_stale or (n_files == 1 and rows == keys)):  # nothing to do: the texts are never read
        return CompactResult(directory, n_files, rows, keys, rewritten=False)
    files, merged = _load_parts(directory)
    if not files:
        return None
    before = dedupe(merged)
    done = rescore.rejudge(before, root, task, split)
    result = CompactResult(directory, len(files), merged.num_rows, before.num_rows, done.rejudged, done.changed, done.unjudged, flips=_flips(before, done.table))
    if len(files) == 1 and before.num_rows == merged.num_rows and not done.rejudged:
        result.rewritten = False
        return result
    sort = pc.sort_indices(done.table, sort_keys=[("created_at", "ascending"), ("request_key", "ascending")])
    store.write_part(directory, done.table.take(sort), schemas.RATIONALES)
    fs, _ = store.filesystem(directory)
    for f in files:  # already gone when another compaction merged it too: its rows are in our part as well
        try:
            fs.rm(store.filesystem(f)[1])
        except FileNotFoundError:
            pass
    return result


def _shape(directory: str) -> tuple[int, int, int, int] | None:
    """(parts, rows, distinct keys, stale rows among them) of a partition from its small columns; None when empty."""
    files = store.list_parts(directory)
    if not files:
        return None
    table = _read(directory, files, ["request_key", "error", "extractor_version", "created_at"])
    kept = dedupe(table)
    return len(files), table.num_rows, kept.num_rows, rescore.count_stale(kept)


def _flips(before: pa.Table, after: pa.Table) -> dict[str, int]:
    """How many is_correct flags went from each value to each other ("false->true": 12)."""
    out: dict[str, int] = {}
    for old, new in zip(before["is_correct"].to_pylist(), after["is_correct"].to_pylist()):
        if old != new:
            name = f"{str(old).lower()}->{str(new).lower()}"
            out[name] = out.get(name, 0) + 1
    return out


def _matching(root: str, teacher: str | None, task: str | None, split: str | None) -> list[str]:
    """The partition folders of the filter (directly when all three are given)."""
    if teacher and task and split:
        directory = partition(root, teacher, task, split)
        return [directory] if store.list_parts(directory) else []
    out = []
    for directory in partitions(root):
        _, *values = where(directory)
        if all(want is None or have == want for have, want in zip(values, (teacher, task, split))):
            out.append(directory)
    return out


def compact(root: str, teacher: str | None = None, task: str | None = None, split: str | None = None) -> list[CompactResult]:
    """Compact every matching partition of the rationale store (the end of each harvest compacts its own)."""
    return [r for d in _matching(root, teacher, task, split) if (r := compact_partition(d)) is not None]


def rescore_store(root: str, teacher: str | None = None, task: str | None = None, split: str | None = None) -> list[CompactResult]:
    """Re-judge every matching partition holding rows of an older extractor version, rewriting it atomically.

    No request is sent: the stored completions are judged again against the examples store.
    """
    return [r for d in _matching(root, teacher, task, split) if (r := compact_partition(d, only_stale=True)) is not None]
