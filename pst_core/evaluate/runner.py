"""`evaluate_run`: a trained run dir -> predictions.parquet + metrics.json, by the strategy's own rule.

Inference rules (../shared/PST.md): answer-first strategies (`post_thinking`, `pst`) stop at
`SEM` and read the answer before it; `pre_thinking` generates its rationale and reads the answer
after `SEP`; `prefix` answers from the `[label]` view; `answer_only` generates the answer. The
rules live in the strategy objects (`inference_prompt`, `stop_strings`, `answer_text`), so
this module only batches, parses and scores. A missing or unparseable answer is scored wrong.

The timed pass is the strategy's real inference. `--with-rationale` adds a second, untimed pass
for answer-first strategies that continues past `SEM` to EOS; greedy decoding makes its prefix
identical to the timed pass, so the rationale is simply the text after `SEM`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from pst_core import answers, examples, staging, store
from pst_core.config import to_dict
from pst_core.errors import DataError
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.generate import generate, resolve_device
from pst_core.evaluate.metrics import summarize

PREDICTIONS = pa.schema(
    [
        pa.field("example_id", pa.string(), nullable=False),
        pa.field("generated", pa.string()),  # decoded continuation up to and including the stop token
        pa.field("predicted_answer", pa.string()),  # normalised; null when none could be parsed
        pa.field("gold_answer", pa.string()),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("new_tokens", pa.int32(), nullable=False),  # up to and including the stop token
        pa.field("stopped", pa.bool_()),  # False: the token budget ran out first
        pa.field("latency_ms", pa.float64()),  # share of the batch's wall time
        pa.field("rationale", pa.string()),  # with --with-rationale (null otherwise)
    ]
)


def output_names(split: str) -> tuple[str, str]:
    """(predictions file, metrics file) for a split: plain names for test, suffixed otherwise."""
    if split == "test":
        return "predictions.parquet", "metrics.json"
    return f"predictions-{split}.parquet", f"metrics-{split}.json"


def stored_metrics(run_dir: str | Path, cfg: EvalConfig) -> dict[str, Any] | None:
    """The run's metrics for `cfg.split` if they were made with exactly `cfg` and today's answer rules
    (`answers.EXTRACTOR_VERSION`), else None: evaluate again."""
    path = Path(run_dir) / output_names(cfg.split)[1]
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    current = metrics.get("eval_config") == to_dict(cfg) and metrics.get("answers_version") == answers.EXTRACTOR_VERSION
    return metrics if current else None


def run_config(loaded: Any) -> dict[str, Any]:
    """The training config of a loaded run as a dict (a dataclass or already a dict)."""
    cfg = loaded.config
    return dict(cfg) if isinstance(cfg, dict) else to_dict(cfg)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file in the same folder, then os.replace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


UNTRAINED = "untrained"  # the `strategy` of a student evaluated before distillation
# The answer-only rule reads the answer where generation starts; an untrained student then rambles to
# the end of any budget (128 tokens x 150 questions: 4 of the quickstart's minutes), so it gets 32.
UNTRAINED_MAX_NEW_TOKENS = 32


def untrained_run_id(task: str, student: str) -> str:
    """`<task>-untrained-<student>` (path-unsafe characters replaced), the run folder of a student before training."""
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{task}-{UNTRAINED}-{Path(student).name if Path(student).is_dir() else student}")


def untrained_config(cfg: EvalConfig) -> EvalConfig:
    """`cfg` as the untrained student is scored with it (at most UNTRAINED_MAX_NEW_TOKENS new tokens):
    the config its stored metrics are looked up by."""
    return dataclasses.replace(cfg, max_new_tokens=min(cfg.max_new_tokens, UNTRAINED_MAX_NEW_TOKENS))


def evaluate_untrained(student: str, task: str, cfg: EvalConfig | None = None, *, root: str | None = None) -> dict[str, Any]:
    """The student before distillation, scored on the same questions by the answer-only rule (the
    same `Question: … Answer:` prompt, then the answer): the floor every trained run is read
    against in `pst report`. Written to `<store>/runs/<task>-untrained-<student>/` like a run's
    evaluation (metrics `strategy` is "untrained"), with at most UNTRAINED_MAX_NEW_TOKENS new tokens;
    reused while the eval config is unchanged."""
    from pst_core import settings
    from pst_core.train import students
    from pst_core.train.checkpoint import LoadedRun
    from pst_core.train.strategies import get_strategy

    cfg = untrained_config(cfg or EvalConfig())
    root = root or settings.data_root()
    run_dir = staging.pull(root, staging.stage_root(root) / "runs" / untrained_run_id(task, student))
    done = stored_metrics(run_dir, cfg)
    if done is not None:
        return done
    import torch

    device = resolve_device(cfg.device)
    model, tokenizer, enc_dec = students.load_student(student, root)
    model.to(device=device, dtype=getattr(torch, cfg.torch_dtype(device))).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = {"strategy": UNTRAINED, "task": task, "teacher": None, "student": student, "seed": None, "rule": "answer_only"}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "untrained.json", config)
    loaded = LoadedRun(model, tokenizer, get_strategy("answer_only").bind(tokenizer), config, None, enc_dec)  # type: ignore[arg-type]
    return evaluate_run(run_dir, cfg, root=root, loaded=loaded)


def evaluate_run(run_dir: str | Path, cfg: EvalConfig | None = None, *, root: str | None = None, loaded: Any = None) -> dict[str, Any]:
    """Evaluate one run on `cfg.split`; writes predictions and metrics into the run dir and returns the metrics."""
    from pst_core import settings

    cfg = cfg or EvalConfig()
    root = root or settings.data_root()
    run_dir = staging.pull(root, staging.localize(root, run_dir))  # a run in an object store: its local stage
    device = resolve_device(cfg.device)
    if loaded is None:
        from pst_core.train.checkpoint import load_run

        if not (run_dir / "config.json").is_file():
            raise DataError(f"run dir {run_dir} has no config.json: train it first with `pst train`")
        loaded = load_run(run_dir, device=device, dtype=cfg.torch_dtype(device))
    train_cfg = run_config(loaded)
    task = train_cfg.get("task")
    rows = examples.load(root, task, cfg.split)
    if not rows:
        raise DataError(f"no {cfg.split} examples for task {task!r} in {root}: run `pst data prepare --task {task}`")
    if cfg.max_examples:
        rows = rows[: cfg.max_examples]

    strategy = loaded.strategy
    prompts = [strategy.inference_prompt(e.question, list(e.choices or [])) for e in rows]
    # A chat-templated prompt (the run's `chat_template`, read from its config) holds its own special tokens.
    common = dict(batch_size=cfg.batch_size, is_encoder_decoder=loaded.is_encoder_decoder, sort_by_length=cfg.sort_by_length,
                  add_special_tokens=strategy.add_special_tokens)
    gens = generate(loaded.model, loaded.tokenizer, prompts, stop_strings=strategy.stop_strings(),
                    max_new_tokens=cfg.max_new_tokens, **common)
    rationales: list[str | None] = [None] * len(rows)
    if cfg.with_rationale:
        rationales = _rationales(loaded, strategy, prompts, gens, cfg, common)

    records = []
    for e, g, rationale in zip(rows, gens, rationales):
        predicted = answers.extract(strategy.answer_text(g.text), e.answer_type, list(e.choices or []))
        records.append({
            "example_id": e.example_id, "generated": g.text, "predicted_answer": predicted,
            "gold_answer": e.gold_answer, "correct": answers.is_correct(predicted, e.gold_answer, e.answer_type),
            "new_tokens": g.new_tokens, "stopped": g.stopped, "latency_ms": g.latency_ms, "rationale": rationale,
        })
    pred_name, metrics_name = output_names(cfg.split)
    store.write_part(str(run_dir), pa.Table.from_pylist(records, schema=PREDICTIONS), PREDICTIONS, name=pred_name)

    metrics = summarize([r["correct"] for r in records], [r["new_tokens"] for r in records], [r["latency_ms"] for r in records],
                        samples=cfg.bootstrap_samples, confidence=cfg.confidence, seed=cfg.seed)
    metrics.update({
        "run_id": run_dir.name, "split": cfg.split, "strategy": train_cfg.get("strategy", strategy.name), "task": task,
        "teacher": train_cfg.get("teacher"), "student": train_cfg.get("student"), "seed": train_cfg.get("seed"),
        "perturb": train_cfg.get("perturb"), "perturb_rate": train_cfg.get("perturb_rate", 0.0),
        "stopped_fraction": sum(r["stopped"] for r in records) / len(records),
        # The floor of always answering the most common gold answer of these questions (coin_flip: ~0.5).
        "majority_accuracy": max(Counter(r["gold_answer"] for r in records).values()) / len(records),
        "device": device, "eval_config": to_dict(cfg), "answers_version": answers.EXTRACTOR_VERSION,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    write_json(run_dir / metrics_name, metrics)
    if train_cfg.get("report_to"):  # the evaluation joins the tracker runs the training logged to
        from pst_core.train.tracking import log_evaluation

        log_evaluation(run_dir, metrics, prefix=f"{cfg.split}_")
    staging.push(root, run_dir)
    return metrics


def _rationales(loaded: Any, strategy: Any, prompts: list[str], gens: list[Any], cfg: EvalConfig, common: dict[str, Any]) -> list[str | None]:
    """Rationales for --with-rationale: from the generation itself, or an untimed pass past SEM."""
    if not strategy.answer_first:
        return [strategy.rationale_text(g.text) for g in gens]
    eos = [loaded.tokenizer.eos_token] if loaded.tokenizer.eos_token else []
    full = generate(loaded.model, loaded.tokenizer, prompts, stop_strings=eos,
                    max_new_tokens=cfg.max_new_tokens + cfg.rationale_max_new_tokens, **common)
    return [strategy.rationale_text(f.text) for f in full]
