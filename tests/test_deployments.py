"""Deployments: `pst serve`'s set and prefect.yaml declare the same flows, schedule and trigger."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from flows import deployments, events

REPO = Path(__file__).resolve().parent.parent
PREFECT_YAML = yaml.safe_load((REPO / "prefect.yaml").read_text())


def _served() -> dict[tuple[str, str], object]:
    return {(d.flow_name, d.name): d for d in deployments.build(config="configs/quickstart.yaml", root="/tmp/pst-data")}


def test_serve_registers_pipeline_stage_and_scheduled_deployments() -> None:
    served = _served()
    assert {("distill-pipeline", "manual"), ("distill-pipeline", "new-teacher"), ("harvest-flow", "nightly"),
            ("prepare-flow", "manual"), ("embed-flow", "manual"), ("train-flow", "manual"), ("evaluate-flow", "manual")} == set(served)
    nightly = served[("harvest-flow", "nightly")]
    assert [s.schedule.cron for s in nightly.schedules] == [deployments.NIGHTLY_CRON]
    assert "teachers" not in nightly.parameters, "the nightly harvest covers every registered teacher"
    assert served[("distill-pipeline", "manual")].parameters == {"config": "configs/quickstart.yaml", "root": "/tmp/pst-data"}


def test_new_teacher_trigger_runs_the_pipeline_for_that_teacher_only() -> None:
    (trigger,) = _served()[("distill-pipeline", "new-teacher")].triggers
    assert trigger.expect == {events.EVENT}
    assert trigger.match.model_dump()["prefect.resource.id"] == "pst.teacher.*"
    assert trigger.parameters == {"teachers": "{{ event.resource.name }}"}
    from flows.config import as_list

    assert as_list("gpt-4o-mini") == ["gpt-4o-mini"], "the templated single name becomes a one-teacher list"


def test_prefect_yaml_declares_the_served_deployments_on_a_process_pool() -> None:
    declared = {}
    for spec in PREFECT_YAML["deployments"]:
        module, fn = spec["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), fn)
        declared[(flow.name, spec["name"])] = spec
        assert spec["work_pool"]["name"] == "pst-process"
    assert set(declared) == set(_served())
    (step,) = PREFECT_YAML["pull"]
    assert "prefect.deployments.steps.set_working_directory" in step
    schedule = declared[("harvest-flow", "nightly")]["schedules"][0]
    assert schedule["cron"] == deployments.NIGHTLY_CRON
    (trigger,) = declared[("distill-pipeline", "new-teacher")]["triggers"]
    assert trigger["expect"] == [events.EVENT] and trigger["match"] == {"prefect.resource.id": "pst.teacher.*"}
    assert trigger["parameters"] == {"teachers": "{{ event.resource.name }}"}


def test_teacher_event_carries_no_secret_fields() -> None:
    payload = events.teacher_payload({"model": "m", "base_url": "http://x/v1", "api_key_env": "OPENAI_API_KEY", "api_key": "sk-secret", "headers": {"Authorization": "Bearer sk"}})
    assert payload == {"model": "m", "base_url": "http://x/v1", "api_key_env": "OPENAI_API_KEY"}
