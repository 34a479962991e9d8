"""Where things live: the store root and the local datasets folder, from the environment.

`PST_DATA_DIR` (default `./data`) is the store root: a local path or an fsspec URI.
`PST_DATASETS_DIR` points at the offline dataset copies; by default `../shared/datasets`
relative to the working directory or to this checkout, when present.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> str:
    """The store root (a path or URI) for all generated artifacts."""
    return os.environ.get("PST_DATA_DIR", "data")


def datasets_dir() -> Path | None:
    """The local datasets folder, or None when neither the env var nor a default exists."""
    env = os.environ.get("PST_DATASETS_DIR")
    if env:
        return Path(env)
    for candidate in (Path.cwd().parent / "shared" / "datasets", REPO_ROOT.parent / "shared" / "datasets"):
        if candidate.is_dir():
            return candidate
    return None
