"""Batch API mode against the replay server's /v1/files and /v1/batches over real HTTP."""

from __future__ import annotations

import os

import pytest

from pst_core import teachers
from pst_core.harvest import HarvestConfig, batch, harvest, rationales
from pst_core.replay import Faults, Index, running, synthetic


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")


def register(root: str, url: str) -> None:
    teachers.add(root, teachers.TeacherConfig(name="rep", base_url=url, model="m", api_key_env="PST_TEST_KEY", mode="batch", max_attempts=6))


def test_batch_mode_stores_every_row_and_resubmits_only_failed_lines(store_root: str) -> None:
    recs = synthetic.write(store_root, "synth", 40)
    with running(Index(recs), Faults(rate_500=0.3, seed=2, batch_delay_s=0.05)) as h:
        register(store_root, h.url)
        s = harvest(HarvestConfig(teacher="rep", task="synth", poll_s=0.02), store_root)
        stats = h.stats()
    rows = rationales.read(store_root, deduped=False).to_pylist()
    assert len(rows) == 40 and all(r["error"] is None for r in rows)
    assert {r["rationale"] for r in rows} == {r.rationale for r in recs}
    assert all(r["batch_id"] in s.batch_ids for r in rows) and stats["batches"] == len(s.batch_ids) > 2
    # Two stages per row; every extra line is a resubmission of a line that failed.
    assert stats["batch_errors"] > 0 and stats["batch_lines"] == 80 + stats["batch_errors"] == s.sent
    assert s.correct_rate == 0.75


def test_batch_rerun_resumes_polling_the_stored_batch_instead_of_resubmitting(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = synthetic.write(store_root, "synth", 10)
    with running(Index(recs), Faults(batch_delay_s=0.05)) as h:
        register(store_root, h.url)
        real_collect = batch.BatchRunner.collect

        def crash(self, active):
            raise KeyboardInterrupt  # the process dies right after submitting

        monkeypatch.setattr(batch.BatchRunner, "collect", crash)
        with pytest.raises(KeyboardInterrupt):
            harvest(HarvestConfig(teacher="rep", task="synth", poll_s=0.02), store_root)
        state_file = f"{rationales.partition(store_root, 'rep', 'synth', 'train')}/{batch.STATE_FILE}"
        assert os.path.exists(state_file) and h.stats()["batches"] == 1
        monkeypatch.setattr(batch.BatchRunner, "collect", real_collect)
        s = harvest(HarvestConfig(teacher="rep", task="synth", poll_s=0.02), store_root)
        stats = h.stats()
    assert stats["batches"] == 2 and stats["batch_lines"] == 20  # stage-1 batch resumed, then stage 2
    assert s.succeeded == 10 and not os.path.exists(state_file)
    assert rationales.read(store_root).num_rows == 10
