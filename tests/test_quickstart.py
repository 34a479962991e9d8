"""`pst quickstart` end to end (shrunk): offline, local teacher, all five strategies, a report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
STRATEGIES = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]


def _shrunk(tmp_path: Path, name: str, **train: object) -> str:
    from flows import quickstart

    base = yaml.safe_load((Path(quickstart.settings.REPO_ROOT) / name).read_text())
    base.update(tasks=["coin_flip"], prepare={"generated_size": 40})
    base["train"].update(max_train_examples=16, max_val_examples=4, **train)
    base["evaluate"].update(max_examples=6, max_new_tokens=8)
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(base))
    return str(config)


def test_quickstart_distils_the_real_student_offline(prefect_harness: None, smollm2, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make quickstart` (shrunk): the real SmolLM2-135M, scored before and after, through every stage."""
    from flows import quickstart

    # No datasets folder: generated tasks and the rule-based local teacher, as on a fresh machine.
    monkeypatch.setenv("PST_DATASETS_DIR", str(tmp_path / "no-datasets"))
    secret = "sk-QUICKSTART-LEAKCHECK-7d41"
    monkeypatch.setenv(quickstart.KEY_ENV, secret)  # the key the harvest client sends to the local teacher
    root = tmp_path / "data"
    (root / "models").mkdir(parents=True)
    (root / "models" / smollm2[1].name).symlink_to(smollm2[1])  # converted once per test session
    result = quickstart.run(_shrunk(tmp_path, quickstart.DEFAULT_CONFIG, max_steps=2, batch_size=4), str(root))
    assert result["teacher"] == "local-rules" and not result["recorded"] and not result["tiny"]
    report = Path(result["report"]["markdown"]).read_text()
    for strategy in ("untrained", "pre_thinking", "pst"):
        assert f"| {strategy} |" in report, f"{strategy} missing from the report"
    assert "majority %" in report
    assert {r["strategy"] for r in result["runs"]} == {"pre_thinking", "pst"}
    assert [r["strategy"] for r in result["untrained"]] == ["untrained"]
    assert all(r["student"] == "HuggingFaceTB/SmolLM2-135M-Instruct" for r in result["runs"] + result["untrained"])
    lines = "\n".join(quickstart.where_to_look(result))
    assert f"{root}/rationales" in lines and result["report"]["markdown"] in lines and "UI:" in lines and "untrained" in lines
    assert_key_nowhere(secret, tmp_path)


def test_quickstart_tiny_runs_every_strategy(prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pst quickstart --tiny` (shrunk): all five strategies on the random-init smoke student."""
    from flows import quickstart

    monkeypatch.setenv("PST_DATASETS_DIR", str(tmp_path / "no-datasets"))
    result = quickstart.run(_shrunk(tmp_path, "configs/quickstart-tiny.yaml", max_steps=2), str(tmp_path / "data"))
    assert result["tiny"]
    report = Path(result["report"]["markdown"]).read_text()
    for strategy in STRATEGIES:
        assert f"| {strategy} |" in report, f"{strategy} missing from the report"
    assert {r["strategy"] for r in result["runs"]} == set(STRATEGIES)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["runs"])


def assert_key_nowhere(secret: str, data: Path) -> None:
    """The store, the Prefect database (task parameters, cache keys, logs, artifacts, events) and
    the persisted task results hold no trace of the API key."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, PREFECT_SERVER_DATABASE_CONNECTION_URL

    APILogWorker.drain_all(timeout=10)
    database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[-1]).parent
    folders = [data, database, Path(PREFECT_LOCAL_STORAGE_PATH.value())]
    assert any(f.suffix == ".db" for f in database.iterdir()), "the Prefect database was not found"
    for folder in folders:
        for f in folder.rglob("*"):
            assert not f.is_file() or secret.encode() not in f.read_bytes(), f"API key found in {f}"


def test_prefect_commands_turn_telemetry_off_unless_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from flows.commands import prefect_defaults

    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    prefect_defaults()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and os.environ["DO_NOT_TRACK"] == "0"
