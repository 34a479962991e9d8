"""`embed_rationales`: embed every stored rationale text that has no vector yet, in bounded memory.

The rationale store is streamed part by part in record batches; new distinct texts collect into
chunks of `chunk_size`, each chunk is length-sorted into batches (little padding), encoded, and
written as one part by a background thread while the next chunk is read and encoded. A crash
loses at most the chunk in flight, and a rerun skips everything already written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pst_core import store
from pst_core.embed import encoder as enc
from pst_core.embed import vectors
from pst_core.embed.config import EmbedConfig, EmbedSummary
from pst_core.harvest.rationales import readable

RATIONALES = "rationales"


def rationale_parts(root: str, teacher: str | None = None, task: str | None = None) -> list[str]:
    """Rationale part files, optionally only one teacher's and/or one task's (by folder name)."""
    base = f"{root.rstrip('/')}/{RATIONALES}"
    _, base_path = store.filesystem(base)
    wanted = {f"teacher={teacher}" if teacher else None, f"task={task}" if task else None} - {None}
    return [p for p in store.list_parts(base) if wanted <= set(store.filesystem(p)[1][len(base_path):].split("/"))]


def iter_rationales(root: str, parts: list[str], rows_per_batch: int, vanished: list[str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield (rows read, successful rationale texts) per record batch; error rows are dropped.

    A part that vanished before it was opened (a running harvest replaced it by a larger one,
    or a compaction merged it) is skipped and appended to `vanished`: its rows are in a newer part.
    """
    fs, _ = store.filesystem(root)
    for part in parts:
        try:
            with readable([part]), fs.open(part, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=rows_per_batch, columns=["rationale", "error"]):
                    ok = pc.and_(pc.is_null(batch.column("error")), pc.is_valid(batch.column("rationale")))
                    yield batch.num_rows, batch.column("rationale").filter(ok).to_pylist()
        except FileNotFoundError:
            if vanished is None:
                raise
            vanished.append(part)


def count_successes(root: str, parts: list[str]) -> int:
    """Successful rows in these parts (the progress bar's total): the null count of the `error`
    column in the Parquet footers, or that one small column when a footer has no statistics."""
    fs, _ = store.filesystem(root)
    total = 0
    for part in parts:
        try:
            with readable([part]), fs.open(part, "rb") as fh:
                total += _footer_successes(pq.ParquetFile(fh))
        except FileNotFoundError:  # replaced meanwhile; the bar's total is only a guide
            continue
    return total


def _footer_successes(pf: pq.ParquetFile) -> int:
    """Rows of one part whose `error` is null."""
    meta = pf.metadata
    if "error" not in pf.schema_arrow.names:
        return meta.num_rows
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        col = next(group.column(c) for c in range(group.num_columns) if group.column(c).path_in_schema == "error")
        stats = col.statistics
        if stats is None or not stats.has_null_count:
            return pf.read(columns=["error"])["error"].null_count
        total += stats.null_count
    return total


def encode_sorted(model: Any, texts: list[str], batch_size: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """L2-normalised float32 vectors [len(texts), dim] in input order, batched longest-first.

    Sorting the whole chunk by length keeps padding low; longest first makes an out-of-memory
    batch fail at the start rather than after an hour.
    """
    order = np.argsort(np.fromiter((-len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        vecs = model.encode([texts[i] for i in idx], batch_size=len(idx), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        if out is None:
            out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if on_batch is not None:
            on_batch(len(idx))
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def params_digest(model: Any) -> str:
    """sha256 of every weight tensor: the revision of last resort for a model with no files to hash."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + b"\0" + tensor.detach().float().cpu().numpy().tobytes())
    return f"params:{digest.hexdigest()[:16]}"


def embed_rationales(cfg: EmbedConfig, root: str, progress: bool = True, *, model: Any = None) -> EmbedSummary:
    """Embed every distinct successful rationale text with no vector for this encoder revision yet.

    `model` is an already loaded `cfg.encoder` (from `load_encoder`) to reuse across calls;
    by default it is loaded only when there is something to embed.
    """
    started = time.perf_counter()
    ref = enc.resolve(cfg.encoder)
    revision = enc.revision(ref, cfg.max_seq_length)
    if revision is None:  # a Hub model not cached yet: loading downloads it, then the commit is known
        model = model if model is not None else _load(cfg)
        revision = enc.revision(ref, cfg.max_seq_length) or params_digest(model)
    done = vectors.existing_hashes(root, ref, revision)
    parts = rationale_parts(root, cfg.teacher, cfg.task)
    # The bar counts successful rationale texts (error rows carry none): read ones advance it at
    # once when already embedded or repeated, new ones when they are encoded.
    bar = _progress_bar(count_successes(root, parts) if progress else 0, ref.id, progress)
    seen: set[str] = set()
    texts_seen = already = embedded = written = 0
    chunk_texts: list[str] = []
    chunk_hashes: list[str] = []
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pst-embed-write") as writer:

        def flush() -> None:
            nonlocal model, embedded, written, pending, chunk_texts, chunk_hashes
            if model is None:
                model = _load(cfg)
            vecs = encode_sorted(model, chunk_texts, cfg.batch_size, bar.update)
            table = vectors.to_table(chunk_hashes, vecs, ref, revision, cfg.dtype)
            if pending is not None:
                pending.result()  # at most one part in flight keeps memory bounded
            pending = writer.submit(vectors.write, root, ref, table)
            embedded += len(chunk_texts)
            written += 1
            bar.set_postfix(new=embedded, refresh=False)
            chunk_texts, chunk_hashes = [], []

        finished: set[str] = set()
        for _ in range(store.VANISHED_RETRIES + 1):
            vanished: list[str] = []
            for _rows, texts in iter_rationales(root, parts, cfg.chunk_size, vanished):
                queued = 0
                for text in texts:
                    h = vectors.text_hash(text)
                    if h in seen:
                        continue
                    seen.add(h)
                    if h in done:
                        already += 1
                        continue
                    chunk_texts.append(text)
                    chunk_hashes.append(h)
                    queued += 1
                    if len(chunk_texts) >= cfg.chunk_size:
                        flush()
                texts_seen += len(texts)
                bar.update(len(texts) - queued)  # queued texts advance the bar when they are encoded
            finished.update(p for p in parts if p not in vanished)
            if not vanished:
                break
            # A vanished part's rows are in a part published before it was removed: list again.
            parts = [p for p in rationale_parts(root, cfg.teacher, cfg.task) if p not in finished]
        if chunk_texts:
            flush()
        if pending is not None:
            pending.result()
    if bar.total is not None and bar.n != bar.total:  # a text-less success, or a part replaced meanwhile
        bar.total = bar.n
        bar.refresh()
    bar.close()
    seconds = time.perf_counter() - started
    summary = EmbedSummary(
        encoder=ref.id, encoder_revision=revision, texts_seen=texts_seen, distinct=len(seen),
        already_embedded=already, embedded=embedded, parts_written=written, seconds=seconds,
        texts_per_s=embedded / seconds if seconds > 0 else 0.0,
    )
    if embedded:
        _record_run(root, ref, cfg, summary)
    return summary


def _load(cfg: EmbedConfig) -> Any:
    """Load the encoder for this config, with every CPU thread (or `threads`) when on CPU."""
    model = enc.load_encoder(cfg.encoder, cfg.device, fp16=cfg.fp16, max_seq_length=cfg.max_seq_length)
    if str(model.device).startswith("cpu"):
        enc.set_cpu_threads(cfg.threads)
    return model


def _progress_bar(total: int, label: str, enabled: bool) -> Any:
    """A tqdm bar over successful rationale texts (texts/s); a silent stand-in when disabled."""
    from tqdm.auto import tqdm

    return tqdm(total=total or None, unit="text", unit_scale=True, desc=f"embed {label}", disable=not enabled, dynamic_ncols=True)


def _record_run(root: str, ref: enc.EncoderRef, cfg: EmbedConfig, summary: EmbedSummary) -> None:
    """Store the config and counts of a run beside its parts (`_runs/` is skipped by readers)."""
    record = json.dumps({"config": asdict(cfg), "summary": asdict(summary)}, indent=2).encode()
    store.write_bytes(f"{vectors.encoder_dir(root, ref)}/_runs/run-{time.time_ns():020d}.json", record)
