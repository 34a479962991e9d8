"""DDP on the CPU: the training loop under torchrun with two gloo ranks, as `accelerate launch` runs it on GPUs.

Checks what can silently go wrong in data-parallel training: the replicas stay identical, the
sharded validation adds up to the single-process numbers, every rank's RNG state is checkpointed,
and a run killed mid-way on both ranks resumes to the same final loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.train import checkpoint, data, generate, students  # noqa: E402
from pst_core.train.strategies import StepOutput  # noqa: E402

SCRIPT = Path(__file__).with_name("ddp_fit.py")
STEPS = 30


def torchrun(run_dir: Path, out: Path, steps: int, kill_at: int = 0, val_rows: int = 10) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(SCRIPT), str(run_dir), str(out), str(steps), str(kill_at), str(val_rows)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    proc = torchrun(base / "run", base / "out", STEPS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base


def test_ddp_replicas_stay_identical_and_the_run_is_complete(full_run):
    p0, p1 = (torch.load(full_run / "out" / f"params-{r}.pt") for r in (0, 1))
    assert p0.keys() == p1.keys() and all(torch.equal(p0[k], p1[k]) for k in p0)
    m = json.loads((full_run / "out" / "metrics-0.json").read_text())
    assert m["world_size"] == 2 and m["steps"] == STEPS
    history = [json.loads(ln) for ln in (full_run / "run" / "history.jsonl").read_text().splitlines()]
    losses = [h["loss"] for h in history if "loss" in h and "validation" not in h]
    assert losses[-1] < 0.5 * losses[0]
    assert {p.name for p in (full_run / "run" / "last").glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    assert not [p.name for p in (full_run / "run").iterdir() if p.name.startswith(".")]  # no temp folders left behind


def test_sharded_validation_equals_one_process_on_the_best_checkpoint(full_run):
    """The best checkpoint's logged validation (rank 0 scored 2 batches, rank 1 one, summed) is what one process computes."""
    run = checkpoint.load_run(str(full_run / "run"))
    best = json.loads((full_run / "run" / "checkpoint" / "trainer_state.json").read_text())["best_metrics"]
    rows = F.rows(16)[:10]
    assert best["val_exact_match"] == pytest.approx(generate.exact_match(run.model, run.tokenizer, run.strategy, rows, 12))
    tok = data.tokenize(rows, run.strategy, run.tokenizer, run.config.max_length, False)
    b = data.collate(tok, list(range(10)), data.seq_index(tok), run.tokenizer.pad_token_id, False, "token", F.targets(10))
    module = students.train_module(run.model, run.head, False).eval()
    with torch.no_grad():
        out = StepOutput(**module(**{k: v for k, v in b.items() if k not in ("n_tokens", "view", "sem_target")}))
        loss, terms = run.strategy.loss(out, b)
    assert best["val_loss"] == pytest.approx(float(loss), rel=1e-4)
    for k, v in terms.items():
        assert best[f"val_{k}"] == pytest.approx(float(v), rel=1e-4, abs=1e-6)


def test_ddp_run_killed_on_both_ranks_resumes_to_the_same_final_loss(full_run, tmp_path):
    killed = torchrun(tmp_path / "run", tmp_path / "out", STEPS, kill_at=17)  # last/ was saved at step 15
    assert killed.returncode != 0 and "killed at step 17" in killed.stderr
    assert json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())["step"] == 15
    resumed = torchrun(tmp_path / "run", tmp_path / "out", STEPS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = json.loads((tmp_path / "out" / "metrics-0.json").read_text())["final"]["loss"]
    reference = json.loads((full_run / "out" / "metrics-0.json").read_text())["final"]["loss"]
    assert final == pytest.approx(reference, rel=0.01)


def test_a_rank_without_validation_batches_does_not_hang(tmp_path):
    """4 validation rows at batch 4: rank 1 has no batch, so validation must not run DDP collectives per batch."""
    proc = torchrun(tmp_path / "run", tmp_path / "out", 4, val_rows=4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "metrics-1.json").read_text())["steps"] == 4

