"""Summaries count unique questions: duplicates are duplicates (not cache hits), and the correct-rate is the same on every run."""

from __future__ import annotations

import pytest

from pst_core import examples, teachers
from pst_core.examples import Example
from pst_core.harvest import HarvestConfig, harvest, rationales
from pst_core.replay import Index, running, synthetic

# Question i of the split is synthetic question QUESTION_OF[i]: 3 and 7 appear twice more, 0 once more.
QUESTION_OF = list(range(20)) + [3, 7, 3, 7, 0]


@pytest.fixture
def split_with_duplicates(store_root: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """A train split of 25 rows, 20 distinct questions (synthetic: every 4th answer is wrong)."""
    monkeypatch.setenv("PST_TEST_KEY", "k")
    recs = synthetic.write(store_root, "synth", 20)
    exs = [Example(examples.make_id("synth", i), "synth", "train", synthetic.question(q), str(2 * q + 7), "number") for i, q in enumerate(QUESTION_OF)]
    examples.write_split(store_root, "synth", "train", exs)
    return recs


def test_first_run_reports_duplicates_not_cache_hits_and_a_cached_rerun_gives_the_same_correct_rate(store_root: str, split_with_duplicates) -> None:
    with running(Index(split_with_duplicates)) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY"))
        first = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        again = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        assert h.stats()["total"] == 40  # 20 questions x 2 stages, once
    assert rationales.read(store_root).num_rows == 20
    assert (first.requested, first.duplicates, first.unique, first.cache_hits, first.succeeded) == (25, 5, 20, 0, 20)
    assert (again.requested, again.duplicates, again.unique, again.cache_hits, again.succeeded, again.sent) == (25, 5, 20, 20, 0, 0)
    # Questions 0, 4, 8, 12, 16 are answered wrong: 15 of 20 unique questions right, on both runs.
    assert (first.correct, first.judged) == (again.correct, again.judged) == (15, 20)
    assert first.lines()[0] == "teacher=rep task=synth split=train: 25 requested (20 unique, 5 duplicate questions sent and stored once), 0 cache hits"
    assert again.lines()[0].endswith(", 20 cache hits") and first.lines()[-1] == again.lines()[-1] == "correct rationales: 15/20 = 75.00%"


def test_a_partly_stored_split_counts_each_unique_question_once(store_root: str, split_with_duplicates) -> None:
    with running(Index(split_with_duplicates)) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY"))
        part = harvest(HarvestConfig(teacher="rep", task="synth", limit=10), store_root)
        rest = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    assert (part.requested, part.duplicates, part.succeeded) == (10, 0, 10)
    assert (rest.cache_hits, rest.succeeded, rest.duplicates, rest.not_attempted) == (10, 10, 5, 0)
    assert (rest.correct, rest.judged) == (15, 20)
