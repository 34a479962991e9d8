"""Test helper: pst's deployments served against a real Prefect server, and a new teacher added.

Two rule-based local teachers run on their own replay servers (own /stats counters). Teacher
`rules-a` was harvested and embedded earlier (first 16 questions); then `pst serve` registers the
deployments and `pst teacher add rules-b` (a subprocess, as a user would type it) emits the event
whose trigger runs `distill_pipeline` for rules-b (first 24 questions: 16 texts shared with
rules-a, 8 new).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from prefect_server import server_env, started

TASK = "coin_flip"
STRATEGIES = ["answer_only", "pst"]
KEY_ENV = "PST_LOCAL_TEACHER_KEY"
FIRST_LIMIT, NEW_LIMIT = 16, 24


def pipeline_config(student: str) -> dict[str, Any]:
    """A pipeline small enough for a test: one task, two strategies, two optimizer steps."""
    return {
        "tasks": [TASK],
        "strategies": STRATEGIES,
        "prepare": {"source": "generated", "generated_size": 60},
        "harvest": {"limit": NEW_LIMIT},
        "embed": {"batch_size": 32},
        "train": {"student": student, "max_steps": 2, "batch_size": 4, "max_length": 128, "max_val_examples": 4,
                  "eval_every": 0, "log_every": 1, "max_train_examples": 16},
        "evaluate": {"max_examples": 6, "max_new_tokens": 8, "batch_size": 6, "bootstrap_samples": 50},
    }


def embedding_rows(root: str) -> int:
    from pst_core import store

    parts = store.list_parts(f"{root}/embeddings")
    return sum(store.preview(p, rows=0)["num_rows"] for p in parts)


async def _flow_runs(api: str, deployment: str | None = None) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with get_client() as client:
        if deployment is None:
            return await client.read_flow_runs()
        return await client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def wait_for_run(api: str, deployment: str, done: int, timeout_s: float = 240.0, proc: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    """Wait until `deployment` has `done` finished flow runs; returns the newest."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = asyncio.run(_flow_runs(api, deployment))
        final = [r for r in runs if r.state and r.state.is_final()]
        if len(final) >= done:
            return max(final, key=lambda r: r.created)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"pst serve exited:\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(1.0)
    raise TimeoutError(f"no finished run of {deployment} after {timeout_s}s:\n{log.read_text()[-4000:] if log else ''}")


class ServedPipeline:
    """Set-up of the acceptance scenario; attributes are read by the tests."""

    def __init__(self, api: str, workdir: Path) -> None:
        self.api, self.workdir = api, workdir
        self.root = str(workdir / "data")
        self.stack = ExitStack()

    def __enter__(self) -> ServedPipeline:
        from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

        from flows import local_teacher, quickstart
        from flows.pipeline import embed_flow, harvest_flow
        from pst_core import teachers
        from pst_core.prepare import PrepareConfig, prepare_task

        os.environ.setdefault(KEY_ENV, "local-no-secret")
        storage = self.workdir / "results"
        self.stack.enter_context(temporary_settings({PREFECT_API_URL: self.api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_LOCAL_STORAGE_PATH: storage}))
        cfg = pipeline_config(quickstart.tiny_student(self.root))
        self.config = str(self.workdir / "pipeline.yaml")
        Path(self.config).write_text(yaml.safe_dump(cfg))
        prepare_task(TASK, PrepareConfig(source="generated", generated_size=60), self.root)
        self.teacher_a = self.stack.enter_context(local_teacher.serving(self.root, [TASK], self.workdir / "a.jsonl"))
        self.teacher_b = self.stack.enter_context(local_teacher.serving(self.root, [TASK], self.workdir / "b.jsonl"))
        teachers.add(self.root, teachers.TeacherConfig(name="rules-a", base_url=self.teacher_a.url, model=local_teacher.MODEL, api_key_env=KEY_ENV))
        first = {"harvest": {"limit": FIRST_LIMIT}}
        harvest_flow(teachers=["rules-a"], tasks=[TASK], config=self.config, overrides=first, root=self.root)
        embed_flow(teachers=["rules-a"], tasks=[TASK], config=self.config, overrides=first, root=self.root)
        self.a_requests = self.teacher_a.stats().get("total", 0)
        self.embeddings_before = embedding_rows(self.root)

        env = server_env(self.workdir / "serve-home")
        env.update({"PREFECT_API_URL": self.api, "PST_DATA_DIR": self.root, "PREFECT_LOCAL_STORAGE_PATH": str(storage), KEY_ENV: "local-no-secret"})
        pst = str(Path(sys.executable).with_name("pst"))
        self.env, self.pst = env, pst
        self.serve_log = self.workdir / "serve.log"
        self.serve = self.stack.enter_context(started([pst, "serve", "--config", self.config], env, self.serve_log))
        self.deployments = self._wait_for_deployments()
        time.sleep(2.0)  # the trigger's automation is created with the deployment; let the server load it
        add = subprocess.run([pst, "teacher", "add", "rules-b", "--base-url", self.teacher_b.url, "--model", local_teacher.MODEL,
                              "--api-key-env", KEY_ENV], env=env, capture_output=True, text=True, timeout=120)
        assert add.returncode == 0, add.stderr
        self.triggered = wait_for_run(self.api, "new-teacher", 1, proc=self.serve, log=self.serve_log)
        self.b_requests = self.teacher_b.stats().get("total", 0)
        self.a_requests_after = self.teacher_a.stats().get("total", 0)
        self.embeddings_after = embedding_rows(self.root)
        return self

    def _wait_for_deployments(self, timeout_s: float = 90.0) -> list[str]:
        from prefect.client.orchestration import get_client

        async def names() -> list[str]:
            async with get_client() as client:
                return [d.name for d in await client.read_deployments()]

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = asyncio.run(names())
            if "new-teacher" in found and "nightly" in found:
                return found
            if self.serve.poll() is not None:
                raise RuntimeError(f"pst serve exited:\n{self.serve_log.read_text()[-4000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"deployments not registered:\n{self.serve_log.read_text()[-4000:]}")

    def __exit__(self, *exc: object) -> None:
        self.stack.close()
