"""`pst eval`, `pst report` and `pst experiment robustness`: measure runs and show the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pst_core import settings

experiment_app = typer.Typer(help="Experiments that test the paper's claims.", no_args_is_help=True)


def _split_list(values: list[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated values (`--runs a,b --runs c`)."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def eval_(
    run: str = typer.Option(None, "--run", help="Run id under <store>/runs/ (or a run folder path)."),
    untrained: str = typer.Option(None, "--untrained", metavar="TASK",
                                  help="Instead of a run: the student before distillation on TASK (answer-only rule), the floor of `pst report`."),
    student: str = typer.Option(None, "--student", help="With --untrained: Hub id or folder (default: the default student)."),
    split: str = typer.Option("test", help="Split to evaluate: test, validation or train."),
    with_rationale: bool = typer.Option(False, "--with-rationale", help="Answer-first strategies also write their rationale (untimed pass)."),
    batch_size: int = typer.Option(None, help="Prompts per generation batch (default: 32)."),
    max_new_tokens: int = typer.Option(None, help="Generation budget per example (default: 256)."),
    max_examples: int = typer.Option(None, help="Evaluate only the first N examples (smoke runs)."),
    device: str = typer.Option(None, help="auto, cpu, cuda, cuda:1 ... (default: auto)."),
    config: str = typer.Option(None, "--config", help="YAML/JSON file of EvalConfig options (flags override it)."),
) -> None:
    """Generate with the run's strategy rule and write predictions.parquet + metrics.json into the run."""
    from pst_core.config import from_dict, load_file
    from pst_core.evaluate.config import EvalConfig
    from pst_core.errors import ConfigError
    from pst_core.evaluate.runner import evaluate_run, evaluate_untrained, output_names
    from pst_core.train.config import DEFAULT_STUDENT

    cfg = from_dict(EvalConfig, load_file(config) if config else {}, split=split, with_rationale=with_rationale or None,
                    batch_size=batch_size, max_new_tokens=max_new_tokens, max_examples=max_examples, device=device)
    if (run is None) == (untrained is None):
        raise ConfigError("pst eval needs exactly one of --run RUN_ID or --untrained TASK")
    runs = f"{settings.data_root().rstrip('/')}/runs"  # a path, or an s3:// URI (evaluated from a local stage)
    if untrained is not None:
        m = evaluate_untrained(student or DEFAULT_STUDENT, untrained, cfg)
        run_dir = f"{runs}/{m['run_id']}"
    else:
        run_dir = run if Path(run).is_dir() else f"{runs}/{run}"
        m = evaluate_run(run_dir, cfg)
    typer.echo(f"{m['run_id']} ({m['strategy']}, {m['task']}, {cfg.split}): accuracy {100 * m['accuracy']:.1f} % "
               f"[{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] on {m['n']} examples; "
               f"{m['mean_new_tokens']:.1f} new tokens and {m['mean_latency_ms']:.1f} ms per example on {m['device']}")
    pred, metrics = output_names(cfg.split)
    typer.echo(f"wrote {run_dir}/{pred} and {run_dir}/{metrics}")


def report(
    runs: list[str] = typer.Option(None, "--runs", help="Run ids to include (repeat or comma-separate); default: every evaluated run."),
    split: str = typer.Option("test", help="Which split's metrics to report."),
    out: str = typer.Option(None, help="Output folder (default: <store>/reports)."),
) -> None:
    """Gather evaluated runs into a Markdown table and a PNG chart (accuracy with CI, latency)."""
    from pst_core.evaluate.report import build_report

    result = build_report(settings.data_root(), _split_list(runs) or None, split, out)
    typer.echo(Path(result["markdown"]).read_text())
    typer.echo(f"wrote {result['markdown']}, {result['png']} and {result['json']}")


@experiment_app.command("robustness")
def robustness(
    task: str = typer.Option(None, help="Task to train and evaluate on."),
    teacher: str = typer.Option(None, help="Teacher whose training rationales are perturbed."),
    strategies: list[str] = typer.Option(None, help="Strategies, repeated or comma-separated (default: pre_thinking,pst)."),
    kinds: list[str] = typer.Option(None, help="Perturbations: shuffle, numbers (default: both)."),
    rates: list[str] = typer.Option(None, help="Fractions p (default: 0,0.25,0.5,0.75)."),
    seeds: list[str] = typer.Option(None, help="Training seeds (default: 0)."),
    name: str = typer.Option(None, help="Experiment folder under <store>/experiments/ (default: robustness)."),
    config: str = typer.Option(None, "--config", help="YAML/JSON with RobustnessConfig options, an optional `train:` mapping and `eval:` mapping."),
    max_new_tokens: int = typer.Option(None, help="Evaluation generation budget (default: 256)."),
    device: str = typer.Option(None, help="Evaluation device (default: auto)."),
) -> None:
    """Train each strategy on rationales perturbed at each rate p, evaluate, and plot accuracy against p."""
    from pst_core.config import from_dict, load_file
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.robustness import RobustnessConfig, run_robustness
    from pst_core.train.run import train_fn

    values: dict[str, Any] = load_file(config) if config else {}
    eval_values = values.pop("eval", {}) or {}
    cfg = from_dict(RobustnessConfig, values, task=task, teacher=teacher, name=name,
                    strategies=_split_list(strategies) or None, kinds=_split_list(kinds) or None,
                    rates=[float(r) for r in _split_list(rates)] or None, seeds=[int(s) for s in _split_list(seeds)] or None)
    eval_cfg = from_dict(EvalConfig, eval_values, max_new_tokens=max_new_tokens, device=device)
    root = settings.data_root()
    result = run_robustness(cfg, eval_cfg, root, train_fn(root), log=typer.echo)
    typer.echo((Path(result["dir"]) / "robustness.md").read_text())
    typer.echo(f"wrote {result['dir']}/results.json, robustness.md and {result['png']}")


@experiment_app.command("paper")
def paper(
    config: str = typer.Option("configs/paper.yaml", "--config", help="YAML/JSON with PaperConfig options."),
    phase: str = typer.Option("all", help="data (prepare, replay-harvest, embed: CPU is enough), pilot (does the budget learn? "
                                            "validation only), runs (train, evaluate: GPU), all (data and runs), "
                                            "or plots (draw robustness plots from results.json)."),
    out: str = typer.Option(None, help="Result folder (default: the config's `out`, bench/results/paper)."),
    commit: bool = typer.Option(False, "--commit", help="git-commit each finished run's results (out/runs/<id>/) as it finishes, "
                                                        "so an experiment longer than a session resumes from git on any machine."),
    rerun: str = typer.Option(None, "--rerun", metavar="RUN_ID", help="Train one published run (out/runs/RUN_ID) again from "
                                                                       "scratch and compare its test accuracy with the published one."),
) -> None:
    """The paper experiment: every strategy on the recorded teacher's rationales, options chosen on validation, seeds on test."""
    from pst_core.evaluate import paper as experiment

    experiment.run(config, phase, out, log=typer.echo, commit=commit, rerun_id=rerun)


def register(app: typer.Typer) -> None:
    """Add `eval`, `report` and the `experiment` group to the main app."""
    app.command("eval")(eval_)
    app.command("report")(report)
    app.add_typer(experiment_app, name="experiment")
