"""Deployments served by `pst serve` (prefect.yaml declares the same set for a work pool).

| deployment                          | runs                                   | when                          |
|-------------------------------------|----------------------------------------|-------------------------------|
| distill-pipeline/manual             | the whole pipeline, any parameters     | from the UI or CLI            |
| distill-pipeline/new-teacher        | the pipeline for one teacher only      | on `pst.teacher.registered`   |
| harvest-flow/nightly                | harvest for every registered teacher   | cron, 02:00 every night       |
| prepare/embed/train/evaluate-flow   | one stage                              | from the UI or CLI            |
"""

from __future__ import annotations

from typing import Any

from prefect.events import DeploymentEventTrigger

from flows.events import EVENT, RESOURCE_PREFIX
from flows.pipeline import distill_pipeline, embed_flow, evaluate_flow, harvest_flow, prepare_flow, train_flow

NIGHTLY_CRON = "0 2 * * *"


def new_teacher_trigger() -> DeploymentEventTrigger:
    """Run the pipeline for the teacher named by a `pst.teacher.registered` event, and only it."""
    return DeploymentEventTrigger(
        name="pst-new-teacher",
        expect={EVENT},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        parameters={"teachers": "{{ event.resource.name }}"},
    )


def build(config: str | None = None, root: str | None = None, cron: str = NIGHTLY_CRON) -> list[Any]:
    """The RunnerDeployments of pst, with `config` (a pipeline YAML) and `root` as default parameters."""
    params = {k: v for k, v in {"config": config, "root": root}.items() if v is not None}
    tags = ["pst"]
    return [
        distill_pipeline.to_deployment(name="manual", parameters=params, tags=tags),
        distill_pipeline.to_deployment(name="new-teacher", parameters=params, tags=tags, triggers=[new_teacher_trigger()]),
        harvest_flow.to_deployment(name="nightly", parameters=params, tags=tags, cron=cron),
        prepare_flow.to_deployment(name="manual", parameters=params, tags=tags),
        embed_flow.to_deployment(name="manual", parameters=params, tags=tags),
        train_flow.to_deployment(name="manual", parameters=params, tags=tags),
        evaluate_flow.to_deployment(name="manual", parameters={**params, "runs": []}, tags=tags),
    ]


def serve(config: str | None = None, root: str | None = None, cron: str = NIGHTLY_CRON, limit: int | None = None) -> None:
    """Register the deployments with the Prefect API and execute their runs in this process."""
    from prefect import serve as prefect_serve

    prefect_serve(*build(config, root, cron), limit=limit)
