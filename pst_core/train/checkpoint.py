"""Run folders and checkpoints: the best model for evaluation, the last state for resuming.

data/runs/<run_id>/
  config.json          resolved TrainConfig
  history.jsonl        one line per logged step (lr, each loss term, tokens/s) and per validation
  train_metrics.json   final/best losses per term, steps, tokens/s, wall time
  checkpoint/          best-by-validation model: save_pretrained folder + tokenizer + head + trainer_state.json;
                       a LoRA run (lora_r > 0) stores the peft adapter (adapter_config.json, adapter_model.safetensors,
                       with the SEP/SEM rows) and the student's config.json instead of full weights
  last/                accelerate state (model, optimizer, scheduler, RNG) + trainer_state.json; deleted when
                       the run finishes (TrainConfig.keep_last keeps it); a LoRA run's holds trainable tensors only
  tb/                  TensorBoard event files when report_to lists tensorboard

`merge_and_save` writes a run's best model as a standard folder for export: full weights (merged
from the adapter for a LoRA run) or the adapter alone.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.config import to_dict
from pst_core.errors import DataError
from pst_core.train import adapters, students
from pst_core.train.config import TrainConfig, resolve
from pst_core.train.strategies import Strategy, get_strategy

BEST, LAST, STATE = "checkpoint", "last", "trainer_state.json"


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file then os.replace)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, p)


def replace_dir(tmp: Path, final: Path) -> None:
    """Swap a fully written folder into place (a crash leaves the previous one or the new one)."""
    old = final.with_name(f".old-{final.name}-{uuid.uuid4().hex}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover(final: Path) -> Path:
    """`final`, put back from its `.old-*` copy when a crash fell between the two renames of `replace_dir`."""
    if not final.exists():
        olds = sorted(final.parent.glob(f".old-{final.name}-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], final)
    return final


def save_best(run_dir: str | Path, model: Any, tokenizer: Any, head: Any, state: dict[str, Any]) -> None:
    """Write the evaluation checkpoint: model folder (or a peft model's adapter), tokenizer, semantic head, trainer state."""
    final = Path(run_dir) / BEST
    tmp = final.with_name(f".tmp-{BEST}-{uuid.uuid4().hex}")
    if hasattr(model, "peft_config"):
        adapters.save_adapter(model, tmp)
    else:
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if head is not None:
        students.save_head(head, tmp)
    write_json(tmp / STATE, state)
    replace_dir(tmp, final)


def save_last(run_dir: str | Path, accelerator: Any, state: dict[str, Any]) -> None:
    """Write the resumable state (model, optimizer, scheduler, RNG via accelerate) plus loop position."""
    final = Path(run_dir) / LAST
    # One folder name every rank agrees on: each rank writes its own RNG state into it (DDP).
    tmp = final.with_name(f".tmp-{LAST}-step{state['step']}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while saving this step
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / STATE, state)
        replace_dir(tmp, final)
    accelerator.wait_for_everyone()  # no rank reads last/ or moves on while it is being swapped


def drop_last(run_dir: str | Path) -> None:
    """Delete a finished run's resumable state (optimizer moments are ~2x the model; evaluation never reads them)."""
    for path in [Path(run_dir) / LAST, *Path(run_dir).glob(f".tmp-{LAST}-*"), *Path(run_dir).glob(f".old-{LAST}-*")]:
        shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: str | Path) -> int:
    """Bytes under `path` (files only; 0 when it does not exist)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else 0


def last_step(run_dir: str | Path) -> int | None:
    """The step a run would resume from (its last/ checkpoint), or None when it would start afresh."""
    state = recover(Path(run_dir) / LAST) / STATE
    return int(json.loads(state.read_text())["step"]) if state.is_file() else None


def load_last(run_dir: str | Path, accelerator: Any, strict: bool = True) -> dict[str, Any] | None:
    """Restore the resumable state into the prepared objects; returns the loop position or None.

    `strict=False` for a LoRA run, whose last/ holds only the trainable tensors (the frozen
    student is loaded afresh, see `adapters.trainable_only`).
    """
    folder = recover(Path(run_dir) / LAST)
    if not (folder / STATE).is_file():
        return None
    accelerator.load_state(str(folder), strict=strict)
    return json.loads((folder / STATE).read_text())


@dataclass
class LoadedRun:
    """A trained run ready for evaluation."""

    model: Any
    tokenizer: Any
    strategy: Strategy
    config: TrainConfig
    head: Any
    is_encoder_decoder: bool


def load_config(run_dir: str | Path) -> TrainConfig:
    """The resolved TrainConfig stored with a run."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DataError(f"{run_dir} is not a training run (no config.json): run `pst train` first")
    return resolve(json.loads(path.read_text()))


def load_run(run_dir: str, device: str = "cpu", dtype: str = "float32", root: str | None = None) -> LoadedRun:
    """Load a run's best checkpoint (model in eval mode, tokenizer, bound strategy, head) in `dtype`.

    A LoRA checkpoint is loaded onto its base student (`config.student`, resolved under `root`,
    default the data root) and merged, so evaluation runs plain weights at full speed.
    """
    import torch

    cfg = load_config(run_dir)
    folder = recover(Path(run_dir) / BEST)
    if not (folder / "config.json").is_file():
        raise DataError(f"{run_dir} has no checkpoint/ yet: training did not reach a validation")
    if adapters.is_adapter(folder):
        model, tokenizer, enc_dec = load_lora_checkpoint(cfg, folder, root, merge=True)
    else:
        model, tokenizer, enc_dec = students.load_student(str(folder))
    model.to(device=device, dtype=getattr(torch, dtype)).eval()
    head = students.load_head(folder, device)
    if head is not None:
        head.to(dtype=getattr(torch, dtype)).eval()
    strategy = get_strategy(cfg.strategy, cfg).bind(tokenizer)
    return LoadedRun(model, tokenizer, strategy, cfg, head, enc_dec)


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as stored in config.json."""
    return to_dict(cfg)


def same_config(stored: dict[str, Any], cfg: TrainConfig) -> bool:
    """Whether a run's stored config.json is `cfg`: every stored option has the same value, and an
    option added to pst after the run was written is at its default (so a new, unused option such
    as lora_r does not refuse, or retrain, every run made before it existed)."""
    current = json.loads(json.dumps(config_dict(cfg)))
    defaults = json.loads(json.dumps(config_dict(type(cfg)(strategy=cfg.strategy))))
    return set(stored) <= set(current) and all(stored.get(k, defaults[k]) == v for k, v in current.items())


def load_lora_checkpoint(cfg: TrainConfig, folder: Path, root: str | None, merge: bool) -> tuple[Any, Any, bool]:
    """(model, tokenizer, is_encoder_decoder) of a LoRA checkpoint: the base student, its
    embeddings resized to the checkpoint's tokenizer, with the adapter (merged when `merge`)."""
    from transformers import AutoTokenizer

    from pst_core import settings

    base, _, enc_dec = students.load_student(cfg.student, root or settings.data_root())
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    students.add_special_tokens(base, tokenizer, cfg.new_token_init, pad_to_multiple_of=None)  # rows come from the adapter
    return adapters.load_adapter(base, folder, merge=merge), tokenizer, enc_dec


def merge_and_save(run_dir: str | Path, out_dir: str | Path, merge: bool = True, root: str | None = None) -> dict[str, Any]:
    """Write a run's best model to `out_dir` as a standard Hugging Face folder; returns what was written.

    * full fine-tune run: its weights as trained (`merge` changes nothing), kind "full";
    * LoRA run, `merge=True`: the adapter and the SEP/SEM rows folded into plain weights that load
      with `AutoModelFor*.from_pretrained(out_dir)` and serve anywhere (vLLM, TGI, llama.cpp after
      conversion), kind "merged";
    * LoRA run, `merge=False`: the adapter alone (adapter_config.json naming `config.student` as its
      base, adapter_model.safetensors with the new-token rows), kind "adapter"; it loads with
      `peft.AutoPeftModelForCausalLM.from_pretrained(out_dir)` (which resizes the base's embeddings
      to the tokenizer here) or vLLM's LoRA support.

    Every kind also gets the tokenizer (with SEP/SEM) and, for PST, the semantic head files
    (sem_head.*; ignored by servers). No model card or generation config: the export command adds them.
    `root`: where a default (offline) base student is resolved, as for `load_run`.
    Returns {"kind", "base" (the student id a LoRA run adapts, else None), "files" (names written)}.
    """
    cfg = load_config(run_dir)
    folder = recover(Path(run_dir) / BEST)
    if not (folder / "config.json").is_file():
        raise DataError(f"{run_dir} has no checkpoint/ yet: training did not reach a validation")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lora = adapters.is_adapter(folder)
    if lora and merge:
        model, tokenizer, _ = load_lora_checkpoint(cfg, folder, root, merge=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        skip = {STATE, "config.json", adapters.ADAPTER_CONFIG, "adapter_model.safetensors", "README.md"}
    else:
        skip = {STATE, "README.md"} | ({"config.json"} if lora else set())  # an adapter folder is not a model folder
    for path in folder.iterdir():
        if path.is_file() and path.name not in skip and not (out / path.name).exists():
            shutil.copy2(path, out / path.name)
    if lora and not merge:
        meta = json.loads((out / adapters.ADAPTER_CONFIG).read_text())
        meta["base_model_name_or_path"] = cfg.student  # the id the user trained from, not this machine's path
        write_json(out / adapters.ADAPTER_CONFIG, meta)
    kind = ("merged" if merge else "adapter") if lora else "full"
    return {"kind": kind, "base": cfg.student if lora else None, "files": sorted(p.name for p in out.iterdir())}
