"""Re-scoring: rows judged under another extractor version are judged again from their stored text
(on read, and written back by `pst store rescore`), without any request to the teacher."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pst_core import answers, examples, prompts, schemas, store, teachers
from pst_core.examples import Example
from pst_core.harvest import HarvestConfig, harvest, rationales, rescore
from pst_core.harvest.jobs import JobFactory
from pst_core.replay import Index, running, synthetic

N = 12  # synthetic rows: every 4th answer is wrong, so 9 of 12 are correct


@pytest.fixture
def harvested(store_root: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A harvested synthetic partition (today's judgements); yields its folder."""
    monkeypatch.setenv("PST_TEST_KEY", "k")
    recs = synthetic.write(store_root, "synth", N)
    with running(Index(recs)) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY"))
        harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
    return rationales.partition(store_root, "rep", "synth", "train")


def age(directory: str, version: int | None) -> None:
    """Rewrite a partition as an older pst would have: every flag inverted, judged under `version`
    (None: written before the column existed, so the parts lack it)."""
    files = store.list_parts(directory)
    table = pa.concat_tables([pq.read_table(f) for f in files])
    table = table.set_column(table.schema.get_field_index("is_correct"), "is_correct", pa.compute.invert(table["is_correct"]))
    i = table.schema.get_field_index("extractor_version")
    table = table.remove_column(i) if version is None else table.set_column(i, "extractor_version", pa.array([version] * table.num_rows, pa.int32()))
    store.write_part(directory, table)
    for f in files:
        os.remove(f)


def flags(table: pa.Table) -> dict[str, bool]:
    return dict(zip(table["example_id"].to_pylist(), table["is_correct"].to_pylist()))


TODAY = {f"synth-{i:05d}": i % 4 != 0 for i in range(N)}


@pytest.mark.parametrize("version", [None, 1])
def test_rows_of_an_older_extractor_version_are_rejudged_on_read(store_root: str, harvested: str, version: int | None) -> None:
    digest = rationales.success_digest(harvested)
    age(harvested, version)
    on_disk = sorted(os.listdir(harvested))
    assert flags(rationales.read(store_root, deduped=False)) == {k: not v for k, v in TODAY.items()}  # as stored
    table = rationales.read(store_root)
    assert flags(table) == TODAY and set(table["extractor_version"].to_pylist()) == {answers.EXTRACTOR_VERSION}
    cache = rationales.cached(store_root, "rep", "synth", "train")
    assert sorted(cache.ok.values()) == sorted(TODAY.values()) and cache.rejudged == N
    assert rationales.success_digest(harvested) == digest  # what stages depend on follows today's rule
    assert sorted(os.listdir(harvested)) == on_disk  # reading changed nothing on disk


def test_rows_judged_under_todays_version_are_trusted_as_stored(store_root: str, harvested: str) -> None:
    age(harvested, answers.EXTRACTOR_VERSION)
    assert flags(rationales.read(store_root)) == {k: not v for k, v in TODAY.items()}
    assert rationales.cached(store_root, "rep", "synth", "train").rejudged == 0


def test_rerun_reports_todays_correct_rate_without_sending_a_request(store_root: str, harvested: str) -> None:
    age(harvested, 1)
    with running(Index([])) as h:
        teachers.add(store_root, teachers.TeacherConfig(name="rep", base_url=h.url, model="m", api_key_env="PST_TEST_KEY"), replace=True)
        again = harvest(HarvestConfig(teacher="rep", task="synth"), store_root)
        assert h.stats().get("total", 0) == 0
    assert again.sent == 0 and (again.correct, again.judged) == (9, N)


def test_store_rescore_rewrites_the_partition_atomically_and_reports_changed_flags(store_root: str, harvested: str) -> None:
    from pst_core.cli import app

    digest = rationales.success_digest(harvested)
    age(harvested, 1)
    result = CliRunner().invoke(app, ["store", "rescore", "--teacher", "rep"])
    assert result.exit_code == 0, result.output
    assert f"{N} row(s) re-judged under extractor version {answers.EXTRACTOR_VERSION}, {N} flag(s) changed, 9 false->true, 3 true->false" in result.output
    assert f"{N} is_correct flag(s) changed in total" in result.output
    raw = rationales.read(store_root, deduped=False)
    assert flags(raw) == TODAY and set(raw["extractor_version"].to_pylist()) == {answers.EXTRACTOR_VERSION}
    assert len(store.list_parts(harvested)) == 1 and rationales.success_digest(harvested) == digest
    again = CliRunner().invoke(app, ["store", "rescore"])
    assert again.exit_code == 0 and "up to date" in again.output and "re-judged" not in again.output


def test_failed_rescore_leaves_the_partition_as_it_was(store_root: str, harvested: str, monkeypatch: pytest.MonkeyPatch) -> None:
    age(harvested, 1)
    before = {f: Path(f).read_bytes() for f in store.list_parts(harvested)}

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "write_part", full_disk)
    with pytest.raises(OSError):
        rationales.rescore_store(store_root)
    assert {f: Path(f).read_bytes() for f in store.list_parts(harvested)} == before


def test_rows_whose_example_is_gone_are_left_as_stored_and_counted(store_root: str, harvested: str) -> None:
    age(harvested, 1)
    kept = [e for e in examples.load(store_root, "synth", "train") if e.example_id != "synth-00001"]
    examples.write_split(store_root, "synth", "train", kept)
    (result,) = rationales.rescore_store(store_root)
    assert (result.rejudged, result.unjudged, result.changed) == (N - 1, 1, N - 1)
    row = {r["example_id"]: r for r in rationales.read(store_root, deduped=False).to_pylist()}["synth-00001"]
    assert row["is_correct"] is False and row["extractor_version"] == 1  # as stored: nothing to judge it against


CHOICES = ["A) 12", "B) 14", "C) 16"]
COMPLETIONS = [" 12.", " The answer is 14.", " (B)", "", " no number here", " 16, not 14", " C) 16 because", " 1e9", " −3"]


@pytest.mark.parametrize("kind", ["zs_cot", "rationalize"])
@pytest.mark.parametrize("answer_type", ["number", "choice"])
def test_judge_agrees_with_the_harvester_on_every_completion(kind: str, answer_type: str) -> None:
    ex = Example("t-00000", "t", "train", "How many?", "14" if answer_type == "number" else "B", answer_type, CHOICES if answer_type == "choice" else [])
    pk = prompts.get(kind, "t")
    factory = JobFactory("m", "chat", pk, 64, 16, 0.0)
    for text in COMPLETIONS:
        (job,) = factory.jobs([ex], 1)
        job.raw_completion = job.rationale = "Let me count." if pk.two_stage else text
        row = factory.row(job, text, None)
        got = rescore.judge(pk, row["raw_completion"], row["answer_completion"], ex)
        assert got == (row["predicted_answer"], row["is_correct"]), text


def test_writer_stamps_todays_extractor_version(store_root: str) -> None:
    w = rationales.Writer(store_root, "t", "task", "train")
    w.add({"request_key": "k", "example_id": "e", "sample_index": 0, "is_correct": True})
    w.flush()
    assert rationales.read(store_root, deduped=False)["extractor_version"].to_pylist() == [answers.EXTRACTOR_VERSION]
    assert schemas.RATIONALES.field("extractor_version").type == pa.int32()
