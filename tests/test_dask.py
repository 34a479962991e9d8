"""`PST_TASK_RUNNER=dask`: distill_pipeline on a LocalCluster of two worker processes, and on a
`dask scheduler` + `dask worker` started here (`PST_DASK_ADDRESS`); without prefect-dask, one line.

Two rule-based local teachers x one task x two splits give four harvest tasks and two embed
tasks; each records the Dask worker it ran on (`tasks.placement.executor`), so the results show
that both workers took part. Sizes are tiny (8 questions a split, one optimizer step, the tiny
random-init student): the point is where the tasks ran, not what they computed.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_server import free_port, started

TASK = "coin_flip"
TEACHERS = ["rules-a", "rules-b"]
KEY_ENV = "PST_LOCAL_TEACHER_KEY"
BIN = Path(sys.executable).parent


def _config(student: str) -> dict[str, Any]:
    """Every stage at its smallest: 8 questions a split, pst only, one step, 2 test examples."""
    return {
        "tasks": [TASK],
        "strategies": ["pst"],
        "prepare": {"source": "generated", "generated_size": 40},
        "harvest": {"limit": 8},
        "embed": {"batch_size": 16},
        "train": {"student": student, "max_steps": 1, "batch_size": 4, "max_length": 96, "max_val_examples": 2,
                  "eval_every": 0, "log_every": 1, "max_train_examples": 8},
        "evaluate": {"max_examples": 2, "max_new_tokens": 4, "batch_size": 2, "bootstrap_samples": 10},
    }


def _run_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Two local teachers, then distill_pipeline under PST_TASK_RUNNER=dask plus `env`."""
    from flows import local_teacher, quickstart
    from flows.pipeline import distill_pipeline
    from pst_core import teachers
    from pst_core.prepare import PrepareConfig, prepare_task

    root = str(tmp_path / "data")
    monkeypatch.setenv(KEY_ENV, "local-no-secret")  # before the workers start: they inherit it
    monkeypatch.setenv("PST_TASK_RUNNER", "dask")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(_config(quickstart.tiny_student(root))))
    prepare_task(TASK, PrepareConfig(source="generated", generated_size=40), root)
    with ExitStack() as stack:
        for name in TEACHERS:
            handle = stack.enter_context(local_teacher.serving(root, [TASK], tmp_path / f"{name}.jsonl"))
            teachers.add(root, teachers.TeacherConfig(name=name, base_url=handle.url, model=local_teacher.MODEL, api_key_env=KEY_ENV))
        return distill_pipeline(teachers=TEACHERS, tasks=[TASK], config=str(config), root=root)


def _workers(results: list[dict[str, Any]]) -> set[str]:
    return {r["worker"] for r in results}


def _check_pipeline(result: dict[str, Any], workers: set[str] | None = None) -> None:
    harvest, embed = _workers(result["harvest"]), _workers(result["embed"])
    assert len(result["harvest"]) == 4 and all(r["failed"] == 0 and r["sent"] > 0 for r in result["harvest"])
    assert len(harvest) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in harvest), harvest
    assert len(embed) == 2 and embed <= (workers or harvest), f"embeds ran on {embed}, harvests on {harvest}"
    if workers is not None:
        assert harvest == workers, f"harvests ran on {harvest}, not the started workers {workers}"
    assert sorted(r["run_id"].rsplit("-pst-", 1)[0] for r in result["train"]) == [f"{TASK}-{t}" for t in TEACHERS]
    assert len(result["runs"]) == 2 and result["report"]["table"]


@pytest.mark.slow
def test_pipeline_on_a_local_cluster_spreads_harvest_and_embed_over_two_workers(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PST_DASK_ADDRESS", raising=False)
    result = _run_pipeline(tmp_path, monkeypatch, PST_DASK_WORKERS="2")
    _check_pipeline(result)


def _scheduler_workers(address: str, expected: int, timeout_s: float = 90.0) -> set[str]:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(expected, timeout=timeout_s)
        return set(client.scheduler_info()["workers"])


@pytest.mark.slow
def test_pipeline_on_a_separately_started_dask_scheduler_and_workers(prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, KEY_ENV: "local-no-secret", "OMP_NUM_THREADS": "1"}
    dask = str(BIN / "dask")
    with started([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env, tmp_path / "scheduler.log"), \
         started([dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                  "--local-directory", str(tmp_path / "dask-worker")], env, tmp_path / "worker.log"):
        workers = _scheduler_workers(address, 2)
        result = _run_pipeline(tmp_path, monkeypatch, PST_DASK_ADDRESS=address)
    _check_pipeline(result, workers)


def test_dask_runner_without_prefect_dask_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """`pst run pipeline` with PST_TASK_RUNNER=dask where prefect_dask cannot be imported."""
    import os

    shadow = tmp_path / "shadow" / "prefect_dask"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'prefect_dask'\", name='prefect_dask')\n")
    env = {**os.environ, "PST_TASK_RUNNER": "dask", "PYTHONPATH": str(shadow.parent), "PST_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([str(BIN / "pst"), "run", "pipeline"], check=False, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "PST_TASK_RUNNER=dask needs prefect-dask" in lines[0] and "pip install 'pst[dask]'" in lines[0]


def test_unknown_task_runner_names_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import runners
    from pst_core.errors import ConfigError

    monkeypatch.setenv("PST_TASK_RUNNER", "ray")
    with pytest.raises(ConfigError, match="valid: threads, dask"):
        runners.task_runner()
    monkeypatch.setenv("PST_TASK_RUNNER", "dask")
    monkeypatch.setenv("PST_DASK_WORKERS", "0")
    monkeypatch.delenv("PST_DASK_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="PST_DASK_WORKERS"):
        runners.task_runner()
    monkeypatch.setenv("PST_DASK_WORKERS", "3")
    monkeypatch.setenv("PST_DASK_THREADS", "2")
    assert runners.local_cluster_options() == {"n_workers": 3, "threads_per_worker": 2, "processes": True, "dashboard_address": None}
    monkeypatch.setenv("PST_DASK_THREADS", "none")
    with pytest.raises(ConfigError, match="PST_DASK_THREADS"):
        runners.task_runner()


def test_every_stage_flow_and_task_pickles_for_a_dask_worker() -> None:
    """Dask ships each task (and the flow in its context) by value: no global of theirs may hold a
    lock or other unpicklable state (tasks.train once named a threading.Lock in its body)."""
    import cloudpickle

    from flows import pipeline, runners
    from tasks import coverage, embed, evaluate, harvest, prepare, train

    stage_flows = [pipeline.prepare_flow, pipeline.harvest_flow, pipeline.embed_flow, pipeline.train_flow,
                   pipeline.evaluate_flow, pipeline.distill_pipeline]
    for f in stage_flows:
        cloudpickle.dumps(f.with_options(task_runner=runners.task_runner()))
    for t in (prepare.prepare, harvest.harvest, embed.embed, coverage.coverage, train.train,
              evaluate.evaluate, evaluate.evaluate_untrained, evaluate.report):
        cloudpickle.loads(cloudpickle.dumps(t))
