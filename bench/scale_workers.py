"""Harvest throughput in one process vs on Dask worker processes: the same workload, side by side.

The workload: `--shards` teachers (registry names t0, t1, ...) behind one replay teacher (`pst
teacher serve-replay`, its own process, `--latency-ms` per request, the rule-based answers of
flows.local_teacher) x generated coin_flip train questions, `--requests` HTTP requests in all
(Zero-shot-CoT sends two a question). `harvest_flow` runs it once per mode, each on a fresh
store: `threads` (every shard in this process, the default runner) and `dask`
(`PST_TASK_RUNNER=dask`, a LocalCluster of `--dask-workers` processes, started and warmed up
before the clock starts). Prints requests/s per mode; the ideal is shards x concurrency / latency.

    .venv/bin/python bench/scale_workers.py [--requests 20000] [--latency-ms 100] [--shards 4]
        [--concurrency 32] [--dask-workers 2] [--modes threads,dask] [--root DIR_OR_S3_URI]

A `--root` of `s3://bucket/prefix` writes the stores there (credentials from the standard AWS
variables), one prefix per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TASK = "coin_flip"
KEY_ENV = "PST_LOCAL_TEACHER_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay_server(records: Path, latency_ms: float) -> tuple[subprocess.Popen, str]:
    """`pst teacher serve-replay` in its own process (its CPU is not the harvesters')."""
    port = free_port()
    cmd = [sys.executable, "-c", "from pst_core.cli import main; main()", "teacher", "serve-replay", "--records", str(records),
           "--port", str(port), "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("replay server did not start")


def stats(url: str) -> dict[str, Any]:
    return json.loads(urllib.request.urlopen(url.removesuffix("/v1") + "/stats").read())


def prepare(root: str, questions: int) -> int:
    """Generated coin_flip questions in the store at `root`; returns the train split's size."""
    from pst_core.prepare import PrepareConfig, prepare_task

    # generated_size covers every split; the train split holds most of it.
    return prepare_task(TASK, PrepareConfig(source="generated", generated_size=min(int(questions * 1.6) + 10, 99_999)), root)["train"]


def register(root: str, url: str, shards: int, concurrency: int) -> list[str]:
    from flows import events, local_teacher
    from pst_core import teachers

    names = [f"t{i}" for i in range(shards)]
    with events.suppressed():
        for name in names:
            teachers.add(root, teachers.TeacherConfig(name=name, base_url=url, model=local_teacher.MODEL, api_key_env=KEY_ENV,
                                                      concurrency=concurrency), replace=True)
    return names


def warm_up(runner: Any) -> None:
    """Import the harvester on every Dask worker before the clock starts."""
    address = getattr(runner, "address", None)
    if not address:
        return
    from distributed import Client

    with Client(address) as client:
        client.run(__import__, "tasks.harvest")


def run_mode(mode: str, root: str, url: str, args: argparse.Namespace, questions: int) -> dict[str, Any]:
    """One timed harvest_flow over every shard with the mode's task runner."""
    from flows import runners
    from flows.pipeline import harvest_flow

    os.environ["PST_TASK_RUNNER"] = mode
    os.environ["PST_DASK_WORKERS"] = str(args.dask_workers)
    os.environ["PST_MAX_WORKERS"] = str(args.shards)  # threads: every shard at once
    os.environ["PST_DASK_THREADS"] = str(-(-args.shards // args.dask_workers))  # Dask: every shard at once too
    prepare(root, questions)
    names = register(root, url, args.shards, args.concurrency)
    overrides = {"harvest": {"splits": ["train"], "limit": questions}}
    with runners.for_stages() as runner:
        warm_up(runner)
        before = stats(url).get("total", 0)
        start = time.perf_counter()
        summaries = harvest_flow.with_options(task_runner=runner)(teachers=names, tasks=[TASK], overrides=overrides, root=root)
        seconds = time.perf_counter() - start
    sent = stats(url).get("total", 0) - before
    return {"mode": mode, "processes": args.dask_workers if mode == "dask" else 1, "sent": sent,
            "failed": sum(s["failed"] for s in summaries), "seconds": seconds, "rps": sent / seconds,
            "workers": len({s["worker"] for s in summaries})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000, help="HTTP requests in all (two per question)")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--shards", type=int, default=4, help="teachers harvested as separate tasks")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight per shard")
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--modes", default="threads,dask")
    parser.add_argument("--root", default=None, help="store base (a folder or s3://bucket/prefix); default: a temp folder")
    args = parser.parse_args()

    from flows import local_teacher

    os.environ.setdefault(KEY_ENV, "local-no-secret")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    work = Path(tempfile.mkdtemp(prefix="pst-scale-"))
    base = (args.root or str(work / "stores")).rstrip("/")
    questions = max(1, args.requests // (2 * args.shards))
    available = prepare(str(work / "questions"), questions)
    questions = min(questions, available)
    records = local_teacher.write_records(str(work / "questions"), [TASK], work / "records.jsonl")
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = SubprocessASGIServer()  # started before any clock: no mode pays for the server's start
    api.start(timeout=180)
    proc, url = replay_server(records, args.latency_ms)
    try:
        with temporary_settings({PREFECT_API_URL: api.api_url}):
            rows = [run_mode(mode, f"{base}/{mode}", url, args, questions) for mode in args.modes.split(",")]
    finally:
        proc.kill()
        proc.wait()
        api.stop()
    ideal = args.shards * args.concurrency / (args.latency_ms / 1000) if args.latency_ms else float("inf")
    print(f"\n{args.shards} shards x {questions} questions, {args.latency_ms:g} ms latency, {args.concurrency} in flight a shard "
          f"(ideal {ideal:,.0f} req/s); stores under {base}\n")
    print("| runner | processes | requests sent | failed | seconds | req/s | ran on |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['processes']} | {r['sent']:,} | {r['failed']} | {r['seconds']:.1f} | {r['rps']:,.0f} | {r['workers']} |")


if __name__ == "__main__":
    main()
