"""The embedding store: `data/embeddings/encoder=<slug>/part-*.parquet`, keyed by text hash.

Parts are append-only; a text may have rows from several encoder revisions (after the weights
changed), and readers take each text's newest row. The `encoder_id` column holds the full id
and the `encoder=` folder its slug; the names differ so pandas reads the store as-is, while pst
reads one encoder folder's parts directly, filtered on `encoder_id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pst_core import schemas, store
from pst_core.embed import encoder as enc
from pst_core.errors import DataError

DATASET = "embeddings"


def text_hash(text: str) -> str:
    """sha256 hex of the exact UTF-8 text (no normalisation: any change is a new text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encoder_dir(root: str, ref: enc.EncoderRef) -> str:
    """The partition folder holding one encoder's vectors."""
    return store.partition_path(root, DATASET, encoder=ref.slug)


def _scan(root: str, ref: enc.EncoderRef, columns: list[str], filter: pc.Expression | None = None) -> pa.Table:
    """Read `columns` of this encoder's rows from every part (empty table when there are none)."""
    parts = store.list_parts(encoder_dir(root, ref))
    if not parts:
        return pa.table({c: pa.array([], type=pa.string()) for c in columns})
    fs, _ = store.filesystem(root)
    parts = [store.filesystem(p)[1] for p in parts]  # pyarrow wants the filesystem's own paths, not URIs
    expr = pc.field("encoder_id") == ref.id
    if filter is not None:
        expr = expr & filter
    try:
        # Read vectors as float32 whatever each part stores, so float16 parts never round others.
        schema = pq.read_schema(parts[-1], filesystem=fs)
        dim = schema.field("embedding").type.list_size
        schema = schema.set(schema.get_field_index("embedding"), pa.field("embedding", pa.list_(pa.float32(), dim)))
        return pads.dataset(parts, schema=schema, filesystem=fs, format="parquet").to_table(columns=columns, filter=expr)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:  # e.g. a local model replaced by one of another width
        raise DataError(
            f"cannot read embeddings in {encoder_dir(root, ref)}: {str(exc).splitlines()[0]}; "
            "move that folder away and run `pst embed` again"
        ) from None


def existing_hashes(root: str, ref: enc.EncoderRef, revision: str) -> set[str]:
    """Hashes of the texts that already have a vector from this encoder revision."""
    table = _scan(root, ref, ["text_hash"], pc.field("encoder_revision") == revision)
    return set(table["text_hash"].to_pylist())


def to_table(hashes: list[str], vectors: np.ndarray, ref: enc.EncoderRef, revision: str, dtype: str) -> pa.Table:
    """One part's rows: vectors [n, dim] (any float dtype) stored as `dtype`."""
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.dtype(dtype)).reshape(-1))
    schema = schemas.embeddings_schema(dim, dtype)
    now = pa.scalar(datetime.now(timezone.utc), type=pa.timestamp("us", tz="UTC"))
    columns = [
        pa.array(hashes, type=pa.string()),
        pa.array([ref.id] * n, type=pa.string()),
        pa.array([revision] * n, type=pa.string()),
        pa.array(np.full(n, dim, dtype=np.int32)),
        pa.FixedSizeListArray.from_arrays(flat, dim),
        pa.array([now.value] * n, type=pa.timestamp("us", tz="UTC")),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def write(root: str, ref: enc.EncoderRef, table: pa.Table) -> str:
    """Append one part atomically; returns its path."""
    return store.write_part(encoder_dir(root, ref), table)


def read_vectors(root: str, encoder: str, texts: Iterable[str], revision: str | None = None) -> np.ndarray:
    """Vectors of `texts` as one float32 array [len(texts), dim], in order (used by training).

    Each text's newest row is used; `revision` pins one encoder revision instead. Missing
    texts, or vectors from different revisions, raise a DataError that says to run `pst embed`.
    """
    texts = list(texts)
    ref = enc.resolve(encoder)
    hashes = [text_hash(t) for t in texts]
    wanted = pa.array(sorted(set(hashes)), type=pa.string())
    expr = pc.field("text_hash").isin(wanted)
    if revision is not None:
        expr = expr & (pc.field("encoder_revision") == revision)
    table = _scan(root, ref, ["text_hash", "encoder_revision", "created_at", "embedding"], expr)
    if table.num_rows:
        # Newest row first, then keep each hash's first occurrence.
        table = table.take(pc.sort_indices(table, [("created_at", "descending")]))
    row_of: dict[str, int] = {}
    for i, h in enumerate(table["text_hash"].to_pylist()):
        row_of.setdefault(h, i)
    missing = [t for t, h in zip(texts, hashes) if h not in row_of]
    if missing:
        first = list(dict.fromkeys(missing))[:3]
        shown = ", ".join(repr(t[:60] + ("…" if len(t) > 60 else "")) for t in first)
        where = f" revision {revision}" if revision else ""
        raise DataError(
            f"{len(missing)} of {len(texts)} rationale texts have no {ref.id}{where} embedding in {root} "
            f"(first: {shown}); run `pst embed --encoder {ref.id}`"
        )
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    rows = np.fromiter((row_of[h] for h in hashes), dtype=np.int64, count=len(hashes))
    revisions = set(pc.unique(table["encoder_revision"].take(pa.array(rows))).to_pylist())
    if len(revisions) > 1:
        raise DataError(
            f"the vectors of these texts come from {len(revisions)} revisions of {ref.id} ({', '.join(sorted(revisions))}); "
            f"run `pst embed --encoder {ref.id}` to re-embed them with the current weights"
        )
    column = table["embedding"].combine_chunks()
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return flat[rows].astype(np.float32, copy=False)
