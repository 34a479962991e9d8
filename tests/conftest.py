"""Shared fixtures: an isolated store root, the shared datasets folder, quiet offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Offline and quiet for every test, set before anything imports HF or Prefect.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
