"""Benchmark of `pst embed`: end-to-end throughput against raw `model.encode`, and peak memory.

1. Throughput: the same synthetic rationale texts and batch size, measured side by side in one
   run, in rounds that alternate which goes first: raw `model.encode(texts)` on a list in memory
   vs `embed_rationales` (read the rationale store, hash, dedupe, encode, write parts). Both
   use the same loaded model (fp16 on CUDA), so the ratio is pst's overhead alone.
2. Memory: a child process embeds `--memory-texts` short synthetic texts from a store on the
   CPU; its peak RSS (VmHWM, or getrusage off Linux) is reported, beside a 10x smaller corpus to show
   that memory does not grow with the corpus. To keep this affordable on a small CPU the child
   uses a random-init MiniLM-shaped encoder (MiniLM's tokenizer and vocabulary, one 32-wide
   layer, a Dense projection to MiniLM's 384-d output) unless `--memory-encoder real`; pst's
   buffers (texts, hashes, 384-d vectors, Arrow parts) are the same size either way, the real
   weights add ~90 MB.

    .venv/bin/python bench/embed.py                       # defaults below, real all-MiniLM-L6-v2
    .venv/bin/python bench/embed.py --texts 20000 --device cuda --batch-size 256
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from pst_core import schemas, store  # noqa: E402
from pst_core.embed import DEFAULT_ENCODER, EmbedConfig, embed_rationales, load_encoder  # noqa: E402

WORDS = "the of to and a in is it you that he was for on are with as his they be at one have this from or had by".split()
WORDS += "apples total each so then cost price half twice number sold left more less minus plus equals answer".split()


def synthetic_texts(n: int, min_words: int, max_words: int, seed: int = 0) -> list[str]:
    """`n` distinct rationale-like texts with word counts uniform in [min_words, max_words]."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(min_words, max_words))
        texts.append(f"Step {i}: " + " ".join(words) + f" = {rng.randint(0, 9999)}.")
    return texts


def write_store(root: str, texts: list[str], rows_per_part: int = 10_000) -> None:
    """Write `texts` as successful rationales of one teacher, in parts like the harvest stage."""
    directory = store.partition_path(root, "rationales", teacher="bench", task="synthetic", split="train")
    for start in range(0, len(texts), rows_per_part):
        chunk = texts[start : start + rows_per_part]
        rows = {
            "request_key": [f"k{start + i}" for i in range(len(chunk))],
            "example_id": [f"synthetic-{start + i:07d}" for i in range(len(chunk))],
            "sample_index": [0] * len(chunk),
            "rationale": chunk,
        }
        store.write_part(directory, pa.table(rows), schemas.RATIONALES)


def throughput(args: argparse.Namespace) -> dict:
    """Raw encode vs pst end-to-end on the same texts, batch size and loaded model."""
    texts = synthetic_texts(args.texts, args.min_words, args.max_words)
    work = tempfile.mkdtemp(prefix="pst-bench-embed-")
    root = f"{work}/data"
    write_store(root, texts)
    cfg = EmbedConfig(batch_size=args.batch_size, device=args.device, chunk_size=args.chunk_size)
    t = time.perf_counter()
    model = load_encoder(cfg.encoder, cfg.device, fp16=cfg.fp16)
    load_s = time.perf_counter() - t
    if str(model.device) == "cpu":
        from pst_core.embed.encoder import set_cpu_threads

        set_cpu_threads(cfg.threads)  # what `pst embed` does; the raw baseline gets the same threads
    model.encode(texts[: 4 * args.batch_size], batch_size=args.batch_size)  # warm-up (kernels, allocator)

    def raw_seconds() -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return time.perf_counter() - t

    def pst_seconds() -> float:
        shutil.rmtree(f"{root}/embeddings", ignore_errors=True)
        summary = embed_rationales(cfg, root, progress=False, model=model)
        assert summary.embedded == len(texts), summary
        return summary.seconds  # the whole call: revision, store scan, read, hash, encode, write

    # Rounds alternate which side goes first (ABBA), so drifting load from other jobs on a shared
    # machine falls on both sides alike; totals over all rounds give the ratio.
    raw, pst = [], []
    for i in range(args.rounds):
        if i % 2 == 0:
            raw.append(raw_seconds())
            pst.append(pst_seconds())
        else:
            pst.append(pst_seconds())
            raw.append(raw_seconds())
    shutil.rmtree(work, ignore_errors=True)
    n = len(texts)
    return {
        "device": str(model.device), "threads": _threads(), "texts": n, "batch_size": args.batch_size,
        "words": f"{args.min_words}-{args.max_words}", "model_load_s": round(load_s, 2),
        "raw_texts_per_s": [round(n / x, 1) for x in raw], "pst_texts_per_s": [round(n / x, 1) for x in pst],
        "raw_total_texts_per_s": round(n * len(raw) / sum(raw), 1), "pst_total_texts_per_s": round(n * len(pst) / sum(pst), 1),
        "ratio": round(sum(raw) / sum(pst), 3),
        "ratio_per_round_median": round(float(np.median([r / p for r, p in zip(raw, pst)])), 3),
    }


def minilm_shaped(folder: str) -> str:
    """Save a random-init encoder with MiniLM's tokenizer and 384-d output, cheap to run."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Dense, Pooling, Transformer
    from pst_core.embed.encoder import packaged_default

    tok = BertTokenizerFast.from_pretrained(str(packaged_default()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(f"{folder}/hf")
    tok.save_pretrained(f"{folder}/hf")
    modules = [Transformer(f"{folder}/hf", max_seq_length=256), Pooling(32, "mean"), Dense(32, 384)]
    SentenceTransformer(modules=modules).save(f"{folder}/st")
    return f"{folder}/st"


def memory(args: argparse.Namespace, n: int, encoder: str) -> dict:
    """Peak RSS of a child process that embeds `n` short texts from a store on the CPU."""
    work = tempfile.mkdtemp(prefix="pst-bench-embed-mem-")
    root = f"{work}/data"
    write_store(root, synthetic_texts(n, 3, 12, seed=1))
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", root, "--memory-encoder", encoder,
           "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(work, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM on Linux (getrusage's ru_maxrss survives exec, so a
    child would report its parent's peak), getrusage elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        per_mb = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / per_mb


def memory_child(args: argparse.Namespace) -> None:
    """(In the child) load the encoder, embed the store, print peak RSS before and after."""
    cfg = EmbedConfig(encoder=args.memory_encoder, batch_size=args.batch_size, device="cpu", chunk_size=args.chunk_size)
    model = load_encoder(cfg.encoder, "cpu")
    loaded_mb = peak_rss_mb()
    summary = embed_rationales(cfg, args.memory_child, progress=False, model=model)
    peak_mb = peak_rss_mb()
    print(json.dumps({
        "texts": summary.embedded, "encoder": "real all-MiniLM-L6-v2" if summary.encoder == DEFAULT_ENCODER else "MiniLM-shaped random-init", "chunk_size": cfg.chunk_size, "peak_rss_after_model_load_mb": round(loaded_mb),
        "peak_rss_mb": round(peak_mb), "texts_per_s": round(summary.texts_per_s, 1), "seconds": round(summary.seconds, 1),
    }))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=500, help="texts per throughput round (0 skips it)")
    parser.add_argument("--min-words", type=int, default=20)
    parser.add_argument("--max-words", type=int, default=90, help="GSM8K-like rationales are ~30-120 tokens")
    parser.add_argument("--batch-size", type=int, default=EmbedConfig.batch_size)
    parser.add_argument("--chunk-size", type=int, default=EmbedConfig.chunk_size)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of raw and pst, alternating which goes first")
    parser.add_argument("--memory-texts", type=int, default=200_000, help="0 skips the memory part")
    parser.add_argument("--memory-encoder", default="tiny", help="tiny (random-init, MiniLM tokenizer, 384-d) or real")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    print(f"encoder {DEFAULT_ENCODER} (real weights, offline package)", flush=True)
    result = {"throughput": throughput(args)} if args.texts else {}
    if result:
        print(json.dumps(result["throughput"]), flush=True)
    if args.memory_texts:
        folder = tempfile.mkdtemp(prefix="pst-bench-encoder-")
        encoder = DEFAULT_ENCODER if args.memory_encoder == "real" else minilm_shaped(folder)
        result["memory"] = [memory(args, max(args.memory_texts // 10, 1), encoder), memory(args, args.memory_texts, encoder)]
        shutil.rmtree(folder, ignore_errors=True)
        for row in result["memory"]:
            print(json.dumps(row), flush=True)
    tp = result.get("throughput")
    if tp:
        print(f"\nratio pst/raw = {tp['ratio']:.3f} on {tp['device']} ({tp['pst_total_texts_per_s']} vs {tp['raw_total_texts_per_s']} texts/s over {args.rounds} rounds)")
    if args.memory_texts:
        print(f"peak RSS embedding {result['memory'][-1]['texts']} texts on cpu: {result['memory'][-1]['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
