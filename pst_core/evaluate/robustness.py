"""The robustness experiment (PST.md claim 2): accuracy against the rate p of perturbed rationales.

For every strategy x perturbation kind x rate x seed, a student is trained on rationales of which
a fraction p is perturbed (`pst_core.perturb`: `shuffle` or `numbers`), then evaluated on the
clean test split. p = 0 is trained once per (strategy, seed) and shared by both kinds. Run ids
are deterministic, so a rerun skips every (train, evaluate) pair whose metrics already exist —
the experiment resumes after a crash. Results go to `<store>/experiments/<name>/`:
`results.json` (one row per run), `robustness.md` (accuracy and drop from p = 0) and
`robustness.png` (one panel per kind, one line per strategy, 95 % interval as a band).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.config import check, option, to_dict
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.runner import output_names, stored_metrics, write_json
from pst_core.perturb import KINDS

TrainFn = Callable[[dict[str, Any], str], str | Path]  # (training options, run_id) -> run dir
EvalFn = Callable[[Path, EvalConfig], dict[str, Any]]


@dataclass(frozen=True)
class RobustnessConfig:
    """Which students to train on which noise; `train` options pass through to the training config."""

    task: str = option("", "Task trained and evaluated on.")
    teacher: str = option("", "Teacher whose rationales are perturbed.")
    strategies: list[str] = option(["pre_thinking", "pst"], "Strategies compared (the claim: PST loses less than pre_thinking).")
    kinds: list[str] = option(list(KINDS), "Perturbation kinds: shuffle, numbers.")
    rates: list[float] = option([0.0, 0.25, 0.5, 0.75], "Fractions p of perturbed training rationales (0 = clean baseline).")
    seeds: list[int] = option([0], "Training seeds per point (more seeds -> mean over seeds).")
    name: str = option("robustness", "Experiment folder under <store>/experiments/.")
    train: dict[str, Any] = option({}, "Extra training options for every run (student, max_steps, lr, ...).")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(bool(self.task) and bool(self.teacher), name, "task and teacher are required")
        check(bool(self.strategies) and bool(self.rates) and bool(self.seeds), name, "strategies, rates and seeds must not be empty")
        check(all(k in KINDS for k in self.kinds) and bool(self.kinds), name, f"kinds must be among {', '.join(KINDS)}")
        check(all(0.0 <= r <= 1.0 for r in self.rates), name, "rates must be in [0, 1]")


def run_id(cfg: RobustnessConfig, strategy: str, kind: str | None, rate: float, seed: int) -> str:
    """Deterministic run id of one point (clean runs are shared by every kind)."""
    noise = "clean" if not kind or rate == 0 else f"{kind}{round(rate * 100):03d}"
    return f"{cfg.name}-{cfg.task}-{cfg.teacher}-{strategy}-{noise}-s{seed}"


def points(cfg: RobustnessConfig) -> list[dict[str, Any]]:
    """Every (strategy, kind, rate, seed) point, each with its run id and training options."""
    out = []
    for strategy in cfg.strategies:
        for kind in cfg.kinds:
            for rate in sorted(set(cfg.rates)):
                for seed in cfg.seeds:
                    options = {**cfg.train, "strategy": strategy, "task": cfg.task, "teacher": cfg.teacher, "seed": seed,
                               "perturb": kind if rate > 0 else None, "perturb_rate": float(rate)}
                    out.append({"strategy": strategy, "kind": kind, "rate": float(rate), "seed": seed,
                                "run_id": run_id(cfg, strategy, kind, rate, seed), "options": options})
    return out


def run_robustness(cfg: RobustnessConfig, eval_cfg: EvalConfig, root: str, train_fn: TrainFn,
                   eval_fn: EvalFn | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate every point (skipping finished ones), then write results, table and plot."""
    from pst_core.evaluate.runner import evaluate_run

    eval_fn = eval_fn or (lambda run_dir, ecfg: evaluate_run(run_dir, ecfg, root=root))
    metrics_name = output_names(eval_cfg.split)[1]
    done: dict[str, dict[str, Any]] = {}
    rows = []
    for point in points(cfg):
        rid = point["run_id"]
        if rid not in done:
            run_dir = Path(root) / "runs" / rid
            stored = stored_metrics(run_dir, eval_cfg)
            if stored is not None:
                log(f"{rid}: already evaluated, reusing {run_dir / metrics_name}")
                done[rid] = stored
            else:
                if (run_dir / metrics_name).is_file():
                    log(f"{rid}: evaluated with other settings, evaluating again")
                else:
                    log(f"{rid}: training ({point['strategy']}, {point['kind'] if point['rate'] else 'clean'}, p={point['rate']:g})")
                    run_dir = Path(train_fn(point["options"], rid))
                done[rid] = eval_fn(run_dir, eval_cfg)
        m = done[rid]
        rows.append({k: point[k] for k in ("strategy", "kind", "rate", "seed", "run_id")}
                    | {k: m[k] for k in ("accuracy", "ci_low", "ci_high", "n")})
    out_dir = Path(root) / "experiments" / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", {"config": to_dict(cfg), "eval_config": to_dict(eval_cfg), "rows": rows})
    summary = aggregate(rows)
    (out_dir / "robustness.md").write_text(markdown(summary, cfg, eval_cfg.split))
    try:
        png: Path | None = plot(summary, out_dir / "robustness.png", cfg, eval_cfg.split)
    except ImportError:  # a bare GPU machine: the numbers are in results.json, draw them elsewhere
        png = None
        log("matplotlib is not installed: robustness.png not drawn (pip install matplotlib, or `--phase plots` of the paper driver)")
    return {"rows": rows, "summary": summary, "dir": str(out_dir), "png": str(png) if png else None}


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (strategy, kind, rate), with the accuracy drop from the clean point."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["kind"], r["rate"]), []).append(r)
    out = []
    for (strategy, kind, rate), rs in groups.items():
        mean = lambda key: sum(r[key] for r in rs) / len(rs)  # noqa: E731
        out.append({"strategy": strategy, "kind": kind, "rate": rate, "seeds": len(rs),
                    "accuracy": mean("accuracy"), "ci_low": mean("ci_low"), "ci_high": mean("ci_high")})
    clean = {(s["strategy"], s["kind"]): s["accuracy"] for s in out if s["rate"] == 0.0}
    for s in out:
        base = clean.get((s["strategy"], s["kind"]))
        s["drop"] = None if base is None else base - s["accuracy"]
    return sorted(out, key=lambda s: (s["kind"], s["strategy"], s["rate"]))


def markdown(summary: list[dict[str, Any]], cfg: RobustnessConfig, split: str) -> str:
    """Accuracy (and drop from p = 0) per kind x strategy x rate, in percentage points."""
    lines = [f"# Robustness: {cfg.task}, teacher {cfg.teacher}, evaluated on {split}", "",
             "| kind | strategy | p | accuracy % | 95 % CI | drop from p=0 (pts) | seeds |", "|---|---|--:|--:|--:|--:|--:|"]
    for s in summary:
        drop = "" if s["drop"] is None else f"{100 * s['drop']:+.1f}"
        lines.append(f"| {s['kind']} | {s['strategy']} | {s['rate']:g} | {100 * s['accuracy']:.1f} | "
                     f"{100 * s['ci_low']:.1f}–{100 * s['ci_high']:.1f} | {drop} | {s['seeds']} |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict[str, Any]], path: Path, cfg: RobustnessConfig, split: str) -> Path:
    """One panel per kind: accuracy against p, one line per strategy, the interval as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(s["kind"] for s in summary))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.2 * len(kinds), 4.2), squeeze=False, sharey=True)
    colors = plt.get_cmap("tab10")
    strategies = list(dict.fromkeys(s["strategy"] for s in summary))
    for ax, kind in zip(axes[0], kinds):
        for i, strategy in enumerate(strategies):
            pts = sorted((s for s in summary if s["kind"] == kind and s["strategy"] == strategy), key=lambda s: s["rate"])
            xs = [s["rate"] for s in pts]
            ax.plot(xs, [100 * s["accuracy"] for s in pts], marker="o", label=strategy, color=colors(i % 10))
            ax.fill_between(xs, [100 * s["ci_low"] for s in pts], [100 * s["ci_high"] for s in pts], alpha=0.15, color=colors(i % 10))
        ax.set_title(f"{kind} perturbation")
        ax.set_xlabel("fraction p of perturbed training rationales")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"accuracy on {split} (%), 95 % CI band")
    axes[0][0].legend(title="strategy")
    fig.suptitle(f"Robustness on {cfg.task} (teacher {cfg.teacher})")
    fig.tight_layout()
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
