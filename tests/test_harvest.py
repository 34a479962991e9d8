"""Online harvest against the replay teacher over real HTTP: store, cache, samples, errors, secrets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pst_core import teachers
from pst_core.errors import ConfigError, PstError, TeacherError
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.harvest import client as http
from pst_core.replay import Faults, Index, running, synthetic

KEY_ENV = "PST_TEST_KEY"


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789")
    return "sk-test-0123456789"


def register(root: str, url: str, **kw) -> None:
    teachers.add(root, teachers.TeacherConfig(name="rep", base_url=url, model="m", api_key_env=KEY_ENV, **kw), replace=True)


def test_zero_shot_cot_harvest_stores_replayed_rationales_verbatim(store_root: str, key: str) -> None:
    recs = synthetic.write(store_root, "synth", 40)
    with running(Index(recs)) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        assert h.stats() == {"ok": 80, "total": 80}  # two stages per question
    rows = {r["example_id"]: r for r in rationales.read(store_root).to_pylist()}
    assert len(rows) == 40 and s.succeeded == 40 and s.sent == 80
    for i, rec in enumerate(recs):
        row = rows[f"synth-{i:05d}"]
        assert row["rationale"] == rec.rationale and row["answer_completion"] == rec.answer_completion
        assert row["is_correct"] == (i % 4 != 0) and row["attempts"] == 2 and row["error"] is None
        assert row["prompt_kind"] == "zs_cot" and row["teacher"] == "rep" and row["created_at"] is not None
    assert s.correct_rate == 0.75


def test_cached_rerun_sends_nothing_and_one_new_question_sends_one_request(store_root: str, key: str) -> None:
    recs = synthetic.write(store_root, "synth", 31)  # the teacher knows 31 questions...
    synthetic.write(store_root, "synth", 30)  # ...the split has 30 of them at first
    with running(Index(recs)) as h:
        register(store_root, h.url)
        cfg = HarvestConfig(teacher="rep", task="synth", prompt="rationalize")
        harvest(cfg, store_root)
        again = harvest(cfg, store_root)
        assert again.sent == 0 and again.cache_hits == 30 and h.stats()["total"] == 30
        synthetic.write(store_root, "synth", 31)
        one_more = harvest(cfg, store_root)
        assert one_more.sent == 1 and one_more.cache_hits == 30 and h.stats()["total"] == 31
    assert rationales.read(store_root).num_rows == 31


def test_samples_need_temperature_and_get_distinct_keys(store_root: str, key: str) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        HarvestConfig(teacher="rep", task="synth", samples=3)
    recs = synthetic.write(store_root, "synth", 5)
    with running(Index(recs)) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth", samples=3, temperature=0.7), store_root)
    table = rationales.read(store_root)
    assert s.succeeded == 15 and table.num_rows == 15 and len(set(table["request_key"].to_pylist())) == 15
    assert sorted(set(table["sample_index"].to_pylist())) == [0, 1, 2]


@pytest.mark.parametrize("endpoint,http_path", [("completions", "aiohttp"), ("chat", "openai")])
def test_legacy_completions_endpoint_and_sdk_transport_work(store_root: str, key: str, endpoint: str, http_path: str) -> None:
    recs = synthetic.write(store_root, "synth", 6)
    with running(Index(recs)) as h:
        register(store_root, h.url, endpoint=endpoint, http=http_path)
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    rows = rationales.read(store_root).to_pylist()
    assert s.succeeded == 6 and {r["rationale"] for r in rows} == {r.rationale for r in recs}


def test_empty_content_is_stored_with_its_error_and_sent_again_next_run(store_root: str, key: str) -> None:
    recs = synthetic.write(store_root, "synth", 20)
    with running(Index(recs), Faults(rate_empty=0.3, seed=1)) as h:
        register(store_root, h.url)
        cfg = HarvestConfig(teacher="rep", task="synth", prompt="rationalize")
        s = harvest(cfg, store_root)
        assert s.failures["empty"] == h.stats()["empty"] > 0
        again = harvest(cfg, store_root)
        assert again.sent == s.failed  # only the errored keys are requested again
    assert rationales.read(store_root).num_rows == 20


def test_bad_key_fails_fast_with_one_redacted_line_and_keeps_stored_rows(store_root: str, key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = synthetic.write(store_root, "synth", 10)
    with running(Index(recs), Faults(api_key=key)) as h:
        register(store_root, h.url, max_attempts=5)
        harvest(HarvestConfig(teacher="rep", task="synth", limit=5), store_root)
        monkeypatch.setenv(KEY_ENV, "sk-wrong-key-987")
        with pytest.raises(TeacherError) as err:
            harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        assert h.stats()["unauthorized"] <= 8 + 2  # no retries: at most one attempt per worker
    message = str(err.value)
    assert "HTTP 401" in message and "\n" not in message and "sk-wrong-key-987" not in message
    assert rationales.read(store_root).num_rows == 5


def test_error_classification() -> None:
    assert isinstance(http.classify_status(429, {"retry-after-ms": "1500"}, b""), http.Retryable)
    assert http.classify_status(429, {"retry-after-ms": "1500"}, b"").retry_after == 1.5
    assert http.classify_status(503, {"retry-after": "2"}, b"").retry_after == 2.0
    for status in (400, 401, 403, 404, 422):
        assert isinstance(http.classify_status(status, {}, b'{"error": {"message": "no"}}'), http.Fatal)
    with pytest.raises(http.Retryable):
        http.parse_body(b'{"choices": [', "chat")
    with pytest.raises(http.BadContent):
        http.parse_body(b'{"choices": [{"message": {"content": "  "}}]}', "chat")
    assert 1.0 <= http.backoff(3, 1.0) <= 1.1 and http.backoff(20, None) <= 30.0


def test_a_run_made_with_a_key_leaves_it_nowhere(store_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-LEAKCHECK-5f3a9c1e7b"
    monkeypatch.setenv(KEY_ENV, secret)
    recs = synthetic.write(store_root, "synth", 12)
    caplog.set_level(logging.DEBUG)
    with running(Index(recs), Faults(api_key=secret, rate_429=0.2, retry_after=0.05, rate_500=0.1, seed=3)) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        (tmp_path / "summary.json").write_text(json.dumps(s.as_dict(), default=str))
        monkeypatch.setenv(KEY_ENV, "sk-LEAKCHECK-wrong")
        synthetic.write(store_root, "synth", 13)
        with pytest.raises(TeacherError) as err:
            harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    assert s.succeeded == 12
    haystack = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(haystack) > 3  # parquet parts, teachers.yaml, summary
    for blob in haystack + [caplog.text.encode(), str(err.value).encode()]:
        assert b"LEAKCHECK" not in blob


def test_unreachable_teacher_ends_with_one_clear_transient_error(store_root: str, key: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on: every connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    synthetic.write(store_root, "synth", 40)
    register(store_root, f"http://127.0.0.1:{port}/v1", max_attempts=2, concurrency=4)
    with pytest.raises(TeacherError) as err:
        harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    message = str(err.value)
    assert "unreachable" in message and f"127.0.0.1:{port}" in message and "\n" not in message
    assert getattr(err.value, "transient", False)  # the Prefect task may retry a server that is down
    assert not rationales.partitions(store_root) or rationales.read(store_root).num_rows == 0  # nothing sent, nothing stored


def test_misspelt_task_or_split_names_the_valid_ones(store_root: str, key: str) -> None:
    synthetic.write(store_root, "synth", 3)
    register(store_root, "http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="unknown task 'multiarth'.*multiarith"):
        harvest(HarvestConfig(teacher="rep", task="multiarth"), store_root)
    with pytest.raises(ConfigError, match="unknown split 'tran'; valid: train, validation, test"):
        harvest(HarvestConfig(teacher="rep", task="synth", split="tran"), store_root)
    with pytest.raises(PstError, match="run `pst data prepare --task gsm8k` first"):  # a known task, not prepared yet
        harvest(HarvestConfig(teacher="rep", task="gsm8k"), store_root)
