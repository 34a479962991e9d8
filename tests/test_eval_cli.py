"""`pst eval` and `pst report` through the CLI, on run dirs saved the way training saves them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from eval_tiny import char_tokenizer, causal_model
from pst_core import examples
from pst_core.cli import app
from pst_core.examples import Example


def saved_run(root: str, run_id: str, strategy: str, seed: int = 0) -> Path:
    """A run folder as `pst train` leaves it: config.json + checkpoint/ (model, tokenizer)."""
    from pst_core.train import checkpoint
    from pst_core.train.config import resolve

    run = Path(root) / "runs" / run_id
    run.mkdir(parents=True)
    tok = char_tokenizer()
    cfg = resolve({"strategy": strategy, "task": "toy", "teacher": "replay", "student": "tiny", "seed": seed})
    (run / "config.json").write_text(json.dumps(checkpoint.config_dict(cfg)))
    checkpoint.save_best(run, causal_model(tok, seed), tok, None, {"step": 0})
    return run


def test_eval_then_report_on_two_runs(store_root: str) -> None:
    examples.write_split(store_root, "toy", "test",
                         [Example(f"toy-{i:05d}", "toy", "test", f"{i}+1?", str(i + 1), "number", source_index=i) for i in range(5)])
    runner = CliRunner()
    for run_id, strategy in (("a", "pst"), ("b", "pre_thinking")):
        run = saved_run(store_root, run_id, strategy)
        result = runner.invoke(app, ["eval", "--run", run_id, "--max-new-tokens", "6", "--batch-size", "2", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        assert "accuracy" in result.output
        metrics = json.loads((run / "metrics.json").read_text())
        table = pq.read_table(run / "predictions.parquet").to_pydict()
        assert metrics["n"] == len(table["example_id"]) == 5
        assert metrics["accuracy"] == sum(table["correct"]) / 5
        assert (metrics["strategy"], metrics["device"]) == (strategy, "cpu")
        assert all(0 < n <= 6 for n in table["new_tokens"])
    result = runner.invoke(app, ["report", "--runs", "a,b"])
    assert result.exit_code == 0, result.output
    reports = Path(store_root) / "reports"
    assert "| toy | pre_thinking | replay |" in (reports / "report.md").read_text()
    assert (reports / "report.png").stat().st_size > 10_000


def test_eval_of_an_unknown_run_is_one_clear_error(store_root: str) -> None:
    from pst_core.errors import PstError

    result = CliRunner().invoke(app, ["eval", "--run", "nope"])
    assert result.exit_code != 0 and isinstance(result.exception, PstError)
    assert "pst train" in str(result.exception)


def test_eval_untrained_scores_a_student_folder_and_the_report_shows_it_as_the_floor(store_root: str) -> None:
    examples.write_split(store_root, "toy", "test",
                         [Example(f"toy-{i:05d}", "toy", "test", f"{i}+1?", str(i + 1), "number", source_index=i) for i in range(4)])
    base = saved_run(store_root, "base", "answer_only") / "checkpoint"  # any student folder
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--untrained", "toy", "--student", str(base), "--max-new-tokens", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((Path(store_root) / "runs" / "toy-untrained-checkpoint" / "metrics.json").read_text())
    assert metrics["strategy"] == "untrained" and metrics["n"] == 4 and metrics["majority_accuracy"] == 0.25
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "| toy | untrained |" in (Path(store_root) / "reports" / "report.md").read_text()


def test_eval_needs_exactly_one_of_run_or_untrained(store_root: str) -> None:
    from pst_core.errors import ConfigError

    for args in ([], ["--run", "a", "--untrained", "toy"]):
        result = CliRunner().invoke(app, ["eval", *args])
        assert isinstance(result.exception, ConfigError) and "exactly one of" in str(result.exception)
