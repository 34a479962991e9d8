"""Embedding precomputation: every rationale text embedded once per encoder, before training.

PST's semantic loss compares the student's hidden state with a sentence embedding of the teacher
rationale. Embedding ahead of time, keyed by the text's sha256, removes the encoder from the
training loop: `embed_rationales` fills `data/embeddings/encoder=<slug>/`, and training reads
vectors back with `read_vectors`. Importing this package does not import torch.
"""

from pst_core.embed.config import DEFAULT_ENCODER, EmbedConfig, EmbedSummary
from pst_core.embed.encoder import EncoderRef, load_encoder, resolve
from pst_core.embed.run import embed_rationales, encode_sorted
from pst_core.embed.vectors import read_vectors, text_hash

__all__ = [
    "DEFAULT_ENCODER",
    "EmbedConfig",
    "EmbedSummary",
    "EncoderRef",
    "embed_rationales",
    "encode_sorted",
    "load_encoder",
    "read_vectors",
    "resolve",
    "text_hash",
]
