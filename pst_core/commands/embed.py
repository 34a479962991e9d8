"""`pst embed`: embed every stored rationale that has no vector yet for the chosen encoder."""

from __future__ import annotations

import json
from typing import Optional

import typer

from pst_core import settings
from pst_core.embed.config import DEFAULT_ENCODER


def embed(
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Only this teacher's rationales."),
    task: Optional[str] = typer.Option(None, "--task", help="Only this task's rationales."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help=f"Sentence-transformers id or local path (default: {DEFAULT_ENCODER})."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Texts per forward pass."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Storage dtype: float32 or float16."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:1, mps..."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Texts per written part (bounds memory)."),
    max_seq_length: Optional[int] = typer.Option(None, "--max-seq-length", help="Truncate texts to this many tokens."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of EmbedConfig options."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed rationale texts once per encoder into data/embeddings/encoder=<slug>/."""
    from dataclasses import asdict

    from pst_core.config import from_dict, load_file
    from pst_core.embed import EmbedConfig, embed_rationales

    cfg = from_dict(
        EmbedConfig, load_file(config) if config else {}, encoder=encoder, teacher=teacher, task=task, batch_size=batch_size, dtype=dtype,
        device=device, chunk_size=chunk_size, max_seq_length=max_seq_length,
    )
    summary = embed_rationales(cfg, settings.data_root(), progress=not quiet)
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    typer.echo(
        f"{summary.encoder} ({summary.encoder_revision}): {summary.embedded} new texts embedded, "
        f"{summary.already_embedded} already embedded, {summary.texts_seen} rationales read "
        f"({summary.distinct} distinct) in {summary.seconds:.1f}s ({summary.texts_per_s:.0f} texts/s)"
    )


def register(app: typer.Typer) -> None:
    """Add the `embed` command to the main app."""
    app.command("embed")(embed)
