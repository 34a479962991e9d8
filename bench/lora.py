"""LoRA vs full fine-tuning, gradient checkpointing on and off: tokens/s, step time, peak memory, loss and,
for a real student, validation exact match at the same step budget.

    .venv/bin/python bench/lora.py --student tiny-llama --steps 4         # smoke check: tiny random Llama-3.2, toy rows
    .venv/bin/python bench/lora.py --student smollm2 --task coin_flip --steps 32 --val 64 --out bench/results/lora.json
    .venv/bin/python bench/lora.py --student smollm2 --task coin_flip --strategy pre_thinking --lr-full 3e-4 --only 0,2 --steps 32 --val 64
    .venv/bin/python bench/lora.py --estimate                             # memory estimates, 135M to 1.5B (arithmetic)

Every setting trains in its own process, so its threads and peak RSS are its own; `baseline_rss_mb`
is that process's RSS after imports and data, before the student loads, so `peak - baseline` is what
training itself takes. The real mode trains through `pst_core.train.run.train` on the recorded
rationales (the store bench/delimiters.py fills) and selects by validation exact match at the end,
scored as `pst eval` scores test. LoRA gets its own (higher) learning rate, as is usual: the same
budget, each at a rate that suits it. Writes JSON to --out only when given.
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

SETTINGS = [
    ("full", {}),
    ("full + gradient checkpointing", {"gradient_checkpointing": True}),
    ("lora r16", {"lora_r": 16, "lora_alpha": 32}),
    ("lora r16 + gradient checkpointing", {"lora_r": 16, "lora_alpha": 32, "gradient_checkpointing": True}),
]
# The real architectures' shapes (hidden, intermediate, layers, heads, kv heads, vocab; all tie their embeddings).
REAL = {
    "SmolLM2-135M (llama)": ("llama", 576, 1536, 30, 9, 3, 49152),
    "Qwen2.5-0.5B (qwen2)": ("qwen2", 896, 4864, 24, 14, 2, 151936),
    "Llama-3.2-1B (llama)": ("llama", 2048, 8192, 16, 32, 8, 128256),
    "Qwen2.5-1.5B (qwen2)": ("qwen2", 1536, 8960, 28, 12, 2, 151936),
}


def rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny(setting: dict, student: str, steps: int, hidden: int, layers: int) -> dict:
    """`steps` PST steps of a tiny random student on the toy rows of the tests."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    import test_train_fixtures as F
    from test_students_tiny import tiny_llama32, tiny_qwen2

    from pst_core.train import data, loop
    from pst_core.train.config import resolve
    from pst_core.train.strategies import get_strategy

    tok, rows = F.tokenizer(), F.rows(16)
    cfg = resolve({"strategy": "pst", "task": "toy", "teacher": "t", "max_steps": steps, "batch_size": 8, "eval_every": 0, "log_every": 1,
                   "progress": False, "lr": 2e-3 if setting.get("lora_r") else 5e-4, "warmup_ratio": 0.0, **setting})
    baseline = rss_mb()
    build = tiny_qwen2 if student == "tiny-qwen2" else tiny_llama32
    model = build(len(tok))
    if hidden != 64 or layers != 2:  # a wider or deeper tiny student of the same structure
        cls = type(model)
        model = cls(type(model.config)(**{**model.config.to_dict(), "hidden_size": hidden, "intermediate_size": 4 * hidden,
                                          "num_hidden_layers": layers, "head_dim": hidden // 4}))
    with tempfile.TemporaryDirectory() as run:
        t0 = time.perf_counter()
        metrics = loop.fit(cfg, get_strategy("pst", cfg), model, tok, False, data.TrainData(rows, F.targets(16)), None, run)
        wall = time.perf_counter() - t0
        hist = [json.loads(ln) for ln in (Path(run) / "history.jsonl").read_text().splitlines() if '"validation"' not in ln]
    timed = hist[1:] or hist
    return {"tokens_per_s": sum(h["tokens_per_s"] for h in timed) / len(timed), "step_s": metrics["train_wall_s"] / steps, "fit_wall_s": wall,
            "losses": [round(h["loss"], 4) for h in hist], "baseline_rss_mb": baseline, "peak_rss_mb": rss_mb(),
            "params": sum(p.numel() for p in model.parameters()), "trainable_params": (metrics.get("lora") or {}).get("trainable_params"),
            "threads": torch.get_num_threads()}


def real(setting: dict, store: str, task: str, teacher: str, steps: int, val: int, lr_full: float, lr_lora: float,
         strategy: str = "pst") -> dict:
    """`steps` steps of `strategy` on the real default student through `pst train`, validation exact match at the end."""
    import torch

    from pst_core.train.config import resolve
    from pst_core.train.run import train

    lr = lr_lora if setting.get("lora_r") else lr_full
    cfg = resolve({"strategy": strategy, "task": task, "teacher": teacher, "max_steps": steps, "batch_size": 8, "lr": lr, "warmup_ratio": 0.1,
                   "max_length": 192, "eval_every": 0, "select_by": "exact_match", "max_val_examples": val, "eval_max_new_tokens": 160,
                   "precision": "fp32", "progress": False, "log_every": 5, **setting})
    baseline = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        # the store's data, a throw-away run folder: link the store's parts into a private root
        root = Path(tmp) / "store"
        root.mkdir()
        for part in Path(store).iterdir():
            if part.name != "runs":
                (root / part.name).symlink_to(part.resolve())
        _, metrics = train(cfg, str(root), run_id="bench-lora")
    best = metrics.get("best") or {}
    return {"tokens_per_s": metrics["tokens_per_s"], "step_s": metrics["train_wall_s"] / max(metrics["steps"], 1), "lr": lr,
            "final_loss": (metrics.get("final") or {}).get("loss"), "val_exact_match": best.get("val_exact_match"),
            "val_delimited": best.get("val_delimited"), "baseline_rss_mb": baseline, "peak_rss_mb": rss_mb(),
            "trainable_params": (metrics.get("lora") or {}).get("trainable_params"), "threads": torch.get_num_threads()}


def lora_params(hidden: int, inter: int, layers: int, heads: int, kv: int, r: int) -> int:
    """Trainable LoRA parameters of rank r on every attention and MLP projection (pst's default targets)."""
    head_dim = hidden // heads
    q = o = hidden + hidden
    k = v = hidden + kv * head_dim
    mlp = 3 * (hidden + inter)
    return layers * r * (q + k + v + o + mlp)


def estimate(batch: int, seq: int, targets: float, r: int) -> list[dict]:
    """Memory estimates of full vs LoRA training, fp32 weights with AdamW (as on the CPU; bf16-mixed on GPU keeps
    fp32 weights and states too), from each architecture's exact parameter count (built on the meta device).

    full = 16 P (weights 4 P, gradients 4 P, AdamW moments 8 P) + activations
    lora = 4 P (frozen weights) + 16 P_lora + activations
    activations (fp32, no checkpointing) ~ L * b * s * (7 h + 4 i) * 4 B: per token and layer, ~7 h-wide tensors of
      attention and 4 i-wide of the SwiGLU MLP (measured on SmolLM2-shaped layers on the CPU: 17.6 h per token per
      layer, against 17.7 h by this count), plus the logits on target positions (b * s * targets * V * 4 B * 3);
    with gradient checkpointing, ~ L * b * s * 3 h * 4 B (measured: 3.1 h; each layer's input) + one layer's internals.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    rows = []
    for name, (arch, h, i, n_layers, heads, kv, vocab) in REAL.items():
        config = AutoConfig.for_model(arch, hidden_size=h, intermediate_size=i, num_hidden_layers=n_layers, num_attention_heads=heads,
                                      num_key_value_heads=kv, vocab_size=vocab, tie_word_embeddings=True)
        with torch.device("meta"):
            params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        p_lora = lora_params(h, i, n_layers, heads, kv, r)
        tokens = batch * seq
        logits = tokens * targets * vocab * 4 * 3
        layer = tokens * (7 * h + 4 * i) * 4
        act = n_layers * layer + logits
        act_ckpt = n_layers * tokens * 3 * h * 4 + layer + logits
        gib = 1024 ** 3
        rows.append({"student": name, "params": params, "lora_params": p_lora,
                     "full_gib": (16 * params + act) / gib, "full_ckpt_gib": (16 * params + act_ckpt) / gib,
                     "lora_gib": (4 * params + 16 * p_lora + act) / gib, "lora_ckpt_gib": (4 * params + 16 * p_lora + act_ckpt) / gib,
                     "weights_gib": 4 * params / gib})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="tiny-llama", choices=["tiny-llama", "tiny-qwen2", "smollm2"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64, help="tiny students: width")
    p.add_argument("--layers", type=int, default=2, help="tiny students: depth")
    p.add_argument("--task", default="last_letter_concatenation")
    p.add_argument("--strategy", default="pst", help="smollm2: the strategy trained (tiny students: pst)")
    p.add_argument("--teacher", default="replay-davinci")
    p.add_argument("--store", default=str(REPO / "data" / "bench" / "delimiters"))
    p.add_argument("--val", type=int, default=100, help="smollm2: validation questions scored at the end")
    p.add_argument("--lr-full", type=float, default=5e-4)
    p.add_argument("--lr-lora", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads per setting (0 = torch's default)")
    p.add_argument("--only", default="", help="comma-separated setting numbers (0-based) to run")
    p.add_argument("--estimate", action="store_true", help="print memory estimates for the real architectures and exit")
    p.add_argument("--out", default="", help="write the results as JSON here (e.g. bench/results/lora.json)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one setting (JSON) and print its result
    args = p.parse_args()
    if args.estimate:
        rows = estimate(batch=8, seq=256, targets=0.5, r=16)
        print(f"{'student':<24}{'params':>8}{'LoRA r16':>10}{'full':>9}{'full+ckpt':>11}{'LoRA':>8}{'LoRA+ckpt':>11}  (GiB, batch 8 x 256 tokens)")
        for r in rows:
            print(f"{r['student']:<24}{r['params'] / 1e6:>7.0f}M{r['lora_params'] / 1e6:>9.1f}M{r['full_gib']:>9.1f}{r['full_ckpt_gib']:>11.1f}"
                  f"{r['lora_gib']:>8.1f}{r['lora_ckpt_gib']:>11.1f}")
        return
    if args.one:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        setting = json.loads(args.one)
        result = (real(setting, args.store, args.task, args.teacher, args.steps, args.val, args.lr_full, args.lr_lora, args.strategy)
                  if args.student == "smollm2" else tiny(setting, args.student, args.steps, args.hidden, args.layers))
        print(json.dumps(result))
        return
    if args.student == "smollm2":
        from bench.delimiters import ensure_data

        ensure_data(args.store, args.task, args.teacher)
    chosen = [SETTINGS[int(i)] for i in args.only.split(",")] if args.only else SETTINGS
    results = []
    for label, setting in chosen:
        cmd = [sys.executable, __file__, "--one", json.dumps(setting), *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"{label}: failed\n{proc.stderr[-3000:]}")
        row = {"setting": label, **setting, "student": args.student, "strategy": args.strategy, "task": args.task, "steps": args.steps, **json.loads(proc.stdout.strip().splitlines()[-1])}
        results.append(row)
        extra = f"  val EM {row['val_exact_match']:.3f}" if row.get("val_exact_match") is not None else ""
        print(f"{label:<36} {row['tokens_per_s']:>8.1f} tok/s  {row['step_s']:>6.2f} s/step  peak {row['peak_rss_mb']:>6.0f} MB "
              f"(baseline {row['baseline_rss_mb']:.0f}){extra}  losses {row.get('losses', row.get('final_loss'))}", flush=True)
        if args.out:
            from bench.cpu_settings import _cpu

            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"cpu": _cpu(), "student": args.student, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
