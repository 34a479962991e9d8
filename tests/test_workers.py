"""Several Prefect workers: prefect.yaml deployed with `prefect deploy --all` onto a process pool
polled by two `prefect worker start` processes, against a real local Prefect server.

Each worker takes one flow run at a time (`--limit 1`), so two flow runs scheduled together run at
once on different workers. The flow is the nightly deployment's `harvest_flow`, one teacher per
run (the cheapest flow that calls teachers and writes the store): two rule-based local teachers
for the concurrent runs, and a slow third one whose worker is killed (kill -9, with its flow-run
process) mid-harvest; the same flow run, marked Crashed and retried with `prefect flow-run retry`,
then finishes on the other worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_server import running_server, server_env, started

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POOL = "pst-process"
TASK = "coin_flip"
KEY_ENV = "PST_LOCAL_TEACHER_KEY"
WORKERS = ("worker-a", "worker-b")
QUICK, SLOW = 8, 30  # questions harvested by the concurrent runs / by the run whose worker dies


class Pool:
    """Server, store, teachers, `prefect deploy --all` and two workers; attributes read by the tests."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.root = workdir, str(workdir / "data")
        self.stack = ExitStack()
        self.workers: dict[str, subprocess.Popen] = {}
        self.teachers: dict[str, Any] = {}

    def __enter__(self) -> Pool:  # noqa: PYI034 - a fixture's world, never subclassed
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_LOCAL_STORAGE_PATH,
            temporary_settings,
        )

        from pst_core.prepare import PrepareConfig, prepare_task

        (self.workdir / "server").mkdir()
        self.api = self.stack.enter_context(running_server(self.workdir / "server"))
        self.storage = self.workdir / "results"  # shared by both workers: a retry finds completed tasks
        self.stack.enter_context(temporary_settings({PREFECT_API_URL: self.api, PREFECT_LOCAL_STORAGE_PATH: self.storage}))
        prepare_task(TASK, PrepareConfig(source="generated", generated_size=80), self.root)
        self._teacher("rules-a", latency_ms=500)  # 2 requests at a time: 16 calls take ~4 s
        self._teacher("rules-b", latency_ms=500)
        self._teacher("rules-slow", latency_ms=250)  # 60 calls take ~8 s
        self.config = self.workdir / "harvest.yaml"
        self.config.write_text(yaml.safe_dump({"tasks": [TASK], "harvest": {"splits": ["train"], "limit": QUICK}}))
        env = self._env("cli-home")
        self._cli(["prefect", "work-pool", "create", POOL, "--type", "process", "--overwrite"], env)
        self.deploy = self._cli(["prefect", "--no-prompt", "deploy", "--all"], {**env, "PST_PROJECT_DIR": str(REPO)})
        self.deployments = asyncio.run(self._deployments())
        asyncio.run(self._no_nightly_schedule())
        for name in WORKERS:
            cmd = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process", "--name", name, "--limit", "1"]
            self.workers[name] = self.stack.enter_context(started(cmd, self._env(f"{name}-home"), self.workdir / f"{name}.log"))
        self._wait_for_workers()
        return self

    def _wait_for_workers(self, timeout_s: float = 120.0) -> None:
        """Both workers polling the pool before any run is scheduled (else the first one up takes all)."""
        from prefect.client.orchestration import get_client

        async def online() -> set[str]:
            async with get_client() as client:
                return {w.name for w in await client.read_workers_for_work_pool(POOL)}

        deadline = time.monotonic() + timeout_s
        while set(WORKERS) - asyncio.run(online()):
            dead = [n for n, p in self.workers.items() if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, f"workers {dead or 'not polling'}:\n{self.log_tail()}"
            time.sleep(0.5)

    def _teacher(self, name: str, latency_ms: float) -> None:
        from flows import events, local_teacher
        from pst_core import teachers
        from pst_core.replay import records, server

        index = records.load(local_teacher.write_records(self.root, [TASK], self.workdir / f"{name}.jsonl"))
        handle = self.stack.enter_context(server.running(index, server.Faults(latency_ms=latency_ms)))
        with events.suppressed():  # no pst.teacher.registered event: it would trigger the new-teacher deployment
            teachers.add(self.root, teachers.TeacherConfig(name=name, base_url=handle.url, model=local_teacher.MODEL,
                                                           api_key_env=KEY_ENV, concurrency=2))
        self.teachers[name] = handle

    def _env(self, home: str) -> dict[str, str]:
        env = server_env(self.workdir / home)
        env.update({"PREFECT_API_URL": self.api, "PST_DATA_DIR": self.root, KEY_ENV: "local-no-secret",
                    "PREFECT_LOCAL_STORAGE_PATH": str(self.storage), "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
                    "PREFECT_WORKER_QUERY_SECONDS": "1", "OMP_NUM_THREADS": "1"})
        return env

    def _cli(self, cmd: list[str], env: dict[str, str]) -> str:
        out = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    async def _deployments(self) -> dict[str, Any]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            found = await client.read_deployments()
            flows = {f.id: f.name for f in await client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d for d in found}

    async def _no_nightly_schedule(self) -> None:
        """Turn off the 02:00 schedule for the test: a nightly run would harvest every teacher."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        nightly = self.deployments["harvest-flow/nightly"]
        async with get_client() as client:
            for schedule in nightly.schedules:
                await client.update_deployment_schedule(nightly.id, schedule.id, active=False)
            for run in await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[nightly.id]))):
                await client.delete_flow_run(run.id)

    def start_harvest(self, teacher: str, limit: int) -> Any:
        """A flow run of the nightly deployment for one teacher (scheduled now, picked by a worker)."""
        from prefect.deployments import run_deployment

        params = {"teachers": teacher, "tasks": [TASK], "config": str(self.config), "overrides": {"harvest": {"limit": limit}}}
        return run_deployment("harvest-flow/nightly", parameters=params, timeout=0)

    def log_tail(self) -> str:
        return "\n".join(f"--- {n}.log\n{(self.workdir / f'{n}.log').read_text()[-3000:]}" for n in WORKERS)

    def __exit__(self, *exc: object) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    with Pool(tmp_path_factory.mktemp("workers")) as world:
        yield world


def _read_run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _wait(pool: Pool, run_id: Any, until: str = "final", timeout_s: float = 240.0) -> Any:
    """Poll a flow run until it is final (or Running, with until="running")."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = _read_run(run_id)
        if run.state and (run.state.is_final() if until == "final" else run.state.is_running()):
            return run
        time.sleep(0.5)
    raise TimeoutError(f"flow run {run_id} not {until} after {timeout_s}s:\n{pool.log_tail()}")


def _rows(root: str, teacher: str, deduped: bool = True) -> Any:
    from pst_core.harvest import rationales

    return rationales.read(root, teacher=teacher, task=TASK, split="train", deduped=deduped)


def _requests(pool: Pool, teacher: str) -> int:
    return pool.teachers[teacher].stats().get("total", 0)


def test_prefect_deploy_all_registers_every_deployment_on_the_process_pool(pool: Pool) -> None:
    expected = {"distill-pipeline/manual", "distill-pipeline/new-teacher", "harvest-flow/nightly", "prepare-flow/manual",
                "embed-flow/manual", "train-flow/manual", "evaluate-flow/manual"}
    assert expected == set(pool.deployments), pool.deploy
    assert {d.work_pool_name for d in pool.deployments.values()} == {POOL}


def test_two_flow_runs_run_at_once_on_two_workers_each_with_its_own_teacher(pool: Pool) -> None:
    runs = {t: pool.start_harvest(t, QUICK) for t in ("rules-a", "rules-b")}
    done = {t: _wait(pool, r.id) for t, r in runs.items()}
    for teacher, run in done.items():
        assert run.state.is_completed(), f"{teacher}: {run.state}\n{pool.log_tail()}"
    assert {run.labels["prefect.worker.name"] for run in done.values()} == set(WORKERS), "each worker ran one of them"
    a, b = done["rules-a"], done["rules-b"]
    assert a.start_time < b.end_time and b.start_time < a.end_time, "the two runs did not overlap"
    processes = set()
    for teacher, run in done.items():
        (summary,) = run.state.result()  # one teacher x one task x one split
        assert summary["teacher"] == teacher and summary["failed"] == 0 and summary["cache_hits"] == 0
        processes.add(summary["worker"])  # host:pid of the flow-run process its worker started
        # Zero-shot-CoT: two requests (rationale, then answer) per question, each teacher only its own.
        assert _requests(pool, teacher) == summary["sent"] == 2 * QUICK
        assert _rows(pool.root, teacher).num_rows == QUICK
    assert len(processes) == 2, processes
    assert _requests(pool, "rules-slow") == 0


def _kill(pool: Pool, worker: str, run: Any) -> None:
    """kill -9 the worker's process group and its flow-run process, as a lost machine would."""
    pid = int(str(run.infrastructure_pid).rsplit(":", 1)[-1])
    for target in (lambda: os.killpg(pool.workers[worker].pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except ProcessLookupError:
            pass
    pool.workers[worker].wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
        time.sleep(0.2)


def test_a_worker_killed_mid_run_leaves_the_store_consistent_and_the_retry_reuses_it(pool: Pool) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    from pst_core import store
    from pst_core.harvest.rationales import partition, unreadable_part

    run = _wait(pool, pool.start_harvest("rules-slow", SLOW).id, until="running")
    deadline = time.monotonic() + 120
    while _rows(pool.root, "rules-slow").num_rows < 4:  # a few flushes are on disk
        assert time.monotonic() < deadline, pool.log_tail()
        time.sleep(0.2)
    run = _read_run(run.id)
    victim = run.labels["prefect.worker.name"]
    _kill(pool, victim, run)
    parts = store.list_parts(partition(pool.root, "rules-slow", TASK, "train"))
    assert parts and unreadable_part(parts) is None, "a part on disk cannot be read"
    stored = _rows(pool.root, "rules-slow")
    assert 4 <= stored.num_rows < SLOW, "the run was not killed mid-harvest"
    assert stored.column("error").null_count == stored.num_rows, "every stored row is a complete success"
    time.sleep(1.0)  # the replay server counts a request after its latency: let the in-flight ones land
    sent_before = _requests(pool, "rules-slow")

    async def crashed() -> None:  # what Prefect's zombie detection records when heartbeats stop
        async with get_client() as client:
            await client.set_flow_run_state(run.id, Crashed(message="worker lost"), force=True)

    asyncio.run(crashed())
    # The same flow run, retried as a user would: only the surviving worker polls the pool now.
    pool._cli(["prefect", "flow-run", "retry", str(run.id)], pool._env("cli-home"))
    retried = _wait(pool, run.id)
    assert retried.state.is_completed(), f"{retried.state}\n{pool.log_tail()}"
    assert retried.labels["prefect.worker.name"] != victim
    (summary,) = retried.state.result()
    assert summary["cache_hits"] == stored.num_rows, "the retry must reuse every stored row"
    assert summary["succeeded"] == SLOW - stored.num_rows and summary["failed"] == 0
    assert _requests(pool, "rules-slow") - sent_before == summary["sent"] == 2 * (SLOW - stored.num_rows)
    raw = _rows(pool.root, "rules-slow", deduped=False)
    assert raw.num_rows == SLOW and len(set(raw.column("request_key").to_pylist())) == SLOW, "one row per question"
