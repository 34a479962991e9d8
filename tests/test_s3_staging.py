"""Run folders staged locally for an object-store root (moto on 127.0.0.1): pull by manifest, push then commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from s3_server import S3

from pst_core import staging, store
from pst_core.errors import DataError

pytestmark = pytest.mark.slow


def finished_run(root: str, run_id: str = "r1") -> Path:
    """A stage run folder as training leaves it: config, metrics, checkpoint, a resume state, a temp file."""
    run = staging.stage_root(root) / "runs" / run_id
    (run / "checkpoint").mkdir(parents=True)
    (run / "last").mkdir()
    (run / "config.json").write_text('{"strategy": "pst"}')
    (run / "checkpoint" / "model.safetensors").write_bytes(b"weights" * 1000)
    (run / "last" / "optimizer.bin").write_bytes(b"resume state")
    (run / ".tmp-x.json").write_text("half")
    (run / "train_metrics.json").write_text('{"steps": 3}')
    return run


def keys(s3: S3, root: str) -> list[str]:
    prefix = root.split("/", 3)[3] + "/"
    return sorted(k[len(prefix):] for k in s3.objects(prefix))


def test_a_pushed_run_is_pulled_whole_on_another_machine_without_its_resume_state(s3_server: S3, s3_root: str, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = finished_run(s3_root)
    staging.push(s3_root, run)
    assert keys(s3_server, s3_root) == ["runs/r1/_pst_manifest.json", "runs/r1/checkpoint/model.safetensors",
                                        "runs/r1/config.json", "runs/r1/train_metrics.json"]
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-b"))
    other = staging.pull(s3_root, staging.stage_root(s3_root) / "runs" / "r1")
    assert other != run and sorted(p.relative_to(other).as_posix() for p in other.rglob("*") if p.is_file()) == [
        ".pst-synced.json", "checkpoint/model.safetensors", "config.json", "train_metrics.json"]
    assert (other / "checkpoint" / "model.safetensors").read_bytes() == b"weights" * 1000


def test_push_uploads_only_changed_files_and_the_done_markers_after_the_rest(s3_server: S3, s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = finished_run(s3_root)
    staging.push(s3_root, run)
    (run / "metrics.json").write_text('{"accuracy": 0.5}')
    (run / "predictions.parquet").write_bytes(b"PAR1...PAR1")
    fs, _ = store.filesystem(s3_root)  # the one cached s3fs instance staging uses too
    sent: list[str] = []
    real = fs.put_file
    monkeypatch.setattr(fs, "put_file", lambda lpath, rpath, **kw: (sent.append(rpath.rsplit("/", 1)[1]), real(lpath, rpath, **kw))[1])
    staging.push(s3_root, run)
    assert sent == ["predictions.parquet", "metrics.json"]  # the weights are not sent again; metrics.json last
    manifest = json.loads(s3_server.objects(f"{s3_root.split('/', 3)[3]}/runs/r1/_pst_manifest.json").popitem()[1])
    assert set(manifest["files"]) == {"checkpoint/model.safetensors", "config.json", "train_metrics.json", "metrics.json", "predictions.parquet"}


def test_a_push_cut_short_is_never_pulled_as_a_mix_of_two_versions(s3_server: S3, s3_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = finished_run(s3_root)
    (run / "metrics.json").write_text('{"accuracy": 0.25}')
    staging.push(s3_root, run)
    (run / "predictions.parquet").write_bytes(b"new predictions")
    (run / "metrics.json").write_text('{"accuracy": 0.75}')
    fs, _ = store.filesystem(s3_root)
    real = fs.put_file

    def cut(lpath, rpath, **kw):  # the network drops after the first changed file
        if rpath.endswith("metrics.json"):
            raise ConnectionError("connection reset")
        return real(lpath, rpath, **kw)

    monkeypatch.setattr(fs, "put_file", cut)
    with pytest.raises(ConnectionError):
        staging.push(s3_root, run)
    monkeypatch.setattr(fs, "put_file", real)
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-b"))
    other = staging.pull(s3_root, staging.stage_root(s3_root) / "runs" / "r1")  # the last commit: old metrics, no predictions
    assert json.loads((other / "metrics.json").read_text()) == {"accuracy": 0.25} and not (other / "predictions.parquet").exists()
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-a"))
    staging.push(s3_root, run)  # the rerun of the stage pushes again
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-b"))
    staging.pull(s3_root, other)
    assert json.loads((other / "metrics.json").read_text()) == {"accuracy": 0.75} and (other / "predictions.parquet").is_file()


def test_a_file_rewritten_under_an_older_manifest_is_one_clear_error_not_a_silent_mix(s3_server: S3, s3_root: str, tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = finished_run(s3_root)
    staging.push(s3_root, run)
    (run / "config.json").write_text('{"strategy": "other"}')
    fs, base = store.filesystem(f"{s3_root}/runs/r1")
    fs.put_file(str(run / "config.json"), f"{base}/config.json")  # a push that died before its manifest
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-b"))
    with pytest.raises(DataError, match="runs/r1.*rerun"):
        staging.pull(s3_root, staging.stage_root(s3_root) / "runs" / "r1")


def test_a_run_deleted_from_the_store_is_dropped_from_the_stage_but_unpushed_work_is_kept(s3_server: S3, s3_root: str) -> None:
    run = finished_run(s3_root)
    staging.push(s3_root, run)
    fs, base = store.filesystem(f"{s3_root}/runs/r1")
    fs.rm(base, recursive=True)  # the user deletes the run in the bucket to train it again
    assert not staging.pull(s3_root, run).exists()
    fresh = finished_run(s3_root, "r2")  # written here, never pushed (an interrupted run resumes from it)
    assert staging.pull(s3_root, fresh) == fresh and (fresh / "last" / "optimizer.bin").is_file()


def test_store_paths_map_into_the_stage_and_a_local_root_is_its_own_stage(s3_root: str, tmp_path: Path) -> None:
    stage = staging.stage_root(s3_root)
    assert stage.is_relative_to(tmp_path / "machine-a") and "s3:" not in str(stage)
    for form in (f"{s3_root}/runs/x", Path(s3_root) / "runs" / "x"):  # a URI, or the Path(root)/... older callers build
        assert staging.localize(s3_root, form) == stage / "runs" / "x"
    assert staging.localize(s3_root, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    local = str(tmp_path / "data")
    assert staging.stage_root(local) == Path(local) and staging.localize(local, f"{local}/runs/x") == Path(local) / "runs" / "x"
    staging.push(local, Path(local) / "runs" / "x")  # no-ops
    assert staging.pull(local, Path(local) / "runs" / "x") == Path(local) / "runs" / "x" and not (tmp_path / "data").exists()
