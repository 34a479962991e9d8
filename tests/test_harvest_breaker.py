"""A teacher that dies mid-harvest: the circuit breaker stops at once with one line, Ctrl-C likewise, and a rerun completes.

Real 127.0.0.1 servers: `pst teacher serve-replay` in a subprocess stopped with SIGTERM, and an
in-thread replay app whose socket is closed mid-run; harvests run as `pst harvest` subprocesses
where the exit status and the printed line matter.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from harvest_servers import Served, pst

from pst_core import teachers
from pst_core.errors import ConfigError
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.harvest.harvester import HarvestInterrupted, TeacherStopped
from pst_core.harvest.summary import resume_command
from pst_core.replay import Faults, Index, synthetic
from pst_core.replay.server import Replay, make_app

N = 300
STORED = re.compile(r"(\d+)/(\d+) questions stored \((\d+) before this run, (\d+) new successes, (\d+) new failures\), (\d+) not attempted")


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")


def register(root: str, url: str, **kw) -> None:
    teachers.add(root, teachers.TeacherConfig(name="rep", base_url=url, model="m", api_key_env="PST_TEST_KEY", **kw), replace=True)


def stored_rows(root: str) -> list[dict]:
    """Every row in the part files (not deduplicated): what a harvest really wrote."""
    return rationales.read(root, deduped=False).to_pylist() if rationales.partitions(root) else []


def wait_for_rows(root: str, at_least: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(rationales.cached(root, "rep", "synth", "train").ok) < at_least:
        assert time.monotonic() < deadline, "the harvest stored nothing in time"
        time.sleep(0.05)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def resume(root: str, line: str) -> subprocess.Popen:
    """Run the command the stop line says resumes the harvest."""
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[:2] == ["pst", "harvest"]
    return pst(root, *command[1:], "--no-progress")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_replay(records: str, port: int) -> subprocess.Popen:
    """`pst teacher serve-replay` on `port`, once it answers."""
    proc = subprocess.Popen([sys.executable, "-c", "from pst_core.cli import main; main()", "teacher", "serve-replay", "--records", records,
                             "--port", str(port), "--latency-ms", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "serve-replay did not start"
            time.sleep(0.1)


def test_teacher_stopped_with_sigterm_ends_the_harvest_with_one_line_and_a_rerun_stores_every_question_once(store_root: str, tmp_path) -> None:
    records = str(synthetic.dump(synthetic.write(store_root, "synth", N), tmp_path / "records.jsonl"))
    port = free_port()
    server = serve_replay(records, port)
    register(store_root, f"http://127.0.0.1:{port}/v1", concurrency=4)
    proc = pst(store_root, "harvest", "--teacher", "rep", "--task", "synth", "--no-progress", "--flush-rows", "8")
    try:
        wait_for_rows(store_root, 16)
        server.send_signal(signal.SIGTERM)  # as a user stops llama-server
        server.wait(10)
        killed_at = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        for p in (proc, server):
            if p.poll() is None:
                p.kill()
    assert proc.returncode == 2 and time.monotonic() - killed_at < 10  # promptly, not after every retry
    line = one_line(err)
    assert line.startswith(f"error: teacher 'rep' stopped answering at http://127.0.0.1:{port}/v1 (")
    assert "consecutive connection failures" in line
    assert line.endswith("resume with: pst harvest --teacher rep --task synth --split train --flush-rows 8")
    done, total, before, new_ok, new_failed, untried = map(int, STORED.search(line).groups())
    rows = stored_rows(store_root)
    # What was received is on disk, and nothing else: no error row for the questions never answered.
    assert (total, before, new_failed) == (N, 0, 0) and done == new_ok == len(rows) and untried == N - done > 0
    assert all(r["error"] is None for r in rows)

    server = serve_replay(records, port)  # the teacher is back: a fresh process, fresh counters
    try:
        again = resume(store_root, line)
        out, err = again.communicate(timeout=120)
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())
    finally:
        server.kill()
        server.wait()
    assert again.returncode == 0, err
    assert f"{done} cache hits" in out
    rows = stored_rows(store_root)
    assert len(rows) == len({r["request_key"] for r in rows}) == N and all(r["error"] is None for r in rows)
    assert stats["total"] == 2 * (N - done)  # two stages per missing question, nothing more


def test_breaker_leaves_questions_whose_attempts_ran_out_on_connection_errors_unstored(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", 60)
    with Served(lambda: make_app(Replay(Index(recs), Faults(latency_ms=30)))) as server:
        register(store_root, server.url, concurrency=2, max_attempts=1)

        def kill_after_ten(done: int, total: int, summary) -> None:
            if done >= 10 and server.runner is not None:
                server.kill()

        with pytest.raises(TeacherStopped) as err:
            harvest(HarvestConfig(teacher="rep", task="synth", max_connection_failures=4, flush_rows=4), store_root, kill_after_ten)
    message = str(err.value)
    assert "\n" not in message and getattr(err.value, "transient", False) and "stopped answering" in message
    done, total, *_ = map(int, STORED.search(message).groups())
    rows = stored_rows(store_root)
    # One attempt each: the first failures used up their attempts, yet none is stored as a `connection` error.
    assert 10 <= done == len(rows) < total == 60 and all(r["error"] is None for r in rows)


def test_ctrl_c_prints_one_line_with_the_counts_keeps_every_result_and_the_rerun_completes(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", N)
    replay = Replay(Index(recs), Faults(latency_ms=20))
    with Served(lambda: make_app(replay)) as server:
        register(store_root, server.url, concurrency=4)
        proc = pst(store_root, "harvest", "--teacher", "rep", "--task", "synth", "--no-progress", "--flush-rows", "1000")
        try:
            wait_for_rows(store_root, 1)  # flush_s (1 s) wrote a first part; more rows are buffered
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130
        line = one_line(err)
        assert line.startswith("interrupted: harvest of teacher 'rep' task=synth split=train stopped;")
        assert line.endswith("resume with: pst harvest --teacher rep --task synth --split train --flush-rows 1000")
        done, total, _, new_ok, _, untried = map(int, STORED.search(line).groups())
        rows = stored_rows(store_root)
        assert done == new_ok == len(rows) and total == N and untried == N - done > 0  # the buffered rows were flushed
        replay.stats.clear()
        again = resume(store_root, line)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert replay.stats["total"] == 2 * (N - done) and f"{done} cache hits" in out
    rows = stored_rows(store_root)
    assert len(rows) == len({r["request_key"] for r in rows}) == N and all(r["error"] is None for r in rows)


def test_ctrl_c_while_a_harvest_runs_inside_an_event_loop_stops_its_thread_after_flushing(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", N)
    with Served(lambda: make_app(Replay(Index(recs), Faults(latency_ms=20)))) as server:
        register(store_root, server.url, concurrency=4)

        async def notebook_cell():  # harvest() called with a loop running moves to a thread of its own
            return harvest(HarvestConfig(teacher="rep", task="synth", flush_rows=1000), store_root)

        main = threading.main_thread().ident
        threading.Timer(1.0, signal.pthread_kill, (main, signal.SIGINT)).start()  # Ctrl-C, as the terminal delivers it: to the main thread
        loop = asyncio.new_event_loop()
        try:
            with pytest.raises(HarvestInterrupted) as err:
                loop.run_until_complete(notebook_cell())
        finally:
            loop.close()
        done = int(STORED.search(str(err.value)).group(1))
        time.sleep(0.5)  # a harvest thread still running would store more meanwhile
        assert 0 < done == len(stored_rows(store_root)) < N


def test_resume_command_repeats_every_option_that_differs_from_the_defaults() -> None:
    cfg = HarvestConfig(teacher="t-1", task="gsm8k", split="test", prompt="rationalize", temperature=0.7, samples=2, limit=50, concurrency=8)
    assert resume_command(cfg) == "pst harvest --teacher t-1 --task gsm8k --split test --prompt rationalize --samples 2 --temperature 0.7 --limit 50 --concurrency 8"
    with pytest.raises(ConfigError, match="max_connection_failures"):
        HarvestConfig(teacher="t", task="x", max_connection_failures=-1)
