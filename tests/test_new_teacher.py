"""The new-teacher pipeline: coverage checked before training, answer_only trained once per task,
and `pst teacher add` failing in one line when the Prefect event cannot be delivered. No Prefect
server: flow bodies run through `.fn` with their tasks' bodies, and the API is a closed port."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from pst_core import examples, schemas, store, teachers
from pst_core.coverage import check, skip_line
from pst_core.train.config import resolve

TASK = "toy"
SPLITS = {"train": 4, "validation": 2, "test": 2}


def _store(root: str, teacher: str, splits: tuple[str, ...], correct: bool = True) -> None:
    """Examples of every split of TASK, and `teacher`'s successful rationales for `splits` only."""
    for split, n in SPLITS.items():
        rows = [examples.Example(f"{TASK}-{split}-{i}", TASK, split, f"{split} question {i} ?", "3", "number") for i in range(n)]
        examples.write_split(root, TASK, split, rows)
        if split in splits:
            table = pa.Table.from_pylist([{"request_key": f"{teacher}{split}{i}", "example_id": r.example_id, "sample_index": 0,
                                           "rationale": "1 plus 2 is 3", "predicted_answer": "3" if correct else "4",
                                           "is_correct": correct} for i, r in enumerate(rows)])
            store.write_part(store.partition_path(root, "rationales", teacher=teacher, task=TASK, split=split), table, schemas.RATIONALES)


def _cfg(teacher: str, strategy: str = "pst", **kw: Any):
    return resolve({"teacher": teacher, "task": TASK, "strategy": strategy, **kw})


# --- coverage ----------------------------------------------------------------------------------


def test_a_teacher_of_test_questions_only_covers_neither_train_nor_validation(store_root: str) -> None:
    _store(store_root, "test-only", ("test",))
    cover = check(store_root, _cfg("test-only"))
    assert cover.examples == {"train": 4, "validation": 2} and cover.usable == {"train": 0, "validation": 0}
    assert cover.missing == ["train", "validation"] and cover.blocking == ("train", "validation")


def test_missing_validation_blocks_only_runs_that_select_by_loss(store_root: str) -> None:
    _store(store_root, "train-only", ("train",))
    assert check(store_root, _cfg("train-only")).blocking == ("validation",)
    by_match = check(store_root, _cfg("train-only", select_by="exact_match"))
    assert by_match.missing == ["validation"] and by_match.blocking == ()


def test_wrong_rationales_are_not_usable_when_training_keeps_correct_ones_only(store_root: str) -> None:
    _store(store_root, "wrong", ("train", "validation"), correct=False)
    assert check(store_root, _cfg("wrong")).blocking == ("train", "validation")
    assert check(store_root, _cfg("wrong", correct_only=False)).blocking == ()


def test_answer_only_needs_no_coverage(store_root: str) -> None:
    _store(store_root, "test-only", ("test",))
    assert check(store_root, _cfg("test-only", "answer_only")).blocking == ()


def test_skip_line_names_the_uncovered_splits_and_the_skipped_runs(store_root: str) -> None:
    _store(store_root, "test-only", ("test",))
    covers = [check(store_root, _cfg("test-only", s)).as_dict() for s in ("pre_thinking", "pst")]
    line = skip_line("test-only", covers, store_root)
    assert "\n" not in line and "'test-only'" in line and "toy/train, toy/validation" in line
    assert "toy: pre_thinking, pst" in line and f"{store_root}/rationales/teacher=test-only" in line
    assert skip_line("test-only", [{**c, "missing": [], "blocking": []} for c in covers], store_root) is None


# --- train_flow: skipped runs, answer_only once per task -------------------------------------


class _Now:
    """A future that already holds its result (the flow's `.submit(...).result()`)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class _Submit:
    """A task stand-in whose `.submit` runs `fn` at once (no Prefect run context needed)."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.calls = fn, []

    def submit(self, *args: Any) -> _Now:
        self.calls.append(args)
        return _Now(self.fn(*args))


def _train_flow(monkeypatch: pytest.MonkeyPatch, root: str, teachers_: list[str], strategies: list[str]) -> tuple[list[dict], list[str], _Submit]:
    from flows import pipeline
    from tasks.coverage import coverage
    from tasks.train import run_id_of

    warnings: list[str] = []
    trained = _Submit(lambda root, config: {"run_id": run_id_of(config), "config": config})
    monkeypatch.setattr(pipeline, "coverage", _Submit(coverage.fn))
    monkeypatch.setattr(pipeline, "train", trained)
    monkeypatch.setattr(pipeline, "get_run_logger", lambda: type("Log", (), {"warning": staticmethod(warnings.append)})())
    runs = pipeline.train_flow.fn(teachers=teachers_, tasks=[TASK], strategies=strategies, root=root)
    return runs, warnings, trained


def test_train_flow_skips_an_uncovered_teacher_with_one_line_and_still_trains_answer_only(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(store_root, "test-only", ("test",))
    runs, warnings, _ = _train_flow(monkeypatch, store_root, ["test-only"], ["answer_only", "pre_thinking", "pst"])
    assert [r["config"]["strategy"] for r in runs] == ["answer_only"]
    assert len(warnings) == 1 and "toy/train, toy/validation" in warnings[0] and "toy: pre_thinking, pst" in warnings[0]


def test_train_flow_trains_answer_only_once_per_task_for_many_teachers(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _store(store_root, "a", ("train", "validation"))
    _store(store_root, "b", ("train", "validation"))
    runs, warnings, _ = _train_flow(monkeypatch, store_root, ["a", "b"], ["answer_only", "pst"])
    assert warnings == []
    assert sorted((r["config"]["teacher"], r["config"]["strategy"]) for r in runs) == [("a", "pst"), ("b", "pst"), ("none", "answer_only")]


def test_answer_only_run_id_has_no_teacher_and_is_the_same_for_every_teacher() -> None:
    from tasks.train import run_id_of

    base = {"task": TASK, "strategy": "answer_only", "lr": 1e-4}
    assert run_id_of({**base, "teacher": "gpt-a"}, "data") == run_id_of({**base, "teacher": "gpt-b"}, "data")
    assert run_id_of({**base, "teacher": "gpt-a"}).startswith(f"{TASK}-answer_only-") and "gpt-a" not in run_id_of({**base, "teacher": "gpt-a"})
    pst = {**base, "strategy": "pst"}
    assert run_id_of({**pst, "teacher": "gpt-a"}) != run_id_of({**pst, "teacher": "gpt-b"})
    assert run_id_of({**pst, "teacher": "gpt-a"}).startswith(f"{TASK}-gpt-a-pst-")


def test_a_second_teacher_reuses_the_answer_only_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The train task for teacher b finds teacher a's answer_only run (same folder, same stored config)."""
    import tasks.train as train_task
    from pst_core.train import checkpoint
    from pst_core.train import run as train_run

    trained: list[str] = []

    def fake_train(cfg, root, run_id=None, dtype=None):  # the real train refuses another config in the same folder
        run = Path(root) / "runs" / run_id
        stored = run / "config.json"
        if stored.is_file():
            assert json.loads(stored.read_text()) == json.loads(json.dumps(checkpoint.config_dict(cfg))), "another config"
            return run, {"steps": 1}
        run.mkdir(parents=True)
        checkpoint.write_json(stored, checkpoint.config_dict(cfg))
        trained.append(run_id)
        return run, {"steps": 1}

    monkeypatch.setattr(train_run, "train", fake_train)
    monkeypatch.setattr(train_run, "data_fingerprint", lambda cfg, root: "same-examples")
    monkeypatch.setattr(train_task, "publish_metrics", lambda *a, **k: None)
    first = train_task.train.fn(str(tmp_path), {"teacher": "a", "task": TASK, "strategy": "answer_only"})
    second = train_task.train.fn(str(tmp_path), {"teacher": "b", "task": TASK, "strategy": "answer_only"})
    assert first["run_id"] == second["run_id"] and trained == [first["run_id"]]
    assert json.loads((Path(first["run_dir"]) / "config.json").read_text())["teacher"] == train_task.NO_TEACHER


# --- pst teacher add with the Prefect API down ---------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_teacher_add_with_an_unreachable_prefect_api_fails_in_one_line(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from pst_core.cli import app
    from pst_core.errors import PstError

    url = f"http://127.0.0.1:{_closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    with temporary_settings({PREFECT_API_URL: url}):
        result = CliRunner().invoke(app, ["teacher", "add", "new", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"])
    assert result.exit_code != 0 and isinstance(result.exception, PstError)
    message = str(result.exception)
    assert "\n" not in message and "not delivered" in message and url in message and "pst run pipeline --teacher new" in message
    assert "new" in teachers.load_all(store_root), "the teacher itself is saved"
    teachers.add(store_root, teachers.TeacherConfig(name="lib", base_url="http://127.0.0.1:1/v1", model="m"))  # library: a warning only
