"""`pst report`: runs -> Markdown table + a readable PNG (axis labels, legend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pst_core.errors import DataError
from pst_core.evaluate.report import build_report, gather, markdown


def fake_run(root: str, run_id: str, strategy: str, task: str = "gsm8k", teacher: str = "gpt", acc: float = 0.5,
             created: str = "2024-01-01T00:00:00", **extra) -> None:
    run = Path(root) / "runs" / run_id
    run.mkdir(parents=True, exist_ok=True)
    metrics = {"accuracy": acc, "ci_low": max(acc - 0.05, 0), "ci_high": min(acc + 0.05, 1), "n": 200,
               "mean_new_tokens": 4.0 if strategy == "pst" else 120.0, "mean_latency_ms": 9.0 if strategy == "pst" else 210.0,
               "examples_per_s": 100.0, "split": "test", "strategy": strategy, "task": task, "teacher": teacher,
               "student": "tiny", "created_at": created, **extra}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_report_on_several_runs_writes_markdown_png_and_json(store_root: str) -> None:
    for i, (strategy, task, acc) in enumerate([("pst", "gsm8k", 0.31), ("pre_thinking", "gsm8k", 0.27), ("prefix", "gsm8k", 0.22),
                                               ("pst", "strategyqa", 0.64), ("pre_thinking", "strategyqa", 0.6)]):
        fake_run(store_root, f"run{i}", strategy, task, acc=acc)
    out = build_report(store_root)
    md = Path(out["markdown"]).read_text()
    assert "| task | strategy | teacher | accuracy % | 95 % CI |" in md
    assert "| gsm8k | pre_thinking | gpt | 27.0 | 22.0–32.0 | 200 | 120.0 | 210.0 |" in md
    assert md.index("| gsm8k | pre_thinking") < md.index("| gsm8k | prefix") < md.index("| gsm8k | pst")
    png = Path(out["png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert png.parent == Path(store_root) / "reports"
    assert len(json.loads(Path(out["json"]).read_text())["rows"]) == 5


def test_chart_has_axis_labels_and_a_legend(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.figure

    fake_run(store_root, "a", "pst")
    fake_run(store_root, "b", "pre_thinking", teacher="llama")
    figures = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figures.append(self) or real_savefig(self, *a, **k))
    build_report(store_root)
    (fig,) = figures
    acc, lat = fig.axes
    assert acc.get_xlabel() == lat.get_xlabel() == "task"
    assert "accuracy" in acc.get_ylabel() and "latency" in lat.get_ylabel()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["pst · gpt", "pre_thinking · llama"]


def test_newest_evaluation_wins_unless_runs_are_named(store_root: str) -> None:
    fake_run(store_root, "old", "pst", acc=0.1, created="2024-01-01T00:00:00")
    fake_run(store_root, "new", "pst", acc=0.4, created="2024-02-01T00:00:00")
    assert [r["run_id"] for r in gather(store_root)] == ["new"]
    assert [r["run_id"] for r in gather(store_root, runs=["old", "new"])] == ["new", "old"]


def test_perturbed_runs_get_a_noise_column(store_root: str) -> None:
    fake_run(store_root, "clean", "pst")
    fake_run(store_root, "noisy", "pst", perturb="shuffle", perturb_rate=0.25)
    table = markdown(gather(store_root))
    assert "| noise |" in table and "| shuffle@0.25 |" in table


def test_report_without_evaluated_runs_says_what_to_do(store_root: str) -> None:
    with pytest.raises(DataError, match="pst eval --run"):
        build_report(store_root)
    with pytest.raises(DataError, match="nope"):
        build_report(store_root, runs=["nope"])


def test_seeds_of_one_setting_make_one_row_with_mean_and_spread(store_root: str) -> None:
    for seed, acc in ((0, 0.30), (1, 0.40), (2, 0.35)):
        fake_run(store_root, f"pst-s{seed}", "pst", acc=acc, seed=seed, created=f"2024-01-0{seed + 1}T00:00:00")
    fake_run(store_root, "pre-s0", "pre_thinking", acc=0.2, seed=0)
    rows = gather(store_root)
    (pre, pst) = rows
    assert pst["seeds"] == [0, 1, 2] and pst["runs"] == ["pst-s0", "pst-s1", "pst-s2"]
    assert pst["accuracy"] == pytest.approx(0.35) and pst["accuracy_std"] == pytest.approx(0.05)
    assert (pst["ci_low"], pst["ci_high"]) == (0.30, 0.40)  # the interval spans the seeds
    assert "seeds" not in pre and pre["run_id"] == "pre-s0"
    table = markdown(rows)
    assert "| gsm8k | pst | gpt | 35.0 ± 5.0 | 30.0–40.0 | 0, 1, 2 | 200 |" in table
    assert "| gsm8k | pre_thinking | gpt | 20.0 | 15.0–25.0 | 0 | 200 |" in table and "mean ± sample std" in table


def test_only_a_reevaluation_of_the_same_setting_replaces_an_older_one(store_root: str) -> None:
    full = {"split": "test", "max_examples": 0}
    fake_run(store_root, "full", "pst", acc=0.4, seed=0, eval_config=full, created="2024-01-01T00:00:00")
    fake_run(store_root, "smoke", "pst", acc=0.9, seed=0, eval_config={**full, "max_examples": 10}, created="2024-02-01T00:00:00")
    fake_run(store_root, "again", "pst", acc=0.5, seed=1, eval_config=full, created="2024-01-02T00:00:00")
    fake_run(store_root, "again-re", "pst", acc=0.6, seed=1, eval_config={**full, "bootstrap_samples": 10}, created="2024-03-01T00:00:00")
    rows = {tuple(r.get("runs") or [r["run_id"]]): r for r in gather(store_root)}
    assert set(rows) == {("full", "again-re"), ("smoke",)}  # seed 1's newer evaluation replaced its older one; the smoke run stands apart
    assert rows[("full", "again-re")]["accuracy"] == pytest.approx(0.5)
