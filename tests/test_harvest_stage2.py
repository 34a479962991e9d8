"""The exact stage-2 text each endpoint flavour is sent, and the one-line warning for a model the server renames."""

from __future__ import annotations

import logging

import pytest
from harvest_servers import Served, completion, prompt_of, scripted_app
from typer.testing import CliRunner

from pst_core import examples, teachers
from pst_core.cli import app
from pst_core.examples import Example
from pst_core.harvest import HarvestConfig, harvest, rationales

QUESTION = "Debby took 24 pictures at the zoo. How many pictures did she take?"
TRIGGER = "Therefore, the answer (arabic numerals) is"
STAGE1 = f"Q: {QUESTION}\nA: Let's think step by step."


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PST_TEST_KEY", "k")


def one_question(root: str, n: int = 1) -> None:
    exs = [Example(examples.make_id("zoo", i), "zoo", "train", QUESTION if i == 0 else f"{QUESTION} ({i})", "24", "number") for i in range(n)]
    examples.write_split(root, "zoo", "train", exs)


def teacher_saying(rationale: str, model: str = "m"):
    """A reply function: the rationale to a stage-1 prompt, ' 24.' to a stage-2 one, reporting `model`."""

    def reply(body: dict, chat: bool) -> dict:
        text = prompt_of(body, chat)
        return completion(rationale if text.endswith("step by step.") else " 24.", chat, model=model)

    return reply


def register(root: str, url: str, endpoint: str, model: str = "m") -> None:
    teachers.add(root, teachers.TeacherConfig(name="t", base_url=url, model=model, api_key_env="PST_TEST_KEY", endpoint=endpoint), replace=True)


def test_chat_teacher_gets_the_rationale_after_one_space_in_the_stage2_message(store_root: str) -> None:
    one_question(store_root)
    received: list[dict] = []
    with Served(lambda: scripted_app(teacher_saying("24 pictures were taken at the zoo."), received)) as server:
        register(store_root, server.url, "chat")
        s = harvest(HarvestConfig(teacher="t", task="zoo"), store_root)
    assert s.succeeded == 1 and s.correct == 1
    assert received[0] == {"model": "m", "messages": [{"role": "user", "content": STAGE1}], "max_tokens": 128, "temperature": 0.0}
    assert received[1] == {
        "model": "m",
        "messages": [{"role": "user", "content": f"{STAGE1} 24 pictures were taken at the zoo. {TRIGGER}"}],
        "max_tokens": 32,
        "temperature": 0.0,
    }


def test_completions_teacher_gets_its_continuation_with_exactly_one_space_before_it(store_root: str) -> None:
    one_question(store_root, 2)
    received: list[dict] = []
    # A completion usually starts with the space after "step by step." (question 0); some servers drop it (question 1).
    said = {QUESTION: " 24 pictures were taken at the zoo.", f"{QUESTION} (1)": "24 pictures were taken at the zoo."}

    def reply(body: dict, chat: bool) -> dict:
        text = prompt_of(body, chat)
        question = text.split("Q: ", 1)[1].split("\nA:", 1)[0]
        return completion(said[question] if text.endswith("step by step.") else " 24.", chat)

    with Served(lambda: scripted_app(reply, received)) as server:
        register(store_root, server.url, "completions")
        harvest(HarvestConfig(teacher="t", task="zoo", concurrency=1), store_root)
    for question in said:
        stage1 = f"Q: {question}\nA: Let's think step by step."
        assert [b["prompt"] for b in received if b["prompt"].startswith(stage1)] == [stage1, f"{stage1} 24 pictures were taken at the zoo. {TRIGGER}"]
    assert {r["rationale"] for r in rationales.read(store_root).to_pylist()} == set(said.values())  # stored as the teacher wrote them


def test_a_model_the_server_names_differently_is_one_warning_per_harvest(store_root: str, caplog: pytest.LogCaptureFixture) -> None:
    one_question(store_root, 6)
    received: list[dict] = []
    with Served(lambda: scripted_app(teacher_saying("24 pictures.", model="SmolLM2-135M-Instruct-Q8_0.gguf"), received)) as server:
        register(store_root, server.url, "chat", model="gpt-4o-mini")
        with caplog.at_level(logging.WARNING, logger="pst.harvest"):
            s = harvest(HarvestConfig(teacher="t", task="zoo"), store_root)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("pst")]
    assert len(received) == 12 and len(warnings) == 1 and s.warnings == warnings and "\n" not in warnings[0]
    assert "'gpt-4o-mini'" in warnings[0] and "'SmolLM2-135M-Instruct-Q8_0.gguf'" in warnings[0]
    assert s.served_model == "SmolLM2-135M-Instruct-Q8_0.gguf"


def test_the_cli_prints_the_model_warning_once_and_a_dated_snapshot_name_is_no_mismatch(store_root: str) -> None:
    one_question(store_root, 4)
    with Served(lambda: scripted_app(teacher_saying("24 pictures.", model="llama.gguf"), [])) as server:
        register(store_root, server.url, "chat", model="gpt-4o-mini")
        result = CliRunner().invoke(app, ["harvest", "--teacher", "t", "--task", "zoo", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")] == [
        (
            "warning: teacher 't' asks for model 'gpt-4o-mini' but the server reports 'llama.gguf'; rows are stored under 'gpt-4o-mini' "
            "(re-register the teacher with --model llama.gguf if that is the model it serves)"
        )
    ]
    one_question(store_root, 5)  # one new question, answered by a dated snapshot of the model asked for
    with Served(lambda: scripted_app(teacher_saying("24 pictures.", model="gpt-4o-mini-2024-07-18"), [])) as server:
        register(store_root, server.url, "chat", model="gpt-4o-mini")
        s = harvest(HarvestConfig(teacher="t", task="zoo"), store_root)
    assert s.succeeded == 1 and s.warnings == [] and s.served_model == "gpt-4o-mini-2024-07-18"
