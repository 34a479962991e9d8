"""The shipped configs (configs/*.yaml) pass the full up-front validation of their driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from pst_core.config import from_dict, load_file

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
STRATEGIES = ["answer_only", "pre_thinking", "prefix", "post_thinking", "pst"]


@pytest.mark.parametrize("name, strategies", [("quickstart.yaml", ["pre_thinking", "pst"]), ("quickstart-tiny.yaml", STRATEGIES),
                                               ("gpu.yaml", STRATEGIES)])
def test_pipeline_configs_validate_every_stage_and_strategy(name: str, strategies: list[str]) -> None:
    from flows.config import load, train_options, validate
    from pst_core.train.config import resolve

    cfg = load(str(CONFIGS / name))
    validate(cfg)
    assert cfg["strategies"] == strategies
    for strategy in strategies:  # validation exact match generates as evaluate does
        train = resolve({**train_options(cfg["train"], strategy), "strategy": strategy, "task": "coin_flip", "teacher": "t"})
        assert (train.eval_max_new_tokens, train.eval_batch_size) == (cfg["evaluate"]["max_new_tokens"], cfg["evaluate"]["batch_size"])


def test_gpu_config_selects_by_exact_match_with_the_test_budget() -> None:
    from flows.config import load, train_options

    cfg = load(str(CONFIGS / "gpu.yaml"))
    pre = train_options(cfg["train"], "pre_thinking")
    assert pre["select_by"] == "exact_match" and pre["eval_max_new_tokens"] == cfg["evaluate"]["max_new_tokens"]


@pytest.mark.parametrize("name", ["paper-cpu.yaml", "paper-cpu-palm.yaml", "paper-cpu-long.yaml", "paper-cpu-longer.yaml"])
def test_cpu_paper_configs_validate_and_screen_their_experiment_tasks(name: str) -> None:
    from pst_core.evaluate import paper

    cfg = from_dict(paper.PaperConfig, load_file(CONFIGS / name))
    assert set(cfg.tasks) <= set(paper.screened(cfg)) and cfg.out.startswith("bench/results/")


def test_paper_config_validates_every_run_up_front() -> None:
    from pst_core.evaluate import paper

    cfg = from_dict(paper.PaperConfig, load_file(CONFIGS / "paper.yaml"))  # validate() builds every run's TrainConfig
    assert cfg.strategies == STRATEGIES and "eval_max_new_tokens" not in cfg.train
    options = paper.run_options(cfg, cfg.tasks[0], "pre_thinking", cfg.seeds[0], paper.candidates(cfg, "pre_thinking")[0])
    assert options["eval_max_new_tokens"] == cfg.evaluate["max_new_tokens"]
    assert all(isinstance(point["lr"], float) for s in STRATEGIES for point in paper.candidates(cfg, s))
