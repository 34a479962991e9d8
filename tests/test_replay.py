"""Replay teacher: answers from records over real HTTP, refuses unknown questions (404), counts every outcome."""

from __future__ import annotations

import json
import urllib.request

from pst_core.replay import Faults, Index, Record, running
from pst_core.replay.server import Replay

REC = Record("What is 2 plus 3?", " \n\n2 + 3 = 5.", " 5.", None)


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            status, headers, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, dict(e.headers), e.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:  # the malformed-JSON fault
        return status, headers, {"malformed": raw.decode()}


def chat(url: str, text: str) -> tuple[int, dict, dict]:
    return post(f"{url}/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]})


def test_replay_answers_both_zero_shot_cot_stages_and_marks_unknown_questions() -> None:
    with running(Index([REC])) as h:
        _, _, stage1 = chat(h.url, "Q: What is 2 plus 3?\nA: Let's think step by step.")
        assert stage1["choices"][0]["message"]["content"] == REC.rationale
        text = "Q: What is 2 plus 3?\nA: Let's think step by step." + REC.rationale + " Therefore, the answer (arabic numerals) is"
        _, _, legacy = post(f"{h.url}/completions", {"model": "m", "prompt": text})
        assert legacy["choices"][0]["text"] == " 5." and legacy["usage"]["completion_tokens"] > 0
        status, headers, unknown = chat(h.url, "Q: Something else?\nA: Let's think step by step.")
        assert status == 404 and headers["X-Replay-Match"] == "none" and "choices" not in unknown
        assert unknown["error"] == {"message": "no recorded output for this question", "type": "invalid_request_error", "code": "unmatched"}
        assert h.stats() == {"ok": 2, "unmatched": 1, "total": 3}
        models = json.loads(urllib.request.urlopen(f"{h.url}/models").read())
        assert models["data"][0]["id"] == "replay"


def test_faults_are_deterministic_per_seed_body_and_attempt() -> None:
    faults = Faults(rate_429=0.3, rate_500=0.2, rate_malformed=0.1, rate_empty=0.1, seed=5)
    draws = [[Replay(Index([]), faults).fault(b"body-%d" % i) for i in range(200)] for _ in range(2)]
    assert draws[0] == draws[1]
    counts = {k: draws[0].count(k) for k in ("rate_limited", "server_error", "malformed", "empty", None)}
    assert 40 <= counts["rate_limited"] <= 80 and 20 <= counts["server_error"] <= 60 and counts[None] >= 40
    replay = Replay(Index([]), faults)
    assert len({replay.fault(b"same") for _ in range(50)}) > 1  # a retry of the same body draws again


def test_fault_responses_carry_retry_after_and_stats_add_up() -> None:
    with running(Index([REC]), Faults(rate_429=0.5, retry_after=2, rate_malformed=0.2, seed=1)) as h:
        statuses = [chat(h.url, f"Q: What is 2 plus 3?\nA: Let's think step by step.{i}")[0:2] for i in range(30)]
        limited = [hd for st, hd in statuses if st == 429]
        assert limited and all(hd["Retry-After"] == "2" and hd["retry-after-ms"] == "2000" for hd in limited)
        stats = h.stats()
    assert stats["total"] == 30 == sum(v for k, v in stats.items() if k != "total")
