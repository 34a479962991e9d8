"""The one explicit training loop shared by every strategy (strategies only supply format + loss).

Reads top to bottom: set-up (seed, special tokens, head, optimizer, warm-up + cosine schedule,
accelerate), resume from last/, then per optimizer step: grad-accumulated forward/loss/backward,
clip, step, log every term, validate and keep the best checkpoint. The same code runs on one CPU,
one GPU, or several GPUs under `accelerate launch` (DDP; each rank takes every world-th batch).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pst_core.evaluate.config import EvalConfig
from pst_core.train import adapters, checkpoint, data, generate, students, tracking
from pst_core.train.config import TrainConfig
from pst_core.train.strategies import StepOutput, Strategy

NOT_MODEL_INPUTS = ("n_tokens", "view", "sem_target")


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_ratio` at `total` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(module: Any, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices only (biases, norms and 1-D gains are not decayed)."""
    params = [p for p in module.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def precision_of(cfg: TrainConfig, cuda: bool) -> str:
    """The effective precision: bf16 autocast on GPU and fp32 on CPU unless set explicitly.

    bf16 on a CPU only pays where oneDNN has bf16 kernels (AVX512-BF16 or AMX): there it is ~2.5x
    fp32 (bench/README.md); on an AVX2-only CPU every bf16 matmul falls back to a reference GEMM
    and a step takes over 10x longer, so asking for it there gets a warning.
    """
    precision = cfg.precision if cfg.precision != "auto" else ("bf16-mixed" if cuda else "fp32")
    if not cuda and precision != "fp32" and not cpu_has_bf16():
        import warnings

        warnings.warn(f"precision {precision} on a CPU without bf16 kernels (no AVX512-BF16/AMX): bf16 matmuls fall back "
                      "to a slow reference GEMM, >10x slower than fp32; set precision: auto or fp32", stacklevel=2)
    return precision


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (oneDNN's own check)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def answers_version() -> int:
    """The answer rules validation exact match was scored by (a published run scored by others is not reused)."""
    from pst_core.answers import EXTRACTOR_VERSION

    return EXTRACTOR_VERSION


def fit(cfg: TrainConfig, strategy: Strategy, model: Any, tokenizer: Any, is_encoder_decoder: bool,
        train: data.TrainData, val: data.TrainData | None, run_dir: str, *, val_questions: list | None = None,
        cache_dir: str | None = None, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train `model` with `strategy` on `train`, validating on `val`; writes everything under `run_dir`."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    cuda = torch.cuda.is_available()
    precision = precision_of(cfg, cuda)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    # Trackers only when asked: the default run builds the very Accelerator it always did.
    trackers = {"log_with": tracking.trackers(cfg.report_to, cfg.tracker_project, run, checkpoint.last_step(run))} if cfg.report_to else {}
    acc = Accelerator(mixed_precision="bf16" if precision == "bf16-mixed" else "no", cpu=not cuda, **trackers)
    set_seed(cfg.seed)  # new embedding rows and the head are drawn from this seed
    lora = cfg.lora_r > 0
    # A LoRA run sizes its embeddings to the tokenizer exactly (rows past it would not be in the adapter).
    students.add_special_tokens(model, tokenizer, cfg.new_token_init, **({"pad_to_multiple_of": None} if lora else {}))
    strategy.bind(tokenizer)
    head = None
    if strategy.uses_semantic:
        head = students.make_head(students.hidden_size(model), train.targets.shape[1], getattr(cfg, "head_hidden", 0))
    if cfg.gradient_checkpointing:
        students.enable_checkpointing(model)
    # After the head, so a LoRA run draws its head from the same seed state as a full one.
    peft_model = adapters.apply_lora(cfg, model, tokenizer, is_encoder_decoder) if lora else None
    if precision == "bf16":  # bf16 weights: half the memory traffic; AdamW state follows the weights
        model.to(torch.bfloat16)
        head = head.to(torch.bfloat16) if head is not None else None
    if cfg.compile:
        (model.base_model if not is_encoder_decoder else model).compile()
    module = students.train_module(model, head, is_encoder_decoder)
    pool = getattr(cfg, "sem_pool", "token")
    dec_start = getattr(model.config, "decoder_start_token_id", None)

    tok = data.tokenize(train.rows, strategy, tokenizer, cfg.max_length, is_encoder_decoder, cache_dir)
    index, lengths = data.seq_index(tok), tok.lengths()
    world, rank = acc.num_processes, acc.process_index
    per_epoch = max(1, len(data.batches(lengths, cfg.batch_size, cfg.seed, 0, False)) // (world * cfg.grad_accum))
    total = cfg.max_steps or math.ceil(cfg.epochs * per_epoch)
    warmup = int(cfg.warmup_ratio * total)
    # Fused AdamW on CPU too: one kernel over all parameters, ~5x faster than foreach on a 135M model.
    optimizer = torch.optim.AdamW(param_groups(module, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.min_lr_ratio))
    module, optimizer = acc.prepare(module, optimizer)
    acc.register_for_checkpointing(scheduler)  # not prepared: it must step once per optimizer step on every rank
    if lora:
        acc.register_save_state_pre_hook(adapters.trainable_only)  # last/ without the frozen student
    inner = acc.unwrap_model(module)

    val_tok = data.tokenize(val.rows, strategy, tokenizer, cfg.max_length, is_encoder_decoder, cache_dir) if val and val.rows else None

    def to_device(ids: list[int], tokens: data.Tokenized, targets: Any) -> dict[str, Any]:
        b = data.collate(tokens, ids, index if tokens is tok else data.seq_index(tokens), tokenizer.pad_token_id,
                         is_encoder_decoder, pool, targets, dec_start, eos_id=tokenizer.eos_token_id)
        # Pinned + non_blocking: the copy of the next batch does not wait for the queued step.
        return {k: (v.pin_memory().to(acc.device, non_blocking=True) if cuda else v.to(acc.device)) if k != "n_tokens" else v
                for k, v in b.items()}

    # Validation answers are generated as `pst eval` generates test answers: same weights dtype
    # (a bf16 copy on GPU, no autocast), batch size and token budget (EvalConfig's fields).
    eval_dtype = getattr(torch, EvalConfig(dtype=cfg.eval_dtype).torch_dtype(acc.device.type))

    def scoring_model() -> Any:
        model_ = inner.model
        return model_ if next(model_.parameters()).dtype == eval_dtype else copy.deepcopy(model_).to(eval_dtype)

    def validate() -> dict[str, float]:
        """Validation loss per term (sequence-weighted) and, when selecting by it, exact match.

        Under DDP each rank scores every world-th batch (and question) and the sums are added, so
        every rank ends with the same numbers and takes the same best-checkpoint decision.
        """
        module.eval()
        sums: dict[str, float] = {}
        if val_tok is not None:
            vlen = val_tok.lengths()
            order = sorted(range(len(vlen)), key=lambda i: -vlen[i])
            with torch.no_grad(), acc.autocast():
                for i in range(rank * cfg.batch_size, len(order), world * cfg.batch_size):
                    b = to_device(order[i:i + cfg.batch_size], val_tok, val.targets)
                    # The unwrapped module: DDP's forward broadcasts buffers (a collective), and ranks
                    # hold different numbers of validation batches.
                    loss, terms = strategy.loss(StepOutput(**inner(**{k: v for k, v in b.items() if k not in NOT_MODEL_INPUTS})), b)
                    w = len(b["view"])
                    for k, v in {"loss": loss, **terms, "n": 1.0}.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * w
        if cfg.select_by == "exact_match" and val_questions:
            counts = generate.score(scoring_model(), tokenizer, strategy, val_questions[rank::world], cfg.eval_max_new_tokens,
                                    cfg.eval_batch_size)
            sums.update({k: float(v) for k, v in counts.items()})
        if world > 1:
            from accelerate.utils import gather_object

            shards, sums = gather_object([sums]), {}
            for shard in shards:
                for k, v in shard.items():
                    sums[k] = sums.get(k, 0.0) + v
        n = sums.pop("n", 0.0)
        out = {f"val_{k}": v / n for k, v in sums.items() if k not in ("hits", "delimited")} if n else {}
        if "hits" in sums:
            out["val_exact_match"] = sums["hits"] / len(val_questions)
            out["val_delimited"] = sums["delimited"] / len(val_questions)
        module.train()
        return out

    state: dict[str, Any] = {"step": 0, "epoch": 0, "pos": 0, "best": None, "best_step": None, "tokens": 0, "train_s": 0.0}
    resumed = checkpoint.load_last(run, acc, strict=not lora)
    history = run / "history.jsonl"
    if resumed:
        state.update(resumed)
        if acc.is_main_process and history.exists():  # drop lines written after the restored step
            kept = [ln for ln in history.read_text().splitlines() if ln and json.loads(ln)["step"] <= state["step"]]
            history.write_text("".join(ln + "\n" for ln in kept))
    elif acc.is_main_process:
        history.write_text("")
    if cfg.report_to:
        tracking.start(acc, cfg, run, checkpoint.config_dict(cfg), bool(resumed))

    def log(entry: dict[str, Any]) -> None:
        if acc.is_main_process:
            with history.open("a") as fh:
                fh.write(json.dumps(entry) + "\n")
        if cfg.report_to:  # every history line, same names and step
            acc.log(tracking.scalars(entry), step=entry["step"])

    epoch_cache: dict[int, list[list[int]]] = {}

    def next_batch() -> list[int]:
        """The next micro-batch of this rank; epochs roll over, order is a function of (seed, epoch)."""
        while True:
            e = state["epoch"]
            if e not in epoch_cache:
                epoch_cache.clear()
                all_batches = data.batches(lengths, cfg.batch_size, cfg.seed, e, cfg.group_by_length)
                usable = len(all_batches) // world * world or len(all_batches)  # equal counts per rank
                epoch_cache[e] = all_batches[:usable][rank::world] or all_batches
            if state["pos"] < len(epoch_cache[e]):
                state["pos"] += 1
                return epoch_cache[e][state["pos"] - 1]
            state["epoch"], state["pos"] = e + 1, 0

    def better(metrics: dict[str, float]) -> bool:
        key, sign = ("val_exact_match", -1) if cfg.select_by == "exact_match" else ("val_loss", 1)
        if key not in metrics:
            return True  # no validation data: the latest model is the one kept
        return state["best"] is None or sign * metrics[key] < sign * state["best"]

    def checkpoint_now(metrics: dict[str, float]) -> None:
        if better(metrics):
            state["best"] = metrics.get("val_exact_match" if cfg.select_by == "exact_match" else "val_loss")
            state["best_step"], state["best_metrics"] = state["step"], metrics
            if acc.is_main_process:
                checkpoint.save_best(run, peft_model if lora else inner.model, tokenizer, inner.head, dict(state))
        if state["step"] < total or cfg.keep_last:  # a finished run needs no resumable state
            checkpoint.save_last(run, acc, dict(state))

    bar = tqdm(total=total, initial=state["step"], disable=not (cfg.progress and acc.is_main_process), desc=f"train {strategy.name}", unit="step")
    window: dict[str, Any] = {}
    window_tokens, window_start = 0, time.perf_counter()
    last_terms: dict[str, float] = {}
    module.train()
    while state["step"] < total:
        for micro in range(cfg.grad_accum):
            b = to_device(next_batch(), tok, train.targets)
            sync = micro == cfg.grad_accum - 1
            with contextlib.nullcontext() if sync else acc.no_sync(module):
                out = StepOutput(**module(**{k: v for k, v in b.items() if k not in NOT_MODEL_INPUTS}))
                loss, terms = strategy.loss(out, b)
                acc.backward(loss / cfg.grad_accum)
            for k, v in {"loss": loss, **terms}.items():  # kept on device: no sync per step
                window[k] = window.get(k, 0) + v.detach() / cfg.grad_accum
            window_tokens += int(b["n_tokens"]) * world
        if cfg.clip_grad_norm:
            acc.clip_grad_norm_(module.parameters(), cfg.clip_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        window["n"] = window.get("n", 0) + 1
        bar.update(1)
        step = state["step"]
        if step % cfg.log_every == 0 or step == total:
            elapsed = time.perf_counter() - window_start
            last_terms = {k: float(v) / window["n"] for k, v in window.items() if k != "n"}
            entry = {"step": step, "epoch": state["epoch"], "lr": scheduler.get_last_lr()[0], **last_terms,
                     "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
            state["tokens"] += window_tokens
            state["train_s"] += elapsed
            log(entry)
            bar.set_postfix(loss=f"{last_terms['loss']:.3f}", tok_s=f"{entry['tokens_per_s']:,.0f}")
            window, window_tokens, window_start = {}, 0, time.perf_counter()
        validating = (cfg.eval_every and step % cfg.eval_every == 0) or step == total
        if validating:
            metrics = validate()
            log({"step": step, "validation": True, **metrics})
            checkpoint_now(metrics)
            window_start = time.perf_counter()  # validation time is not training throughput
        elif cfg.save_every and step % cfg.save_every == 0:
            checkpoint.save_last(run, acc, dict(state))
        if on_step is not None:
            on_step(step)
    bar.close()
    metrics = {"steps": state["step"], "epochs": state["epoch"], "train_rows": len(train.rows), "precision": precision,
               "world_size": world, "final": last_terms, "best_step": state["best_step"], "best": state.get("best_metrics", {}),
               "train_tokens": state["tokens"], "tokens_per_s": state["tokens"] / max(state["train_s"], 1e-9),
               "train_wall_s": state["train_s"], "data": train.notes or {}, "answers_version": answers_version()}
    if lora:  # only then: a default run's metrics file stays as it was
        metrics["lora"] = {"target_modules": adapters.target_modules(model, cfg.lora_target_modules), **adapters.parameter_counts(module)}
    if acc.is_main_process:
        checkpoint.write_json(run / "train_metrics.json", metrics)
        if not cfg.keep_last:  # written last: a crash before it leaves a resumable run
            checkpoint.drop_last(run)
    if cfg.report_to:
        acc.end_training()
    acc.wait_for_everyone()
    return metrics
