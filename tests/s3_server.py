"""A real S3-compatible server on 127.0.0.1 for object-store tests: moto's standalone server.

`running_s3()` starts `moto.server` in its own process (so the test's reads and the server never
share a GIL), waits until it answers, creates one bucket, and yields an `S3` whose `env` holds
the standard AWS variables every client (s3fs, botocore, subprocesses) reads: the endpoint,
a made-up key pair and a region. `objects()` lists every object with its bytes, for tests that
grep the whole store for a secret. Tests skip when `moto[server]` or `s3fs` is not installed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO

import pytest

# Unlike real AWS keys, so a grep for them can only match what pst copied.
SECRET = f"pst-test-secret-{uuid.uuid4().hex}"
KEY_ID = f"PSTTESTKEY{uuid.uuid4().hex[:10].upper()}"


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3:
    """A running server: its endpoint, bucket, and the environment that points clients at it."""

    endpoint: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)

    def url(self, prefix: str = "") -> str:
        """`s3://bucket/prefix` (a fresh store root per prefix)."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self):
        """A boto3 client of the server (for checks that must not go through pst's own code)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1")

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix`: key -> bytes."""
        client, out = self.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
        return out


def _wait(port: int, proc: subprocess.Popen, log: IO[bytes], timeout_s: float = 30) -> None:
    """Until the server accepts connections (or fails with its own output)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"moto server exited: {log.read().decode(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not start on port {port} within {timeout_s} s")


@contextmanager
def running_s3(bucket: str = "pst") -> Iterator[S3]:
    """Start moto's S3 server on a free port, create `bucket`, yield it; stopped on exit."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install pst[s3])")
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install pst[test])")
    port = free_port()
    # Its request log goes to a file: a pipe nobody reads would fill up and stall the server.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait(port, proc, log)
            endpoint = f"http://127.0.0.1:{port}"
            env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
            s3 = S3(endpoint, bucket, env)
            s3.client().create_bucket(Bucket=bucket)
            yield s3
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def clear_instance_cache() -> None:
    """Forget cached s3fs instances, so a changed environment (endpoint, keys) is read again."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def apply_env(monkeypatch: pytest.MonkeyPatch, s3: S3, root: str) -> None:
    """Point this process at the server (AWS variables) and at `root` as the store (PST_DATA_DIR)."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe 169.254.169.254 for credentials
    monkeypatch.setenv("PST_DATA_DIR", root)
    clear_instance_cache()
