"""The whole pipeline with `PST_DATA_DIR=s3://bucket/prefix` on a real S3-compatible server (moto, 127.0.0.1).

Tiny random-init student (flows.quickstart.tiny_student), generated coin_flip questions and the
rule-based local teacher, so nothing is downloaded. The CLI test runs each `pst` command a user
types, reruns, and then runs again as a fresh machine (an empty stage) that reuses what the
bucket holds; the quickstart test runs the Prefect flows. Both grep everything written (every
object, every local file, the Prefect database and results, the captured output) for the secret.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from s3_server import KEY_ID, S3, SECRET
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
TEACHER_KEY = "PST_S3_TEST_TEACHER_KEY"
TRAIN = {"new_token_init": "mean", "max_steps": 4, "batch_size": 8, "lr": 0.003, "max_length": 128,
         "max_train_examples": 16, "max_val_examples": 4, "eval_every": 0, "log_every": 2, "progress": False}


@pytest.fixture
def s3_root(s3_root: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """conftest's bucket prefix, on a fresh machine: generated tasks, the local teacher's key, tmp as cwd."""
    monkeypatch.setenv("PST_DATASETS_DIR", str(tmp_path / "no-datasets"))  # generated tasks, as on a fresh machine
    monkeypatch.setenv(TEACHER_KEY, "local-no-secret")
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory would show up here
    return s3_root


def pst(*args: str) -> str:
    """Run one `pst` command in-process; its output (asserted to succeed)."""
    from pst_core.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"pst {' '.join(args)}:\n{result.output}\n{result.exception!r}"
    return result.output


def objects(s3: S3, root: str) -> dict[str, bytes]:
    prefix = root.split("/", 3)[3] + "/"
    return {k[len(prefix):]: v for k, v in s3.objects(prefix).items()}


def assert_no_credential(places: list[Path], texts: list[str], stored: dict[str, bytes], debug_log: str = "") -> None:
    """Neither the secret key nor the key id in any object, local file or captured text; the secret
    not even in botocore's own DEBUG log (which names the key id in each request's signature)."""
    assert SECRET not in debug_log
    for needle in (SECRET, KEY_ID):
        for key, body in stored.items():
            assert needle.encode() not in body, f"{needle[:12]}… in s3 object {key}"
        for place in places:
            for f in place.rglob("*"):
                assert not f.is_file() or needle.encode() not in f.read_bytes(), f"{needle[:12]}… in {f}"
        for text in texts:
            assert needle not in text


def test_pst_commands_run_every_stage_on_s3_rerun_and_reuse_it_from_a_fresh_machine(
        s3_server: S3, s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from flows import local_teacher, quickstart
    from pst_core.train import loop

    caplog.set_level(logging.DEBUG)  # every logger, botocore's and s3fs's request logs too
    student = quickstart.tiny_student(str(tmp_path / "student"))
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({**TRAIN, "student": student}))
    out = [pst("data", "prepare", "--task", "coin_flip", "--source", "generated", "--generated-size", "40")]
    with local_teacher.serving(s3_root, ["coin_flip"], tmp_path / "records.jsonl") as handle:
        out.append(pst("teacher", "add", "rules", "--base-url", handle.url, "--model", "m", "--api-key-env", TEACHER_KEY))
        for split in ("train", "validation"):
            out.append(pst("harvest", "--teacher", "rules", "--task", "coin_flip", "--split", split, "--no-progress"))
    out.append(pst("embed", "--teacher", "rules", "--task", "coin_flip", "--quiet"))
    train = ["train", "--strategy", "pst", "--teacher", "rules", "--task", "coin_flip", "--config", str(config)]
    out.append(pst(*train))
    first = objects(s3_server, s3_root)
    run_id = "coin_flip-pst-rules-s0"
    assert {f"runs/{run_id}/{f}" for f in ("_pst_manifest.json", "config.json", "train_metrics.json", "checkpoint/model.safetensors")} <= set(first)
    assert not any("/last/" in k for k in first)  # the resume state stays local
    out.append(pst(*train))  # a rerun returns the finished run: nothing is uploaded again
    assert objects(s3_server, s3_root) == first
    evaluate = ["eval", "--run", run_id, "--max-examples", "6", "--max-new-tokens", "8", "--device", "cpu"]
    out.append(pst(*evaluate))
    assert f"wrote {s3_root}/runs/{run_id}/predictions.parquet and" in out[-1]
    out.append(pst("report"))
    stored = objects(s3_server, s3_root)
    for prefix in ("examples/task=coin_flip/split=test/", "rationales/teacher=rules/task=coin_flip/split=validation/",
                   "embeddings/encoder=", f"runs/{run_id}/predictions.parquet", "reports/report.md", "teachers.yaml"):
        assert any(k.startswith(prefix) for k in stored), prefix
    metrics = json.loads(stored[f"runs/{run_id}/metrics.json"])
    assert metrics["n"] == 6 and "| coin_flip | pst | rules |" in stored["reports/report.md"].decode()
    inspected = json.loads(pst("inspect", f"{s3_root}/rationales", "--json", "-n", "1"))
    assert inspected["num_rows"] > 0 and inspected["head"][0]["teacher"] == "rules"

    # A fresh machine: an empty stage. Training reuses the run in the bucket, evaluation pulls its checkpoint.
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-b"))
    monkeypatch.setattr(loop, "fit", lambda *a, **k: pytest.fail("the finished run in the bucket was trained again"))
    out.append(pst(*train))
    out.append(pst(*evaluate))
    again = json.loads(objects(s3_server, s3_root)[f"runs/{run_id}/metrics.json"])
    assert again["accuracy"] == metrics["accuracy"] and again["n"] == 6  # the same weights, greedy decoding
    out.append(pst("report"))
    assert (tmp_path / "machine-b").is_dir() and not list(tmp_path.glob("s3*"))  # nothing under ./s3:/...
    logged = [f"{r.name} {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO or r.name.startswith("pst")]
    assert_no_credential([tmp_path], out + logged, objects(s3_server, s3_root), debug_log=caplog.text)


def test_quickstart_tiny_flows_run_on_s3_without_a_credential_in_prefect(prefect_harness: None, s3_server: S3, s3_root: str,
                                                                          tmp_path: Path) -> None:
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import (
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
    )

    from flows import quickstart

    base = yaml.safe_load((Path(quickstart.settings.REPO_ROOT) / "configs" / "quickstart-tiny.yaml").read_text())
    base.update(tasks=["coin_flip"], strategies=["pst"], prepare={"generated_size": 40})
    base["train"].update({k: v for k, v in TRAIN.items() if k != "progress"})
    base["evaluate"].update(max_examples=6, max_new_tokens=8)
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(base))
    result = quickstart.run(str(config), s3_root)
    assert [r["strategy"] for r in result["runs"]] == ["pst"]
    stored = objects(s3_server, s3_root)
    run_id = result["runs"][0]["run_id"]
    assert f"runs/{run_id}/metrics.json" in stored and "| coin_flip | pst |" in stored["reports/report.md"].decode()
    assert not list(tmp_path.glob("s3*"))
    APILogWorker.drain_all(timeout=10)
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[-1]).parent
    assert_no_credential([tmp_path, database, Path(PREFECT_LOCAL_STORAGE_PATH.value())], [json.dumps(result, default=str)], stored)
