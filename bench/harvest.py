"""Harvest throughput: pst's harvester vs a bare AsyncOpenAI + Semaphore(64) + gather loop.

Both run in this one invocation against the same replay teacher (a separate process on this
machine, 100 ms latency), with the same 2,000 distinct single-stage prompts and 64-way
concurrency, without faults and with 10 % of requests answered 429 + `Retry-After: 1`. pst also
writes every result to its store and checks its cache. Then: a fully cached rerun of the 2,000,
one new prompt on top of the cache, and a fully cached rerun of 10,000 requests.
`--rpm-minute` adds the real one-minute `--rpm 600` measurement.

    .venv/bin/python bench/harvest.py [--n 2000] [--rpm-minute]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from pst_core import teachers
from pst_core.harvest import HarvestConfig, harvest
from pst_core.harvest.jobs import JobFactory
from pst_core.prompts import get as get_prompt
from pst_core.replay import synthetic

CONCURRENCY, LATENCY_MS, IDEAL = 64, 100, 64 / 0.100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`pst teacher serve-replay` in its own process."""

    def __init__(self, records: str, *args: str) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-c", "from pst_core.cli import main; main()", "teacher", "serve-replay", "--records", records, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}/v1"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{self.url}/models", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("replay server did not start")

    def stats(self) -> dict:
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats").read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def bare_loop(url: str, bodies: list[dict]) -> int:
    """The hand-rolled baseline: the SDK with its default retries, a semaphore and gather."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="bench")
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(body: dict) -> str | None:
        async with sem:
            try:
                r = await client.chat.completions.create(**body)
                return r.choices[0].message.content
            except Exception:
                return None

    out = await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
    return sum(o is not None for o in out)


def run_bare(url: str, bodies: list[dict]) -> tuple[float, int]:
    t0 = time.perf_counter()
    ok = asyncio.run(bare_loop(url, bodies))
    return time.perf_counter() - t0, ok


def run_pst(root: str, url: str, http: str = "aiohttp", **cfg) -> tuple[float, object]:
    teachers.add(root, teachers.TeacherConfig(name="rep", base_url=url, model="m", api_key_env="BENCH_KEY", concurrency=CONCURRENCY, http=http), replace=True)
    t0 = time.perf_counter()
    summary = harvest(HarvestConfig(teacher="rep", task="synth", prompt="rationalize", **cfg), root)
    return time.perf_counter() - t0, summary


def bodies_for(root: str, n: int) -> list[dict]:
    from pst_core import examples

    factory = JobFactory("m", "chat", get_prompt("rationalize", "synth"), 128, 32, 0.0)
    return [factory.body(j) for j in factory.jobs(examples.load(root, "synth", "train")[:n], 1)]


def rpm_minute(work: str, records: str) -> None:
    """Harvest 700 requests at --rpm 600 and count the server's request arrival times."""
    import bisect

    server = Server(records)
    root = f"{work}/rpm"
    synthetic.write(root, "synth", 700)
    elapsed, summary = run_pst(root, server.url, rpm=600, limit=700)
    times = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats/arrivals").read())["arrivals"]
    server.close()
    first_minute = bisect.bisect_left(times, times[0] + 60.0)
    worst = max(bisect.bisect_left(times, t + 60.0) - i for i, t in enumerate(times))
    worst_s = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    print(f"--rpm 600: {first_minute} requests in the first 60 s ({first_minute / 600:.3f} of 600); most in any 60 s window: {worst}; in any 1 s window: {worst_s}; {len(times)} sent in {elapsed:.1f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--cached-n", type=int, default=10000)
    ap.add_argument("--rpm-minute", action="store_true", help="Also run the 1-minute --rpm 600 measurement.")
    args = ap.parse_args()
    os.environ["BENCH_KEY"] = "bench"
    work = tempfile.mkdtemp(prefix="pst-bench-")
    records = str(synthetic.dump(synthetic.write(f"{work}/all", "synth", max(args.n + 1, args.cached_n)), f"{work}/records.jsonl"))
    print(f"{args.n} distinct prompts, concurrency {CONCURRENCY}, replay latency {LATENCY_MS} ms, ideal {IDEAL:.0f} req/s, {os.cpu_count()} CPUs")
    rows = []
    for label, extra in (("no faults", []), ("10% 429 + Retry-After 1", ["--rate-429", "0.1", "--retry-after", "1"])):
        server = Server(records, "--latency-ms", str(LATENCY_MS), *extra)
        root = f"{work}/{len(rows)}"
        synthetic.write(root, "synth", args.n)
        bare_s, bare_ok = run_bare(server.url, bodies_for(root, args.n))
        server.proc.kill(), server.proc.wait()
        server = Server(records, "--latency-ms", str(LATENCY_MS), *extra)
        pst_s, summary = run_pst(root, server.url)
        sdk_root = f"{root}-sdk"
        synthetic.write(sdk_root, "synth", args.n)
        sdk_s, sdk_summary = run_pst(sdk_root, server.url, http="openai")
        bare_rate, pst_rate, sdk_rate = bare_ok / bare_s, summary.succeeded / pst_s, sdk_summary.succeeded / sdk_s
        print(f"[{label}] bare SDK loop: {bare_s:.2f}s {bare_rate:.0f} req/s ({bare_rate / IDEAL:.2f} of ideal, {bare_ok} ok)")
        print(f"[{label}] pst (aiohttp): {pst_s:.2f}s {pst_rate:.0f} req/s ({pst_rate / IDEAL:.2f} of ideal, {summary.succeeded} stored) -> {pst_rate / bare_rate:.2f}x bare")
        print(f"[{label}] pst (openai SDK path): {sdk_s:.2f}s {sdk_rate:.0f} req/s ({sdk_rate / IDEAL:.2f} of ideal) -> {sdk_rate / bare_rate:.2f}x bare")
        rows.append((label, root, server))
    label, root, server = rows[0]
    cached_s, cached = run_pst(root, server.url)
    print(f"fully cached rerun of {args.n}: {cached_s:.3f}s, sent {cached.sent}")
    synthetic.write(root, "synth", args.n + 1)
    one_s, one = run_pst(root, server.url)
    print(f"one new prompt on the cached run: sent {one.sent} request(s) in {one_s:.3f}s")
    big = f"{work}/big"
    synthetic.write(big, "synth", args.cached_n)
    fill_server = Server(records)
    fill_s, fill = run_pst(big, fill_server.url)
    big_s, big_summary = run_pst(big, fill_server.url)
    print(f"fully cached rerun of {args.cached_n}: {big_s:.3f}s, sent {big_summary.sent} (first run: {fill.sent} requests in {fill_s:.1f}s)")
    fill_server.close()
    for _, _, s in rows:
        s.close()
    if args.rpm_minute:
        rpm_minute(work, records)


if __name__ == "__main__":
    main()
