"""The robustness experiment driver: points, shared clean runs, resumable reruns, table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pst_core.answers import EXTRACTOR_VERSION
from pst_core.config import to_dict
from pst_core.errors import ConfigError
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.robustness import RobustnessConfig, points, run_robustness

CFG = RobustnessConfig(task="gsm8k", teacher="gpt", rates=[0.0, 0.5, 1.0], train={"max_steps": 3})


def fake_experiment(root: str):
    """A train_fn and an eval_fn that record their calls; accuracy falls with p (faster for pre_thinking)."""
    trained: list[tuple[dict, str]] = []
    evaluated: list[str] = []

    def train_fn(options: dict, run_id: str) -> Path:
        trained.append((options, run_id))
        run = Path(root) / "runs" / run_id
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps(options))
        return run

    def eval_fn(run_dir: Path, ecfg: EvalConfig) -> dict:
        options = json.loads((run_dir / "config.json").read_text())
        slope = 0.4 if options["strategy"] == "pre_thinking" else 0.1
        acc = 0.6 - slope * options["perturb_rate"]
        metrics = {"accuracy": acc, "ci_low": acc - 0.05, "ci_high": acc + 0.05, "n": 100, "eval_config": to_dict(ecfg),
                   "answers_version": EXTRACTOR_VERSION}
        evaluated.append(run_dir.name)
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    return trained, evaluated, train_fn, eval_fn


def test_points_share_the_clean_run_across_kinds_and_pass_perturbation_options() -> None:
    pts = points(CFG)
    assert len(pts) == 2 * 2 * 3
    clean = {p["run_id"] for p in pts if p["rate"] == 0}
    assert clean == {"robustness-gsm8k-gpt-pre_thinking-clean-s0", "robustness-gsm8k-gpt-pst-clean-s0"}
    noisy = next(p for p in pts if p["kind"] == "numbers" and p["rate"] == 0.5 and p["strategy"] == "pst")
    assert noisy["options"] == {"max_steps": 3, "strategy": "pst", "task": "gsm8k", "teacher": "gpt", "seed": 0,
                                "perturb": "numbers", "perturb_rate": 0.5}
    assert noisy["run_id"] == "robustness-gsm8k-gpt-pst-numbers050-s0"


def test_experiment_trains_each_run_once_and_reports_the_drop(store_root: str) -> None:
    trained, evaluated, train_fn, eval_fn = fake_experiment(store_root)
    out = run_robustness(CFG, EvalConfig(), store_root, train_fn, eval_fn, log=lambda _: None)
    assert len(trained) == 2 * (1 + 2 * 2)  # per strategy: one clean run + 2 kinds x 2 noisy rates
    assert len(out["rows"]) == 12
    drop = {(s["strategy"], s["kind"], s["rate"]): s["drop"] for s in out["summary"]}
    assert drop[("pre_thinking", "shuffle", 1.0)] == pytest.approx(0.4)
    assert drop[("pst", "shuffle", 1.0)] == pytest.approx(0.1)
    table = (Path(out["dir"]) / "robustness.md").read_text()
    assert "| shuffle | pre_thinking | 1 | 20.0 | 15.0–25.0 | +40.0 | 1 |" in table
    png = Path(out["png"])
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_rerun_skips_evaluated_runs(store_root: str) -> None:
    trained, evaluated, train_fn, eval_fn = fake_experiment(store_root)
    run_robustness(CFG, EvalConfig(), store_root, train_fn, eval_fn, log=lambda _: None)
    first = len(trained)
    out = run_robustness(CFG, EvalConfig(), store_root, train_fn, eval_fn, log=lambda _: None)
    assert len(trained) == first and len(out["rows"]) == 12
    before = len(evaluated)
    run_robustness(CFG, EvalConfig(max_new_tokens=64), store_root, train_fn, eval_fn, log=lambda _: None)
    assert len(trained) == first and len(evaluated) == 2 * before  # new settings: evaluated again, not retrained


def test_config_rejects_bad_rates_and_kinds() -> None:
    with pytest.raises(ConfigError, match="rates"):
        RobustnessConfig(task="t", teacher="x", rates=[1.5])
    with pytest.raises(ConfigError, match="kinds"):
        RobustnessConfig(task="t", teacher="x", kinds=["typos"])


def test_robustness_command_trains_and_evaluates_real_tiny_runs(store_root: str, tmp_path: Path) -> None:
    """Wiring check with the real training stage: tiny student, 2 steps per run, a 4-question test split."""
    import sys

    from typer.testing import CliRunner

    sys.path.insert(0, str(Path(__file__).parent))
    import test_train_loop as T  # the training tests' toy store: examples, rationales, embeddings, student

    from pst_core import examples
    from pst_core.cli import app

    T._tiny_store(store_root, tmp_path / "student")
    examples.write_split(store_root, "toy", "test", [examples.Example(f"toy-t{i}", "toy", "test", f"{i}+{i}?", str(2 * i), "number")
                                                     for i in range(4)])
    cfg = tmp_path / "rob.json"
    cfg.write_text(json.dumps({"train": {"student": str(tmp_path / "student"), "max_steps": 2, "batch_size": 4, "progress": False,
                                         "eval_every": 2},
                               "eval": {"max_new_tokens": 4, "bootstrap_samples": 20, "device": "cpu"}}))
    args = ["experiment", "robustness", "--task", "toy", "--teacher", "fake", "--strategies", "pst", "--kinds", "shuffle", "--rates", "0,0.5", "--config", str(cfg)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    runs = Path(store_root) / "runs"
    noisy = runs / "robustness-toy-fake-pst-shuffle050-s0"
    assert json.loads((noisy / "config.json").read_text())["perturb"] == "shuffle"
    assert json.loads((noisy / "train_metrics.json").read_text())["train_rows"] == 10
    assert json.loads((noisy / "metrics.json").read_text())["n"] == 4
    results = json.loads((Path(store_root) / "experiments" / "robustness" / "results.json").read_text())
    assert sorted((r["strategy"], r["rate"]) for r in results["rows"]) == [("pst", 0.0), ("pst", 0.5)]
    assert (runs / "robustness-toy-fake-pst-clean-s0" / "metrics.json").is_file()
