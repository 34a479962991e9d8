"""Experiment tracking through accelerate's tracker API (`TrainConfig.report_to`, accelerate `log_with`).

Every line the loop writes to history.jsonl (each loss term, lr, epoch, tokens/s; each validation
metric) goes to every tracker with the same names and step, and `log_evaluation` adds a run's test
metrics to the same tracker run afterwards. TensorBoard is offline and needs no account: its event
files go to `<run>/tb/`. MLflow (MLFLOW_TRACKING_URI, a local ./mlruns by default) and W&B (WANDB_*
settings; WANDB_MODE=offline works without network) are used when installed. A resumed run continues
the same tracker run: `<run>/trackers.json` keeps the W&B and MLflow run ids, and TensorBoard hides
the steps logged after the restored checkpoint (SummaryWriter's purge_step), as history.jsonl drops them.
An empty `report_to` (the default) creates no tracker at all.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError

TB_DIR, IDS_FILE = "tb", "trackers.json"
MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "comet_ml": "comet_ml", "aim": "aim",
           "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "trackio": "trackio"}
NOT_SCALARS = ("step", "validation")


def check_installed(names: tuple[str, ...] | list[str]) -> None:
    """One clear error naming the trackers whose package is missing."""
    missing = [n for n in names if importlib.util.find_spec(MODULES.get(n, n)) is None]
    if missing:
        raise ConfigError(f"report_to lists {', '.join(missing)}, not installed: pip install {' '.join(MODULES.get(n, n) for n in missing)} "
                          "(or drop it from report_to)")


def stored_ids(run: Path) -> dict[str, str]:
    """The tracker run ids a run was logged under (empty before its first start)."""
    path = run / IDS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def trackers(names: tuple[str, ...] | list[str], project: str, run: Path, resume_step: int | None = None) -> list[Any]:
    """accelerate trackers for `names`: TensorBoard in `<run>/tb/`, W&B and MLflow named by the run
    id and, when `resume_step` is set, continuing the tracker runs recorded for this run."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS, MLflowTracker, TensorBoardTracker, WandBTracker

    check_installed(names)
    ids = stored_ids(run) if resume_step is not None else {}
    out: list[Any] = []
    for name in names:
        if name == "tensorboard":
            # purge_step: TensorBoard hides what a killed run logged after its last checkpoint.
            out.append(TensorBoardTracker(TB_DIR, str(run), **({"purge_step": resume_step + 1} if resume_step else {})))
        elif name == "wandb":
            out.append(WandBTracker(project, name=run.name, id=ids.get("wandb") or uuid.uuid4().hex[:12], resume="allow", dir=str(run)))
        elif name == "mlflow":
            out.append(MLflowTracker(experiment_name=project, run_id=ids.get("mlflow"), run_name=run.name))
        else:
            cls = LOGGER_TYPE_TO_CLASS[name]
            out.append(cls(project, str(run)) if cls.requires_logging_directory else cls(project))
    return out


def record_ids(run: Path, started: list[Any]) -> None:
    """Write the W&B and MLflow run ids of started trackers to `<run>/trackers.json` (for resume and evaluation)."""
    from pst_core.train.checkpoint import write_json

    ids = {}
    for t in started:
        if t.name == "wandb" and getattr(t, "run", None) is not None:
            ids["wandb"] = t.run.id
        elif t.name == "mlflow" and getattr(t, "active_run", None) is not None:
            ids["mlflow"] = t.active_run.info.run_id
    if ids:
        write_json(run / IDS_FILE, {**stored_ids(run), **ids})


def hparams(config: dict[str, Any]) -> dict[str, Any]:
    """A config as the flat scalars trackers take (TensorBoard's hparams refuse lists and None)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, (list, tuple)):
            v = ",".join(map(str, v))
        out[k] = "null" if v is None else v
    return out


def scalars(entry: dict[str, Any]) -> dict[str, float]:
    """The numbers of one history line (its step is the tracker step; the validation flag is not a metric)."""
    return {k: float(v) for k, v in entry.items()
            if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def start(accelerator: Any, cfg: Any, run: Path, config: dict[str, Any], resumed: bool) -> None:
    """Start the accelerator's trackers (a fresh run records its config as hyperparameters)."""
    accelerator.init_trackers(cfg.tracker_project, config=None if resumed else hparams(config))
    if accelerator.is_main_process:
        record_ids(run, accelerator.trackers)


def log_evaluation(run_dir: str | Path, metrics: dict[str, Any], prefix: str = "test_") -> list[str]:
    """Log a run's evaluation metrics (numbers only, names prefixed) to the tracker runs it trained
    under, at its last training step; returns the trackers written to (none when report_to is empty)."""
    from pst_core.train.checkpoint import load_config

    run = Path(run_dir)
    cfg = load_config(run)
    if not cfg.report_to:
        return []
    metrics_file = run / "train_metrics.json"
    step = json.loads(metrics_file.read_text()).get("steps", 0) if metrics_file.is_file() else 0
    values = {f"{prefix}{k}": v for k, v in scalars(metrics).items()}
    opened = trackers(cfg.report_to, cfg.tracker_project, run, resume_step=None)
    ids = stored_ids(run)
    for t in opened:  # the same tracker runs as training (W&B and MLflow by their recorded ids)
        if t.name == "wandb" and "wandb" in ids:
            t.init_kwargs["id"] = ids["wandb"]
        elif t.name == "mlflow" and "mlflow" in ids:
            t.run_id = ids["mlflow"]
        t.start()
        t.log(values, step=step)
        t.finish()
    return [t.name for t in opened]
