"""Retry and cache policies shared by every task wrapper.

Retries: exponential backoff with jitter, and only for failures a retry can fix (connection
drops, timeouts, HTTP 408/429/5xx). A `PstError` (bad config, missing data, a teacher that
answers 401) fails at once: retrying it would only delay the one clear error line; the exception
is a `PstError` marked `transient` (a teacher that is down), which a later attempt may get past.

Caching: Prefect's default key includes the flow-run id, so nothing would be reused across runs.
Each task instead keys on its inputs, its own source and a *fingerprint of the store partitions it
reads* (plus the teacher's stored config where one is called). A rerun with unchanged stores is
served from the persisted result; a new teacher, new examples or new rationales change exactly the
keys of the tasks that read them, so only that work reruns.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.tasks import exponential_backoff

from pst_core import store
from pst_core.errors import PstError

# Status codes worth a second try: timeouts, conflicts from concurrent writers, rate limits,
# and server-side failures. 4xx otherwise means the request itself is wrong.
TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Exception class names from clients we do not import here (openai, httpx, aiohttp, botocore).
TRANSIENT_NAMES = frozenset(
    {
        "APIConnectionError", "APITimeoutError", "RateLimitError", "InternalServerError",
        "ConnectError", "ReadTimeout", "ConnectTimeout", "RemoteProtocolError",
        "ClientConnectionError", "ServerDisconnectedError", "EndpointConnectionError",
    }
)


def is_transient_error(exc: BaseException) -> bool:
    """True when retrying could plausibly succeed (network, timeout, rate limit, 5xx)."""
    if isinstance(exc, PstError):
        return bool(getattr(exc, "transient", False))
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and status in TRANSIENT_STATUS:
        return True
    return any(cls.__name__ in TRANSIENT_NAMES for cls in type(exc).__mro__)


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` for Prefect tasks: retry only transient failures."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient_error(exc)
    return False


# Backoff base in seconds (10, 20, 40 with +/-50 % jitter); tests shorten it via with_options.
RETRY_BACKOFF_S = float(os.environ.get("PST_RETRY_BACKOFF_S", "10"))
RETRY_OPTIONS: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_BACKOFF_S),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}

# (path, size, mtime_ns) -> sha256 of the file; a store part is immutable once renamed into
# place, so a file whose stat is unchanged is not hashed twice in one process.
_hash_memo: dict[tuple[str, int, float], str] = {}


def _file_digest(fs: Any, path: str) -> str:
    info = fs.info(path)
    stamp = (path, int(info.get("size") or 0), float(info.get("mtime") or info.get("created") or 0))
    if stamp not in _hash_memo:
        h = hashlib.sha256()
        with fs.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _hash_memo[stamp] = h.hexdigest()
    return _hash_memo[stamp]


def fingerprint(directory: str) -> str:
    """Content fingerprint of every visible Parquet part under `directory` ("empty" when none).

    Paths enter relative to `directory` and contents by sha256, so rewriting identical bytes
    (an idempotent `prepare`) keeps the fingerprint, while any new or changed part changes it.
    """
    parts = store.list_parts(directory)
    if not parts:
        return "empty"
    fs, base = store.filesystem(directory)
    h = hashlib.sha256()
    for part in parts:
        local = store.filesystem(part)[1]
        h.update(local[len(base):].encode())
        h.update(_file_digest(fs, local).encode())
    return h.hexdigest()


def stat_fingerprint(directory: str) -> str:
    """Fingerprint of every file under a local folder by (relative path, size, mtime): for run
    folders (checkpoints, metrics) that are rewritten in place rather than appended to."""
    base = Path(directory)
    if not base.is_dir():
        return "absent"
    stats = sorted((str(p.relative_to(base)), p.stat().st_size, p.stat().st_mtime_ns) for p in base.rglob("*") if p.is_file())
    return digest(stats)


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StoreCache(CachePolicy):
    """Key = inputs + task source + fingerprints of the store partitions the task reads.

    `reads(inputs)` names the partition directories (fingerprinted) and any extra JSON-able state
    (a teacher's stored config) that the output depends on. A record is reused only while the
    outputs it lists (`result["outputs"]`) still exist (after `make clean-data` the stage reruns
    instead of handing downstream tasks paths that are gone) and while it does not say
    `"complete": False` (a harvest whose failed requests the next run should send again).
    """

    reads: Callable[[dict[str, Any]], Iterable[Any]] | None = None

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        # Task inputs are plain values (a root, names, config dicts), so all of them are hashed.
        base = (INPUTS + TASK_SOURCE).compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        reads = self.reads(inputs) if self.reads else []
        state = [fingerprint(item) if isinstance(item, str) else item for item in reads]
        key = digest([base, state])
        forget_if_stale(task_ctx.result_store, key)
        return key


def reusable(value: Any) -> bool:
    """True when a cached result is complete and every path in its `outputs` list still exists."""
    if isinstance(value, dict) and value.get("complete") is False:
        return False
    paths = value.get("outputs", []) if isinstance(value, dict) else []
    for path in paths:
        fs, local = store.filesystem(path)
        if not fs.exists(local):
            return False
    return True


def forget_if_stale(result_store: Any, key: str) -> bool:
    """Drop the cache record `key` when it is not `reusable` (incomplete, outputs gone); True if dropped.

    Prefect has no per-run "refresh" switch a policy can set, so a stale record is removed from
    the result storage itself (local filesystem storage; other storages keep their records).
    """
    try:
        if not result_store.exists(key) or reusable(result_store.read(key).result):
            return False
    except Exception:  # noqa: BLE001 - an unreadable record is treated like a miss by Prefect too
        return False
    for storage in (result_store.metadata_storage, result_store.result_storage):
        resolve = getattr(storage, "_resolve_path", None)
        if resolve is not None:
            Path(resolve(key)).unlink(missing_ok=True)
    result_store.cache.pop(key, None)
    return True


def store_cache(reads: Callable[[dict[str, Any]], Iterable[Any]] | None = None) -> CachePolicy:
    """The cache policy of every stage task (see `StoreCache`)."""
    return StoreCache(reads=reads)
