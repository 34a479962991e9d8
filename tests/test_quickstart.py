"""`pst quickstart` end to end (shrunk): offline, local teacher, all five strategies, a report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
STRATEGIES = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]


def test_quickstart_config_is_valid_for_every_stage() -> None:
    from flows.config import load, train_options
    from flows.quickstart import config_path
    from pst_core.config import from_dict
    from pst_core.embed import EmbedConfig
    from pst_core.evaluate.config import EvalConfig
    from pst_core.harvest.config import HarvestConfig
    from pst_core.prepare import PrepareConfig
    from pst_core.train.config import resolve

    for name in ("configs/quickstart.yaml", "configs/gpu.yaml"):
        cfg = load(config_path(str(Path(__file__).resolve().parent.parent / name)))
        from_dict(PrepareConfig, cfg["prepare"])
        from_dict(HarvestConfig, {k: v for k, v in cfg["harvest"].items() if k != "splits"}, teacher="t", task="coin_flip")
        from_dict(EmbedConfig, cfg["embed"])
        from_dict(EvalConfig, cfg["evaluate"])
        assert cfg["strategies"] == STRATEGIES
        for strategy in cfg["strategies"]:
            resolve({**train_options(cfg["train"], strategy), "strategy": strategy, "task": "coin_flip", "teacher": "t"})


def test_quickstart_runs_offline_and_reports_every_strategy(prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import quickstart

    # No datasets folder: generated tasks and the rule-based local teacher, as on a fresh machine.
    monkeypatch.setenv("PST_DATASETS_DIR", str(tmp_path / "no-datasets"))
    secret = "sk-QUICKSTART-LEAKCHECK-7d41"
    monkeypatch.setenv(quickstart.KEY_ENV, secret)  # the key the harvest client sends to the local teacher
    base = yaml.safe_load((Path(quickstart.settings.REPO_ROOT) / quickstart.DEFAULT_CONFIG).read_text())
    base.update(tasks=["coin_flip"], prepare={"generated_size": 40})
    base["train"].update(max_steps=2, max_train_examples=16, max_val_examples=4)
    base["evaluate"].update(max_examples=6, max_new_tokens=8)
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(base))
    root = str(tmp_path / "data")

    result = quickstart.run(str(config), root)
    assert result["teacher"] == "local-rules" and not result["recorded"]
    report = Path(result["report"]["markdown"]).read_text()
    for strategy in STRATEGIES:
        assert f"| {strategy} |" in report, f"{strategy} missing from the report"
    assert {r["strategy"] for r in result["runs"]} == set(STRATEGIES)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["runs"])
    lines = "\n".join(quickstart.where_to_look(result))
    assert f"{root}/rationales" in lines and result["report"]["markdown"] in lines and "UI:" in lines
    assert_key_nowhere(secret, tmp_path)


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
