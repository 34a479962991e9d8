"""One request to an OpenAI-compatible endpoint, with errors classified for the retry loop.

Two transports speak the same wire format: a lean aiohttp client (default; the SDK spends about
1.7 ms of CPU per request, which caps a 2-core harvest well below the network's rate) and the
`AsyncOpenAI` SDK (`http: openai`), constructed with `max_retries=0` because retries, backoff and
rate limits are pst's job. Both raise the same three exceptions:

- `Retryable` (429, 408/409, 5xx, timeouts, connection errors, malformed bodies): try again later,
  honouring `retry-after-ms` / `Retry-After`. A 200 body is malformed when any field pst reads
  has the wrong type (`"usage": 5`, `"prompt_tokens": "abc"`, no choices...): `parse_body`
  checks each one, so a bad reply costs one attempt of one request and never a traceback;
- `Fatal` (400, 401, 403, 404, 422...): stop the harvest with one clear line;
- `BadContent` (empty content): recorded with its error, not retried within the run.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

try:  # orjson is ~5x faster than json for the small bodies sent per request
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    import json

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    _loads = json.loads

RETRYABLE_STATUS = {408, 409, 429}


@dataclass
class Completion:
    """The parts of a completion response the store keeps."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str | None = None  # the model the server says answered (llama.cpp names its one model whatever was asked)


class Retryable(Exception):
    """A transient failure: `reason` is a short label, `retry_after` the server's hint in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.retry_after, self.detail = reason, retry_after, detail


class Fatal(Exception):
    """A failure retries cannot fix (bad key, unknown model, malformed request)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.detail = status, detail


class BadContent(Exception):
    """The endpoint answered 200 without usable content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def backoff(attempt: int, hint: float | None, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: the server's hint (+ up to 10 % jitter), else capped exponential with jitter."""
    r = (rng or random).random()
    if hint is not None:
        return hint * (1.0 + 0.1 * r)
    exp = min(cap, base * (2 ** (attempt - 1)))
    return exp * (0.5 + 0.5 * r)


def classify_status(status: int, headers: Any, body: bytes | str) -> Exception:
    """The exception for a non-200 answer."""
    detail = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        detail = _loads(detail)["error"]["message"]
    except Exception:
        detail = detail[:200]
    if headers is not None and headers.get("X-Replay-Match") == "none":  # replay teacher: no record of this question
        return BadContent("unmatched")
    if status in RETRYABLE_STATUS or status >= 500:
        return Retryable("rate_limited" if status == 429 else f"http_{status}", retry_after(headers), str(detail))
    return Fatal(status, str(detail))


def _malformed(what: str) -> Retryable:
    return Retryable("malformed", detail=what)


def _count(usage: dict, name: str) -> int | None:
    """A token count of `usage`: absent/null, or a non-negative whole number (JSON may send 12.0)."""
    value = usage.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (isinstance(value, float) and not value.is_integer()):
        raise _malformed(f"usage.{name} is {value!r}")
    return int(value)


def _text_of(content: Any) -> str:
    """A message's content: a string, or OpenAI's content parts (the text parts joined; images, refusals skipped)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _malformed(f"message content is a {type(content).__name__}")
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text":
            if not isinstance(part.get("text"), str):
                raise _malformed("a text part has no text")
            texts.append(part["text"])
        elif not isinstance(part, dict):
            raise _malformed(f"a content part is a {type(part).__name__}")
    return "".join(texts)


def parse_body(data: bytes, endpoint: str) -> Completion:
    """A Completion from a 200 body, every field type-checked: malformed is retryable, empty content is BadContent."""
    try:
        obj = _loads(data)
    except (ValueError, TypeError):  # orjson's and json's decode errors are ValueErrors
        raise _malformed("body is not JSON") from None
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed("no choices")
    choice = choices[0]
    if endpoint == "chat":
        message = choice.get("message")
        if not isinstance(message, dict) or "content" not in message:
            raise _malformed("choice has no message content")
        text = _text_of(message["content"])
    else:
        if "text" not in choice or not isinstance(choice["text"], (str, type(None))):
            raise _malformed("choice has no text")
        text = choice["text"] or ""
    finish, model, usage = choice.get("finish_reason"), obj.get("model"), obj.get("usage")
    if not isinstance(finish, (str, type(None))) or not isinstance(model, (str, type(None))):
        raise _malformed("finish_reason or model is not a string")
    if not isinstance(usage, (dict, type(None))):
        raise _malformed(f"usage is {usage!r}"[:80])
    usage = usage or {}
    prompt_tokens, completion_tokens = _count(usage, "prompt_tokens"), _count(usage, "completion_tokens")
    if not text.strip():
        raise BadContent("empty")
    return Completion(text, finish, prompt_tokens, completion_tokens, model)


class AiohttpTransport:
    """POSTs the OpenAI wire format with one shared aiohttp session."""

    def __init__(self, base_url: str, api_key: str, endpoint: str, timeout_s: float, concurrency: int) -> None:
        self.url = f"{base_url.rstrip('/')}/{'chat/completions' if endpoint == 'chat' else 'completions'}"
        self.endpoint = endpoint
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.timeout_s, self.concurrency = timeout_s, concurrency
        self.session: Any = None

    async def __aenter__(self) -> AiohttpTransport:
        import aiohttp

        self._aiohttp = aiohttp
        # Retries waiting out Retry-After do not hold a connection, so the pool is the concurrency.
        conn = aiohttp.TCPConnector(limit=self.concurrency + 8, ttl_dns_cache=300)
        self.session = aiohttp.ClientSession(connector=conn, headers=self.headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def send(self, body: dict) -> Completion:
        aiohttp = self._aiohttp
        try:
            async with self.session.post(self.url, data=_dumps(body)) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise classify_status(resp.status, resp.headers, data)
        except TimeoutError:
            raise Retryable("timeout") from None
        except aiohttp.ClientError as exc:
            # The OS reason ("Connection refused") when there is one; never the URL or headers.
            reason = getattr(getattr(exc, "os_error", None), "strerror", None)
            raise Retryable("connection", detail=reason or type(exc).__name__) from None
        return parse_body(data, self.endpoint)


class OpenAITransport:
    """The same request through `AsyncOpenAI` (any base_url), for endpoints that need the SDK."""

    def __init__(self, base_url: str, api_key: str, endpoint: str, timeout_s: float, concurrency: int) -> None:
        self.base_url, self.api_key, self.endpoint, self.timeout_s = base_url, api_key, endpoint, timeout_s
        self.client: Any = None

    async def __aenter__(self) -> OpenAITransport:
        import openai

        self._openai = openai
        self.client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def send(self, body: dict) -> Completion:
        openai = self._openai
        api = self.client.chat.completions if self.endpoint == "chat" else self.client.completions
        try:
            raw = await api.with_raw_response.create(**body)
            data = raw.http_response.content
        except openai.APIStatusError as exc:
            raise classify_status(exc.status_code, exc.response.headers, exc.response.content) from None
        except openai.APITimeoutError:
            raise Retryable("timeout") from None
        except openai.APIConnectionError as exc:
            raise Retryable("connection", detail=type(exc).__name__) from None
        return parse_body(data, self.endpoint)


def transport(kind: str, base_url: str, api_key: str, endpoint: str, timeout_s: float, concurrency: int) -> AiohttpTransport | OpenAITransport:
    """The transport named by a teacher's `http` option."""
    cls = OpenAITransport if kind == "openai" else AiohttpTransport
    return cls(base_url, api_key, endpoint, timeout_s, concurrency)
