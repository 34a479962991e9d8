"""Prefect tasks: evaluate one trained run, and write the report over all evaluated runs."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pst_core.config import from_dict
from tasks.artifacts import artifact_key, markdown_table, publish_metrics, publish_preview
from tasks.policy import RETRY_OPTIONS, stat_fingerprint, store_cache
from tasks.train import model_lock

METRIC_COLUMNS = ("task", "strategy", "teacher", "accuracy", "ci_low", "ci_high", "majority_accuracy", "n", "mean_new_tokens",
                  "mean_latency_ms")


def _reads(inputs: dict[str, Any]) -> list[Any]:
    # The checkpoint evaluated (rewritten in place when a run is retrained), not the run's outputs.
    return [{"checkpoint": stat_fingerprint(f"{inputs['root']}/runs/{inputs['run_id']}/checkpoint")}]


@task(name="evaluate", cache_policy=store_cache(_reads), persist_result=True, **RETRY_OPTIONS)
def evaluate(root: str, run_id: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate `<root>/runs/<run_id>` by its strategy's inference rule; previews the predictions."""
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.runner import evaluate_run, output_names

    cfg = from_dict(EvalConfig, config)
    with model_lock():  # see tasks.train: one model loads at a time per process
        metrics = evaluate_run(f"{root}/runs/{run_id}", cfg, root=root)
    predictions = f"{root.rstrip('/')}/runs/{run_id}/{output_names(cfg.split)[0]}"  # a path or an s3:// URI
    publish_preview(predictions, artifact_key("predictions", run_id))
    publish_metrics(f"metrics {run_id}", [{k: metrics.get(k) for k in METRIC_COLUMNS}], key=artifact_key("metrics", run_id))
    return {**metrics, "run_id": run_id, "outputs": [predictions]}


@task(name="evaluate-untrained", cache_policy=NO_CACHE, **RETRY_OPTIONS)
def evaluate_untrained(root: str, task_name: str, student: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The student before distillation on the task's questions (answer-only rule): the report's floor.

    Not cached by Prefect: pst_core reuses its stored metrics while the eval config is unchanged.
    """
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.runner import evaluate_untrained as run_untrained

    cfg = from_dict(EvalConfig, config)
    with model_lock():
        metrics = run_untrained(student, task_name, cfg, root=root)
    publish_metrics(f"metrics {metrics['run_id']}", [{k: metrics.get(k) for k in METRIC_COLUMNS}], key=artifact_key("metrics", metrics["run_id"]))
    return metrics


@task(name="report", cache_policy=NO_CACHE, **RETRY_OPTIONS)
def report(root: str, runs: list[str] | None = None, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `<root>/reports/report.{md,png,json}` over every evaluated run (cheap: never cached)."""
    from pst_core.evaluate.report import build_report

    out = build_report(root, split=(config or {}).get("split", "test"))
    rows = [{k: r.get(k) for k in METRIC_COLUMNS} for r in out["rows"]]
    publish_metrics("pst report", rows, key="pst-report", note=f"Report: `{out['markdown']}`, chart: `{out['png']}`")
    return {"markdown": out["markdown"], "png": out["png"], "table": markdown_table(rows), "outputs": [out["markdown"]]}
