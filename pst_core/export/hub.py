"""Upload an exported folder to the Hugging Face Hub (`pst export --push-to-hub REPO`).

The token is huggingface_hub's own (HF_TOKEN or `hf auth login`), read by that library at the edge;
pst never stores it. Failures (no token, offline mode, a refused repository) are one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError


def push(folder: str | Path, repo_id: str, *, private: bool = False, api: Any = None) -> str:
    """Create `repo_id` if needed and upload `folder` as one commit; returns the repository URL."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import (
            HfHubHTTPError,
            LocalTokenNotFoundError,
            OfflineModeIsEnabled,
        )
    except ImportError:
        raise ConfigError("--push-to-hub needs the huggingface_hub package: pip install huggingface_hub") from None
    api = api if api is not None else HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=f"pst export of {Path(folder).name}")
    except OfflineModeIsEnabled:
        raise ConfigError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set; unset it to upload") from None
    except LocalTokenNotFoundError:
        raise ConfigError(f"cannot push to {repo_id}: no Hugging Face token; set HF_TOKEN or run `hf auth login`") from None
    except HfHubHTTPError as exc:
        raise ConfigError(f"cannot push to {repo_id}: {str(exc).splitlines()[0]} (check the token's write access and the repo name)") from None
    return str(url)
