"""`pst data prepare | tasks | list` through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pst_core.cli import app
from pst_core.errors import ConfigError

runner = CliRunner()


def test_prepare_then_list_shows_counts(store_root: str) -> None:
    result = runner.invoke(app, ["data", "prepare", "--task", "coin_flip", "--task", "last_letter_concatenation",
                                 "--source", "generated", "--generated-size", "40"])
    assert result.exit_code == 0, result.output
    assert "coin_flip" in result.output and "last_letter_concatenation" in result.output
    listed = runner.invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert "coin_flip\ttrain\t25" in listed.output.splitlines()  # piped: one tab-separated line per (task, split)


def test_tasks_lists_every_task_with_its_hub_id() -> None:
    result = runner.invoke(app, ["data", "tasks"])
    assert result.exit_code == 0
    assert "openai/gsm8k" in result.output and "anli1" in result.output


def test_prepare_without_a_task_is_a_config_error(store_root: str) -> None:
    result = runner.invoke(app, ["data", "prepare"])
    assert isinstance(result.exception, ConfigError)


def test_malformed_file_is_one_error_line_naming_file_and_row(store_root: str, tmp_path: Path) -> None:
    folder = tmp_path / "datasets/zero_shot_cot/dataset/coin_flip"
    folder.mkdir(parents=True)
    (folder / "coin_flip.json").write_text(json.dumps({"examples": [{"question": "q", "answer": "yes"}, {"question": "q"}]}))
    proc = subprocess.run(
        [sys.executable, "-c", "from pst_core.cli import main; main()", "data", "prepare", "--task", "coin_flip",
         "--datasets-dir", str(tmp_path / "datasets")],
        capture_output=True, text=True, env={**__import__("os").environ, "PST_DATA_DIR": store_root}, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "coin_flip.json: row 1 is malformed" in lines[0]
    assert not Path(store_root).exists()
