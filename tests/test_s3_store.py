"""The Parquet store on a real S3-compatible server (moto on 127.0.0.1): atomic parts without rename."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_server import S3
from typer.testing import CliRunner

from pst_core import examples, store
from pst_core.harvest import rationales

pytestmark = pytest.mark.slow


def _keys(s3: S3, root: str) -> list[str]:
    prefix = root.split("/", 3)[3] + "/"
    return sorted(s3.objects(prefix))


def test_a_part_whose_write_fails_halfway_publishes_no_object(s3_server: S3, s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pq.write_table

    def half_then_fail(table, where, **kw):  # some bytes reach the sink, then the disk/network/Ctrl-C strikes
        real(table.slice(0, 1), where, **kw)
        raise OSError("connection reset")

    monkeypatch.setattr(pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="connection reset"):
        store.write_part(f"{s3_root}/x", pa.table({"a": list(range(100))}))
    monkeypatch.setattr(pq, "write_table", real)
    assert _keys(s3_server, s3_root) == [] and store.list_parts(f"{s3_root}/x") == []
    path = store.write_part(f"{s3_root}/x", pa.table({"a": [1, 2]}))
    assert path.startswith("s3://") and store.list_parts(f"{s3_root}/x") == [path]
    assert store.read_dataset(s3_root, "x", pa.schema([("a", pa.int64())]))["a"].to_pylist() == [1, 2]


WRITER = """
import sys, time, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from pst_core import store

def slow_write(table, where, **kw):  # a slow serialiser (a big part on a busy CPU): many writes over 0.4 s
    writer = pq.ParquetWriter(where, table.schema, **kw)
    for batch in table.to_batches(max_chunksize=5_000):
        writer.write_batch(batch)
        time.sleep(0.02)
    writer.close()  # the footer: only a part written to the end is a Parquet file

pq.write_table = slow_write
rng = np.random.default_rng(int(sys.argv[2]))
while True:
    store.write_part(sys.argv[1], pa.table({"i": np.arange(100_000), "x": rng.random(100_000)}))
    print("wrote", flush=True)
"""


def _check_parts(s3: S3, directory: str, seen: dict[str, int], bad: list[str]) -> None:
    """Read every object under `directory` as a plain S3 client sees it (no pst code): each must be a
    whole Parquet file (a partial upload has no footer); one deleted after listing is fine."""
    client, prefix = s3.client(), directory.split("/", 3)[3] + "/"
    for obj in client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", []):
        if obj["Key"] in seen:
            continue
        try:
            body = client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read()
        except client.exceptions.NoSuchKey:
            continue
        try:
            seen[obj["Key"]] = pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any unreadable object is the failure under test
            bad.append(f"{obj['Key']} ({len(body)} bytes): {exc}")


def test_writers_interrupted_or_killed_mid_upload_never_leave_a_part_a_reader_cannot_read(s3_server: S3, s3_root: str) -> None:
    directory = f"{s3_root}/big"
    seen: dict[str, int] = {}
    bad: list[str] = []
    stop = threading.Event()

    def read_while_writing() -> None:
        while not stop.is_set():
            _check_parts(s3_server, directory, seen, bad)
            time.sleep(0.02)

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    signals = [signal.SIGINT, signal.SIGKILL, signal.SIGINT]  # Ctrl-C (Python unwinds, `with` blocks close) and kill -9
    rng = random.Random(0)
    try:
        for round_, sig in enumerate(signals):
            proc = subprocess.Popen([sys.executable, "-c", WRITER, directory, str(round_)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env=os.environ.copy())
            assert proc.stdout.readline().strip() == b"wrote"  # started, and one whole part is up
            time.sleep(rng.uniform(0.0, 0.4))  # somewhere inside the next part
            proc.send_signal(sig)
            proc.wait(60)
    finally:
        stop.set()
        reader.join()
    _check_parts(s3_server, directory, seen, bad)
    assert not bad, bad
    assert len(seen) >= len(signals) and set(seen.values()) == {100_000}  # each whole: never a shorter table either


def test_a_writer_and_repeated_compactions_on_s3_lose_no_row(s3_root: str) -> None:
    w = rationales.Writer(s3_root, "t", "task", "train", flush_rows=10, part_rows=40)
    done, errors = threading.Event(), []

    def compact_repeatedly() -> None:
        while not done.is_set():
            try:
                rationales.compact(s3_root)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return

    thread = threading.Thread(target=compact_repeatedly)
    thread.start()
    try:
        for i in range(120):
            w.add({"request_key": f"k{i:04d}", "example_id": f"e{i}", "sample_index": 0, "rationale": "r", "error": None})
        w.flush()
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    assert rationales.read(s3_root).num_rows == 120
    rationales.compact(s3_root)
    assert len(store.list_parts(rationales.partition(s3_root, "t", "task", "train"))) == 1
    assert rationales.read(s3_root, deduped=False).num_rows == 120


def test_write_split_replaces_parts_of_another_writer_version_and_pst_reads_the_s3_store(s3_root: str) -> None:
    from pst_core.cli import app

    rows = [examples.Example(examples.make_id("addsub", i), "addsub", "train", f"q{i}?", str(i), "number", [], None, "test", i) for i in range(3)]
    directory = store.partition_path(s3_root, "examples", task="addsub", split="train")
    store.write_part(directory, examples.to_table(rows[:1]))  # a part under an older naming scheme
    examples.write_split(s3_root, "addsub", "train", rows)
    assert [p.rsplit("/", 1)[1] for p in store.list_parts(directory)] == [examples.PART_NAME]
    assert examples.counts(s3_root) == {("addsub", "train"): 3}
    result = CliRunner().invoke(app, ["inspect", f"{s3_root}/examples", "--json", "-n", "2"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["num_rows"] == 3 and len(info["head"]) == 2 and info["head"][0]["task"] == "addsub"
    listed = CliRunner().invoke(app, ["data", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == [{"task": "addsub", "split": "train", "rows": 3}]
