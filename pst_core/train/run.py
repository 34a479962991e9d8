"""`train(cfg, root)`: the whole stage — load the student, assemble data from the store, fit, record.

Run ids default to `<task>-<strategy>-<teacher>-s<seed>`, so re-running the same command resumes
an interrupted run (from last/) and returns a finished one's metrics without training again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError, DataError
from pst_core.train import checkpoint, data, loop, students
from pst_core.train.config import TrainConfig
from pst_core.train.strategies import Row, get_strategy


def default_run_id(cfg: TrainConfig) -> str:
    """`<task>-<strategy>-<teacher>-s<seed>` with path-unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{cfg.task}-{cfg.strategy}-{cfg.teacher}-s{cfg.seed}")


def run_dir_of(root: str, run_id: str) -> Path:
    """data/runs/<run_id>/"""
    return Path(root) / "runs" / run_id


def train(cfg: TrainConfig, root: str, run_id: str | None = None, dtype: Any = None) -> tuple[Path, dict[str, Any]]:
    """Train `cfg.student` with `cfg.strategy` on the store's (task, teacher) data; returns (run dir, metrics)."""
    if not cfg.task or not cfg.teacher:
        raise ConfigError("TrainConfig: task and teacher are required (--task T --teacher NAME)")
    run = run_dir_of(root, run_id or default_run_id(cfg))
    stored = run / "config.json"
    if stored.is_file():
        if json.loads(stored.read_text()) != json.loads(json.dumps(checkpoint.config_dict(cfg))):
            raise ConfigError(f"run {run.name} exists with a different config: pick another --run-id or delete {run}")
        if (run / "train_metrics.json").is_file():
            return run, json.loads((run / "train_metrics.json").read_text())
    strategy = get_strategy(cfg.strategy, cfg)
    train_data = data.assemble(root, cfg, strategy, "train")
    if not train_data.rows:
        raise DataError(f"no usable {cfg.teacher} rationales for {cfg.task}/train in {root}: run `pst harvest` first"
                        if strategy.uses_rationale else f"no {cfg.task}/train examples in {root}")
    val_data, questions = _validation(root, cfg, strategy)
    model, tokenizer, enc_dec = students.load_student(cfg.student, root, dtype)
    run.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(stored, checkpoint.config_dict(cfg))
    metrics = loop.fit(cfg, strategy, model, tokenizer, enc_dec, train_data, val_data, str(run),
                       val_questions=questions, cache_dir=f"{root.rstrip('/')}/cache/tokens")
    return run, metrics


def _validation(root: str, cfg: TrainConfig, strategy: Any) -> tuple[data.TrainData | None, list[Row]]:
    """Validation rows for the loss and questions for exact match; never the test split."""
    from pst_core import examples

    try:
        val = data.assemble(root, cfg, strategy, "validation")
    except DataError:
        val = None  # no validation examples: the final model is the one kept
    exs = examples.load(root, cfg.task, "validation")[: cfg.max_val_examples or None]
    questions = [Row(e.example_id, e.question, e.gold_answer, tuple(e.choices or ()), e.answer_type) for e in exs]
    if cfg.select_by == "loss" and exs and (val is None or not val.rows):
        raise DataError(f"no usable {cfg.teacher} rationales for {cfg.task}/validation, so validation loss is undefined: "
                        "harvest the validation split or set select_by: exact_match")
    return val, questions


def train_fn(root: str) -> Callable[[dict[str, Any], str], Path]:
    """The training entry point experiments call: (options, run_id) -> run dir (finished runs are reused)."""
    from pst_core.train.config import resolve

    def run(options: dict[str, Any], run_id: str) -> Path:
        return Path(train(resolve(options), root, run_id=run_id)[0])

    return run
