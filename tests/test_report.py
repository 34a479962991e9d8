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
