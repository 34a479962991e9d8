"""Concurrent and killed harvesters against one S3 prefix (moto on 127.0.0.1): the exactly-once
guarantee of tests/test_harvest_crash.py holds without rename, and no credential is ever stored."""

from __future__ import annotations

import random
import time

import pytest
from s3_server import KEY_ID, S3, SECRET
from test_harvest_crash import settled_total, start_harvest

from pst_core import store, teachers
from pst_core.harvest import rationales
from pst_core.replay import Faults, Index, running, synthetic

pytestmark = pytest.mark.slow
N = 200


@pytest.fixture
def replay(s3_root: str):
    recs = synthetic.write(s3_root, "synth", N)
    with running(Index(recs), Faults(latency_ms=20)) as h:
        teachers.add(s3_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY", concurrency=8))
        yield h


def _no_secret_in(s3: S3, root: str) -> None:
    prefix = root.split("/", 3)[3] + "/"
    for key, body in s3.objects(prefix).items():
        assert SECRET.encode() not in body and KEY_ID.encode() not in body, key


def test_kill_9_of_s3_harvests_then_rerun_sends_only_missing_requests(s3_server: S3, s3_root: str, replay) -> None:
    rng = random.Random(1)
    stored = []
    for _ in range(3):
        proc = start_harvest(s3_root, "--flush-rows", "8", "--concurrency", "2")
        before = stored[-1] if stored else 0
        deadline = time.monotonic() + 60
        while len(rationales.cached(s3_root, "rep", "synth", "train").ok) == before and time.monotonic() < deadline:
            time.sleep(0.1)  # this run's first flush reached the bucket
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait()
        stored.append(len(rationales.cached(s3_root, "rep", "synth", "train").ok))
    assert 0 < stored[-1] < N and stored == sorted(stored) and len(set(stored)) == 3, stored  # nothing stored is lost
    before = settled_total(replay)
    proc = start_harvest(s3_root)
    assert proc.wait(120) == 0, proc.stderr.read().decode()
    assert replay.stats()["total"] - before == 2 * (N - stored[-1])  # two stages per missing row, nothing else
    raw = rationales.read(s3_root, deduped=False)  # the harvest ended by compacting: one row per key, as stored
    assert raw.num_rows == len(set(raw["request_key"].to_pylist())) == N and raw["error"].null_count == N
    _no_secret_in(s3_server, s3_root)


def test_two_concurrent_s3_harvests_store_each_key_once_after_compaction(s3_server: S3, s3_root: str, replay) -> None:
    procs = [start_harvest(s3_root, "--flush-rows", "32") for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read().decode()
    table = rationales.read(s3_root)
    assert table.num_rows == len(set(table["request_key"].to_pylist())) == N
    before = {r["request_key"]: r for r in table.to_pylist()}
    rationales.compact(s3_root)
    after = rationales.read(s3_root, deduped=False)
    assert after.num_rows == N and len(store.list_parts(rationales.partition(s3_root, "rep", "synth", "train"))) == 1
    assert {r["request_key"]: r for r in after.to_pylist()} == before  # content unchanged
    cached = settled_total(replay)
    proc = start_harvest(s3_root)  # a third harvest finds every key stored: it sends nothing
    assert proc.wait(120) == 0, proc.stderr.read().decode()
    assert replay.stats()["total"] == cached
    _no_secret_in(s3_server, s3_root)
