"""The teachers registry: named OpenAI-compatible endpoints in `<store root>/teachers.yaml`.

The file is human-readable and holds no secrets: a teacher names the environment variable its
key lives in (`api_key_env`), and `api_key` reads that variable only when a request is about to
be sent, so keys never reach the store, cache keys, logs or artifacts.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from pst_core import store
from pst_core.config import check, from_dict, option
from pst_core.errors import ConfigError

FILE_NAME = "teachers.yaml"
ENDPOINTS = ("chat", "completions")
MODES = ("online", "batch")


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher endpoint with its limits and prices (stored in teachers.yaml, no secrets)."""

    name: str = option("", "Registry name, used in store partitions (teacher=NAME).")
    base_url: str = option("", "OpenAI-compatible base URL, e.g. https://api.openai.com/v1.")
    model: str = option("", "Model name sent with every request.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the API key (read at call time).")
    rpm: float = option(0.0, "Requests per minute limit (0 = unlimited).")
    tpm: float = option(0.0, "Tokens per minute limit, prompt + completion (0 = unlimited).")
    concurrency: int = option(64, "Requests in flight at once.")
    price_in: float = option(0.0, "Price per 1M prompt tokens (0 = unknown; cost is then not reported).")
    price_out: float = option(0.0, "Price per 1M completion tokens.")
    timeout_s: float = option(60.0, "Per-request timeout in seconds.")
    max_attempts: int = option(5, "Attempts per request for retryable errors (429, 5xx, timeouts, connection).")
    endpoint: str = option("chat", "API flavour: 'chat' (/chat/completions) or 'completions' (legacy /completions).")
    mode: str = option("online", "Default harvest mode: 'online' requests or the 'batch' API.")
    http: str = option("aiohttp", "HTTP path: 'aiohttp' (lean, same wire format) or 'openai' (the AsyncOpenAI SDK).")

    def __post_init__(self) -> None:
        n = "TeacherConfig"
        check(bool(self.name), n, "name is required")
        store.check_name("teacher", self.name)
        check(self.base_url.startswith(("http://", "https://")), n, f"base_url must start with http:// or https:// (got {self.base_url!r})")
        # Credentials in the URL would be written to teachers.yaml and sent in events and logs.
        check("@" not in self.base_url.split("://", 1)[-1].split("/", 1)[0], n, "base_url must not hold credentials (user:password@host); put the key in the variable named by api_key_env")
        check(bool(self.model), n, "model is required")
        check(bool(self.api_key_env) and self.api_key_env.replace("_", "").isalnum(), n, f"api_key_env must be an environment variable name (got {self.api_key_env!r})")
        check(self.rpm >= 0 and self.tpm >= 0, n, "rpm and tpm must be >= 0 (0 = unlimited)")
        check(self.concurrency >= 1, n, "concurrency must be >= 1")
        check(self.price_in >= 0 and self.price_out >= 0, n, "prices must be >= 0")
        check(self.timeout_s > 0, n, "timeout_s must be > 0")
        check(self.max_attempts >= 1, n, "max_attempts must be >= 1")
        check(self.endpoint in ENDPOINTS, n, f"endpoint must be one of {ENDPOINTS}")
        check(self.mode in MODES, n, f"mode must be one of {MODES}")
        check(self.http in ("aiohttp", "openai"), n, "http must be 'aiohttp' or 'openai'")

    def public(self) -> dict:
        """The config as a plain dict (it never holds a key, only the variable's name)."""
        return dataclasses.asdict(self)

    def api_key(self) -> str:
        """Read the key from the environment now; a missing variable is one clear error."""
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(f"teacher {self.name!r}: environment variable {self.api_key_env} is not set; export it with your API key")
        return key


def _path(root: str) -> str:
    return f"{root.rstrip('/')}/{FILE_NAME}"


def load_all(root: str) -> dict[str, TeacherConfig]:
    """Every registered teacher, by name (empty when the file does not exist)."""
    import yaml

    fs, path = store.filesystem(_path(root))
    if not fs.exists(path):
        return {}
    where = _path(root)
    try:
        with fs.open(path, "r") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where} is not valid YAML{at} ({getattr(exc, 'problem', None) or 'syntax error'}); fix it or re-add the teachers with `pst teacher add`") from None
    entries = data.get("teachers", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{where} must hold 'teachers: {{NAME: {{option: value}}}}'")
    out = {}
    for name, values in entries.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: teacher {name!r} must be a mapping of option: value (got {type(values).__name__})")
        try:
            out[str(name)] = from_dict(TeacherConfig, {**values, "name": str(name)})
        except ConfigError as exc:  # name the file and the entry, not just the dataclass
            raise ConfigError(f"{where}: teacher {name!r}: {exc}") from None
    return out


def get(root: str, name: str) -> TeacherConfig:
    """One teacher by name; an unknown name lists the registered ones."""
    teachers = load_all(root)
    if name not in teachers:
        valid = ", ".join(sorted(teachers)) or "none registered"
        raise ConfigError(f"unknown teacher {name!r} ({valid}); add it with `pst teacher add {name} --base-url URL --model MODEL`")
    return teachers[name]


def _save(root: str, teachers: dict[str, TeacherConfig]) -> None:
    """Rewrite teachers.yaml atomically (temp file then rename on local disks)."""
    import yaml

    body = {"teachers": {n: {k: v for k, v in t.public().items() if k != "name"} for n, t in sorted(teachers.items())}}
    text = "# pst teachers registry: no secrets here, keys are read from each api_key_env at call time\n"
    text += yaml.safe_dump(body, sort_keys=False)
    fs, path = store.filesystem(_path(root))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if store.is_local(fs):
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    else:
        with fs.open(path, "w") as fh:
            fh.write(text)


def add(root: str, teacher: TeacherConfig, replace: bool = False) -> TeacherConfig:
    """Register `teacher`; an existing name needs `replace=True`. Fires `teacher_registered`."""
    from pst_core import hooks

    teachers = load_all(root)
    if teacher.name in teachers and not replace:
        raise ConfigError(f"teacher {teacher.name!r} already exists; pass --replace to overwrite it")
    teachers[teacher.name] = teacher
    _save(root, teachers)
    hooks.fire("teacher_registered", name=teacher.name, teacher=teacher.public())
    return teacher


def remove(root: str, name: str) -> None:
    """Remove a teacher from the registry (its stored rationales are kept)."""
    teachers = load_all(root)
    get(root, name)
    del teachers[name]
    _save(root, teachers)
