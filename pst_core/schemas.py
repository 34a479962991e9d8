"""Explicit Arrow schemas of every store dataset (partition columns live in folder names).

| dataset      | partitions                 | one row per                          |
|--------------|----------------------------|--------------------------------------|
| examples     | task, split                | question of a task split             |
| rationales   | teacher, task, split       | teacher request (the request cache)  |
| embeddings   | encoder                    | distinct rationale text              |
"""

from __future__ import annotations

import pyarrow as pa

EXAMPLES = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),  # "<task>-<source_index:05d>", stable
        pa.field("question", pa.string(), nullable=False),
        pa.field("choices", pa.list_(pa.string())),  # e.g. ["A) 12", "B) 14", ...]; [] when none
        pa.field("gold_answer", pa.string(), nullable=False),  # normalised (see pst_core.answers)
        pa.field("answer_type", pa.string(), nullable=False),  # number | choice | yes_no | text
        pa.field("human_rationale", pa.string()),  # GSM8K solution, StrategyQA facts, CoS-E...
        pa.field("source", pa.string()),  # file or hub id the row came from
        pa.field("source_index", pa.int64()),  # row in the source (Fine-tune-CoT sample_index)
    ]
)
EXAMPLES_PARTITIONS = {"task": pa.string(), "split": pa.string()}

RATIONALES = pa.schema(
    [
        pa.field("request_key", pa.string(), nullable=False),  # sha256 of canonical request JSON
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("rationale", pa.string()),
        pa.field("raw_completion", pa.string()),
        pa.field("predicted_answer", pa.string()),
        pa.field("is_correct", pa.bool_()),
        pa.field("finish_reason", pa.string()),
        pa.field("prompt_tokens", pa.int32()),
        pa.field("completion_tokens", pa.int32()),
        pa.field("latency_ms", pa.float32()),
        pa.field("attempts", pa.int32()),
        pa.field("error", pa.string()),  # null on success
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("prompt_kind", pa.string()),  # zs_cot | few_shot_cot | rationalize
        pa.field("answer_completion", pa.string()),  # Zero-shot-CoT stage-2 raw text (null otherwise)
        pa.field("batch_id", pa.string()),  # OpenAI Batch API id when harvested in batch mode
        pa.field("extractor_version", pa.int32()),  # answers.EXTRACTOR_VERSION of predicted_answer/is_correct (null: older)
    ]
)
RATIONALES_PARTITIONS = {"teacher": pa.string(), "task": pa.string(), "split": pa.string()}

SPLITS = ("train", "validation", "test")

# Embeddings: one row per (encoder, revision, distinct rationale text). The vector type depends
# on the encoder's width and the storage dtype, so the schema is built per encoder.
EMBEDDING_DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
EMBEDDINGS_PARTITIONS = {"encoder": pa.string()}  # folder value: the encoder slug, not its id


def embeddings_schema(dim: int, dtype: str = "float32") -> pa.Schema:
    """File schema of `data/embeddings/encoder=E/` for `dim`-wide vectors stored as `dtype`."""
    return pa.schema(
        [
            pa.field("text_hash", pa.string(), nullable=False),  # sha256 hex of the exact UTF-8 text
            pa.field("encoder_id", pa.string(), nullable=False),  # full id or path (the folder holds its slug)
            pa.field("encoder_revision", pa.string(), nullable=False),  # changes when the weights change
            pa.field("dim", pa.int32(), nullable=False),
            pa.field("embedding", pa.list_(EMBEDDING_DTYPES[dtype], dim), nullable=False),  # L2-normalised
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )
