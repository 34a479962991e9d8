"""Harvest throughput into a local store vs an S3-compatible object store, in 1 and 2 processes.

The workload: `--requests` single-stage requests (the `rationalize` prompt, one request per
question) to one replay teacher (`pst teacher serve-replay`, its own process, `--latency-ms` per
request), split over two teacher names t0 and t1 (two partitions). Modes, each on a fresh store:
`1 process` harvests t0 then t1 in one process; `2 processes` harvests t0 and t1 in two
processes at once, both writing one store prefix. Each mode runs with the store on local disk and
on an S3 server (moto's standalone server on 127.0.0.1, its own process, unless `--s3-root`
names a bucket prefix of a real one; credentials from the standard AWS variables). Then a fully
cached rerun per store (what a rerun costs: listing and reading the partitions, nothing sent).
Throughput is requests over the harvests' own wall time (process start-up is not counted).

    .venv/bin/python bench/scale_s3.py [--requests 20000] [--latency-ms 100] [--concurrency 64]
        [--s3-root s3://bucket/prefix]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from harvest import Server  # bench/harvest.py: the replay teacher in its own process

TEACHERS = ("t0", "t1")
KEY_ENV = "BENCH_KEY"


def worker(root: str, teachers: list[str], limit: int) -> None:
    """Harvest `limit` questions for each teacher in turn; print one JSON line of times and counts."""
    from pst_core.harvest import HarvestConfig, harvest

    start, sent, stored = time.time(), 0, 0
    for name in teachers:
        summary = harvest(HarvestConfig(teacher=name, task="synth", prompt="rationalize", limit=limit, progress=False), root)
        sent, stored = sent + summary.sent, stored + summary.succeeded
    print(json.dumps({"start": start, "end": time.time(), "sent": sent, "stored": stored}), flush=True)


def spawn(root: str, teachers: list[str], limit: int) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", "--root", root, "--limit", str(limit), "--teachers", ",".join(teachers)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, KEY_ENV: "bench"})


def prepare(root: str, url: str, questions: int, concurrency: int) -> None:
    """The questions and the two teacher names of one fresh store."""
    from pst_core import teachers
    from pst_core.replay import synthetic

    synthetic.write(root, "synth", questions)
    for name in TEACHERS:
        teachers.add(root, teachers.TeacherConfig(name=name, base_url=url, model="m", api_key_env=KEY_ENV, concurrency=concurrency))


def run_mode(root: str, processes: int, questions: int) -> dict:
    """One mode's harvest: (requests/s, sent, stored) from the workers' own clocks."""
    from pst_core.harvest import rationales

    groups = [list(TEACHERS)] if processes == 1 else [[t] for t in TEACHERS]
    procs = [spawn(root, group, questions) for group in groups]
    lines = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"worker exited {p.returncode}")
        lines.append(json.loads(out.decode().strip().splitlines()[-1]))
    wall = max(x["end"] for x in lines) - min(x["start"] for x in lines)
    sent = sum(x["sent"] for x in lines)
    rows = rationales.read(root, columns=["request_key"]).num_rows
    return {"wall_s": wall, "sent": sent, "rows": rows, "rps": sent / wall if wall else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--concurrency", type=int, default=64, help="Requests in flight per teacher name.")
    ap.add_argument("--s3-root", default=None, help="An existing bucket prefix (default: a moto server started here).")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--teachers", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.root, args.teachers.split(","), args.limit)
        return
    from contextlib import nullcontext

    from pst_core.replay import synthetic

    questions = args.requests // len(TEACHERS)  # per teacher name: `--requests` in all
    work = tempfile.mkdtemp(prefix="pst-bench-s3-")
    records = str(synthetic.dump(synthetic.write(f"{work}/all", "synth", questions), f"{work}/records.jsonl"))
    server = Server(records, "--latency-ms", str(args.latency_ms))
    if args.s3_root:
        s3_ctx = nullcontext(None)
    else:
        from s3_server import running_s3

        s3_ctx = running_s3("bench")
    ideal = len(TEACHERS) * args.concurrency / (args.latency_ms / 1000)
    print(f"{args.requests} requests ({questions} questions x {len(TEACHERS)} teacher names), replay latency {args.latency_ms:g} ms, "
          f"concurrency {args.concurrency} per name, {os.cpu_count()} CPUs; ideal with both names at once: {ideal:.0f} req/s")
    try:
        with s3_ctx as s3:
            if s3 is not None:
                os.environ.update(s3.env)
            s3_base = args.s3_root or s3.url()
            results = {}
            for store_kind in ("local", "s3"):
                for processes in (1, 2):
                    base = f"{work}/store" if store_kind == "local" else s3_base
                    root = f"{base.rstrip('/')}/{processes}p-{uuid.uuid4().hex[:6]}"
                    prepare(root, server.url, questions, args.concurrency)
                    results[(store_kind, processes)] = run_mode(root, processes, questions) | {"root": root}
                    r = results[(store_kind, processes)]
                    print(f"[{store_kind:5}] {processes} process{'es' if processes > 1 else '  '}: {r['rps']:7.0f} req/s "
                          f"({r['sent']} sent in {r['wall_s']:.1f} s, {r['rows']} rows stored)", flush=True)
            print("\nrequests/s   local     s3")
            for processes in (1, 2):
                print(f"{processes} process{'es' if processes > 1 else '  '} {results[('local', processes)]['rps']:7.0f} {results[('s3', processes)]['rps']:7.0f}")
            for store_kind in ("local", "s3"):
                again = run_mode(results[(store_kind, 2)]["root"], 1, questions)
                print(f"fully cached rerun of {args.requests} ({store_kind}): {again['wall_s']:.2f} s, sent {again['sent']}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
