"""Acceptance on a real local Prefect server: new teacher -> triggered pipeline, caches, flow retry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from served_pipeline import FIRST_LIMIT, NEW_LIMIT, STRATEGIES, TASK, embedding_rows, pipeline_config, wait_for_run

pytestmark = pytest.mark.slow


def _task_runs_since(api: str, since: float) -> list:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            return await client.read_task_runs()

    with temporary_settings({PREFECT_API_URL: api}):
        runs = asyncio.run(read())
    return [r for r in runs if r.created and r.created.timestamp() >= since]


def _checkpoints(root: str) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in Path(root, "runs").glob("*/checkpoint/*") if p.is_file()}


def _questions(root: str) -> int:
    from pst_core import examples

    counts = examples.counts(root)
    return min(NEW_LIMIT, counts[(TASK, "train")]) + min(NEW_LIMIT, counts[(TASK, "validation")])


def test_deployments_are_registered_on_the_server(served_pipeline) -> None:
    assert {"manual", "new-teacher", "nightly"} <= set(served_pipeline.deployments)


def test_new_teacher_runs_the_pipeline_for_that_teacher_only(served_pipeline) -> None:
    run = served_pipeline.triggered
    assert run.state.is_completed(), run.state
    assert run.parameters["teachers"] == "rules-b"
    assert served_pipeline.a_requests_after == served_pipeline.a_requests, "the old teacher got requests"
    # Zero-shot-CoT sends two requests per question (rationale, then answer extraction), for the
    # train split (limited) and the validation split.
    assert served_pipeline.b_requests == 2 * _questions(served_pipeline.root)
    assert served_pipeline.embeddings_after - served_pipeline.embeddings_before == NEW_LIMIT - FIRST_LIMIT, \
        "only the new teacher's texts that rules-a did not already have may be embedded"
    runs = sorted(p.name for p in Path(served_pipeline.root, "runs").iterdir())
    # answer_only reads no rationale: one run per task, whose id names no teacher (tasks.train.NO_TEACHER).
    assert len(runs) == len(STRATEGIES) and all(r.startswith((f"{TASK}-rules-b-", f"{TASK}-answer_only-")) for r in runs)
    assert all((Path(served_pipeline.root, "runs", r, "metrics.json")).is_file() for r in runs)
    assert Path(served_pipeline.root, "reports", "report.md").is_file()


def test_second_run_of_the_pipeline_is_served_from_caches(served_pipeline) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    b_before, vectors_before, checkpoints_before = served_pipeline.teacher_b.stats().get("total", 0), embedding_rows(served_pipeline.root), _checkpoints(served_pipeline.root)
    since = time.time()
    with temporary_settings({PREFECT_API_URL: served_pipeline.api}):
        run_deployment("distill-pipeline/manual", parameters={"teachers": "rules-b"}, timeout=0)
    run = wait_for_run(served_pipeline.api, "manual", 1, proc=served_pipeline.serve, log=served_pipeline.serve_log)
    assert run.state.is_completed(), run.state
    assert served_pipeline.teacher_b.stats().get("total", 0) == b_before, "no new teacher calls"
    assert embedding_rows(served_pipeline.root) == vectors_before, "no new embeddings"
    assert _checkpoints(served_pipeline.root) == checkpoints_before, "no retraining"
    states = {}
    for tr in _task_runs_since(served_pipeline.api, since):
        states.setdefault(tr.name.rsplit("-", 1)[0], set()).add(tr.state_name)
    for stage in ("prepare", "harvest", "embed", "train", "evaluate"):
        assert states.get(stage) == {"Cached"}, f"{stage}: {states.get(stage)}"


def test_flow_retry_reuses_completed_harvest_and_embedding(served_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import pst_core.embed
    import pst_core.harvest.harvester
    import pst_core.train.run
    from flows import local_teacher, quickstart
    from flows.pipeline import distill_pipeline
    from pst_core import teachers
    from pst_core.prepare import PrepareConfig, prepare_task

    calls = {"harvest": 0, "embed": 0, "train": 0}
    real = {"harvest": pst_core.harvest.harvester.harvest, "embed": pst_core.embed.embed_rationales, "train": pst_core.train.run.train}

    def counted(name):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            if name == "train" and calls[name] == 1:
                raise RuntimeError("injected training failure (not transient: the flow fails, then retries)")
            return real[name](*args, **kwargs)
        return wrapper

    monkeypatch.setattr(pst_core.harvest.harvester, "harvest", counted("harvest"))
    monkeypatch.setattr(pst_core.embed, "embed_rationales", counted("embed"))
    monkeypatch.setattr(pst_core.train.run, "train", counted("train"))
    root = str(tmp_path / "data")
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(pipeline_config(quickstart.tiny_student(served_pipeline.root))))
    prepare_task(TASK, PrepareConfig(source="generated", generated_size=60), root)
    with local_teacher.serving(root, [TASK], tmp_path / "c.jsonl") as handle, temporary_settings({PREFECT_API_URL: served_pipeline.api}):
        teachers.add(root, teachers.TeacherConfig(name="rules-c", base_url=handle.url, model=local_teacher.MODEL, api_key_env="PST_LOCAL_TEACHER_KEY"))
        result = distill_pipeline.with_options(retries=1, retry_delay_seconds=0)(teachers=["rules-c"], config=str(config), root=root)
        sent = handle.stats().get("total", 0)
    # One harvest per split (train, validation) and one embed, all from the first attempt.
    assert calls["harvest"] == 2 and calls["embed"] == 1, f"harvest/embed reran on the flow retry: {calls}"
    assert calls["train"] == len(STRATEGIES) + 1, calls
    assert sent == 2 * _questions(root)
    assert {r["strategy"] for r in result["runs"]} == set(STRATEGIES)
