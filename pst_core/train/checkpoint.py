"""Run folders and checkpoints: the best model for evaluation, the last state for resuming.

data/runs/<run_id>/
  config.json          resolved TrainConfig
  history.jsonl        one line per logged step (lr, each loss term, tokens/s) and per validation
  train_metrics.json   final/best losses per term, steps, tokens/s, wall time
  checkpoint/          best-by-validation model: save_pretrained folder + tokenizer + head + trainer_state.json
  last/                accelerate state (model, optimizer, scheduler, RNG) + trainer_state.json; deleted when
                       the run finishes (TrainConfig.keep_last keeps it)
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.config import to_dict
from pst_core.errors import DataError
from pst_core.train import students
from pst_core.train.config import TrainConfig, resolve
from pst_core.train.strategies import Strategy, get_strategy

BEST, LAST, STATE = "checkpoint", "last", "trainer_state.json"


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file then os.replace)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, p)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place (a crash leaves the previous one or the new one)."""
    old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> Path:
    """`final`, put back from its `.old-*` copy when a crash fell between the two renames of `replace_dir`."""
    if not final.exists():
        olds = sorted(final.parent.glob(f".old-{final.name}-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], final)
    return final


def save_best(run_dir: str | Path, model: Any, tokenizer: Any, head: Any, state: dict[str, Any]) -> None:
    """Write the evaluation checkpoint: model folder, tokenizer, semantic head, trainer state."""
    final = Path(run_dir) / BEST
    tmp = final.with_name(f".tmp-{BEST}-{uuid.uuid4().hex}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if head is not None:
        students.save_head(head, tmp)
    write_json(tmp / STATE, state)
    replace_dir(tmp, final)


def save_last(run_dir: str | Path, accelerator: Any, state: dict[str, Any]) -> None:
    """Write the resumable state (model, optimizer, scheduler, RNG via accelerate) plus loop position."""
    final = Path(run_dir) / LAST
    # One folder name every rank agrees on: each rank writes its own RNG state into it (DDP).
    tmp = final.with_name(f".tmp-{LAST}-step{state['step']}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving this step
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / STATE, state)
        replace_dir(tmp, final)
    accelerator.wait_for_everyone()  # no rank reads last/ or moves on while it is being swapped


def drop_last(run_dir: str | Path) -> None:
    """Delete a finished run's resumable state (optimizer moments are ~2x the model; evaluation never reads them)."""
    for path in [Path(run_dir) / LAST, *Path(run_dir).glob(f".tmp-{LAST}-*"), *Path(run_dir).glob(f".old-{LAST}-*")]:
        shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: str | Path) -> int:
    """Bytes under `path` (files only; 0 when it does not exist)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


def load_last(run_dir: str | Path, accelerator: Any) -> dict[str, Any] | None:
    """Restore the resumable state into the prepared objects; returns the loop position or None."""
    folder = recover(Path(run_dir) / LAST)
    if not (folder / STATE).is_file():
        return None
    accelerator.load_state(str(folder))
    return json.loads((folder / STATE).read_text())


@dataclass
class LoadedRun:
    """A trained run ready for evaluation."""

    model: Any
    tokenizer: Any
    strategy: Strategy
    config: TrainConfig
    head: Any
    is_encoder_decoder: bool


def load_config(run_dir: str | Path) -> TrainConfig:
    """The resolved TrainConfig stored with a run."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DataError(f"{run_dir} is not a training run (no config.json): run `pst train` first")
    return resolve(json.loads(path.read_text()))


def load_run(run_dir: str, device: str = "cpu", dtype: str = "float32") -> LoadedRun:
    """Load a run's best checkpoint (model in eval mode, tokenizer, bound strategy, head) in `dtype`."""
    import torch

    cfg = load_config(run_dir)
    folder = recover(Path(run_dir) / BEST)
    if not (folder / "config.json").is_file():
        raise DataError(f"{run_dir} has no checkpoint/ yet: training did not reach a validation")
    model, tokenizer, enc_dec = students.load_student(str(folder))
    model.to(device=device, dtype=getattr(torch, dtype)).eval()
    head = students.load_head(folder, device)
    if head is not None:
        head.to(dtype=getattr(torch, dtype)).eval()
    strategy = get_strategy(cfg.strategy, cfg).bind(tokenizer)
    return LoadedRun(model, tokenizer, strategy, cfg, head, enc_dec)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as stored in config.json."""
    return to_dict(cfg)
