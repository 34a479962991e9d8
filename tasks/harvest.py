"""Prefect task: harvest one teacher x task split into the rationale store (the request cache)."""

from __future__ import annotations

from typing import Any

from prefect import task

from pst_core import store
from pst_core.config import from_dict
from tasks.artifacts import artifact_key, progress_reporter, publish_preview
from tasks.placement import executor
from tasks.policy import RETRY_OPTIONS, store_cache

# Teacher fields that change the requests; like the request key, never the URL, limits or key.
TEACHER_STATE = ("model", "endpoint")


def _reads(inputs: dict[str, Any]) -> list[Any]:
    # The questions, the teacher's model and the prompt template's version (a template edit
    # changes every request key, so it must rerun the harvest even with unchanged inputs).
    from pst_core import prompts, teachers

    root, cfg = inputs["root"], inputs["config"]
    teacher = teachers.get(root, cfg["teacher"]).public()
    examples = store.partition_path(root, "examples", task=cfg["task"], split=cfg.get("split", "train"))
    prompt = prompts.get(cfg.get("prompt", "zs_cot"), cfg["task"]).version
    return [examples, {**{k: teacher.get(k) for k in TEACHER_STATE}, "prompt_version": prompt}]


@task(name="harvest", cache_policy=store_cache(_reads), persist_result=True, **RETRY_OPTIONS)
def harvest(root: str, config: dict[str, Any]) -> dict[str, Any]:
    """Send every uncached request of `config` (a HarvestConfig dict) to its teacher; store results."""
    from pst_core.harvest.config import HarvestConfig
    from pst_core.harvest.harvester import harvest as run
    from pst_core.harvest.rationales import partition

    cfg = from_dict(HarvestConfig, {"progress": False, **config})
    report = progress_reporter(artifact_key("harvest", cfg.teacher, cfg.task, cfg.split), f"harvest {cfg.teacher} / {cfg.task}")
    summary = run(cfg, root, progress=lambda done, total, _summary: report(done, total))
    path = partition(root, cfg.teacher, cfg.task, cfg.split)
    outputs = [path] if store.list_parts(path) else []
    for p in outputs:
        publish_preview(p)
    # Failed requests are sent again by the next run, so a record with failures is not reused.
    return {**summary.as_dict(), "outputs": outputs, "complete": summary.failed == 0, "worker": executor()}
