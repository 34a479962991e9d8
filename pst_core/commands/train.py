"""`pst train`: fine-tune a student with one strategy on a teacher's rationales; writes data/runs/<run_id>/."""

from __future__ import annotations

import json

import typer

from pst_core import settings


def train(
    strategy: str = typer.Option(..., "--strategy", "-s", help="answer_only, pre_thinking, prefix, post_thinking or pst."),
    teacher: str = typer.Option(..., "--teacher", help="Teacher whose rationales are used."),
    task: str = typer.Option(..., "--task", help="Task to train on."),
    student: str = typer.Option(None, "--student", help="Hub id or local folder (default SmolLM2-135M-Instruct)."),
    config_file: str = typer.Option(None, "--config", help="YAML/JSON file of TrainConfig options (flags override it)."),
    run_id: str = typer.Option(None, "--run-id", help="Run folder name (default <task>-<strategy>-<teacher>-s<seed>)."),
    seed: int = typer.Option(None, "--seed", help="Random seed."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (overrides epochs)."),
    lora_r: int = typer.Option(None, "--lora-r", help="LoRA rank (peft): train adapters, the SEP/SEM rows and the head only; 0 = full fine-tuning."),
    gradient_checkpointing: bool = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                help="Recompute activations in backward: less memory, more compute."),
    report_to: list[str] = typer.Option(None, "--report-to", help="Experiment tracker (repeatable): tensorboard (offline, <run>/tb/), mlflow, wandb."),
) -> None:
    """Train a student; re-running the same command resumes an interrupted run."""
    from pst_core.config import load_file
    from pst_core.train.config import resolve
    from pst_core.train.run import train as run_train

    values = load_file(config_file) if config_file else {}
    cfg = resolve(values, strategy=strategy, teacher=teacher, task=task, student=student, seed=seed, max_steps=max_steps,
                  lora_r=lora_r, gradient_checkpointing=gradient_checkpointing, report_to=report_to or None)
    run, metrics = run_train(cfg, settings.data_root(), run_id)
    best = metrics.get("best", {})
    typer.echo(f"trained {cfg.strategy} on {cfg.task} ({metrics['steps']} steps, {metrics['tokens_per_s']:,.0f} tokens/s) -> {run}")
    if best:
        typer.echo("best validation: " + json.dumps({k: round(v, 4) for k, v in best.items()}))


def register(app: typer.Typer) -> None:
    """Add `train` to the main app."""
    app.command("train")(train)
