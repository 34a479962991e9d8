"""Malformed HTTP-200 replies: every field is type-checked, a bad reply is a retryable `malformed` failure, rows reach the part files."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from harvest_servers import Served, completion, prompt_of, scripted_app

from pst_core import schemas, store, teachers
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.harvest import client as http
from pst_core.replay import synthetic

GOOD = completion(" 5.", True)
# name -> a 200 body of that malformed shape (chat flavour)
MALFORMED = {
    "usage_is_a_number": {**GOOD, "usage": 5},
    "prompt_tokens_is_text": {**GOOD, "usage": {"prompt_tokens": "abc", "completion_tokens": 3}},
    "completion_tokens_negative": {**GOOD, "usage": {"prompt_tokens": 1, "completion_tokens": -3}},
    "token_count_is_a_bool": {**GOOD, "usage": {"prompt_tokens": True}},
    "token_count_is_fractional": {**GOOD, "usage": {"prompt_tokens": 1.5}},
    "content_is_a_number": completion(5, True),
    "content_part_is_a_number": completion([5], True),
    "text_part_without_text": completion([{"type": "text", "text": None}], True),
    "finish_reason_is_a_number": {**GOOD, "choices": [{**GOOD["choices"][0], "finish_reason": 3}]},
    "model_is_a_number": {**GOOD, "model": 7},
}


def raw(obj) -> bytes:
    return http._dumps(obj)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_each_malformed_field_is_a_retryable_malformed_failure(name: str) -> None:
    with pytest.raises(http.Retryable) as err:
        http.parse_body(raw(MALFORMED[name]), "chat")
    assert err.value.reason == "malformed" and err.value.detail


def test_completions_text_and_non_json_bodies_are_checked_too() -> None:
    for body in (raw(completion(5, False)), raw({"choices": [{"finish_reason": "stop"}]}), b"<html>502</html>", b"\xff\xfe"):
        with pytest.raises(http.Retryable, match="malformed"):
            http.parse_body(body, "completions")
    assert http.parse_body(raw(completion(" 5.", False)), "completions").text == " 5."


def test_content_parts_are_joined_and_counts_may_be_whole_floats_or_absent() -> None:
    parts = [{"type": "text", "text": "2 + 3"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": " = 5."}]
    comp = http.parse_body(raw({**completion(parts, True), "usage": {"prompt_tokens": 12.0}}), "chat")
    assert (comp.text, comp.prompt_tokens, comp.completion_tokens, comp.model) == ("2 + 3 = 5.", 12, None, "m")
    assert http.parse_body(raw({**GOOD, "usage": None, "model": None}), "chat").prompt_tokens is None
    with pytest.raises(http.BadContent):
        http.parse_body(raw(completion(None, True)), "chat")  # a reply with no text (a tool call) is empty, not malformed
    with pytest.raises(http.BadContent):
        http.parse_body(raw(completion([{"type": "refusal", "refusal": "no"}], True)), "chat")


def part_rows(root: str) -> list[dict]:
    """The rows of the partition's part files, read file by file (what reached disk)."""
    rows = []
    for f in store.list_parts(rationales.partition(root, "rep", "synth", "train")):
        rows += pq.read_table(f, schema=schemas.RATIONALES).to_pylist()
    return rows


@pytest.mark.parametrize("shape", ["usage_is_a_number", "prompt_tokens_is_text", "content_part_is_a_number", "finish_reason_is_a_number"])
def test_a_harvest_stores_malformed_replies_as_failures_and_flushes_every_row(store_root: str, monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")
    recs = synthetic.write(store_root, "synth", 8, wrong_every=0)
    bad = {synthetic.question(i) for i in (2, 5)}  # these two questions always get the malformed reply
    by_question = {r.question: r for r in recs}

    def reply(body: dict, chat: bool) -> dict:
        text = prompt_of(body, chat)
        q = text.split("Q: ", 1)[1].split("\nA:", 1)[0]
        if q in bad:
            return MALFORMED[shape]
        rec = by_question[q]
        return completion(rec.rationale if text.endswith("step by step.") else rec.answer_completion, chat)

    with Served(lambda: scripted_app(reply, [])) as server:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=server.url, model="m", api_key_env="PST_TEST_KEY", max_attempts=2))
        s = harvest(HarvestConfig(teacher="rep", task="synth", flush_rows=100), store_root)
    assert (s.succeeded, s.failed, dict(s.failures), s.retries["malformed"]) == (6, 2, {"malformed": 2}, 2)
    rows = part_rows(store_root)
    assert len(rows) == 8 and len({r["request_key"] for r in rows}) == 8
    errors = sorted((r["example_id"], r["error"], r["attempts"]) for r in rows if r["error"])
    assert errors == [("synth-00002", "malformed", 2), ("synth-00005", "malformed", 2)]
    assert all(r["is_correct"] for r in rows if r["error"] is None)


def test_a_teacher_answering_in_content_parts_is_harvested_with_the_parts_joined(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")
    synthetic.write(store_root, "synth", 3, wrong_every=0)
    received: list[dict] = []

    def reply(body: dict, chat: bool) -> dict:
        text = prompt_of(body, chat)
        if text.endswith("step by step."):
            return completion([{"type": "text", "text": "Add them"}, {"type": "text", "text": " up."}], chat)
        i = int(text.split("Ann has ", 1)[1].split(" ", 1)[0])
        return completion([{"type": "text", "text": f" {2 * i + 7}."}], chat)

    with Served(lambda: scripted_app(reply, received)) as server:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=server.url, model="m", api_key_env="PST_TEST_KEY"))
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    assert s.succeeded == 3 and s.correct == 3
    rows = part_rows(store_root)
    assert {r["rationale"] for r in rows} == {"Add them up."} and all(r["error"] is None for r in rows)
    stage2 = [b["messages"][0]["content"] for b in received if not b["messages"][0]["content"].endswith("step by step.")]
    assert len(stage2) == 3 and all("step by step. Add them up. Therefore" in t for t in stage2)
