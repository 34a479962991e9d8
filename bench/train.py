"""Training throughput of every strategy on the SmolLM2-135M shape, against a plain HF Trainer.

One run times: answer_only, pre_thinking, prefix, post_thinking, pst through `pst_core.train.loop.fit`
(random-init Llama of the SmolLM2-135M shape, synthetic variable-length rows), and an HF `Trainer`
fine-tune of the same model, the same post-thinking sequences and the same batch. Prints tokens/s,
step time, MFU (GPU) and the ratios PST/Post-Thinking step time and pst/Trainer tokens/s.

    PYTHONPATH=. python bench/train.py --device cuda            # batch 64 x 256
    PYTHONPATH=. python bench/train.py --device cpu             # batch 4 x 128 (a few minutes on 2 cores)
    PYTHONPATH=. python bench/train.py --device cpu --shape small   # a tiny Llama, for a quick look
Needs only torch, transformers, accelerate (no prefect).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from pst_core.train import config, data, loop  # noqa: E402
from pst_core.train.strategies import STRATEGIES, Row, get_strategy  # noqa: E402

SMOL = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, vocab_size=49152)
SMALL = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=8192)
H100_BF16 = 989e12  # dense bf16 peak FLOP/s


def tokenizer(vocab: int):
    """A word-level tokenizer over w0..w{vocab-16}: every synthetic word is exactly one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[EOS]", "[UNK]", "[label]", "[rationale]", "Question", "Answer", ":", "[", "]", "label", "rationale"]
    words += [f"w{i}" for i in range(vocab - 16 - len(words))]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="[EOS]", pad_token="[PAD]", unk_token="[UNK]")


def rows(n: int, seq: int, vocab: int, seed: int = 0) -> list[Row]:
    """Variable-length rows: question 20-40 %, rationale 30-55 % of `seq` words, one-word answers."""
    rng = random.Random(seed)
    w = lambda k: " ".join(f"w{rng.randrange(vocab // 2)}" for _ in range(k))  # noqa: E731
    return [Row(f"b-{i}", w(rng.randint(seq // 5, 2 * seq // 5)), w(1), (), "text", w(rng.randint(3 * seq // 10, 11 * seq // 20)))
            for i in range(n)]


def model(shape: dict, device: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(max_position_embeddings=2048, tie_word_embeddings=True, **shape)).to(device)


def time_strategy(name: str, args, shape: dict, tok, train_rows, device: str) -> dict:
    """tokens/s and step time of `fit` over the second window of `args.steps` steps (the first warms up)."""
    targets = torch.nn.functional.normalize(torch.randn(len(train_rows), 384), dim=-1).numpy()
    cfg = config.resolve({"strategy": name, "task": "bench", "teacher": "none", "batch_size": args.batch, "max_steps": 2 * args.steps,
                          "log_every": args.steps, "eval_every": 0, "progress": False, "max_length": args.seq,
                          "precision": args.precision, "compile": args.compile, "lr": 1e-4})
    strat = get_strategy(name, cfg)
    with tempfile.TemporaryDirectory() as run:
        loop.fit(cfg, strat, model(shape, device), tok, False, data.TrainData(train_rows, targets if strat.uses_semantic else None), None, run)
        last = json.loads((Path(run) / "history.jsonl").read_text().splitlines()[-2])  # [-1] is the end-of-run validation line
    tps = last["tokens_per_s"]
    return {"tokens_per_s": tps, "step_s": tokens_per_step(strat, tok, train_rows, args) / tps}


def tokens_per_step(strat, tok, train_rows, args) -> float:
    t = data.tokenize(train_rows, strat, tok, args.seq, False)
    return float(t.lengths().mean() * args.batch)


def time_hf_trainer(args, shape: dict, tok, train_rows, device: str) -> dict:
    """A plain HF Trainer fine-tune on the post-thinking sequences (labels masked on the prompt)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    strat = get_strategy("post_thinking")
    from pst_core.train import students

    m = model(shape, device)
    students.add_special_tokens(m, tok)
    t = data.tokenize(train_rows, strat, tok, args.seq, False)
    feats = [{"input_ids": p + g, "labels": [-100] * len(p) + g} for p, g in zip(t.prompt, t.target)]

    def collate(batch):
        width = max(len(f["input_ids"]) for f in batch)
        ids = torch.tensor([f["input_ids"] + [tok.pad_token_id] * (width - len(f["input_ids"])) for f in batch])
        return {"input_ids": ids, "attention_mask": (torch.arange(width)[None] < torch.tensor([len(f["input_ids"]) for f in batch])[:, None]).long(),
                "labels": torch.tensor([f["labels"] + [-100] * (width - len(f["labels"])) for f in batch])}

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            if device == "cuda":
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(out, per_device_train_batch_size=args.batch, max_steps=2 * args.steps, bf16=loop.precision_of(args, device == "cuda") != "fp32",
                                  use_cpu=device == "cpu", report_to=[], save_strategy="no", logging_steps=10**6,
                                  dataloader_num_workers=0, learning_rate=1e-4, warmup_steps=0)
        Trainer(model=m, args=targs, train_dataset=feats, data_collator=collate, callbacks=[Clock()]).train()
    step_s = (marks[-1] - marks[args.steps - 1]) / args.steps
    return {"tokens_per_s": tokens_per_step(strat, tok, train_rows, args) / step_s, "step_s": step_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--shape", default=None, choices=["smol", "small"], help="smol (default): SmolLM2-135M; small: hidden 128, 4 layers")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=None, help="max tokens per sequence")
    p.add_argument("--steps", type=int, default=None, help="timed steps (after as many warm-up steps)")
    p.add_argument("--precision", default="auto", choices=list(config.PRECISIONS))
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    gpu = device == "cuda"
    shape = SMALL if args.shape == "small" else SMOL
    args.batch = args.batch or (64 if gpu else 4)
    args.seq = args.seq or (256 if gpu else 128)
    args.steps = args.steps or (20 if gpu else 5)
    tok = tokenizer(shape["vocab_size"])
    train_rows = rows(args.batch * 4 * args.steps, args.seq, shape["vocab_size"])
    label = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {label}; shape: {'SmolLM2-135M' if shape is SMOL else 'small'}; batch {args.batch} x <= {args.seq} tokens; "
          f"precision {args.precision}{' + compile' if args.compile else ''}")
    results = {n: time_strategy(n, args, shape, tok, train_rows, device) for n in STRATEGIES.names()}
    results["hf_trainer"] = time_hf_trainer(args, shape, tok, train_rows, device)
    n_params = sum(p.numel() for p in model(shape, "meta").parameters())
    print(f"{'strategy':<14} {'tokens/s':>12} {'step ms':>9} {'MFU':>6}")
    for name, r in results.items():
        mfu = f"{6 * n_params * r['tokens_per_s'] / H100_BF16:6.1%}" if gpu else "   n/a"
        print(f"{name:<14} {r['tokens_per_s']:>12,.0f} {1000 * r['step_s']:>9.1f} {mfu}")
    print(f"pst step / post_thinking step = {results['pst']['step_s'] / results['post_thinking']['step_s']:.3f} (target <= 1.05)")
    print(f"pst tokens/s / HF Trainer     = {results['pst']['tokens_per_s'] / results['hf_trainer']['tokens_per_s']:.2f}x (target >= 2.5x)")


if __name__ == "__main__":
    main()
