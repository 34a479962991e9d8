"""Crash safety and concurrent writers, with harvests in real subprocesses against one replay server."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from pst_core import store, teachers
from pst_core.harvest import rationales
from pst_core.replay import Faults, Index, running, synthetic

N = 300


def start_harvest(root: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PST_DATA_DIR": root, "PST_TEST_KEY": "k"}
    cmd = [sys.executable, "-c", "from pst_core.cli import main; main()", "harvest", "--teacher", "rep", "--task", "synth", "--no-progress", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def replay(store_root: str):
    recs = synthetic.write(store_root, "synth", N)
    with running(Index(recs), Faults(latency_ms=20)) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY", concurrency=8))
        yield h


def settled_total(replay, quiet_s: float = 0.5) -> int:
    """The server's request count once it has stopped moving: a killed client's in-flight
    requests are still served (and counted after the 20 ms latency) after the kill."""
    last, since = replay.stats()["total"], time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        now = replay.stats()["total"]
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_kill_9_at_random_points_then_rerun_sends_only_missing_requests(store_root: str, replay) -> None:
    rng = random.Random(0)
    stored_after_kills = []
    for _ in range(5):
        proc = start_harvest(store_root, "--flush-rows", "8", "--concurrency", "2")  # ~6 s for a full run
        before = stored_after_kills[-1] if stored_after_kills else 0
        deadline = time.monotonic() + 30
        while len(rationales.cached(store_root, "rep", "synth", "train").ok) == before and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for this run's first flush: process start-up time varies with load
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()  # SIGKILL: no cleanup, no final flush
        proc.wait()
        stored_after_kills.append(len(rationales.cached(store_root, "rep", "synth", "train").ok))
    assert stored_after_kills[-1] < N, "the kills came too late to test anything"
    assert len(set(stored_after_kills)) >= 4, stored_after_kills  # each killed run got somewhere
    assert stored_after_kills == sorted(stored_after_kills) and stored_after_kills[-1] > 0  # nothing stored is lost
    missing = N - stored_after_kills[-1]
    before = settled_total(replay)
    proc = start_harvest(store_root)
    assert proc.wait(60) == 0, proc.stderr.read().decode()
    assert replay.stats()["total"] - before == 2 * missing  # two stages per missing row, nothing else
    raw = rationales.read(store_root, deduped=False)
    assert raw.num_rows == len(set(raw["request_key"].to_pylist())) == N
    assert raw["error"].null_count == N


def test_two_concurrent_harvests_read_back_one_row_per_key_and_compact_removes_duplicates(store_root: str, replay) -> None:
    procs = [start_harvest(store_root, "--flush-rows", "32") for _ in range(2)]
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read().decode()
    raw = rationales.read(store_root, deduped=False)
    table = rationales.read(store_root)
    assert table.num_rows == len(set(table["request_key"].to_pylist())) == N
    assert raw.num_rows >= N  # both writers may have stored some keys
    before = {r["request_key"]: r for r in table.to_pylist()}
    (result,) = rationales.compact(store_root)
    assert result.rows_after == N and result.rows_before == raw.num_rows
    after = rationales.read(store_root, deduped=False)
    assert after.num_rows == N and len(store.list_parts(rationales.partition(store_root, "rep", "synth", "train"))) == 1
    assert {r["request_key"]: r for r in after.to_pylist()} == before  # content unchanged
