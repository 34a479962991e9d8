"""docker-compose.yml, Dockerfile and .env.example: valid, wired together, and free of secrets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN|AUTH_STRING", re.IGNORECASE)
VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def _example_vars() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def _compose_client() -> list[str] | None:
    """The compose command here: the docker CLI plugin, else Debian's docker-compose."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def _install_compose() -> str:
    """apt-get install Debian's docker-compose (as the Makefile installs chromium); '' or why not."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "not root, or no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-compose"]
    for cmd in (install, ["apt-get", "update", "-qq"], install):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} timed out"
        if cmd is install and done.returncode == 0:
            return ""
    return f"apt-get install docker-compose failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def compose() -> list[str]:
    """A real compose client, installed when missing; the test skips when none can be had."""
    client = _compose_client()
    if client is None:
        why = _install_compose()
        client = _compose_client()
        if client is None:
            pytest.skip(f"no compose client (docker compose or docker-compose) and none could be installed: {why}")
    return client


def _project(tmp_path: Path, env_text: str) -> Path:
    """docker-compose.yml with a .env and the worker's teachers.env, as a user's checkout has them."""
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env_text)
    shutil.copy(REPO / "teachers.env.example", tmp_path / "teachers.env")
    return tmp_path


def _config(compose: list[str], project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "PREFECT_", "TEACHER_", "COMPOSE_"))}
    return subprocess.run([*compose, *args, "config"], cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_compose_accepts_the_file_with_a_filled_env(compose: list[str], tmp_path: Path) -> None:
    project = _project(tmp_path, (REPO / ".env.example").read_text())
    for args in ((), ("--profile", "teacher")):
        out = _config(compose, project, *args)
        assert out.returncode == 0, out.stderr
        resolved = yaml.safe_load(out.stdout)
        assert {"postgres", "prefect-server", "worker"} <= set(resolved["services"])
    url = resolved["services"]["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url == "postgresql+asyncpg://prefect:change-me-long-random@postgres:5432/prefect", "secrets come from .env"


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "PREFECT_SERVER_API_AUTH_STRING", "TEACHER_API_KEY"])
def test_compose_refuses_an_env_that_lacks_a_secret_with_the_documented_message(compose: list[str], tmp_path: Path, secret: str) -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    project = _project(tmp_path, "\n".join(line for line in lines if not line.startswith(f"{secret}=")) + "\n")
    out = _config(compose, project)
    assert out.returncode != 0, out.stdout
    assert f"set {secret}" in out.stderr and "in .env" in out.stderr, out.stderr


def test_postgres_has_a_health_check_and_the_server_waits_for_it() -> None:
    assert SERVICES["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    server = SERVICES["prefect-server"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "server" in server["command"] and "start" in server["command"]
    url = _env("prefect-server")["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert "/api/health" in " ".join(server["healthcheck"]["test"])


def test_worker_is_built_with_pst_creates_a_process_pool_and_deploys() -> None:
    worker = SERVICES["worker"]
    assert worker["build"]["dockerfile"] == "Dockerfile" and (REPO / "Dockerfile").is_file()
    command = " ".join(worker["command"])
    assert "work-pool create pst-process --type process" in command
    assert "deploy --all" in command and "worker start --pool pst-process" in command
    assert worker["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert any(v.endswith(":/app/data") for v in worker["volumes"]) and "pst-data" in COMPOSE["volumes"]
    assert _env("worker")["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"pip install [\"']?\.\[", dockerfile), "the image must install pst itself"
    for path in ("pst_core", "tasks", "flows", "prefect.yaml"):
        assert f"COPY {path}" in dockerfile


def test_teacher_service_is_optional_behind_a_profile() -> None:
    teacher = SERVICES["teacher"]
    assert teacher["profiles"] == ["teacher"]
    assert all("profiles" not in SERVICES[s] for s in ("postgres", "prefect-server", "worker"))


def test_every_secret_comes_from_the_env_file_and_none_is_hard_coded() -> None:
    example = _example_vars()
    text = "\n".join(l for l in (REPO / "docker-compose.yml").read_text().splitlines() if not l.lstrip().startswith("#"))
    for name in set(VAR.findall(text)):
        assert name in example, f"${{{name}}} is used by docker-compose.yml but missing from .env.example"
    for service in SERVICES:
        for key, value in _env(service).items():
            if SECRET_NAME.search(key):
                refs = VAR.findall(value)
                assert refs, f"{service}.{key} must come from the env file, not a literal"
                assert not re.search(r":-[^}]+\}", value), f"{service}.{key} must not have a non-empty default"
    for value in (str(v) for v in _flatten(COMPOSE)):
        assert not re.search(r"postgresql\+asyncpg://[^$]*:[^$@]+@", value), "a literal database password"
    for name in (".env", "teachers.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO, check=False).returncode == 0
        assert ignored, f"{name} must be git-ignored"
    assert not any(SECRET_NAME.search(line) and "=" in line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("ENV"))


def test_only_the_worker_reads_teacher_keys_and_no_service_gets_the_whole_env_file() -> None:
    for service in ("postgres", "prefect-server", "teacher"):
        assert "env_file" not in SERVICES[service], f"{service} must receive only the variables it names"
    # A plain entry (Debian's docker-compose 1.29 reads no path/required form): the file must exist.
    assert SERVICES["worker"]["env_file"] == ["teachers.env"] and (REPO / "teachers.env.example").is_file()
    assert "POSTGRES_PASSWORD" not in _env("worker")
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", "teachers.env", "data/"} <= set(ignored), "secrets and the store stay out of the build context"
    assert not any(SECRET_NAME.search(k) for k in _env("postgres") if k != "POSTGRES_PASSWORD")


def test_telemetry_is_off_everywhere() -> None:
    for service in ("prefect-server", "worker", "teacher"):
        env = _env(service)
        assert env["DO_NOT_TRACK"] == "1"
        assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert _env("teacher")["VLLM_NO_USAGE_STATS"] == "1"
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in (REPO / "Dockerfile").read_text()


def _flatten(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _flatten(v)
    elif isinstance(value, list):
        for v in value:
            yield from _flatten(v)
    else:
        yield value
