"""Prefect task: embed every stored rationale text that has no vector yet for the encoder."""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import task

from pst_core import store
from pst_core.config import from_dict
from tasks.artifacts import publish_preview
from tasks.placement import executor
from tasks.policy import RETRY_OPTIONS, store_cache


def _reads(inputs: dict[str, Any]) -> list[Any]:
    # The successful rationales this embed covers: one teacher's (and task's) partition, else all.
    # The encoder's revision too: new weights under the same name or path must embed again.
    from pst_core.embed import EmbedConfig, encoder
    from pst_core.harvest.rationales import success_digest

    root, cfg = inputs["root"], from_dict(EmbedConfig, inputs.get("config"))
    parts = {k: getattr(cfg, k) for k in ("teacher", "task") if getattr(cfg, k)}
    if "task" in parts and "teacher" not in parts:
        parts = {}
    revision = encoder.revision(encoder.resolve(cfg.encoder), cfg.max_seq_length)
    return [{"rationales": success_digest(store.partition_path(root, "rationales", **parts)), "encoder_revision": revision}]


@task(name="embed", cache_policy=store_cache(_reads), persist_result=True, **RETRY_OPTIONS)
def embed(root: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Embed new rationale texts (an EmbedConfig dict selects teacher/task/encoder); preview the vectors."""
    from pst_core.embed import EmbedConfig, embed_rationales, resolve
    from pst_core.embed.vectors import encoder_dir

    cfg = from_dict(EmbedConfig, config)
    summary = embed_rationales(cfg, root, progress=False)
    path = encoder_dir(root, resolve(cfg.encoder))
    outputs = [path] if store.list_parts(path) else []
    for p in outputs:
        publish_preview(p)
    return {**dataclasses.asdict(summary), "outputs": outputs, "worker": executor()}
