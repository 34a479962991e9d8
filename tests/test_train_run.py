"""A run's identity is its config and its data: `pst train` reuses a run only on the data it was trained on."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_train_fixtures as F  # noqa: E402

from pst_core import examples, schemas, store  # noqa: E402
from pst_core.errors import ConfigError  # noqa: E402
from pst_core.train import config, data, loop, run  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    with F.one_thread():
        yield


def _write_rationales(root: str, split: str, rows: list, changed: dict[int, str] | None = None) -> None:
    """Replace the (fake, toy, split) rationales with one correct rationale per row (`changed` overrides texts)."""
    directory = store.partition_path(root, "rationales", teacher="fake", task="toy", split=split)
    for part in store.list_parts(directory):
        os.remove(part)
    table = pa.Table.from_pylist([{"request_key": f"{split}{i}", "example_id": r.example_id, "sample_index": 0,
                                   "rationale": (changed or {}).get(i, r.rationale), "predicted_answer": r.answer,
                                   "is_correct": True} for i, r in enumerate(rows)])
    store.write_part(directory, table, schemas.RATIONALES)


@pytest.fixture
def toy(store_root, tmp_path):
    """A toy store (12 train, 4 validation questions with rationales), a tiny student folder and a config."""
    rows = F.rows(16)
    splits = {"train": rows[:12], "validation": rows[12:]}
    for split, chunk in splits.items():
        examples.write_split(store_root, "toy", split, [examples.Example(r.example_id, "toy", split, r.question, r.answer, "number")
                                                         for r in chunk])
        _write_rationales(store_root, split, chunk)
    tok = F.tokenizer()
    F.causal(len(tok)).save_pretrained(tmp_path / "student")
    tok.save_pretrained(tmp_path / "student")
    cfg = config.resolve({"strategy": "pre_thinking", "task": "toy", "teacher": "fake", "student": str(tmp_path / "student"),
                          "max_steps": 2, "batch_size": 4, "eval_every": 0, "lr": 3e-3, "progress": False})
    return {"root": store_root, "cfg": cfg, "splits": splits}


def _no_training(*args, **kwargs):
    raise AssertionError("trained again")


def test_a_finished_run_is_reused_on_the_same_data_and_refused_on_changed_data(toy, monkeypatch):
    root, cfg = toy["root"], toy["cfg"]
    folder, metrics = run.train(cfg, root, run_id="r1")
    stored = json.loads((folder / "data.json").read_text())
    assert stored == {"fingerprint": run.data_fingerprint(cfg, root), "portable_fingerprint": run.data_fingerprint(cfg, root, portable=True),
                      "train_rows": 12, "validation_rows": 4, "validation_questions": 4}
    assert metrics["data"]["fingerprint"] == stored["fingerprint"]
    assert (metrics["data"]["dropped_test_overlap"], metrics["data"]["dropped_too_long"]) == (0, 0)
    assert metrics["data"]["validation"]["rows"] == 4

    monkeypatch.setattr(loop, "fit", _no_training)
    assert run.train(cfg, root, run_id="r1") == (folder, metrics)  # unchanged: reused, nothing trained

    _write_rationales(root, "train", toy["splits"]["train"], changed={3: "1 plus 3 is 4 , so 4"})
    with pytest.raises(ConfigError, match=r"run r1 was trained on other data.*delete .*r1.*--run-id"):
        run.train(cfg, root, run_id="r1")
    assert json.loads((folder / "data.json").read_text()) == stored  # the old run is left as it was


def test_an_interrupted_run_is_not_resumed_on_changed_data(toy, monkeypatch):
    root, cfg = toy["root"], toy["cfg"]
    folder, _ = run.train(cfg, root, run_id="r2")
    (folder / "train_metrics.json").unlink()  # as if killed before the end
    _write_rationales(root, "validation", toy["splits"]["validation"], changed={0: "a new validation rationale"})
    monkeypatch.setattr(loop, "fit", _no_training)
    with pytest.raises(ConfigError, match="run r2 was trained on other data"):
        run.train(cfg, root, run_id="r2")


def test_a_run_from_before_data_fingerprints_is_reused_as_it_was(toy, monkeypatch):
    root, cfg = toy["root"], toy["cfg"]
    folder, metrics = run.train(cfg, root, run_id="r3")
    (folder / "data.json").unlink()
    monkeypatch.setattr(loop, "fit", _no_training)
    assert run.train(cfg, root, run_id="r3") == (folder, metrics)


def test_fingerprint_follows_every_input_and_nothing_else():
    rows = F.rows(4)
    base = data.fingerprint(data.TrainData(rows, F.targets(4)), data.TrainData(rows[:2]), rows[:2])
    assert base == data.fingerprint(data.TrainData(list(rows), F.targets(4).copy()), data.TrainData(rows[:2]), rows[:2])
    flipped = [dataclasses.replace(rows[0], rationale="other"), *rows[1:]]
    variants = [
        (data.TrainData(flipped, F.targets(4)), data.TrainData(rows[:2]), rows[:2]),  # a rationale
        (data.TrainData(rows, F.targets(4, seed=1)), data.TrainData(rows[:2]), rows[:2]),  # the embeddings
        (data.TrainData(rows, F.targets(4)), data.TrainData(rows[:1]), rows[:2]),  # validation rows
        (data.TrainData(rows, F.targets(4)), data.TrainData(rows[:2]), rows[:1]),  # validation questions
        (data.TrainData(rows, F.targets(4)), None, rows[:2]),
    ]
    assert len({base, *(data.fingerprint(*v) for v in variants)}) == 1 + len(variants)


def test_portable_fingerprint_ignores_the_last_bits_of_the_vectors_but_not_what_they_embed():
    """Results carried to another machine: the same texts re-embedded by the same encoder revision
    give vectors that may differ in their last bits; the portable fingerprint is the same, the strict one not."""
    rows = F.rows(4)
    targets = F.targets(4)
    noisy = targets + np.float32(1e-7)

    def fp(t, source, portable):
        return data.fingerprint(data.TrainData(rows, t, None, source), None, rows[:2], portable=portable)

    assert fp(targets, "enc@r1:abc", True) == fp(noisy, "enc@r1:abc", True)
    assert fp(targets, "enc@r1:abc", False) != fp(noisy, "enc@r1:abc", False)
    assert fp(targets, "enc@r1:abc", True) != fp(targets, "enc@r2:abc", True)  # another encoder revision
    assert fp(targets, "enc@r1:abc", True) != fp(targets, "enc@r1:def", True)  # other embedded texts
