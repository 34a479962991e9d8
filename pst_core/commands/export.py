"""`pst export`: a trained run as a standard model folder (weights, tokenizer, generation config, card)."""

from __future__ import annotations

from pathlib import Path

import typer

from pst_core import settings


def export(
    run: str = typer.Option(..., "--run", help="Run id under <store>/runs/ (or a run folder path)."),
    out: str = typer.Option(..., "--out", help="Folder to write (must not exist or be empty; see --overwrite)."),
    merge: bool = typer.Option(False, "--merge", help="LoRA runs: fold the adapter into the weights (default: the adapter alone). "
                                                       "Full fine-tunes are exported as trained either way."),
    push_to_hub: str = typer.Option(None, "--push-to-hub", metavar="REPO", help="Also upload the folder to this Hugging Face "
                                                                                 "repository (token: HF_TOKEN or `hf auth login`)."),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repository private."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
) -> None:
    """Write a run as a folder any server can load, which stops an answer-first student at <|sem|>."""
    from pst_core.export import export_run, push

    root = settings.data_root()
    run_dir = Path(run) if Path(run).is_dir() else Path(root) / "runs" / run
    result = export_run(run_dir, out, merge=merge, overwrite=overwrite, root=root, repo_id=push_to_hub)
    stops = ", ".join(f"{t} ({i})" for t, i in zip(result.stop_tokens, result.stop_token_ids))
    typer.echo(f"exported {run_dir.name} ({result.strategy}, {result.kind} weights) -> {result.out}; generation stops at {stops}")
    if result.kind == "full" and merge:
        typer.echo("note: --merge changes nothing for a full fine-tune (no adapter to merge)")
    if result.metrics is None:
        typer.echo(f"note: the run is not evaluated, so the model card has no metrics: pst eval --run {run_dir.name}, then export again")
    if push_to_hub:
        typer.echo(f"pushed to {push(result.out, push_to_hub, private=private)}")


def register(app: typer.Typer) -> None:
    """Add `export` to the main app."""
    app.command("export")(export)
