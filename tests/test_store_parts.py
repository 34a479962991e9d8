"""Few, large rationale parts: a writer rewrites its open part instead of adding one per flush,
rotates at a row or byte cap, loses nothing flushed, and readers survive parts that vanish."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from pst_core import store
from pst_core.errors import DataError
from pst_core.harvest import rationales

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def row(i: int, error: str | None = None, key: str | None = None) -> dict:
    return {"request_key": key or f"k{i:04d}", "example_id": f"e{i}", "sample_index": 0, "rationale": f"because {i}" if error is None else None,
            "error": error, "is_correct": None if error else True, "created_at": T0 + timedelta(seconds=i)}


def part_dir(root: str) -> str:
    return rationales.partition(root, "t", "task", "train")


def test_a_slow_harvest_leaves_one_part_not_one_per_flush(store_root: str) -> None:
    w = rationales.Writer(store_root, "t", "task", "train", flush_rows=1)  # a flush per row: one result a second
    for i in range(60):
        w.add(row(i))
        if i in (0, 29, 59):  # every flushed row is on disk after each flush, once
            keys = rationales.read(store_root, deduped=False)["request_key"].to_pylist()
            assert sorted(keys) == [f"k{j:04d}" for j in range(i + 1)]
    assert len(store.list_parts(part_dir(store_root))) == 1 and w.written == 60 and w.parts == store.list_parts(part_dir(store_root))


def test_parts_rotate_at_the_row_cap_and_at_the_byte_cap(store_root: str, tmp_path) -> None:
    w = rationales.Writer(store_root, "t", "task", "train", flush_rows=10, part_rows=100)
    for i in range(251):
        w.add(row(i))
    w.flush()
    sizes = sorted(pq.ParquetFile(p).metadata.num_rows for p in store.list_parts(part_dir(store_root)))
    assert sizes == [51, 100, 100]
    other = str(tmp_path / "other")
    w = rationales.Writer(other, "t", "task", "train", flush_rows=10, part_bytes=1)  # every flush is a full part
    for i in range(30):
        w.add(row(i))
    assert len(store.list_parts(part_dir(other))) == 3


def test_a_failed_flush_keeps_its_rows_and_the_previous_part(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    w = rationales.Writer(store_root, "t", "task", "train", flush_rows=100)
    w.add(row(0))
    w.flush()
    real = store.write_part
    monkeypatch.setattr(store, "write_part", lambda *a, **k: (_ for _ in ()).throw(OSError("No space left on device")))
    w.add(row(1))
    with pytest.raises(OSError):
        w.flush()
    assert rationales.read(store_root)["request_key"].to_pylist() == ["k0000"]
    monkeypatch.setattr(store, "write_part", real)
    w.flush()  # the disk has room again: nothing was lost
    assert sorted(rationales.read(store_root, deduped=False)["request_key"].to_pylist()) == ["k0000", "k0001"]


def test_readers_read_again_when_a_listed_part_vanished_but_name_a_damaged_one(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    w = rationales.Writer(store_root, "t", "task", "train")
    for i in range(5):
        w.add(row(i, error="timeout" if i == 4 else None))
    w.flush()
    real = store.list_parts
    stale = {"left": 0}

    def listing(directory: str) -> list[str]:  # a listing taken just before a writer replaced a part
        parts = real(directory)
        if stale["left"] and parts:
            stale["left"] -= 1
            return parts + [f"{parts[0].rsplit('/', 1)[0]}/part-0-replaced.parquet"]
        return parts

    monkeypatch.setattr(store, "list_parts", listing)
    reads = {  # name -> (read, what it must return)
        "cached": (lambda: len(rationales.cached(store_root, "t", "task", "train").ok), 4),
        "digest": (lambda: rationales.success_digest(part_dir(store_root)) != "empty", True),
        "compact": (lambda: rationales.compact(store_root)[0].rows_after, 5),
    }
    for name, (call, expected) in reads.items():
        stale["left"] = 2
        assert call() == expected, name
    monkeypatch.setattr(store, "list_parts", real)
    with open(f"{part_dir(store_root)}/part-zz-copied.parquet", "wb") as fh:  # a damaged part is still one error, not a retry
        fh.write(b"not parquet")
    with pytest.raises(DataError, match="part-zz-copied.parquet"):
        rationales.cached(store_root, "t", "task", "train")


def test_a_writer_and_repeated_compactions_together_lose_no_row(store_root: str) -> None:
    w = rationales.Writer(store_root, "t", "task", "train", flush_rows=3, part_rows=20)
    done = threading.Event()
    errors: list[BaseException] = []

    def compact_repeatedly() -> None:
        while not done.is_set():
            try:
                rationales.compact(store_root)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    thread = threading.Thread(target=compact_repeatedly)
    thread.start()
    try:
        for i in range(200):
            w.add(row(i, error="timeout" if i % 7 == 0 else None))
            if i % 7 == 0:  # the retried request succeeds later
                w.add(row(i))
        w.flush()
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    table = rationales.read(store_root)
    assert table.num_rows == 200 and table["error"].null_count == 200  # one row per key, each success beats its error
    rationales.compact(store_root)
    assert len(os.listdir(part_dir(store_root))) == 1 and rationales.read(store_root, deduped=False).num_rows == 200


def test_a_harvest_ends_with_one_part_that_pandas_reads_as_one_row_per_key(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from pst_core import teachers
    from pst_core.harvest import HarvestConfig, harvest
    from pst_core.replay import Faults, Index, running, synthetic

    monkeypatch.setenv("PST_TEST_KEY", "k")
    recs = synthetic.write(store_root, "synth", 40)
    cfg = HarvestConfig(teacher="rep", task="synth", flush_rows=4, max_attempts=1)
    for faults in (Faults(rate_500=0.3, seed=3), Faults()):  # a run with failures, then the rerun that retries them
        with running(Index(recs), faults) as h:
            teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY"), replace=True)
            first = harvest(cfg, store_root)
        assert len(store.list_parts(rationales.partition(store_root, "rep", "synth", "train"))) == 1
    assert first.failed == 0
    df = pd.read_parquet(rationales.partition(store_root, "rep", "synth", "train"))
    assert len(df) == df["request_key"].nunique() == 40 and df["error"].isna().all()
