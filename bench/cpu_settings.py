"""Fastest correct CPU settings for the real student: tokens/s, step time, peak memory and loss per setting.

SmolLM2-135M-Instruct (real weights) trains PST on real recorded rationales (the store that
bench/delimiters.py fills) through `pst_core.train.loop.fit`, once per setting, each in its own
process (so threads and peak RSS are its own), all in one invocation so the ratios are measured
side by side. Settings: precision (fp32 / bf16 autocast), length grouping on/off, batch size,
max_length and torch threads. The losses of the first steps show which settings change the loss
curve: fp32 and bf16 see the very same batches.

    .venv/bin/python bench/cpu_settings.py [--task last_letter_concatenation] [--steps 6]

Writes bench/results/cpu_settings.json. On a CPU without bf16 kernels (AVX2 only) the bf16 row is
timed over 2 steps only: it is over 10x slower there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BASE = {"precision": "fp32", "batch_size": 8, "group_by_length": True, "max_length": 160, "threads": 2}
SETTINGS = [
    ("reference: fp32, batch 8, length-grouped, max_length 160, 2 threads", {}),
    ("no length grouping", {"group_by_length": False}),
    ("batch 4", {"batch_size": 4}),
    ("batch 16", {"batch_size": 16}),
    ("max_length 96", {"max_length": 96}),
    ("1 thread", {"threads": 1}),
    ("bf16 autocast, batch 4", {"precision": "bf16-mixed", "batch_size": 4}),
]


def one(setting: dict, store: str, task: str, teacher: str, steps: int) -> dict:
    """Train `steps` PST steps with `setting` in this process; tokens/s of steps 2..N, losses, peak RSS."""
    import torch

    from pst_core.train import data, loop, students
    from pst_core.train.config import DEFAULT_STUDENT, resolve
    from pst_core.train.strategies import get_strategy

    torch.set_num_threads(setting["threads"])
    cfg = resolve({"strategy": "pst", "task": task, "teacher": teacher, "max_steps": steps, "lr": 5e-4, "warmup_ratio": 0.0,
                   "eval_every": 0, "log_every": 1, "progress": False, "new_token_init": "eos",
                   **{k: v for k, v in setting.items() if k != "threads"}})
    strategy = get_strategy("pst", cfg)
    train = data.assemble(store, cfg, strategy, "train")
    model, tok, enc_dec = students.load_student(DEFAULT_STUDENT, store)
    with tempfile.TemporaryDirectory() as run:
        t0 = time.perf_counter()
        loop.fit(cfg, strategy, model, tok, enc_dec, train, None, run)
        wall = time.perf_counter() - t0
        hist = [json.loads(ln) for ln in (Path(run) / "history.jsonl").read_text().splitlines() if '"validation"' not in ln]
    timed = hist[1:] or hist
    # tokens/s per logged step is that step's tokens over its time: the mean over steps 2..N
    return {"tokens_per_s": sum(h["tokens_per_s"] for h in timed) / len(timed), "losses": [round(h["loss"], 4) for h in hist],
            "fit_wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "bf16_kernels": loop.cpu_has_bf16()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="last_letter_concatenation")
    p.add_argument("--teacher", default="replay-davinci")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--store", default=str(REPO / "data" / "bench" / "delimiters"))
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "cpu_settings.json"))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one setting (JSON) and print its result
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one), args.store, args.task, args.teacher, args.steps)))
        return
    from bench.delimiters import ensure_data
    from pst_core.train.loop import cpu_has_bf16

    ensure_data(args.store, args.task, args.teacher)
    results = []
    for label, change in SETTINGS:
        setting = {**BASE, **change}
        steps = 2 if setting["precision"] != "fp32" and not cpu_has_bf16() else args.steps
        cmd = [sys.executable, __file__, "--one", json.dumps(setting), "--store", args.store, "--task", args.task,
               "--teacher", args.teacher, "--steps", str(steps)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = {"setting": label, **setting, "steps": steps, **json.loads(out)}
        results.append(row)
        print(f"{label:<70} {row['tokens_per_s']:>7.1f} tok/s  peak {row['peak_rss_mb']:>6.0f} MB  losses {row['losses']}", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"cpu": _cpu(), "task": args.task, "results": results}, indent=1) + "\n")
    ref = results[0]["tokens_per_s"]
    print("\ntokens/s relative to the reference: " + ", ".join(f"{r['setting'].split(':')[0]} {r['tokens_per_s'] / ref:.2f}x" for r in results))


def _cpu() -> str:
    """The CPU model and its vector extensions (bf16 speed depends on them)."""
    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = {f for f in line.split(":", 1)[1].split() if f.startswith(("avx512", "amx", "avx2"))}
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores; {' '.join(sorted(flags)) or 'no avx2'})"


if __name__ == "__main__":
    main()
