"""LoRA under DDP on the CPU (two gloo ranks under torchrun): the replicas' adapters, SEP/SEM rows and
head stay identical, and a run killed on both ranks resumes from its adapter-only last/ to the same loss.

This file is also the script torchrun starts on each rank (`python -m torch.distributed.run ... tests/test_lora_ddp.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

STEPS = 8


class Killed(RuntimeError):
    """Stands in for a preempted job: raised on every rank at the same step."""


def rank_main(base: str) -> None:
    """On this rank: a straight LoRA PST fit, then one killed at step 5 and its resumption (one
    process group for all three: torchrun's start-up is most of the test's time)."""
    import torch

    import test_train_fixtures as F
    from pst_core.train import checkpoint, config, data, loop
    from pst_core.train.strategies import get_strategy

    torch.set_num_threads(1)
    rows = F.rows(16)
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 1e-2, "max_steps": STEPS, "batch_size": 4,
                          "eval_every": 4, "save_every": 2, "log_every": 1, "progress": False, "seed": 0, "lora_r": 4, "keep_last": True})
    rank = int(os.environ["RANK"])  # set by torchrun; the process group starts with the first Accelerator

    def fit(name: str, kill_at: int = 0) -> dict:
        def on_step(step: int) -> None:
            if step == kill_at:
                raise Killed(f"killed at step {step}")

        run = Path(base) / name
        run.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
        tok = F.tokenizer()  # fresh, as in a new process: one that has SEP/SEM already would skip their initialisation
        model = F.causal(len(tok) + 2)
        metrics = loop.fit(cfg, get_strategy("pst", cfg), model, tok, False, data.TrainData(rows, F.targets(16)),
                           data.TrainData(rows[:8], F.targets(8)), str(run), on_step=on_step)
        trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(trainable, Path(base) / f"{name}-trainable-{rank}.pt")
        (Path(base) / f"{name}-metrics-{rank}.json").write_text(json.dumps(metrics))
        return metrics

    fit("straight")
    try:
        fit("resumed", kill_at=5)  # last/ saved at step 4
    except Killed:
        (Path(base) / f"killed-{rank}").write_text(json.dumps(checkpoint.last_step(Path(base) / "resumed")))
    fit("resumed")


def test_lora_under_ddp_keeps_replicas_identical_and_resumes(tmp_path):
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    p0, p1 = (torch.load(tmp_path / f"straight-trainable-{r}.pt") for r in (0, 1))
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    assert any("lora_B" in k for k in p0) and any("trainable_tokens_delta" in k for k in p0)
    assert all(p0[k].abs().sum() > 0 for k in p0 if "lora_B" in k)  # the adapters trained (B starts at 0)
    last = tmp_path / "straight" / "last"
    assert {p.name for p in last.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    assert (last / "model.safetensors").stat().st_size < 200_000  # adapters, rows and head only: the student is ~370 kB
    assert [json.loads((tmp_path / f"killed-{r}").read_text()) for r in (0, 1)] == [4, 4]
    final = json.loads((tmp_path / "resumed-metrics-0.json").read_text())
    reference = json.loads((tmp_path / "straight-metrics-0.json").read_text())
    assert final["world_size"] == 2 and final["steps"] == STEPS
    assert abs(final["final"]["loss"] - reference["final"]["loss"]) <= 1e-4 * reference["final"]["loss"]


if __name__ == "__main__":
    rank_main(sys.argv[1])
