"""`export_run`: a run's best checkpoint -> weights, tokenizer, generation_config.json and a model card.

The weights come from `checkpoint.merge_and_save` (a full fine-tune as trained; a LoRA run merged
into plain weights, or its adapter alone). What makes the folder answer first everywhere is
written here: `generation_settings` turns the strategy's stop rule (`Strategy.stop_strings`, the
rule `pst eval` decodes by) into `eos_token_id`, and `prompt_template` gives a run trained on the
plain prompt a chat template that renders a user's question as exactly that prompt, so chat
endpoints feed the student what it was trained on. The folder is written beside `out` and
swapped in only when complete.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError, DataError

CARD = "README.md"
MARK = "\x00question\x00"  # stands for the question while a prompt is split around it


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote: the folder, its weights' kind and the stop tokens it answers by."""

    out: Path
    kind: str  # full (as trained), merged (LoRA folded in) or adapter (LoRA alone)
    strategy: str
    stop_token_ids: list[int]
    stop_tokens: list[str]
    metrics: dict[str, Any] | None  # the run's test metrics.json, when it was evaluated


def generation_settings(strategy: Any, tokenizer: Any, max_new_tokens: int, model_config: dict[str, Any]) -> dict[str, Any]:
    """generation_config.json's fields: greedy decoding (as evaluated), the strategy's stops as
    `eos_token_id` (SEM and EOS for answer-first strategies, EOS for the others), pad/BOS ids."""
    from pst_core.evaluate.generate import split_stops

    ids, strings = split_stops(tokenizer, strategy.stop_strings())
    if strings:  # SEM and EOS are single tokens of every pst checkpoint; anything else is a broken tokenizer
        raise DataError(f"stop strings {strings} are not single tokens of this tokenizer: the checkpoint lacks SEP/SEM")
    settings: dict[str, Any] = {"do_sample": False, "num_beams": 1, "max_new_tokens": max_new_tokens, "eos_token_id": ids,
                                "pad_token_id": tokenizer.pad_token_id}
    if tokenizer.bos_token_id is not None:
        settings["bos_token_id"] = tokenizer.bos_token_id
    if model_config.get("is_encoder_decoder"):
        settings["decoder_start_token_id"] = model_config.get("decoder_start_token_id", tokenizer.pad_token_id)
    return settings


def prompt_template(strategy: Any, tokenizer: Any) -> str:
    """A chat template rendering the last user message as the run's plain prompt (`Question: … Answer:`,
    with the special tokens the tokenizer adds to it, e.g. BOS), followed by any assistant message
    after it: a reply to continue, such as `answer<|sem|>` to ask for the rationale."""
    before, after = strategy.prompt_text(MARK, []).split(MARK)
    probe = tokenizer("x")["input_ids"]
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    at = next(i for i in range(len(probe) - len(bare) + 1) if probe[i:i + len(bare)] == bare)
    lead = tokenizer.decode(probe[:at], skip_special_tokens=False)
    trail = tokenizer.decode(probe[at + len(bare):], skip_special_tokens=False)
    # Literals as JSON strings: Jinja reads their escapes (\n) the way Python does.
    head, tail = json.dumps(lead + before), json.dumps(after + trail)
    return ("{%- set ns = namespace(text='') -%}"
            "{%- for message in messages -%}"
            "{%- if message['role'] == 'user' -%}"
            f"{{%- set ns.text = {head} ~ (message['content'] | trim) ~ {tail} -%}}"
            "{%- elif message['role'] == 'assistant' -%}"
            "{%- set ns.text = ns.text ~ message['content'] -%}"
            "{%- endif -%}"
            "{%- endfor -%}"
            "{{- ns.text -}}")


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def export_run(run_dir: str | Path, out: str | Path, *, merge: bool = False, overwrite: bool = False,
               root: str | None = None, repo_id: str | None = None) -> ExportResult:
    """Write run `run_dir` as a standard model folder at `out` (see the module docstring).

    `merge` folds a LoRA run's adapter into the weights (a full run's weights are written either
    way); `overwrite` replaces an existing `out`; `root` is where a LoRA run's base student is
    resolved; `repo_id` names the Hub repository in the card's examples.
    """
    from transformers import AutoTokenizer, GenerationConfig

    from pst_core.evaluate.config import EvalConfig
    from pst_core.export import card
    from pst_core.train import checkpoint
    from pst_core.train.strategies import get_strategy

    run, out = Path(run_dir), Path(out)
    cfg = checkpoint.load_config(run)
    best = checkpoint.recover(run / checkpoint.BEST)
    if not (best / "config.json").is_file():
        raise DataError(f"{run} has no checkpoint/ yet: training did not reach a validation")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty: pick another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{out.name}-{uuid.uuid4().hex}")
    try:
        written = checkpoint.merge_and_save(run, tmp, merge=merge, root=root)
        tokenizer = AutoTokenizer.from_pretrained(str(tmp))
        strategy = get_strategy(cfg.strategy, cfg).bind(tokenizer)
        if not strategy.chat:  # a chat run keeps the student's own template: it was trained through it
            tokenizer.chat_template = prompt_template(strategy, tokenizer)
        tokenizer.save_pretrained(str(tmp))
        metrics = _read_json(run / "metrics.json")
        budget = ((metrics or {}).get("eval_config") or {}).get("max_new_tokens") or EvalConfig().max_new_tokens
        model_config = json.loads((best / "config.json").read_text())
        settings = generation_settings(strategy, tokenizer, budget, model_config)
        GenerationConfig(**settings).save_pretrained(str(tmp))
        stops = tokenizer.convert_ids_to_tokens(settings["eos_token_id"])
        (tmp / CARD).write_text(card.model_card(
            card.CardFacts(run_id=run.name, config=checkpoint.config_dict(cfg), strategy=strategy, kind=written["kind"],
                           stop_token_ids=settings["eos_token_id"], stop_tokens=stops, max_new_tokens=budget,
                           metrics=metrics, train_metrics=_read_json(run / "train_metrics.json"),
                           encoder_decoder=bool(model_config.get("is_encoder_decoder")), where=repo_id or str(out)),
            tokenizer))
        if out.exists():
            checkpoint.replace_dir(tmp, out)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, written["kind"], cfg.strategy, list(settings["eos_token_id"]), stops, metrics)
