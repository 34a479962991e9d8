"""Published run results: the small files of every finished run, kept in git beside the tables.

An experiment on a CPU takes longer than one working session, and the next session may be on a
fresh machine whose store holds no runs. So every run the paper driver finishes is copied, without
its checkpoints, to `<out>/runs/<run_id>/` (config.json, data.json, history.jsonl,
train_metrics.json, and after evaluation metrics.json and predictions.parquet). A rerun that finds
a run published there with the same training config and the same data fingerprint uses those files
instead of training again: the grid is chosen from its validation score, its test metrics are
reused while the EvalConfig is unchanged, and the paired tests read its predictions. Only a run
that must be evaluated again, and whose checkpoint is gone, is retrained.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.runner import output_names

TrainFn = Callable[[dict[str, Any], str], str | Path]
EvalFn = Callable[[Path, EvalConfig], dict[str, Any]]
OnPublish = Callable[[Path], None]  # called with the published folder after each copy (e.g. a git commit)
TRAIN_FILES = ("config.json", "data.json", "history.jsonl", "train_metrics.json")


def published_dir(out: str | Path, run_id: str) -> Path:
    """`<out>/runs/<run_id>/`"""
    return Path(out) / "runs" / run_id


def publish(run_dir: Path, out: str | Path, eval_cfg: EvalConfig | None = None) -> Path:
    """Copy a run's small files (and, with `eval_cfg`, that split's metrics and predictions) to `out`.
    Copies go through a temporary name and a rename, so a killed copy leaves no half file."""
    target = published_dir(out, Path(run_dir).name)
    if Path(run_dir).resolve() == target.resolve():
        return target
    target.mkdir(parents=True, exist_ok=True)
    names = list(TRAIN_FILES) + (list(output_names(eval_cfg.split)) if eval_cfg is not None else [])
    for name in names:
        source = Path(run_dir) / name
        if source.is_file():
            tmp = target / f".tmp-{name}"
            shutil.copyfile(source, tmp)
            tmp.replace(target / name)
    return target


def reusable(out: str | Path, run_id: str, options: dict[str, Any], root: str) -> Path | None:
    """The published folder of `run_id` if it finished training with exactly `options` on the data the
    store holds now (same fingerprint), with validation scored by today's answer rules, else None."""
    from pst_core.answers import EXTRACTOR_VERSION
    from pst_core.train.checkpoint import same_config
    from pst_core.train.config import resolve
    from pst_core.train.run import data_fingerprint

    pub = published_dir(out, run_id)
    if not all((pub / name).is_file() for name in ("config.json", "data.json", "train_metrics.json")):
        return None
    if json.loads((pub / "train_metrics.json").read_text()).get("answers_version") != EXTRACTOR_VERSION:
        return None  # its checkpoint was chosen by validation answers scored under other rules
    cfg = resolve(options)
    if not same_config(json.loads((pub / "config.json").read_text()), cfg):  # new options at their defaults are the same
        return None
    # Portable: the store re-embedded on another machine has the same texts and encoder revision,
    # but vectors that may differ in their last bits.
    recorded = json.loads((pub / "data.json").read_text()).get("portable_fingerprint")
    return pub if recorded is not None and recorded == data_fingerprint(cfg, root, portable=True) else None


def publishing_train(train_fn: TrainFn, out: str | Path, root: str, on_publish: OnPublish, log: Callable[[str], None]) -> TrainFn:
    """`train_fn` that reuses a published run (no training) where the store has no copy of it, and
    publishes every run it trains."""

    def run(options: dict[str, Any], run_id: str) -> Path:
        local = Path(root) / "runs" / run_id
        if not (local / "train_metrics.json").is_file():
            pub = reusable(out, run_id, options, root)
            if pub is not None:
                log(f"{run_id}: published in {pub}, not trained again")
                return pub
        run_dir = Path(train_fn(options, run_id))
        if not (published_dir(out, run_id) / "train_metrics.json").is_file():
            on_publish(publish(run_dir, out))
        return run_dir

    return run


def publishing_eval(eval_fn: EvalFn, out: str | Path, root: str, on_publish: OnPublish) -> EvalFn:
    """`eval_fn` that publishes the run's files and the evaluation's metrics and predictions (from the
    store's copy of the run: a published run whose checkpoint was gone is retrained and evaluated there)."""

    def run(run_dir: Path, ecfg: EvalConfig) -> dict[str, Any]:
        metrics = eval_fn(run_dir, ecfg)
        name = output_names(ecfg.split)[1]
        local = Path(root) / "runs" / Path(run_dir).name
        source = local if (local / name).is_file() else Path(run_dir)
        stored = published_dir(out, source.name) / name
        if not (source / name).is_file():  # an eval_fn that writes no files (tests)
            return metrics
        if not stored.is_file() or stored.read_bytes() != (source / name).read_bytes():
            on_publish(publish(source, out, ecfg))
        return metrics

    return run
