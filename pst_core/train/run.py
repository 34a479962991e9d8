"""`train(cfg, root)`: the whole stage — load the student, assemble data from the store, fit, record.

Run ids default to `<task>-<strategy>-<teacher>-s<seed>`, so re-running the same command resumes
an interrupted run (from last/) and returns a finished one's metrics without training again. A
run's identity is its config and its data: `data.json` holds the fingerprint of the rows it
trains on, and a rerun over changed store data (new rationales, a re-scored flag, another
embedding) is refused instead of returning, or resuming into, a run of other data.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pst_core import staging
from pst_core.errors import ConfigError, DataError
from pst_core.train import checkpoint, data, loop, students
from pst_core.train.config import TrainConfig
from pst_core.train.strategies import Row, get_strategy

DATA_FILE = "data.json"
log = logging.getLogger("pst.train")


def default_run_id(cfg: TrainConfig) -> str:
    """`<task>-<strategy>-<teacher>-s<seed>` with path-unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{cfg.task}-{cfg.strategy}-{cfg.teacher}-s{cfg.seed}")


def run_dir_of(root: str, run_id: str) -> Path:
    """data/runs/<run_id>/ (for an object-store root, its local stage: see pst_core.staging)"""
    return staging.stage_root(root) / "runs" / run_id


def train(cfg: TrainConfig, root: str, run_id: str | None = None, dtype: Any = None) -> tuple[Path, dict[str, Any]]:
    """Train `cfg.student` with `cfg.strategy` on the store's (task, teacher) data; returns (run dir, metrics)."""
    if not cfg.task or not cfg.teacher:
        raise ConfigError("TrainConfig: task and teacher are required (--task T --teacher NAME)")
    run = staging.pull(root, run_dir_of(root, run_id or default_run_id(cfg)))
    stored = run / "config.json"
    if stored.is_file() and not checkpoint.same_config(json.loads(stored.read_text()), cfg):
        raise ConfigError(f"run {run.name} exists with a different config: pick another --run-id or delete {run}")
    strategy = get_strategy(cfg.strategy, cfg)
    train_data, val_data, questions = _assembled(root, cfg, strategy)
    identity = data_identity(train_data, val_data, questions)
    if stored.is_file():
        _check_same_data(run, identity)
        if (run / "train_metrics.json").is_file():
            staging.push(root, run)  # no-op unless an upload of the finished run was cut short
            return run, json.loads((run / "train_metrics.json").read_text())
    model, tokenizer, enc_dec = students.load_student(cfg.student, root, dtype)
    train_data = data.drop_too_long(train_data, strategy, tokenizer, cfg.max_length, enc_dec)
    if not train_data.rows:
        raise DataError(f"no {cfg.task}/train row fits max_length={cfg.max_length} with its answer: raise max_length")
    if val_data is not None:
        val_data = data.drop_too_long(val_data, strategy, tokenizer, cfg.max_length, enc_dec)
    train_data.notes = {**(train_data.notes or {}), "fingerprint": identity["fingerprint"],
                        "validation": val_data.notes if val_data is not None else None}
    run.mkdir(parents=True, exist_ok=True)
    # data.json before config.json: a run folder with a config and no data file predates fingerprints.
    checkpoint.write_json(run / DATA_FILE, identity)
    checkpoint.write_json(stored, checkpoint.config_dict(cfg))
    metrics = loop.fit(cfg, strategy, model, tokenizer, enc_dec, train_data, val_data, str(run),
                       val_questions=questions, cache_dir=f"{root.rstrip('/')}/cache/tokens")
    staging.push(root, run)
    return run, metrics


def data_fingerprint(cfg: TrainConfig, root: str, portable: bool = False) -> str:
    """The fingerprint of the data `train(cfg, root)` would train on now (for callers that name or
    cache runs by their inputs, so new store data gets a new run instead of a refusal); `portable`:
    the targets by what they are, not their bytes (see `data.fingerprint`)."""
    return data.fingerprint(*_assembled(root, cfg, get_strategy(cfg.strategy, cfg)), portable=portable)


def _assembled(root: str, cfg: TrainConfig, strategy: Any) -> tuple[data.TrainData, data.TrainData | None, list[Row]]:
    """Train rows, validation rows and validation questions, as assembled from the store."""
    train_data = data.assemble(root, cfg, strategy, "train")
    if not train_data.rows:
        raise DataError(f"no usable {cfg.teacher} rationales for {cfg.task}/train in {root}: run `pst harvest` first"
                        if strategy.uses_rationale else f"no {cfg.task}/train examples in {root}")
    return (train_data, *_validation(root, cfg, strategy))


def data_identity(train_data: data.TrainData, val_data: data.TrainData | None, questions: list[Row]) -> dict[str, Any]:
    """What `data.json` records: the data fingerprint and the row counts it covers."""
    return {"fingerprint": data.fingerprint(train_data, val_data, questions),
            "portable_fingerprint": data.fingerprint(train_data, val_data, questions, portable=True), "train_rows": len(train_data.rows),
            "validation_rows": len(val_data.rows) if val_data is not None else 0, "validation_questions": len(questions)}


def _check_same_data(run: Path, identity: dict[str, Any]) -> None:
    """Refuse to reuse or resume `run` on data other than it was trained on (ConfigError)."""
    path = run / DATA_FILE
    if not path.is_file():  # trained before runs recorded their data: nothing to compare against
        log.warning("run %s has no %s (trained before data fingerprints): reused without checking its data", run.name, DATA_FILE)
        return
    before = json.loads(path.read_text())
    if before.get("fingerprint") != identity["fingerprint"]:
        counts = ", ".join(f"{k} {before.get(k)} -> {identity[k]}" for k in identity if not k.endswith("fingerprint"))
        raise ConfigError(f"run {run.name} was trained on other data than the store now holds (rows, rationales, "
                          f"correctness flags or embeddings changed; {counts}): delete {run} to train it again on "
                          "the current data, or pick another --run-id")


def _validation(root: str, cfg: TrainConfig, strategy: Any) -> tuple[data.TrainData | None, list[Row]]:
    """Validation rows for the loss and questions for exact match; never the test split, nor its questions."""
    try:
        val = data.assemble(root, cfg, strategy, "validation")
    except DataError:
        val = None  # no validation examples: the final model is the one kept
    exs = data.split_examples(root, cfg, "validation")[0][: cfg.max_val_examples or None]
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
