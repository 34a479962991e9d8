"""Retry and cache rules of the task wrappers (tasks.policy), on a temporary Prefect API."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from pst_core import store
from pst_core.errors import ConfigError, TeacherError
from pst_core.harvest.harvester import TeacherUnreachable
from tasks import policy

CALLS: list[str] = []


def _write(directory: str, values: list[int], name: str | None = None) -> str:
    return store.write_part(directory, pa.table({"x": values}), name=name)


class _Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class APIConnectionError(Exception):
    """Named like the openai SDK's error, which tasks.policy recognises without importing it."""


def test_only_transient_errors_are_retryable() -> None:
    assert policy.is_transient_error(ConnectionResetError())
    assert policy.is_transient_error(TimeoutError())
    assert policy.is_transient_error(_Status(429)) and policy.is_transient_error(_Status(503))
    assert policy.is_transient_error(APIConnectionError())
    assert not policy.is_transient_error(_Status(401))
    assert not policy.is_transient_error(ConfigError("bad option"))
    assert not policy.is_transient_error(TeacherError("401 unauthorized"))
    assert policy.is_transient_error(TeacherUnreachable("teacher 'x' is unreachable"))  # a server that is down may come back
    assert not policy.is_transient_error(FileNotFoundError("missing"))
    assert not policy.is_transient_error(ValueError("bug"))


def test_fingerprint_ignores_identical_rewrite_and_sees_new_parts(tmp_path: Path) -> None:
    directory = str(tmp_path / "examples" / "task=t")
    assert policy.fingerprint(directory) == "empty"
    _write(directory, [1, 2], name="part-00000.parquet")
    first = policy.fingerprint(directory)
    _write(directory, [1, 2], name="part-00000.parquet")  # an idempotent rewrite: same bytes
    assert policy.fingerprint(directory) == first
    _write(directory, [3])
    assert policy.fingerprint(directory) not in (first, "empty")


def _flow_and_task(source: str, output: str):
    from prefect import flow, task

    @task(cache_policy=policy.store_cache(lambda i: [i["source"]]), persist_result=True)
    def copy_stage(source: str, output: str) -> dict:
        CALLS.append(source)
        n = store.preview(source)["num_rows"]
        _write(output, list(range(n)), name="part-00000.parquet")
        return {"rows": n, "outputs": [output]}

    @flow
    def pipeline(source: str, output: str) -> dict:
        return copy_stage(source, output)

    return pipeline


def test_stage_cache_follows_the_state_of_the_store(tmp_path: Path, prefect_harness: None) -> None:
    source, output = str(tmp_path / "in"), str(tmp_path / "out")
    _write(source, [1, 2, 3])
    pipeline = _flow_and_task(source, output)
    CALLS.clear()
    assert pipeline(source, output)["rows"] == 3
    assert pipeline(source, output)["rows"] == 3
    assert len(CALLS) == 1, "an unchanged store must be served from the cache"
    _write(source, [4])
    assert pipeline(source, output)["rows"] == 4
    assert len(CALLS) == 2, "a new part in the input partition must rerun the stage"
    shutil.rmtree(output)
    assert pipeline(source, output)["rows"] == 4
    assert len(CALLS) == 3, "a record whose outputs were deleted must not be reused"
    assert Path(output).is_dir()
    pipeline(source, output)
    assert len(CALLS) == 3


def test_retries_transient_failures_only(prefect_harness: None) -> None:
    from prefect import flow, task

    attempts = {"transient": 0, "user": 0}

    @task(**{**policy.RETRY_OPTIONS, "retry_delay_seconds": 0})
    def flaky(kind: str) -> str:
        attempts[kind] += 1
        if kind == "transient" and attempts[kind] < 3:
            raise ConnectionResetError("peer reset")
        if kind == "user":
            raise ConfigError("unknown option 'lr2'")
        return "ok"

    @flow
    def run(kind: str) -> str:
        return flaky(kind)

    assert run("transient") == "ok" and attempts["transient"] == 3
    with pytest.raises(ConfigError):
        run("user")
    assert attempts["user"] == 1


def test_a_record_marked_incomplete_is_not_reused(tmp_path: Path, prefect_harness: None) -> None:
    from prefect import flow, task

    source = str(tmp_path / "in")
    _write(source, [1])
    runs: list[int] = []

    @task(cache_policy=policy.store_cache(lambda i: [i["source"]]), persist_result=True)
    def partial_stage(source: str) -> dict:
        runs.append(1)
        return {"outputs": [source], "complete": len(runs) >= 2}  # failures left the first time

    @flow
    def pipeline(source: str) -> dict:
        return partial_stage(source)

    for _ in range(3):
        pipeline(source)
    assert len(runs) == 2, "an incomplete harvest must run again; a complete one is then reused"


def test_harvest_cache_state_ignores_url_limits_and_key_but_follows_model_and_prompt(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pst_core import prompts, teachers
    from tasks import harvest as harvest_task

    monkeypatch.setenv("PST_TEST_KEY", "sk-never-in-a-cache-key")
    add = lambda **kw: teachers.add(store_root, teachers.TeacherConfig(**{"name": "t", "base_url": "http://a:1/v1", "model": "m", "api_key_env": "PST_TEST_KEY", **kw}), replace=True)  # noqa: E731
    inputs = {"root": store_root, "config": {"teacher": "t", "task": "coin_flip", "split": "train"}}
    add()
    first = harvest_task._reads(inputs)
    assert "sk-never" not in repr(first) + repr(inputs)
    add(base_url="https://elsewhere:2/v1", rpm=600, tpm=1e5, concurrency=8, max_attempts=2, timeout_s=5, mode="batch", api_key_env="OTHER_KEY")
    assert harvest_task._reads(inputs) == first, "where and how fast the teacher is asked changes no stored row"
    add(model="m2")
    assert harvest_task._reads(inputs) != first
    add()
    monkeypatch.setattr(prompts.ZeroShotCoT, "template_text", lambda self: "an edited template")
    assert harvest_task._reads(inputs) != first, "a new prompt version means new request keys"


def test_success_digest_ignores_error_rows_of_retried_requests(store_root: str) -> None:
    from datetime import datetime, timezone

    from pst_core.harvest import rationales

    def write(key: str, error: str | None) -> None:
        w = rationales.Writer(store_root, "t", "task", "train")
        w.add({"request_key": key, "example_id": key, "sample_index": 0, "rationale": None if error else "r", "error": error, "is_correct": None if error else True, "created_at": datetime.now(timezone.utc)})
        w.flush()

    directory = store.partition_path(store_root, "rationales", teacher="t")
    assert rationales.success_digest(directory) == "empty"
    write("a", None)
    write("b", "rate_limited")
    first = rationales.success_digest(directory)
    write("b", "rate_limited")  # the retry failed again: training has nothing new to learn from
    assert rationales.success_digest(directory) == first
    write("b", None)
    assert rationales.success_digest(directory) != first
