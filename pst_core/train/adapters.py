"""LoRA students through `peft`: which layers get adapters, which rows of the embeddings train.

With `TrainConfig.lora_r > 0` the student's weights stay frozen and `peft` injects low-rank
adapters into its attention and MLP projections, in place: the transformers model object the
loop runs is the same one, now holding LoRA layers, so `students.forward` (including its fast
causal path, `base_model` + `lm_head` on target positions only) needs no change. Three things
train besides the adapters, because they are new to the pretrained model:

* the embedding rows of SEP and SEM (and of a pad token pst added), through peft's
  `trainable_token_indices`: the rows only, not the whole matrix, on the input embeddings and,
  when the student does not tie them, on the output embeddings too (tied ones follow the input);
* the PST semantic head, which is not part of the peft model at all (a fresh module, always trained);
* any module listed in `lora_modules_to_save` (peft trains those in full).

A LoRA run resizes its embeddings to exactly `len(tokenizer)` (a full fine-tune rounds up to a
multiple of 64): rows beyond the tokenizer would be random, untrained and not in the adapter, and
`AutoPeftModel.from_pretrained` resizes a base model to `len(tokenizer)` when it loads an adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pst_core.errors import ConfigError
from pst_core.train.strategies import SEM, SEP

# Every linear projection of attention and MLP (the QLoRA / TRL "all-linear" choice): adapting
# only q and v (peft's own defaults) learns a new output format far slower at the same rank.
ATTN_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_TARGETS: dict[str, list[str]] = {
    "llama": ATTN_MLP, "qwen2": ATTN_MLP, "qwen3": ATTN_MLP, "mistral": ATTN_MLP, "gemma": ATTN_MLP, "gemma2": ATTN_MLP,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "t5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"], "mt5": ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"],
    "bart": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}
ADAPTER_CONFIG = "adapter_config.json"


def target_modules(model: Any, configured: tuple[str, ...] | list[str]) -> list[str] | str:
    """The module names to adapt: the configured ones, else the architecture's default, else
    peft's `all-linear` (every linear layer but the output head)."""
    if configured:
        return list(configured)
    return DEFAULT_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")


def new_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokens pst adds (SEP, SEM): the embedding rows a LoRA run must train."""
    vocab = tokenizer.get_vocab()
    return sorted({vocab[t] for t in (SEP, SEM) if t in vocab})


def token_layers(model: Any, ids: list[int]) -> list[int] | dict[str, list[int]]:
    """`trainable_token_indices` for peft: the ids on the input embeddings, plus the output
    embeddings when they are a separate matrix (untied), so SEP/SEM can be both read and emitted."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if out is None or out.weight.data_ptr() == inp.weight.data_ptr():
        return ids  # tied (or no head): peft ties the output rows to the input ones
    names = {id(m): n for n, m in model.named_modules()}
    return {names[id(inp)].rsplit(".", 1)[-1]: ids, names[id(out)].rsplit(".", 1)[-1]: ids}


def embedding_names(model: Any) -> set[str]:
    """The module names (last component) of the input and output embeddings."""
    tables = {id(model.get_input_embeddings()), id(model.get_output_embeddings())}
    return {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if id(m) in tables and n}


def lora_config(cfg: Any, model: Any, tokenizer: Any, is_encoder_decoder: bool) -> Any:
    """The peft `LoraConfig` of a TrainConfig with `lora_r > 0`."""
    try:
        from peft import LoraConfig, TaskType
    except ImportError:
        raise ConfigError("lora_r > 0 needs the peft package: pip install peft") from None
    ids = new_token_ids(tokenizer)
    tables = embedding_names(model)
    if tables & set(cfg.lora_modules_to_save):
        raise ConfigError(f"lora_modules_to_save: {', '.join(sorted(tables & set(cfg.lora_modules_to_save)))} are the embeddings, "
                          "whose SEP/SEM rows LoRA trains already (peft cannot train their rows and the whole table at once); "
                          "drop them, or train every weight with lora_r: 0")
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target_modules(model, cfg.lora_target_modules),
                      modules_to_save=list(cfg.lora_modules_to_save) or None,
                      trainable_token_indices=token_layers(model, ids) if ids else None,
                      task_type=TaskType.SEQ_2_SEQ_LM if is_encoder_decoder else TaskType.CAUSAL_LM)


def apply_lora(cfg: Any, model: Any, tokenizer: Any, is_encoder_decoder: bool) -> Any:
    """Wrap `model` (special tokens already added) in a peft model; `model` itself now holds the adapters."""
    from peft import get_peft_model

    lora = lora_config(cfg, model, tokenizer, is_encoder_decoder)
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # e.g. a target module name the architecture does not have
        raise ConfigError(f"LoRA (lora_target_modules, lora_modules_to_save): {str(exc).splitlines()[0]}") from None


def is_adapter(folder: str | Path) -> bool:
    """Whether a checkpoint folder holds a LoRA adapter (not full weights)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def save_adapter(peft_model: Any, folder: str | Path) -> None:
    """Write the adapter, the new-token rows and the base model's config (its resized vocabulary)."""
    # save_embedding_layers=False: the SEP/SEM rows travel as trainable tokens; "auto" would
    # look the base model up on the Hub to compare vocabulary sizes.
    peft_model.save_pretrained(str(folder), save_embedding_layers=False)
    # config.json beside the adapter: checkpoint/ keeps the shape every reader checks for.
    peft_model.get_base_model().config.save_pretrained(str(folder))


def load_adapter(base: Any, folder: str | Path, merge: bool = True) -> Any:
    """`base` (its embeddings already resized to the checkpoint's tokenizer) with the adapter in
    `folder`: merged into plain weights (`merge`), or as a peft model."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(folder))
    return model.merge_and_unload() if merge else model


def parameter_counts(model: Any) -> dict[str, int]:
    """Trainable and total parameter counts (a LoRA run records them in train_metrics.json)."""
    params = list(model.parameters())
    return {"trainable_params": sum(p.numel() for p in params if p.requires_grad), "total_params": sum(p.numel() for p in params)}


def trainable_only(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
    """accelerate save-state hook: keep only the trainable tensors of each model (adapters,
    new-token rows, head), so a LoRA run's last/ is megabytes, not a copy of the frozen student.
    Loading then uses strict=False: the frozen weights come from the student loaded afresh."""
    for model, state in zip(models, weights):
        keep = {name for name, p in model.named_parameters() if p.requires_grad}
        for key in [k for k in state if k not in keep]:
            del state[key]
