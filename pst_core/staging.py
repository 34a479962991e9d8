"""Local copies of the store's folder-shaped outputs (run folders, reports) when the store is remote.

Training and evaluation write through libraries that need a real folder (`save_pretrained`,
accelerate state, matplotlib), so with an object-store root (`PST_DATA_DIR=s3://bucket/prefix`)
each such folder lives in a local stage and is synced with its place in the store:

* `pull(root, local)` before a stage reads the folder: the files named by the store's
  manifest (`<folder>/_pst_manifest.json`: relative path -> size and sha256) are downloaded where
  the local copy differs, each checked against its sha256 (a file that does not match was
  rewritten by a push still in progress: the pull starts over from a fresh manifest).
* `push(root, local)` after a stage wrote it: every changed file is uploaded as one complete
  object, the top-level JSON files (`train_metrics.json`, `metrics.json`: what reruns look at to
  decide a stage is done) after the rest, and the manifest last. The manifest is the commit: a
  pull sees a folder as of one finished push, never a half-uploaded one.

Not synced: `last/` (the resume state of an unfinished run: a killed run resumes on the machine
that ran it) and dot-names (temporary files, the stage's own bookkeeping). The stage is
`PST_STAGE_DIR` (default `~/.cache/pst/stage`) `/<root's bucket and prefix>-<digest of root and
endpoint>`; it is a cache, safe to delete. A local root is its own stage: nothing is copied.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pst_core import store
from pst_core.errors import DataError

MANIFEST = "_pst_manifest.json"
SYNCED = ".pst-synced.json"  # the manifest this stage last pulled or pushed, with local stats for its hashes
LOCAL_ONLY = ("last",)  # top-level folders that stay on the machine that wrote them
PULL_ATTEMPTS = 5


def is_remote(root: str | Path) -> bool:
    """True for a store root on an object store or any other non-local fsspec filesystem."""
    from fsspec.utils import get_protocol

    return isinstance(root, str) and get_protocol(root) not in ("file", "local")


def stage_root(root: str) -> Path:
    """The local folder that mirrors `root`'s folder outputs (`root` itself when it is local)."""
    if not is_remote(root):
        return Path(root)
    base = Path(os.environ.get("PST_STAGE_DIR") or Path.home() / ".cache" / "pst" / "stage").expanduser()
    # The endpoint is part of the identity (two servers may both have bucket `pst`), hashed: never written.
    endpoint = next((os.environ[v] for v in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL") if os.environ.get(v)), "")
    digest = hashlib.sha256(f"{endpoint}\n{root.rstrip('/')}".encode()).hexdigest()[:12]
    tail = re.sub(r"[^A-Za-z0-9_.=-]+", "_", root.split("://", 1)[-1].strip("/"))[-80:]
    return base / f"{tail}-{digest}"


def localize(root: str, path: str | Path) -> Path:
    """The local folder of a store path: `<root>/runs/x` (as a URI, or as the `Path(root)/...`
    older callers build, which turns `s3://` into `s3:/`) maps into the stage; other paths stay."""
    if not is_remote(root):
        return Path(path)
    text, r = str(path), root.rstrip("/")
    for prefix in (r, str(Path(r))):
        if text.startswith(prefix + "/"):
            return stage_root(root) / text[len(prefix) + 1:]
    return Path(path)


def _remote(root: str, local: Path) -> str | None:
    """`local`'s place in the store, or None when it is not inside the stage (a folder given by path)."""
    try:
        rel = local.resolve().relative_to(stage_root(root).resolve())
    except ValueError:
        return None
    return f"{root.rstrip('/')}/{rel.as_posix()}"


def _synced_files(local: Path) -> list[str]:
    """Relative paths of the files a push would upload."""
    out = []
    for p in local.rglob("*"):
        rel = p.relative_to(local)
        if p.is_file() and rel.parts[0] not in LOCAL_ONLY and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return sorted(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_synced(local: Path) -> dict[str, Any] | None:
    try:
        return json.loads((local / SYNCED).read_text())
    except (FileNotFoundError, ValueError):
        return None


def local_manifest(local: Path) -> dict[str, dict[str, Any]]:
    """relative path -> {size, sha256} of the folder's synced files (hashes reused while size and mtime hold)."""
    known = (_read_synced(local) or {}).get("stats", {})
    out = {}
    for rel in _synced_files(local):
        st = (local / rel).stat()
        seen = known.get(rel)
        same = seen and seen["size"] == st.st_size and seen["mtime_ns"] == st.st_mtime_ns
        out[rel] = {"size": st.st_size, "sha256": seen["sha256"] if same else _sha256(local / rel)}
    return out


def _write_synced(local: Path, files: dict[str, dict[str, Any]]) -> None:
    """Remember what the store holds now, and each file's stat, so unchanged files are not hashed again."""
    stats = {}
    for rel, entry in files.items():
        p = local / rel
        if p.is_file():
            st = p.stat()
            stats[rel] = {**entry, "mtime_ns": st.st_mtime_ns}
    local.mkdir(parents=True, exist_ok=True)
    store.write_bytes(str(local / SYNCED), json.dumps({"files": files, "stats": stats}).encode())


def _remote_manifest(fs: Any, base: str) -> dict[str, dict[str, Any]] | None:
    try:
        with fs.open(f"{base}/{MANIFEST}", "rb") as fh:
            return json.loads(fh.read())["files"]
    except FileNotFoundError:
        return None


def push(root: str, local: str | Path) -> None:
    """Upload a stage folder's changed files to its place in the store, then its manifest (no-op when local)."""
    local = Path(local)
    target = _remote(root, local) if is_remote(root) else None
    if target is None or not local.is_dir():
        return
    fs, base = store.filesystem(target)
    before = _remote_manifest(fs, base) or {}
    now = local_manifest(local)
    changed = [rel for rel in now if before.get(rel) != now[rel]]
    # Top-level JSON files mark a stage done (train_metrics.json, metrics.json): uploaded after the rest.
    for rel in sorted(changed, key=lambda r: ("/" not in r and r.endswith(".json"), r)):
        fs.put_file(str(local / rel), f"{base}/{rel}")
    if changed or set(before) != set(now):
        store.write_bytes(f"{target}/{MANIFEST}", json.dumps({"files": now}, indent=1).encode())
    for rel in set(before) - set(now):  # deleted here since the last push
        try:
            fs.rm(f"{base}/{rel}")
        except FileNotFoundError:
            pass
    _write_synced(local, now)


def pull(root: str, local: str | Path) -> Path:
    """Make a stage folder hold what the store holds for it, then return it (as given when local).

    Files written here and never pushed (an interrupted run's first files) are kept; files the
    store no longer lists are removed; when the store's folder is gone (deleted to retrain), a
    folder synced with it before is removed too.
    """
    local = Path(local)
    target = _remote(root, local) if is_remote(root) else None
    if target is None:
        return local
    fs, base = store.filesystem(target)
    for attempt in range(PULL_ATTEMPTS):
        time.sleep(0.2 * attempt)  # a push running now commits its manifest meanwhile
        remote = _remote_manifest(fs, base)
        synced = _read_synced(local)
        if remote is None:
            if synced is not None:
                shutil.rmtree(local, ignore_errors=True)
            return local
        if _download(fs, base, local, remote):
            for rel in set((synced or {}).get("files", {})) - set(remote):
                (local / rel).unlink(missing_ok=True)
            _write_synced(local, remote)
            return local
    raise DataError(f"{target} does not match its manifest (a push of it was cut short, or is running now): rerun the "
                    "stage that wrote it (`pst train` or `pst eval`), or retry when that process has finished")


def _download(fs: Any, base: str, local: Path, remote: dict[str, dict[str, Any]]) -> bool:
    """Fetch each manifest file whose local copy differs; False when one does not match the manifest."""
    have = local_manifest(local) if local.is_dir() else {}
    for rel, entry in remote.items():
        if have.get(rel) == entry:
            continue
        dest = local / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            fs.get_file(f"{base}/{rel}", str(tmp))
        except FileNotFoundError:
            return False  # removed by a newer push: read its manifest
        if _sha256(tmp) != entry["sha256"]:
            tmp.unlink()
            return False
        os.replace(tmp, dest)
    return True


def fetched(root: str, folder: str, pattern: str) -> Path:
    """A local folder holding the store's `<folder>/<pattern>` files (e.g. every run's metrics.json).

    For a local root that is `<root>/<folder>` itself; for a remote one a fresh folder removed at
    exit, so runs deleted from the store never linger in a report.
    """
    if not is_remote(root):
        return Path(root) / folder
    fs, base = store.filesystem(f"{root.rstrip('/')}/{folder}")
    stage = stage_root(root)
    stage.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=f".fetched-{folder}-", dir=stage))
    atexit.register(shutil.rmtree, out, True)
    found = fs.glob(f"{base}/{pattern}")
    if found:
        fs.get(found, [str(out / f[len(base) + 1:]) for f in found])
    return out
