"""`evaluate_run` end to end on a tiny student: files, scoring, and metrics that the files reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from eval_tiny import SEM, SEP, ScriptedLogits, script, tiny_run
from pst_core import examples
from pst_core.evaluate import generate as gen_module
from pst_core.evaluate import runner
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.runner import evaluate_run
from pst_core.examples import Example

GOLD = ["7", "12", "3", "40", "5", "9"]


def write_examples(root: str, split: str = "test") -> list[Example]:
    rows = [Example(f"toy-{i:05d}", "toy", split, f"What is {g}?", g, "number", source_index=i) for i, g in enumerate(GOLD)]
    examples.write_split(root, "toy", split, rows)
    return rows


def independent_accuracy(pred_path: Path) -> tuple[float, int]:
    """Accuracy recomputed from the predictions file alone: exact string match after int parsing."""
    df = pq.read_table(pred_path).to_pydict()
    hits = 0
    for predicted, gold in zip(df["predicted_answer"], df["gold_answer"]):
        try:
            hits += predicted is not None and int(float(predicted)) == int(gold)
        except ValueError:
            pass
    return hits / len(df["example_id"]), len(df["example_id"])


def forced(monkeypatch: pytest.MonkeyPatch, run, texts: list[str]) -> None:
    """Make generation write `texts[i]` for the i-th prompt (one batch, input order)."""
    scripts = [script(run.tokenizer, t) for t in texts]

    def fake(model, tokenizer, prompts, **kw):
        kw.update(batch_size=len(prompts), sort_by_length=False,
                  logits_processor=[ScriptedLogits(scripts[: len(prompts)], tokenizer.eos_token_id)])
        return real(model, tokenizer, prompts, **kw)

    real = gen_module.generate
    monkeypatch.setattr(runner, "generate", fake)


def test_scores_right_wrong_and_missing_answers_without_crashing(store_root: str, tmp_path: Path, monkeypatch) -> None:
    write_examples(store_root)
    run = tiny_run("pst")
    # right, wrong, no answer at all, budget runs out before SEM, right again, garbage then SEM
    forced(monkeypatch, run, [" 7" + SEM + " r", " 13" + SEM, SEM, " 40 40 40 40 40 40 40 40 40 40", " 5" + SEM, " ?!" + SEM])
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    metrics = evaluate_run(run_dir, EvalConfig(max_new_tokens=12, bootstrap_samples=200), loaded=run)
    df = pq.read_table(run_dir / "predictions.parquet").to_pydict()
    assert df["correct"] == [True, False, False, True, True, False]
    assert df["predicted_answer"][:3] == ["7", "13", None]
    assert df["stopped"] == [True, True, True, False, True, True]
    assert df["new_tokens"] == [3, 4, 1, 12, 3, 4]
    assert df["generated"][0] == " 7" + SEM
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["mean_new_tokens"] == pytest.approx(27 / 6)


def test_pre_thinking_without_an_answer_after_sep_is_scored_wrong(store_root: str, tmp_path: Path, monkeypatch) -> None:
    write_examples(store_root)
    run = tiny_run("pre_thinking")
    forced(monkeypatch, run, [" 3+4=7" + SEP + " 7", " so 12" + SEP + " 11", " 1+2=3" + SEP, " 40" + SEP + " 40", " x" + SEP + " 5", SEP + " 9"])
    run_dir = tmp_path / "r2"
    run_dir.mkdir()
    evaluate_run(run_dir, EvalConfig(max_new_tokens=20, bootstrap_samples=100), loaded=run)
    df = pq.read_table(run_dir / "predictions.parquet").to_pydict()
    assert df["predicted_answer"] == ["7", "11", None, "40", "5", "9"]
    assert df["correct"] == [True, False, False, True, True, True]


def test_metrics_json_matches_accuracy_recomputed_from_predictions(store_root: str, tmp_path: Path) -> None:
    write_examples(store_root)
    run_dir = tmp_path / "runs" / "random"
    run_dir.mkdir(parents=True)
    run = tiny_run("answer_only", seed=3)
    evaluate_run(run_dir, EvalConfig(max_new_tokens=6, batch_size=4, bootstrap_samples=200), loaded=run)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    acc, n = independent_accuracy(run_dir / "predictions.parquet")
    assert (metrics["accuracy"], metrics["n"]) == (pytest.approx(acc), n) == (pytest.approx(acc), len(GOLD))
    assert metrics["ci_low"] <= metrics["accuracy"] <= metrics["ci_high"]
    assert {"strategy", "task", "teacher", "split", "examples_per_s", "mean_new_tokens"} <= set(metrics)
    assert (metrics["strategy"], metrics["task"], metrics["teacher"], metrics["split"]) == ("answer_only", "toy", "replay", "test")


def test_accuracy_from_predictions_matches_metrics_with_known_hits(store_root: str, tmp_path: Path, monkeypatch) -> None:
    write_examples(store_root)
    run = tiny_run("post_thinking")
    forced(monkeypatch, run, [" 7" + SEM, " 12" + SEM, " 4" + SEM, " 40" + SEM, " 6" + SEM, " 9" + SEM])
    evaluate_run(tmp_path, EvalConfig(bootstrap_samples=100, max_new_tokens=8), loaded=run)
    acc, _ = independent_accuracy(tmp_path / "predictions.parquet")
    assert acc == pytest.approx(4 / 6) == json.loads((tmp_path / "metrics.json").read_text())["accuracy"]


def test_other_splits_write_suffixed_files(store_root: str, tmp_path: Path) -> None:
    write_examples(store_root, "validation")
    evaluate_run(tmp_path, EvalConfig(split="validation", max_new_tokens=3, bootstrap_samples=10), loaded=tiny_run("answer_only"))
    assert (tmp_path / "predictions-validation.parquet").is_file() and (tmp_path / "metrics-validation.json").is_file()
    assert not (tmp_path / "metrics.json").exists()


def test_prefix_answers_from_the_label_view(store_root: str, tmp_path: Path, monkeypatch) -> None:
    write_examples(store_root)
    seen: list[str] = []
    real = gen_module.generate
    monkeypatch.setattr(runner, "generate", lambda m, t, prompts, **kw: seen.extend(prompts) or real(m, t, prompts, **kw))
    evaluate_run(tmp_path, EvalConfig(max_new_tokens=2, bootstrap_samples=10), loaded=tiny_run("prefix"))
    assert len(seen) == len(GOLD) and all(p.startswith("[label] ") for p in seen)


def test_with_rationale_continues_answer_first_generation_past_sem(store_root: str, tmp_path: Path, monkeypatch) -> None:
    write_examples(store_root)
    run = tiny_run("pst")
    texts = [f" {g}{SEM} because {g}" for g in GOLD]
    forced(monkeypatch, run, texts)
    metrics = evaluate_run(tmp_path, EvalConfig(max_new_tokens=8, with_rationale=True, bootstrap_samples=10), loaded=run)
    df = pq.read_table(tmp_path / "predictions.parquet").to_pydict()
    assert df["rationale"] == [f"because {g}" for g in GOLD]
    assert all(SEM + " because" not in g for g in df["generated"])  # the timed pass still stopped at SEM
    assert metrics["accuracy"] == 1.0 and metrics["mean_new_tokens"] == pytest.approx(sum(len(g) + 2 for g in GOLD) / 6)


def test_missing_examples_is_one_clear_error(store_root: str, tmp_path: Path) -> None:
    from pst_core.errors import DataError

    with pytest.raises(DataError, match="pst data prepare --task toy"):
        evaluate_run(tmp_path, EvalConfig(), loaded=tiny_run("pst"))


def test_evaluation_metrics_go_to_the_trackers_the_run_trained_with(store_root: str, tmp_path: Path, monkeypatch) -> None:
    from pst_core.train import tracking

    write_examples(store_root, "validation")
    calls = []
    monkeypatch.setattr(tracking, "log_evaluation", lambda run_dir, metrics, prefix: calls.append((Path(run_dir).name, metrics["accuracy"], prefix)))
    run = tiny_run("pst")
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    evaluate_run(run_dir, EvalConfig(split="validation", max_new_tokens=4, bootstrap_samples=20), loaded=run)
    assert calls == []  # report_to empty: no tracker
    run.config["report_to"] = ["tensorboard"]
    metrics = evaluate_run(run_dir, EvalConfig(split="validation", max_new_tokens=4, bootstrap_samples=20), loaded=run)
    assert calls == [("r1", metrics["accuracy"], "validation_")]
