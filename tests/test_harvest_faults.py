"""Fault mix: every request ends stored (success or its error after the attempts), counts add up."""

from __future__ import annotations

import pytest

from pst_core import teachers
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.replay import Faults, Index, running, synthetic


def test_fault_mix_ends_every_request_stored_once_and_server_counts_match_attempts(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")
    recs = synthetic.write(store_root, "synth", 120)
    faults = Faults(rate_429=0.20, retry_after=1.0, rate_500=0.10, rate_hang=0.05, hang_s=3.0, rate_malformed=0.05, seed=7)
    with running(Index(recs), faults) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY", timeout_s=0.5, max_attempts=4, concurrency=32))
        s = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        stats = h.stats()
    raw = rationales.read(store_root, deduped=False)
    rows = raw.to_pylist()
    keys = [r["request_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 120  # no duplicate request_key, none missing
    assert all(stats[k] > 0 for k in ("rate_limited", "server_error", "hang", "malformed"))
    for r in rows:
        if r["error"] is None:
            assert r["rationale"] and r["answer_completion"] and r["attempts"] >= 2
        else:
            assert r["error"] in {"rate_limited", "http_500", "timeout", "malformed"} and r["attempts"] >= 4
    assert stats["total"] == sum(r["attempts"] for r in rows) == s.sent
    assert s.succeeded + s.failed == 120 and s.failed == sum(s.failures.values())
