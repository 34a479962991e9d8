"""`pst report`: every evaluated run -> one Markdown table and one PNG chart under `<store>/reports/`.

Rows are (task x strategy x teacher [x noise]) -> accuracy with its interval, mean new tokens,
latency and throughput, read from each run's metrics.json. Unless runs are named explicitly (then
every named run is a row), one row is one run setting: task, strategy, teacher, student, noise,
and the evaluated split and max_examples (a 10-example smoke evaluation is its own row, never a
stand-in for the full one). Of one setting and seed the newest evaluation wins, so only a
re-evaluation replaces an older one; several seeds of one setting make one row whose accuracy is
the mean ± sample std over seeds, whose interval spans the seeds' accuracies (instead of the
bootstrap interval of one run), and whose cost columns are means over the seeds. The chart has
two panels sharing one legend: accuracy with its interval as error bars, and latency per example
(log scale, since answer-first and rationale-first strategies differ by multiples).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from pst_core import staging
from pst_core.errors import DataError
from pst_core.evaluate.runner import output_names, write_json

KEY = ("task", "strategy", "teacher", "student", "perturb", "perturb_rate")  # one run setting, with EVAL_KEY
EVAL_KEY = ("split", "max_examples")  # of the eval config: a smoke evaluation never stands in for a full one
MEANS = ("mean_new_tokens", "mean_latency_ms", "examples_per_s")
STRATEGY_ORDER = ("untrained", "answer_only", "pre_thinking", "prefix", "post_thinking", "pst")  # untrained: the floor


def noise(row: dict[str, Any]) -> str:
    """'shuffle@0.25' for a run trained on perturbed rationales, '' otherwise."""
    return f"{row['perturb']}@{row.get('perturb_rate', 0):g}" if row.get("perturb") else ""


def gather(root: str, runs: list[str] | None = None, split: str = "test") -> list[dict[str, Any]]:
    """Metrics of the named runs (or of every evaluated run, newest per combination), sorted."""
    name = output_names(split)[1]
    runs_dir = staging.fetched(root, "runs", f"*/{name}")  # an object store's metrics, copied to a local folder
    if runs:
        paths = [runs_dir / r / name for r in runs]
        missing = [p.parent.name for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"runs {', '.join(missing)} have no {name}: evaluate them first with `pst eval --run RUN_ID`")
    else:
        paths = sorted(runs_dir.glob(f"*/{name}")) if runs_dir.is_dir() else []
    rows = [{**json.loads(p.read_text()), "run_id": p.parent.name} for p in paths]
    if not runs:
        rows = [over_seeds(group) for group in by_setting(rows)]
    rank = {s: i for i, s in enumerate(STRATEGY_ORDER)}
    return sorted(rows, key=lambda r: (r.get("task") or "", r.get("teacher") or "", noise(r),
                                       rank.get(r.get("strategy"), len(rank)), r.get("strategy") or "", r["run_id"]))


def setting(row: dict[str, Any]) -> tuple:
    """What a row was trained and evaluated with, seed aside (rows of one setting are comparable)."""
    ecfg = row.get("eval_config") or {}
    return (*(row.get(k) for k in KEY), *(ecfg.get(k) for k in EVAL_KEY))


def by_setting(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The newest evaluation per setting and seed, grouped by setting (seeds in order)."""
    newest: dict[tuple, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r.get("created_at", "")):
        newest[(*setting(row), row.get("seed"))] = row
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in sorted(newest.values(), key=lambda r: (r.get("seed") is None, r.get("seed") or 0)):
        groups.setdefault(setting(row), []).append(row)
    return list(groups.values())


def over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for the seeds of one setting: mean ± sample std of accuracy, the seeds' range as interval."""
    if len(rows) == 1:
        return rows[0]
    newest = max(rows, key=lambda r: r.get("created_at", ""))
    acc = [r["accuracy"] for r in rows]
    return {**newest, "accuracy": statistics.fmean(acc), "accuracy_std": statistics.stdev(acc), "ci_low": min(acc),
            "ci_high": max(acc), "seeds": [r.get("seed") for r in rows], "runs": [r["run_id"] for r in rows],
            **{k: statistics.fmean(r.get(k, 0.0) for r in rows) for k in MEANS}}


def markdown(rows: list[dict[str, Any]], split: str = "test") -> str:
    """The report table in Markdown (accuracy and interval in %, latency in ms per example)."""
    with_noise = any(noise(r) for r in rows)
    with_majority = any(r.get("majority_accuracy") is not None for r in rows)
    head = ["task", "strategy", "teacher", *(["noise"] if with_noise else []), "accuracy %", "95 % CI",
            *(["majority %"] if with_majority else []), "n",
            "new tokens", "ms / example", "examples / s", "run"]
    with_seeds = any(r.get("seeds") for r in rows)
    if with_seeds:
        head.insert(head.index("n"), "seeds")
    caption = f"Accuracy on the `{split}` split; interval: percentile bootstrap over examples."
    if with_majority:
        caption += " Majority: always answering the most common gold answer of the same questions."
    if any(r.get("strategy") == "untrained" for r in rows):
        caption += " untrained: the student before distillation, same prompt, answer-only rule."
    if with_seeds:
        caption += " Rows with several seeds: mean ± sample std over the seeds, and the interval spans the seeds' accuracies."
    lines = [caption, "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < 3 + with_noise else "--:" for i in range(len(head) - 1)) + "|---|"]
    for r in rows:
        accuracy = f"{100 * r['accuracy']:.1f}" + (f" ± {100 * r['accuracy_std']:.1f}" if r.get("seeds") else "")
        cells = [r.get("task"), r.get("strategy"), r.get("teacher"), *([noise(r)] if with_noise else []),
                 accuracy, f"{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}",
                 *([_pct(r.get("majority_accuracy"))] if with_majority else []),
                 *([", ".join(str(s) for s in r.get("seeds") or [r.get("seed")])] if with_seeds else []), r.get("n"),
                 f"{r.get('mean_new_tokens', 0):.1f}", f"{r.get('mean_latency_ms', 0):.1f}", f"{r.get('examples_per_s', 0):.1f}",
                 ", ".join(f"`{run}`" for run in r.get("runs") or [r["run_id"]])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _series(row: dict[str, Any], many_teachers: bool) -> str:
    parts = [row.get("strategy") or "?"]
    if many_teachers:
        parts.append(str(row.get("teacher")))
    if noise(row):
        parts.append(noise(row))
    if (row.get("eval_config") or {}).get("max_examples"):  # a smoke evaluation gets its own bar
        parts.append(f"first {row['eval_config']['max_examples']}")
    return " · ".join(parts)


def plot(rows: list[dict[str, Any]], path: Path, split: str = "test") -> Path:
    """Grouped bar chart: x = task, one bar per strategy (· teacher); accuracy and latency panels."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    import numpy as np

    many_teachers = len({r.get("teacher") for r in rows}) > 1
    tasks = sorted({r.get("task") or "?" for r in rows})
    series = list(dict.fromkeys(_series(r, many_teachers) for r in rows))
    width = 0.8 / len(series)
    fig, (ax_acc, ax_lat) = plt.subplots(1, 2, figsize=(max(9.0, 2.4 * len(tasks) + 5), 4.8))
    colors = plt.get_cmap("tab10")
    lowest, highest = float("inf"), 0.0
    for s_idx, name in enumerate(series):
        xs, acc, err, lat = [], [], [[], []], []
        for t_idx, task in enumerate(tasks):
            match = [r for r in rows if (r.get("task") or "?") == task and _series(r, many_teachers) == name]
            if not match:
                continue
            r = match[-1]
            xs.append(t_idx - 0.4 + width * (s_idx + 0.5))
            acc.append(100 * r["accuracy"])
            err[0].append(100 * (r["accuracy"] - r["ci_low"]))
            err[1].append(100 * (r["ci_high"] - r["accuracy"]))
            lat.append(max(r.get("mean_latency_ms", 0.0), 1e-3))
        bars = ax_acc.bar(xs, acc, width, yerr=np.array(err), capsize=3, label=name, color=colors(s_idx % 10))
        ax_acc.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        bars = ax_lat.bar(xs, lat, width, label=name, color=colors(s_idx % 10))
        ax_lat.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
        lowest, highest = min([lowest, *lat]), max([highest, *lat])
    for ax in (ax_acc, ax_lat):
        ax.set_xticks(range(len(tasks)), tasks, rotation=20 if len(tasks) > 3 else 0)
        ax.set_xlabel("task")
        ax.grid(axis="y", alpha=0.3)
    ax_acc.set_ylabel(f"accuracy on {split} (%), 95 % CI")
    ax_acc.set_ylim(0, 100)
    ax_acc.set_title("Accuracy")
    ax_lat.set_ylabel("latency per example (ms, log scale)")
    ax_lat.set_yscale("log")
    # Log bars start at the axis: leave room below the shortest bar and above the tallest label.
    ax_lat.set_ylim(lowest / 3, highest * 2)
    ax_lat.set_title("Inference latency")
    handles, labels = ax_acc.get_legend_handles_labels()
    fig.legend(handles, labels, title="strategy" + (" · teacher" if many_teachers else ""), loc="upper center",
               ncol=min(len(series), 5), bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def build_report(root: str, runs: list[str] | None = None, split: str = "test", out_dir: str | Path | None = None) -> dict[str, Any]:
    """Gather runs and write report(.md|.png|.json) under `<root>/reports/`; returns paths and rows."""
    rows = gather(root, runs, split)
    if not rows:
        raise DataError(f"no evaluated runs under {root}/runs: run `pst eval --run RUN_ID` first")
    out = Path(out_dir) if out_dir else staging.stage_root(root) / "reports"
    out.mkdir(parents=True, exist_ok=True)
    stem = "report" if split == "test" else f"report-{split}"
    md = out / f"{stem}.md"
    tmp = md.with_name(f".tmp-{md.name}")
    tmp.write_text(f"# pst report\n\n{markdown(rows, split)}\n![accuracy and latency]({stem}.png)\n")
    tmp.replace(md)
    png = plot(rows, out / f"{stem}.png", split)
    write_json(out / f"{stem}.json", {"split": split, "rows": rows})
    staging.push(root, out)  # <root>/reports/ on an object store (a no-op locally or for --out)
    return {"markdown": str(md), "png": str(png), "json": str(out / f"{stem}.json"), "rows": rows}
