"""Experiment tracking (report_to, accelerate log_with): TensorBoard event files hold every history.jsonl
term at its step, a resumed run shows each step once, evaluation metrics join the same run; no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core.errors import ConfigError  # noqa: E402
from pst_core.train import checkpoint, config, data, loop, tracking  # noqa: E402
from pst_core.train.strategies import get_strategy  # noqa: E402


from test_train_fixtures import Killed, single_thread  # noqa: E402, F401  (single_thread: autouse, one CPU thread)


def fit(run: Path, on_step=None, **extra):
    tok = F.tokenizer()
    cfg = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t", "lr": 3e-3, "max_steps": 6, "batch_size": 4, "eval_every": 3,
                          "save_every": 2, "log_every": 1, "progress": False, "seed": 3, "report_to": ["tensorboard"], **extra})
    run.mkdir(parents=True, exist_ok=True)
    checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
    rows = F.rows(8)
    return loop.fit(cfg, get_strategy("pst", cfg), F.causal(len(tok) + 2, seed=3), tok, False, data.TrainData(rows, F.targets(8)),
                    data.TrainData(rows[:4], F.targets(4)), str(run), on_step=on_step)


def events(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the run's TensorBoard folder: (step, value) in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / tracking.TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def history(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "history.jsonl").read_text().splitlines()]


def test_tensorboard_gets_every_logged_term_at_its_step(tmp_path):
    fit(tmp_path / "run")
    logged = events(tmp_path / "run")
    expected: dict[str, list[tuple[int, float]]] = {}
    for entry in history(tmp_path / "run"):
        for k, v in tracking.scalars(entry).items():
            expected.setdefault(k, []).append((entry["step"], v))
    assert {"loss", "ntp_answer", "ntp_rationale", "sem", "lr", "tokens_per_s", "epoch", "val_loss", "val_sem"} <= set(expected)
    assert set(logged) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in logged[tag]] == [s for s, _ in points], tag
        assert [v for _, v in logged[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag  # TB stores float32
    hparams = list((tmp_path / "run" / tracking.TB_DIR).glob("*/hparams.yml"))
    assert len(hparams) == 1 and "lambda_sem" in hparams[0].read_text()  # the config, as hyperparameters


def test_a_resumed_run_shows_each_step_once(tmp_path):
    def kill(step: int) -> None:
        if step == 5:  # last/ was saved at step 4: step 5 is logged, then lost
            raise Killed

    with pytest.raises(Killed):
        fit(tmp_path / "run", on_step=kill)
    fit(tmp_path / "run")
    logged = events(tmp_path / "run")
    assert [s for s, _ in logged["loss"]] == [1, 2, 3, 4, 5, 6]
    final = {h["step"]: h["loss"] for h in history(tmp_path / "run") if "loss" in h}
    assert dict(logged["loss"])[5] == pytest.approx(final[5], rel=1e-6)  # the resumed run's step 5, not the lost one


def test_evaluation_metrics_join_the_training_run(tmp_path):
    fit(tmp_path / "run", max_steps=3, eval_every=3, save_every=0)
    assert tracking.log_evaluation(tmp_path / "run", {"accuracy": 0.5, "n": 8, "task": "toy"}) == ["tensorboard"]
    logged = events(tmp_path / "run")
    assert logged["test_accuracy"] == [(3, 0.5)] and logged["test_n"] == [(3, 8.0)] and "test_task" not in logged
    assert "loss" in logged  # the same folder as training


def test_no_tracker_by_default_and_clear_errors(tmp_path, monkeypatch):
    plain = config.resolve({"strategy": "pst", "task": "toy", "teacher": "t"})
    assert plain.report_to == ()
    checkpoint.write_json(tmp_path / "config.json", checkpoint.config_dict(plain))
    assert tracking.log_evaluation(tmp_path, {"accuracy": 1.0}) == [] and not (tmp_path / tracking.TB_DIR).exists()
    with pytest.raises(ConfigError, match="unknown tracker tensorbord"):
        config.resolve({"strategy": "pst", "report_to": ["tensorbord"]})
    monkeypatch.setitem(tracking.MODULES, "mlflow", "pst_no_such_module")
    with pytest.raises(ConfigError, match="pip install pst_no_such_module"):
        fit(tmp_path / "run", report_to=["mlflow"])
