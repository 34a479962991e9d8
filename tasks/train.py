"""Prefect task: train one student (teacher x task x strategy) into `<root>/runs/<run_id>/`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prefect import task

from pst_core import store
from pst_core.coverage import uses_rationale
from tasks.artifacts import artifact_key, publish_metrics
from tasks.policy import RETRY_OPTIONS, digest, stat_fingerprint, store_cache

# transformers builds models under a process-wide meta-device context, so two models loading in
# threads of one process can corrupt each other; one process trains one model at a time (and on
# one device that is also the fastest order). The Dask runner trains in parallel processes.
MODEL_LOCK = threading.Lock()


def model_lock() -> threading.Lock:
    """This process's MODEL_LOCK. Task bodies take it through this function, never the global: a
    task shipped to a Dask worker is pickled by value with the globals it names, and a lock cannot
    be pickled, while a module function travels by reference (the worker uses its own lock)."""
    return MODEL_LOCK


# The teacher of a strategy that reads no rationale (answer_only): one run per task serves every
# teacher, so a new teacher neither retrains it nor meets another teacher's run of the same data.
NO_TEACHER = "none"


def teacher_free(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its teacher set to `NO_TEACHER` when its strategy reads no rationale."""
    return config if uses_rationale(config["strategy"]) else {**config, "teacher": NO_TEACHER}


def run_id_of(config: dict[str, Any], data: str = "") -> str:
    """A deterministic run id of the options and the data fingerprint: a retried or re-keyed task
    resumes the same folder, and a new harvest (new rationales, re-scored rows) trains a new run
    instead of meeting the old run's refusal to resume on other data. A strategy that reads no
    rationale has no teacher in its id (nor in its options): `<task>-<strategy>-<digest>`."""
    config = teacher_free(config)
    key = digest({**config, "_data": data} if data else config)[:10]
    if not uses_rationale(config["strategy"]):
        return f"{config['task']}-{config['strategy']}-{key}"
    return f"{config['task']}-{config['teacher']}-{config['strategy']}-{key}"


def _reads(inputs: dict[str, Any]) -> list[Any]:
    # Successful rationales and the examples of this teacher/task. Embeddings are a pure function
    # of those texts and the encoder named in the config, so other teachers' new vectors do not
    # retrain this run, and neither do error rows of retried requests. A strategy that reads no
    # rationale depends on the examples only.
    from pst_core.harvest.rationales import success_digest

    root, cfg = inputs["root"], inputs["config"]
    student = cfg.get("student")
    rationales = success_digest(store.partition_path(root, "rationales", teacher=cfg["teacher"], task=cfg["task"])) \
        if uses_rationale(cfg["strategy"]) else None
    return [
        {"rationales": rationales},
        store.partition_path(root, "examples", task=cfg["task"]),
        {"student": stat_fingerprint(student) if student and Path(student).is_dir() else student},
    ]


@task(name="train", cache_policy=store_cache(_reads), persist_result=True, **RETRY_OPTIONS)
def train(root: str, config: dict[str, Any]) -> dict[str, Any]:
    """Train with `config` (a TrainConfig dict naming strategy, teacher and task); a rerun resumes.
    A strategy that reads no rationale trains under `NO_TEACHER`, whatever teacher `config` names."""
    from pst_core.train.config import resolve
    from pst_core.train.run import data_fingerprint
    from pst_core.train.run import train as run

    config = teacher_free(config)
    cfg = resolve({"progress": False, **config})
    run_id = run_id_of(config, data_fingerprint(cfg, root))
    with model_lock():
        run_dir, metrics = run(cfg, root, run_id=run_id)
    flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    publish_metrics(f"training {run_id}", [flat] if flat else [], key=artifact_key("train", run_id))
    return {"run_id": run_id, "run_dir": str(run_dir), "metrics": flat, "outputs": [str(run_dir / "checkpoint")]}
