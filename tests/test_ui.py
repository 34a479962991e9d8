"""Headless Chromium opens the local Prefect UI after a pipeline run: flow run and Parquet preview."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags measured here (../shared/PREFECT.md): without the background-networking ones Chromium
# keeps dialling closed addresses; --virtual-time-budget lets the SPA's scripts run before dumping.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000"]


def _chromium(tmp_path: Path, url: str, *extra: str, budget_ms: int = 15000) -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (`make test` installs it when run as root)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    out = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *extra, url],
                         capture_output=True, text=True, timeout=120)
    return out.stdout


def _table_artifacts(api: str, flow_run_ids: list) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            arts = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids)))
            return [a for a in arts if a.key and a.type == "table"]

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(read())


def _subflow_ids(api: str, parent) -> list:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            tasks = {t.id: t for t in await client.read_task_runs()}
            return [r.id for r in runs if r.parent_task_run_id in tasks and tasks[r.parent_task_run_id].flow_run_id == parent.id]

    with temporary_settings({PREFECT_API_URL: api}):
        return asyncio.run(read())


def test_ui_shows_the_flow_run_and_a_parquet_preview(served_pipeline, tmp_path: Path) -> None:
    ui = served_pipeline.api.removesuffix("/api")
    run = served_pipeline.triggered
    page = _chromium(tmp_path, f"{ui}/runs/flow-run/{run.id}", "--dump-dom")
    assert run.name in page, "the flow run page must render the run's name"
    assert "distill-pipeline" in page

    artifacts = _table_artifacts(served_pipeline.api, [run.id, *_subflow_ids(served_pipeline.api, run)])
    preview = next(a for a in artifacts if a.key.startswith("preview-rationales-teacher-rules-b"))
    first_row = json.loads(preview.data)[0] if isinstance(preview.data, str) else preview.data[0]
    artifact_page = _chromium(tmp_path, f"{ui}/artifacts/artifact/{preview.id}", "--dump-dom")
    assert preview.key in artifact_page
    assert "request_key" in artifact_page and first_row["example_id"] in artifact_page, "the preview table must render its rows"
    assert "rows in" in artifact_page, "the description (path, row count, schema) must render"

    shot = tmp_path / "flow-run.png"
    _chromium(tmp_path, f"{ui}/runs/flow-run/{run.id}", f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
