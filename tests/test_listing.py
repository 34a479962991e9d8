"""Listings (`pst teacher list`, `pst data tasks`, `pst data list`, `pst inspect`) print full names piped,
on an 80-column terminal, and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from pst_core import store, teachers
from pst_core.cli import app
from pst_core.commands import listing

runner = CliRunner()
LONG_NAME = "gpt3-davinci-002-recorded-long-teacher-name"
LONG_MODEL = "text-davinci-002-recorded-and-replayed-locally"
LONG_URL = "http://127.0.0.1:18080/v1/some/long/path/to/the/server"
LONG_TASKS = ("tracking_shuffled_objects", "last_letter_concatenation", "tau/commonsense_qa", "deepmind/aqua_rat")


@pytest.fixture(params=["piped", "terminal"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each listing test piped (CliRunner's stdout is no terminal) and as an 80-column terminal."""
    if request.param == "terminal":
        monkeypatch.setattr(listing, "is_terminal", lambda: True)
    return request.param


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output
    return result.output


def test_teacher_list_shows_full_names_urls_and_models(store_root: str, layout: str) -> None:
    teachers.add(store_root, teachers.TeacherConfig(name=LONG_NAME, base_url=LONG_URL, model=LONG_MODEL))
    teachers.add(store_root, teachers.TeacherConfig(name="short", base_url="http://127.0.0.1:1/v1", model="m"))
    out = invoke("teacher", "list")
    for text in (LONG_NAME, LONG_URL, LONG_MODEL, "OPENAI_API_KEY"):
        assert text in out
    if layout == "piped":  # one tab-separated line per teacher, after the header
        lines = out.strip().splitlines()
        assert lines[0].split("\t")[:3] == ["name", "base_url", "model"]
        assert lines[1].split("\t")[:3] == [LONG_NAME, LONG_URL, LONG_MODEL] and len(lines) == 3


def test_teacher_list_json_is_every_stored_field(store_root: str) -> None:
    teachers.add(store_root, teachers.TeacherConfig(name=LONG_NAME, base_url=LONG_URL, model=LONG_MODEL, rpm=60))
    listed = json.loads(invoke("teacher", "list", "--json"))
    assert listed == [teachers.get(store_root, LONG_NAME).public()] and listed[0]["rpm"] == 60
    teachers.remove(store_root, LONG_NAME)
    assert json.loads(invoke("teacher", "list", "--json")) == []


def test_data_tasks_shows_full_task_names_and_hub_ids(layout: str) -> None:
    out = invoke("data", "tasks")
    for text in LONG_TASKS:
        assert text in out


def test_data_tasks_json_lists_every_registered_task() -> None:
    from pst_core.tasks import TASKS

    listed = json.loads(invoke("data", "tasks", "--json"))
    assert [t["task"] for t in listed] == list(TASKS.names())
    assert {t["task"]: t["hub_id"] for t in listed}["aqua"] == "deepmind/aqua_rat"


def test_data_list_piped_is_tab_separated_and_json_parses(store_root: str, layout: str) -> None:
    from pst_core import examples

    examples.write_split(store_root, "last_letter_concatenation", "train", [_example("last_letter_concatenation", i) for i in range(3)])
    out = invoke("data", "list")
    assert "last_letter_concatenation" in out
    if layout == "piped":
        assert out.strip().splitlines() == ["task\tsplit\trows", "last_letter_concatenation\ttrain\t3"]
    assert json.loads(invoke("data", "list", "--json")) == [{"task": "last_letter_concatenation", "split": "train", "rows": 3}]


def _example(task: str, i: int):
    from pst_core.examples import Example

    return Example(example_id=f"{task}-{i:05d}", task=task, split="train", question=f"question {i}", gold_answer="ab", answer_type="text")


def test_inspect_shows_full_ids_and_column_names(tmp_path: Path, layout: str) -> None:
    key = "f" * 64  # a request key: a sha256 hex digest, longer than a preview cell
    schema = pa.schema([("request_key", pa.string()), ("a_rather_long_column_name_for_the_table", pa.string()), ("rationale", pa.string())])
    table = pa.table({"request_key": [key], "a_rather_long_column_name_for_the_table": [LONG_MODEL], "rationale": ["word " * 40]}, schema=schema)
    store.write_part(str(tmp_path / "part"), table, schema)
    out = runner.invoke(app, ["inspect", str(tmp_path / "part")], env={"COLUMNS": "80"}).output
    for text in (key, LONG_MODEL, "a_rather_long_column_name_for_the_table"):
        assert text in out, out
    assert "word word" in out and ("word " * 40).strip() not in out, "prose is still shortened"
    info = json.loads(runner.invoke(app, ["inspect", str(tmp_path / "part"), "--json"]).output)
    assert info["head"][0]["request_key"] == key and info["num_rows"] == 1


def test_a_value_in_brackets_is_printed_as_text_not_markup(store_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "is_terminal", lambda: True)
    teachers.add(store_root, teachers.TeacherConfig(name="t", base_url="http://127.0.0.1:1/v1", model="[bold]m[/bold]"))
    assert "[bold]m[/bold]" in runner.invoke(app, ["teacher", "list"], env={"COLUMNS": "200"}).output
