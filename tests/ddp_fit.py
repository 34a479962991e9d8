"""Started by torchrun from test_train_ddp.py: one PST fit of the tiny student on this rank (gloo, CPU).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_fit.py RUN_DIR OUT_DIR MAX_STEPS [KILL_AT [VAL_ROWS]]

Each rank saves its final parameters to OUT_DIR/params-<rank>.pt and its metrics to
OUT_DIR/metrics-<rank>.json, so the test can check that DDP kept the replicas identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

import test_train_fixtures as F  # noqa: E402
from pst_core.train import checkpoint, config, data, loop  # noqa: E402
from pst_core.train.strategies import get_strategy  # noqa: E402


class Killed(RuntimeError):
    """Stands in for a preempted job: raised on every rank at the same step."""


def main(run_dir: str, out_dir: str, max_steps: int, kill_at: int = 0, val_rows: int = 10) -> None:
    torch.set_num_threads(1)
    tok, rows = F.tokenizer(), F.rows(16)
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 5e-3, "max_steps": max_steps, "batch_size": 4,
                          "eval_every": 5, "log_every": 5, "progress": False, "warmup_ratio": 0.1, "seed": 0,
                          "select_by": "exact_match", "eval_max_new_tokens": 12,
                          "keep_last": True})  # the test reads every rank's RNG state from the finished run's last/
    strategy = get_strategy("pst", cfg)
    train = data.TrainData(rows, F.targets(16))
    # 10 rows = 3 batches of 4: rank 0 scores two, rank 1 one; 4 rows: rank 1 scores none.
    val = data.TrainData(rows[:val_rows], F.targets(val_rows))

    def on_step(step: int) -> None:
        if step == kill_at:
            raise Killed(f"killed at step {step}")

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(Path(run_dir) / "config.json", checkpoint.config_dict(cfg))  # as `pst train` does
    model = F.causal(len(tok) + 2)
    metrics = loop.fit(cfg, strategy, model, tok, False, train, val, run_dir, val_questions=rows[:val_rows], on_step=on_step)
    rank = torch.distributed.get_rank()
    out = Path(out_dir)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"params-{rank}.pt")
    (out / f"metrics-{rank}.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
