"""Pipeline config and parameter checks (flows.config): bad names, keys and values fail before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.config import check_names, load
from pst_core import teachers
from pst_core.errors import ConfigError


def test_unknown_teacher_task_or_strategy_fails_first_with_the_valid_names(store_root: str) -> None:
    teachers.add(store_root, teachers.TeacherConfig(name="gpt", base_url="http://localhost:1/v1", model="m"))
    check_names(store_root, ["gpt"], ["coin_flip"], ["pst"])
    for kwargs, expected in (
        ({"teachers": ["gtp"]}, "unknown teacher 'gtp' \\(gpt\\)"),
        ({"tasks": ["coinflip"]}, "Did you mean coin_flip"),
        ({"strategies": ["psst"]}, "Did you mean pst"),
    ):
        with pytest.raises(ConfigError, match=expected):
            check_names(store_root, **kwargs)


def test_unknown_config_section_is_named(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("harvst: {limit: 3}\n")
    with pytest.raises(ConfigError, match="unknown section\\(s\\) harvst"):
        load(str(path))


def _config(tmp_path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("train: {pst: {lamda_sem: 1}}\n", "pipeline config train.pst: PSTConfig: unknown option 'lamda_sem' \\(did you mean 'lambda_sem'\\?\\)"),
    ("train: {prefix: {alpha: high}}\n", "pipeline config train \\(prefix\\): PrefixConfig: option 'alpha' must be a float, got str 'high'"),
    ("train: {lamda: 1}\n", "pipeline config train: TrainConfig: unknown option 'lamda'"),
    ("train: {lambda_sem: 1}\n", "pipeline config train: 'lambda_sem' is an option of pst only.*nest it under train.pst"),
    ("evaluate: {max_new_token: 8}\n", "pipeline config evaluate: EvalConfig: unknown option 'max_new_token'"),
    ("harvest: {splits: [train, validation], max_token: 8}\n", "pipeline config harvest: HarvestConfig: unknown option 'max_token'"),
    ("embed: {batch_size: '64'}\n", "pipeline config embed: EmbedConfig: option 'batch_size' must be an int, got str '64'"),
    ("prepare: {sorce: local}\n", "pipeline config prepare: PrepareConfig: unknown option 'sorce'"),
    ("report: {splt: test}\n", "pipeline config report: only split"),
    ("quickstart_student: {layer: 2}\n", "pipeline config quickstart_student: unknown option 'layer'"),
])
def test_validate_names_the_section_and_key_of_a_mistake(tmp_path, text: str, expected: str) -> None:
    from flows.config import validate

    with pytest.raises(ConfigError, match=expected):
        validate(load(_config(tmp_path, text)))


def test_a_string_learning_rate_from_json_fails_with_its_type(tmp_path) -> None:
    from flows.config import validate

    path = _config(tmp_path, json.dumps({"train": {"lr": "1e-4"}}), "p.json")
    with pytest.raises(ConfigError, match="train \\(answer_only\\): TrainConfig: option 'lr' must be a float, got str '1e-4'"):
        validate(load(path))
    validate(load(_config(tmp_path, "train: {lr: 1e-4, pst: {lambda_sem: 5e-1}}\n")))  # YAML exponents are floats


def test_distill_pipeline_validates_before_any_work(tmp_path, monkeypatch) -> None:
    from flows import pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("a stage started with an invalid config")

    for stage in ("prepare_flow", "harvest_flow", "embed_flow", "train_flow", "evaluate_flow"):
        monkeypatch.setattr(pipeline, stage, no_work)
    with pytest.raises(ConfigError, match="train.pst: PSTConfig: unknown option 'lamda_sem'"):
        pipeline.distill_pipeline.fn(tasks=["coin_flip"], teachers=[], config=_config(tmp_path, "train: {pst: {lamda_sem: 1}}\n"),
                                     root=str(tmp_path / "store"))
    assert not (tmp_path / "store").exists()


def test_validation_generation_comes_from_evaluate_unless_train_sets_it(tmp_path) -> None:
    from flows.config import train_options

    cfg = load(_config(tmp_path, "evaluate: {max_new_tokens: 48, batch_size: 12, dtype: float32}\n"
                                 "train: {pre_thinking: {eval_batch_size: 4}}\n"))
    assert {k: train_options(cfg["train"], "pst")[k] for k in ("eval_max_new_tokens", "eval_batch_size", "eval_dtype")} == {
        "eval_max_new_tokens": 48, "eval_batch_size": 12, "eval_dtype": "float32"}
    assert train_options(cfg["train"], "pre_thinking")["eval_batch_size"] == 4  # the train section wins where it is set


def test_a_pipeline_runs_config_json_has_the_evaluate_budget(tmp_path, monkeypatch) -> None:
    """As train_flow builds a run: the loaded config's train options, through the train task."""
    from flows.config import train_options
    from pst_core.train import checkpoint
    from pst_core.train import run as train_run
    import tasks.train as train_task

    def fake_train(cfg, root, run_id=None, dtype=None):  # what train() stores before fitting
        run = Path(root) / "runs" / run_id
        run.mkdir(parents=True)
        checkpoint.write_json(run / "config.json", checkpoint.config_dict(cfg))
        return run, {"steps": 0}

    monkeypatch.setattr(train_run, "train", fake_train)
    monkeypatch.setattr(train_run, "data_fingerprint", lambda cfg, root: "no-store-here")
    monkeypatch.setattr(train_task, "publish_metrics", lambda *a, **k: None)
    cfg = load(_config(tmp_path, "evaluate: {max_new_tokens: 48, batch_size: 12}\n"))
    out = train_task.train.fn(str(tmp_path), {**train_options(cfg["train"], "pre_thinking"), "teacher": "t", "task": "coin_flip",
                                              "strategy": "pre_thinking"})
    stored = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert (stored["eval_max_new_tokens"], stored["eval_batch_size"], stored["eval_dtype"]) == (48, 12, "auto")
