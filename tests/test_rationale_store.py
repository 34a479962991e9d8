"""The rationale store: dedupe on read (success first, then latest), cache keys, compaction."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pst_core import schemas, store
from pst_core.errors import DataError
from pst_core.harvest import rationales

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def row(key: str, second: int, error: str | None = None, text: str = "r") -> dict:
    return {"request_key": key, "example_id": f"e-{key}", "sample_index": 0, "rationale": text, "error": error, "is_correct": error is None, "created_at": T0 + timedelta(seconds=second)}


def write(root: str, rows: list[dict], part_rows: int = rationales.PART_ROWS) -> None:
    w = rationales.Writer(root, "t", "task", "train", flush_rows=2, part_rows=part_rows)
    for r in rows:
        w.add(r)
    w.flush()


def test_read_prefers_success_then_latest_row(store_root: str) -> None:
    write(store_root, [row("a", 1, text="old"), row("a", 2, text="new"), row("b", 3, text="ok"), row("b", 4, error="timeout"), row("c", 5, error="http_500")])
    got = {r["request_key"]: r for r in rationales.read(store_root).to_pylist()}
    assert got["a"]["rationale"] == "new" and got["b"]["rationale"] == "ok" and got["c"]["error"] == "http_500"
    cache = rationales.cached(store_root, "t", "task", "train")
    assert set(cache.ok) == {"a", "b"} and cache.failed == {"c"}


def test_cached_reads_only_key_columns_of_an_empty_partition(store_root: str) -> None:
    cache = rationales.cached(store_root, "t", "task", "train")
    assert cache.ok == {} and cache.failed == set()


def test_compact_merges_parts_without_changing_content(store_root: str) -> None:
    rows = [row(k, i, error="timeout" if i % 3 == 0 else None) for i, k in enumerate("abcdefgha")]
    write(store_root, rows, part_rows=2)
    directory = rationales.partition(store_root, "t", "task", "train")
    before = sorted(map(str, rationales.read(store_root).to_pylist()))
    assert len(store.list_parts(directory)) == 5
    (result,) = rationales.compact(store_root)
    assert result.files_before == 5 and result.rows_before == 9 and result.rows_after == 8
    assert len(store.list_parts(directory)) == 1
    assert sorted(map(str, rationales.read(store_root).to_pylist())) == before
    assert rationales.compact(store_root)[0].files_before == 1  # idempotent


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 50), st.booleans()), min_size=1, max_size=40))
def test_dedupe_keeps_one_row_per_key_preferring_success_then_latest(entries) -> None:
    rows = [row(k, s, None if ok else "err", text=f"{k}{s}{ok}") for k, s, ok in entries]
    table = rationales.dedupe(pa.Table.from_pylist(rows, schema=schemas.RATIONALES))
    got = {r["request_key"]: r for r in table.to_pylist()}
    assert table.num_rows == len(got) == len({k for k, _, _ in entries})
    for key, r in got.items():
        mine = [e for e in entries if e[0] == key]
        best = max(mine, key=lambda e: (e[2], e[1]))
        assert (r["error"] is None) == best[2] and r["created_at"] == T0 + timedelta(seconds=best[1])


def test_damaged_part_is_one_error_naming_it_and_compaction_deletes_nothing(store_root: str) -> None:
    write(store_root, [row("a", 1), row("b", 2), row("c", 3)])
    directory = rationales.partition(store_root, "t", "task", "train")
    bad = f"{directory}/part-zz-copied.parquet"
    with open(bad, "wb") as fh:
        fh.write(b"not parquet")
    before = sorted(os.listdir(directory))
    for call in (lambda: rationales.cached(store_root, "t", "task", "train"), lambda: rationales.compact(store_root)):
        with pytest.raises(DataError) as err:
            call()
        assert "part-zz-copied.parquet" in str(err.value) and "\n" not in str(err.value)
    assert sorted(os.listdir(directory)) == before  # nothing written or removed
