"""The embed stage's frozen config and the summary each run returns."""

from __future__ import annotations

from dataclasses import dataclass

from pst_core.config import check, option
from pst_core.schemas import EMBEDDING_DTYPES

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EmbedConfig:
    """What to embed, with which encoder, and how fast (batching, chunking, device)."""

    encoder: str = option(DEFAULT_ENCODER, "Sentence-transformers model id or local path (the default resolves offline).")
    teacher: str | None = option(None, "Embed only this teacher's rationales (default: all teachers).")
    task: str | None = option(None, "Embed only this task's rationales (default: all tasks).")
    batch_size: int = option(128, "Texts per forward pass; batches are formed from length-sorted texts.")
    dtype: str = option("float32", "Storage dtype of the vectors: float32 or float16 (half the disk).")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps...")
    fp16: bool = option(True, "Run the encoder in half precision on CUDA (vectors stay within 1e-4 cosine).")
    chunk_size: int = option(16384, "Texts read, encoded and written per part; bounds memory for any corpus.")
    max_seq_length: int | None = option(None, "Truncate texts to this many tokens (default: the encoder's own limit).")
    threads: int = option(0, "CPU threads for torch (0 = every CPU this process may use).")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(bool(self.encoder.strip()), name, "encoder must not be empty")
        check(self.batch_size >= 1, name, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.dtype in EMBEDDING_DTYPES, name, f"dtype must be one of {', '.join(EMBEDDING_DTYPES)}, got {self.dtype!r}")
        check(self.chunk_size >= self.batch_size, name, f"chunk_size ({self.chunk_size}) must be >= batch_size ({self.batch_size})")
        check(self.max_seq_length is None or self.max_seq_length >= 1, name, "max_seq_length must be >= 1")
        check(self.threads >= 0, name, f"threads must be >= 0, got {self.threads}")


@dataclass(frozen=True)
class EmbedSummary:
    """Counts and speed of one `embed_rationales` run."""

    encoder: str
    encoder_revision: str
    texts_seen: int  # rationale rows read (successful ones), duplicates included
    distinct: int  # distinct texts among them
    already_embedded: int  # distinct texts that already had a vector for this encoder revision
    embedded: int  # distinct texts encoded and written by this run
    parts_written: int
    seconds: float
    texts_per_s: float  # embedded / seconds over the whole run (read, encode, write)
