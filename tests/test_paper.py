"""`pst experiment paper` at toy scale on the CPU: the driver, not the result.

A two-layer random student for a few steps exercises every step the GPU run takes: replay harvest,
embedding, the validation grid, second seeds, test evaluation, robustness and the result files.
Its numbers mean nothing and are never written outside tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pst_core import answers
from pst_core.config import from_dict, load_file, to_dict
from pst_core.evaluate import paper, published

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def test_paper_config_is_valid_for_every_stage():
    from pst_core.embed import EmbedConfig
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.robustness import RobustnessConfig
    from pst_core.harvest.config import HarvestConfig
    from pst_core.prepare import PrepareConfig
    from pst_core.train.config import resolve

    cfg = from_dict(paper.PaperConfig, load_file(REPO / "configs" / "paper.yaml"))
    from_dict(PrepareConfig, cfg.prepare)
    from_dict(HarvestConfig, cfg.harvest, teacher="t", task="svamp")
    from_dict(EmbedConfig, cfg.embed)
    from_dict(EvalConfig, cfg.evaluate)
    from_dict(RobustnessConfig, {k: v for k, v in cfg.robustness.items() if k != "tasks"}, task="svamp", teacher="t")
    assert cfg.strategies == paper.STRATEGY_NAMES and len(cfg.tasks) >= 4 and len(cfg.seeds) >= 2
    for strategy in cfg.strategies:
        for point in paper.candidates(cfg, strategy):
            resolve(paper.run_options(cfg, "svamp", strategy, 0, point))
    assert {len(paper.candidates(cfg, s)) for s in cfg.strategies} == {2}  # the same tuning budget for every strategy


def test_bad_grid_is_one_clear_error():
    from pst_core.errors import ConfigError

    with pytest.raises(ConfigError, match="search values must be non-empty lists"):
        paper.PaperConfig(search={"lr": 0.001})
    with pytest.raises(ConfigError, match="unknown strategies"):
        paper.PaperConfig(strategies=["pst", "cot"])
    with pytest.raises(ConfigError, match="robustness tasks and strategies must be among"):
        paper.PaperConfig(tasks=["svamp"], robustness={"tasks": ["gsm8k"]})
    with pytest.raises(ConfigError, match="option 'seeds' must be a list of ints, got list \\['0'\\]"):
        from_dict(paper.PaperConfig, {"seeds": ["0"]})


BASE = {"tasks": ["multiarith", "svamp"], "strategies": ["pre_thinking", "pst"], "seeds": [0, 1],
        "search": {"lr": [1e-4, 3e-4]}, "evaluate": {"max_new_tokens": 48},
        "robustness": {"tasks": ["svamp"], "strategies": ["pre_thinking", "pst"], "rates": [0.0, 0.5]}}


def _with(section: str, values: dict | list) -> dict:
    return {**BASE, section: {**BASE.get(section, {}), **values} if isinstance(values, dict) else values}


@pytest.mark.parametrize(("cfg", "expected"), [
    (_with("train", {"pst": {"lamda_sem": 1}}), "PaperConfig train.pst: PSTConfig: unknown option 'lamda_sem' \(did you mean 'lambda_sem'\?\)"),
    (_with("train", {"lambda_sem": 1}), "PaperConfig train: 'lambda_sem' is an option of pst only.*nest it under train.pst"),
    (_with("train", {"answer_only": {"lr": 1e-3}, "prefix": {"alfa": 0.3}}), "PaperConfig train.prefix: PrefixConfig: unknown option 'alfa'"),
    (_with("train", {"lr": "1e-4"}), "PaperConfig train \(pre_thinking\): TrainConfig: option 'lr' must be a float, got str '1e-4'"),
    (_with("search", {"lr_": [1e-3]}), "PaperConfig search: TrainConfig: unknown option 'lr_' \(did you mean 'lr'\?\)"),
    (_with("search", {"pst": {"lambda_semm": [1.0]}}), "PaperConfig search.pst: PSTConfig: unknown option 'lambda_semm'"),
    (_with("search", {"lr": ["1e-4", 3e-4]}), "PaperConfig search \(pre_thinking candidate 0: .*option 'lr' must be a float, got str '1e-4'"),
    (_with("search", {"pst": {"sem_loss": ["cosine", "l2"]}}), "PaperConfig search \(pst candidate 1.*sem_loss must be cosine, mse or infonce"),
    (_with("robustness", {"rate": [0.5]}), "PaperConfig robustness: RobustnessConfig: unknown option 'rate' \(did you mean 'rates'\?\)"),
    (_with("robustness", {"rates": [0.0, "0.5"]}), "PaperConfig robustness: RobustnessConfig: option 'rates' must be a list of floats"),
    (_with("robustness", {"kinds": ["noise"]}), "PaperConfig robustness: RobustnessConfig: kinds must be among"),
    ({**BASE, "robustness": {"task": "svamp"}}, "PaperConfig robustness: RobustnessConfig: task are set by the experiment"),
    ({**BASE, "robustness": {"tasks": ["svamp"]}}, "strategies \['post_thinking'\] are not among the experiment's strategies"),
    (_with("evaluate", {"max_new_token": 8}), "PaperConfig evaluate: EvalConfig: unknown option 'max_new_token'"),
    (_with("evaluate", {"batch_size": "64"}), "PaperConfig evaluate: EvalConfig: option 'batch_size' must be an int, got str '64'"),
    (_with("prepare", {"sorce": "local"}), "PaperConfig prepare: PrepareConfig: unknown option 'sorce'"),
    (_with("harvest", {"max_token": 64}), "PaperConfig harvest: HarvestConfig: unknown option 'max_token'"),
    (_with("embed", {"batchsize": 64}), "PaperConfig embed: EmbedConfig: unknown option 'batchsize'"),
    ({**BASE, "tasks": ["svamp", "multiarth"]}, "PaperConfig tasks: unknown task 'multiarth'"),
])
def test_every_nested_mistake_fails_when_the_config_is_built(cfg: dict, expected: str) -> None:
    from pst_core.errors import ConfigError

    with pytest.raises(ConfigError, match=expected):
        from_dict(paper.PaperConfig, cfg)


def test_a_bad_config_fails_before_anything_is_written(tmp_path, monkeypatch) -> None:
    import yaml

    from pst_core.errors import ConfigError

    monkeypatch.setenv("PST_DATA_DIR", str(tmp_path / "store"))
    config = tmp_path / "paper.yaml"
    config.write_text(yaml.safe_dump({**_with("train", {"pst": {"lamda_sem": 1}}), "out": str(tmp_path / "out")}))
    for phase in ("data", "runs"):
        with pytest.raises(ConfigError, match="train.pst"):
            paper.run(config, phase=phase)
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()


def test_validation_options_that_differ_from_the_test_evaluation_are_rejected() -> None:
    from pst_core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.eval_max_new_tokens is 160 but evaluate.max_new_tokens is 48: "
                                          "validation is scored as test: set evaluate.max_new_tokens instead"):
        from_dict(paper.PaperConfig, _with("train", {"eval_max_new_tokens": 160}))
    with pytest.raises(ConfigError, match="set evaluate.dtype instead"):
        from_dict(paper.PaperConfig, _with("train", {"pst": {"eval_dtype": "float32"}}))
    with pytest.raises(ConfigError, match="search.eval_batch_size: validation is scored as test"):
        from_dict(paper.PaperConfig, _with("search", {"eval_batch_size": [8, 16]}))
    from_dict(paper.PaperConfig, _with("train", {"eval_max_new_tokens": 48}))  # the same value is no mistake


def fake_floor(task, ecfg):
    """The untrained student's metrics, without loading it."""
    return {"accuracy": 0.1, "majority_accuracy": 0.2, "n": 12}


def test_a_published_floor_is_reused_when_the_budget_is_over_the_untrained_cap(tmp_path) -> None:
    """The untrained student is scored with at most UNTRAINED_MAX_NEW_TOKENS; its published metrics are
    looked up under that config, so a 128-token experiment does not score the floor again every call."""
    from pst_core.evaluate.runner import UNTRAINED_MAX_NEW_TOKENS, output_names, untrained_config, untrained_run_id, write_json

    cfg = from_dict(paper.PaperConfig, {**BASE, "out": str(tmp_path / "out"), "evaluate": {"max_new_tokens": 128}})
    ecfg = paper.eval_config(cfg)
    assert untrained_config(ecfg).max_new_tokens == UNTRAINED_MAX_NEW_TOKENS < ecfg.max_new_tokens
    rid = untrained_run_id("coin_flip", paper.student_of(cfg))
    pub = published.published_dir(cfg.out, rid)
    pub.mkdir(parents=True)
    write_json(pub / output_names("test")[1], {**fake_floor("coin_flip", ecfg), "eval_config": to_dict(untrained_config(ecfg)),
                                              "answers_version": answers.EXTRACTOR_VERSION})

    def scored_again(task, e):
        raise AssertionError("the published floor was scored again")

    floor = paper.untrained_floor(cfg, "coin_flip", ecfg, str(tmp_path / "store"), lambda _: None, lambda _: None, scored_again)
    assert (floor["accuracy"], floor["majority"], floor["n"]) == (0.1, 0.2, 12)


def test_every_run_validates_as_its_test_evaluation_generates(tmp_path) -> None:
    """config.json of grid, final and robustness runs, built through the driver, has evaluate's budget, batch and dtype."""
    from pst_core.train import checkpoint
    from pst_core.train.config import resolve

    root = tmp_path / "store"
    cfg = from_dict(paper.PaperConfig, {**BASE, "strategies": ["pre_thinking", "pst"], "out": str(tmp_path / "out"),
                                        "evaluate": {"max_new_tokens": 48, "batch_size": 12, "dtype": "float32"}})

    def fake_train(options, rid):  # what pst_core.train.run.train stores, without the training
        run = root / "runs" / rid
        run.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json(run / "config.json", checkpoint.config_dict(resolve(options)))
        checkpoint.write_json(run / "train_metrics.json", {"best": {"val_exact_match": 0.5}})
        return run

    def fake_eval(run_dir, ecfg):
        return {"accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 12, "mean_new_tokens": 3.0, "mean_latency_ms": 1.0}

    paper.run_runs(cfg, str(root), None, fake_train, eval_fn=fake_eval, log=lambda _: None, floor_fn=fake_floor)
    stored = [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*/config.json"))]
    assert len(stored) == 2 * (2 * 2 + 2) + 2 * 1  # tasks x strategies x (grid + second seed), robustness p = 0.5
    assert {(c["eval_max_new_tokens"], c["eval_batch_size"], c["eval_dtype"]) for c in stored} == {(48, 12, "float32")}


def test_a_teacher_name_is_never_reused_for_another_recorded_model(tmp_path):
    from pst_core import teachers
    from pst_core.errors import ConfigError

    root = str(tmp_path / "store")
    teachers.add(root, teachers.TeacherConfig(name="replay", base_url="http://127.0.0.1:1/v1", model="text-davinci-002 (recorded)"))
    with pytest.raises(ConfigError, match="already registered for 'text-davinci-002"):
        paper.prepare_data(paper.PaperConfig(teacher="replay", teacher_model="palm-540b", tasks=["cqa"]), root, str(tmp_path))
    assert not (tmp_path / "store" / "examples").exists()  # nothing was written


@pytest.fixture(scope="module")
def toy(tmp_path_factory, datasets_dir):
    """Both phases once: 2 tasks x (pre_thinking, pst) x 2 seeds, a grid of 2 candidates (14 tiny runs)."""
    from flows.quickstart import quiet_libraries, tiny_student
    from pst_core.train.run import train_fn

    base = tmp_path_factory.mktemp("paper")
    root = str(base / "store")
    quiet_libraries()
    cfg = paper.PaperConfig(
        tasks=["multiarith", "coin_flip"], strategies=["pre_thinking", "pst"], seeds=[0, 1], out=str(base / "results"),
        harvest={"limit": 48}, embed={"batch_size": 64},
        train={"student": tiny_student(root), "max_steps": 6, "eval_every": 3, "batch_size": 8, "max_val_examples": 6,
               "progress": False, "lr": 3e-3},
        search={"lr": [1e-3, 3e-3]},
        evaluate={"max_examples": 12, "max_new_tokens": 16, "batch_size": 12, "bootstrap_samples": 50},
        robustness={"tasks": ["multiarith"], "strategies": ["pre_thinking", "pst"], "rates": [0.0, 0.5]},
        pilot=["pre_thinking", "pst"])
    logs: list[str] = []
    data = paper.prepare_data(cfg, root, str(datasets_dir), log=logs.append)
    result = paper.run_runs(cfg, root, str(datasets_dir), train_fn(root), log=logs.append, command="pst experiment paper --toy")
    return {"cfg": cfg, "root": root, "data": data, "result": result, "base": base, "datasets": datasets_dir}


def test_data_phase_harvests_through_the_replay_teacher_and_embeds(toy):
    harvested = {(h["task"], h["split"]): h for h in toy["data"]["harvested"]}
    assert set(harvested) == {(t, s) for t in ("multiarith", "coin_flip") for s in ("train", "validation")}
    assert all(h["sent"] > 0 and h["failed"] == 0 for h in harvested.values())
    assert (Path(toy["root"]) / "embeddings").is_dir()
    stored = json.loads((Path(toy["root"]) / "experiments" / "paper" / "teacher.json").read_text())
    assert stored == toy["data"]["teacher"] == toy["result"]["teacher"]  # carried to machines without the datasets folder


def test_grid_is_chosen_on_validation_only_and_reused_as_the_first_seed(toy):
    root, cfg, chosen = Path(toy["root"]), toy["cfg"], toy["result"]["chosen"]
    for (task, strategy), pick in chosen.items():
        scores = {}
        for k in range(len(paper.candidates(cfg, strategy))):
            run = root / "runs" / paper.run_id(cfg, task, strategy, k, 0)
            tm = json.loads((run / "train_metrics.json").read_text())
            assert json.loads((run / "config.json").read_text())["select_by"] == "exact_match"
            scores[k] = tm["best"]["val_exact_match"]
            assert not (run / "metrics.json").exists() or k == pick["candidate"]  # only the chosen one sees test
        assert pick["candidate"] == max(scores, key=lambda k: (scores[k], -k))
        assert len(pick["grid"]) == 2


def test_a_strategy_grid_multiplies_the_shared_one() -> None:
    cfg = from_dict(paper.PaperConfig, {**BASE, "search": {"lr": [1e-3, 3e-3], "pst": {"lambda_sem": [0.5, 1.0]}}})
    assert len(paper.candidates(cfg, "pre_thinking")) == 2
    assert paper.candidates(cfg, "pst") == [{"lambda_sem": a, "lr": b} for a in (0.5, 1.0) for b in (1e-3, 3e-3)]


def test_accuracy_table_is_the_mean_over_seeds_of_the_test_predictions(toy):
    root, result = Path(toy["root"]), toy["result"]
    for row in result["summary"]:
        runs = [r for r in result["rows"] if (r["task"], r["strategy"]) == (row["task"], row["strategy"])]
        assert sorted(r["seed"] for r in runs) == [0, 1]
        accs = []
        for r in runs:
            preds = pq.read_table(root / "runs" / r["run_id"] / "predictions.parquet").to_pylist()
            assert len(preds) == 12
            accs.append(sum(p["correct"] for p in preds) / len(preds))
        assert row["mean"] == pytest.approx(sum(accs) / 2)
    out = Path(result["out"])
    names = {p.name for p in out.iterdir()}
    assert {"accuracy.md", "selection.md", "efficiency.md", "results.json", "README.md", "robustness-multiarith.md",
            "robustness-multiarith.png"} <= names
    table = (out / "accuracy.md").read_text()
    assert "| multiarith |" in table and "| coin_flip |" in table and "teacher" in table
    assert "pst experiment paper --toy" in (out / "README.md").read_text()
    assert "pre_thinking new tokens" in (out / "efficiency.md").read_text()


def test_teacher_accuracy_is_the_recorded_teachers_on_the_same_test_questions(toy):
    teacher = toy["result"]["teacher"]
    for task in ("multiarith", "coin_flip"):
        assert teacher[task]["n"] == teacher[task]["test_n"] > 0  # every test question has a recorded answer
        assert 0.5 < teacher[task]["accuracy"] <= 1.0


def test_robustness_reuses_the_final_clean_runs_and_a_rerun_trains_nothing(toy, monkeypatch):
    from pst_core.train.run import train_fn
    from pst_core.train import loop

    root, cfg = Path(toy["root"]), toy["cfg"]
    runs = {p.name for p in (root / "runs").iterdir()}
    assert not [r for r in runs if "clean" in r]  # p = 0 is the final seed-0 run, not a new one
    assert [r for r in runs if "robustness-multiarith" in r and "shuffle050" in r]

    def no_training(*a, **k):
        raise AssertionError("a finished experiment retrained a run")

    monkeypatch.setattr(loop, "fit", no_training)
    again = paper.run_runs(cfg, str(root), str(toy["datasets"]), train_fn(str(root)), log=lambda _: None)
    assert again["summary"] == toy["result"]["summary"]
    assert again["wall_s"] > toy["result"]["wall_s"] > 0  # wall time adds up over calls, kept beside the published runs
    assert json.loads((Path(cfg.out) / "wall.json").read_text())["runs"] >= again["wall_s"]  # and the tables' log lines


BARE_MISSING = ("prefect", "openai", "datasets", "aiohttp", "typer", "matplotlib")


def bare_site(tmp: Path) -> Path:
    """This venv's site-packages without the packages a bare GPU machine lacks (links, nothing copied)."""
    import site

    site_dir = Path(next(p for p in site.getsitepackages() if p.endswith("site-packages")))
    bare = tmp / "bare-site"
    bare.mkdir()
    for entry in site_dir.iterdir():
        top = entry.name.split("-")[0].split(".")[0].lower()
        if top not in BARE_MISSING and not entry.name.endswith(".pth"):
            (bare / entry.name).symlink_to(entry)
    return bare


def test_runs_phase_needs_only_torch_and_transformers_and_plots_are_drawn_later(toy, tmp_path):
    """As on the lent GPU machine: no prefect, openai, datasets, aiohttp, typer or matplotlib installed."""
    import subprocess
    import sys

    import yaml

    out = tmp_path / "bare-results"
    config = tmp_path / "bare.yaml"
    config.write_text(yaml.safe_dump({
        "tasks": ["multiarith"], "strategies": ["pst"], "seeds": [0], "name": "bare", "out": str(out),
        "train": {k: toy["cfg"].train[k] for k in ("student", "batch_size", "max_val_examples")}
        | {"max_steps": 4, "eval_every": 2},
        "evaluate": {"max_examples": 8, "max_new_tokens": 8, "bootstrap_samples": 20},
        "robustness": {"tasks": ["multiarith"], "strategies": ["pst"], "rates": [0.0, 0.5]}}))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{REPO}:{bare_site(tmp_path)}",
           "PST_DATA_DIR": toy["root"], "PST_DATASETS_DIR": str(toy["datasets"]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-S", "-m", "pst_core.evaluate.paper", "--config", str(config), "--phase", "runs"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "matplotlib is not installed" in proc.stdout
    assert (out / "accuracy.md").is_file() and not (out / "robustness-multiarith.png").exists()
    bad = subprocess.run([sys.executable, "-S", "-m", "pst_core.evaluate.paper", "--config", str(config), "--phase", "train"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr

    paper.plots(out, log=lambda _: None)  # here matplotlib is installed
    assert (out / "robustness-multiarith.png").stat().st_size > 10_000


def test_changed_evaluation_settings_evaluate_again_without_training(toy, monkeypatch, tmp_path):
    import dataclasses

    from pst_core.train import loop
    from pst_core.train.run import train_fn

    monkeypatch.setattr(loop, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    # max_examples only: the generation budget, batch and dtype are also validation's, so they are training options
    cfg = dataclasses.replace(toy["cfg"], evaluate={**toy["cfg"].evaluate, "max_examples": 10}, out=str(tmp_path / "r"))
    seen = []

    def fake_eval(run_dir, ecfg):
        seen.append((Path(run_dir).name, ecfg.max_examples))
        return {"accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 12, "mean_new_tokens": 3.0, "mean_latency_ms": 1.0}

    paper.run_runs(cfg, toy["root"], None, train_fn(toy["root"]), eval_fn=fake_eval, log=lambda _: None, floor_fn=fake_floor)
    finals = {r["run_id"] for r in toy["result"]["rows"]}
    assert finals <= {name for name, _ in seen} and {n for _, n in seen} == {10}
    # without the datasets folder the teacher column comes from the data phase's teacher.json
    assert "| multiarith | 12 |" in (tmp_path / "r" / "accuracy.md").read_text()
    assert json.loads((tmp_path / "r" / "results.json").read_text())["teacher_accuracy"] == toy["result"]["teacher"]



def test_a_run_carried_back_without_its_checkpoint_is_trained_again(toy, monkeypatch, tmp_path):
    """Results copied back from a lease that ended keep json files only: an unevaluated run is retrained, once."""
    import dataclasses
    import shutil

    from pst_core.train import loop
    from pst_core.train.run import train_fn

    rid = next(r["run_id"] for r in toy["result"]["rows"] if r["seed"] == 1)
    run = Path(toy["root"]) / "runs" / rid
    shutil.rmtree(run / "checkpoint")
    (run / "metrics.json").unlink()
    fits = []
    real_fit = loop.fit
    monkeypatch.setattr(loop, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    cfg = dataclasses.replace(toy["cfg"], out=str(tmp_path / "r"))
    again = paper.run_runs(cfg, toy["root"], str(toy["datasets"]), train_fn(toy["root"]), log=lambda _: None)
    assert len(fits) == 1 and (run / "checkpoint" / "config.json").is_file() and (run / "metrics.json").is_file()
    assert rid in {r["run_id"] for r in again["rows"]}


def test_every_run_is_published_without_checkpoints(toy):
    out, root = Path(toy["result"]["out"]), Path(toy["root"])
    published = {p.name for p in (out / "runs").iterdir()}
    trained = {p.name for p in (root / "runs").iterdir() if p.name.startswith(f"{toy['cfg'].name}-") or "-untrained-" in p.name}
    assert published == trained  # grid, second seeds, robustness and the untrained floors
    for rid in trained - {p for p in published if "untrained" in p}:
        files = {p.name for p in (out / "runs" / rid).iterdir()}
        assert {"config.json", "data.json", "history.jsonl", "train_metrics.json"} <= files
        assert not {"best", "last", "checkpoint"} & files
    for r in toy["result"]["rows"]:
        assert (out / "runs" / r["run_id"] / "predictions.parquet").is_file()
        assert json.loads((out / "runs" / r["run_id"] / "metrics.json").read_text())["accuracy"] == r["accuracy"]


def test_a_fresh_machine_resumes_from_the_published_results_and_trains_nothing(toy, monkeypatch, tmp_path):
    """As a session on a new machine after `git clone`: the store is rebuilt by the data phase (no
    runs), the result folder comes from git. Nothing is trained or evaluated again."""
    import shutil

    from pst_core.train import loop
    from pst_core.train.run import train_fn

    root = tmp_path / "store"
    shutil.copytree(toy["root"], root, ignore=lambda d, names: ["runs"] if Path(d) == Path(toy["root"]) else [])
    out = tmp_path / "results"
    shutil.copytree(toy["result"]["out"], out)
    monkeypatch.setattr(loop, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a published run was retrained")))
    import pst_core.evaluate.runner as runner

    monkeypatch.setattr(runner, "evaluate_run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("evaluated again")))
    import dataclasses

    cfg = dataclasses.replace(toy["cfg"], out=str(out))
    again = paper.run_runs(cfg, str(root), str(toy["datasets"]), train_fn(str(root)), log=lambda _: None)
    assert again["summary"] == toy["result"]["summary"]
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())
    assert (out / "paired.md").read_text() == (Path(toy["result"]["out"]) / "paired.md").read_text()


def test_published_results_of_other_data_are_not_reused(toy, tmp_path):
    import shutil

    from pst_core.evaluate import published

    out = tmp_path / "results"
    shutil.copytree(toy["result"]["out"], out)
    r = toy["result"]["rows"][0]
    options = json.loads((out / "runs" / r["run_id"] / "config.json").read_text())
    assert published.reusable(out, r["run_id"], options, toy["root"]) is not None
    data = out / "runs" / r["run_id"] / "data.json"
    data.write_text(json.dumps({**json.loads(data.read_text()), "portable_fingerprint": "other"}))
    assert published.reusable(out, r["run_id"], options, toy["root"]) is None
    assert published.reusable(out, r["run_id"], {**options, "lr": 0.5}, toy["root"]) is None


def test_accuracy_table_has_the_untrained_student_and_the_majority_class(toy):
    out, result = Path(toy["result"]["out"]), toy["result"]
    header = next(line for line in (out / "accuracy.md").read_text().splitlines() if line.startswith("| task"))
    assert header.startswith("| task | n | teacher | untrained | majority |")
    results = json.loads((out / "results.json").read_text())
    for task in toy["cfg"].tasks:
        floor = results["untrained"][task]
        preds = pq.read_table(out / "runs" / floor["run_id"] / "predictions.parquet").to_pylist()
        assert len(preds) == floor["n"] == 12
        assert floor["accuracy"] == sum(p["correct"] for p in preds) / 12
        golds = [p["gold_answer"] for p in preds]
        assert floor["majority"] == max(golds.count(g) for g in golds) / 12
    assert result["chosen"]


def test_paired_table_counts_the_discordant_test_questions_of_pst_and_each_baseline(toy):
    out = Path(toy["result"]["out"])
    results = json.loads((out / "results.json").read_text())
    rows = {(r["task"], r["baseline"]): r for r in results["paired"]}
    assert set(rows) == {("multiarith", "pre_thinking"), ("coin_flip", "pre_thinking"), ("all tasks", "pre_thinking")}
    for task in ("multiarith", "coin_flip"):
        preds = {}
        for r in (x for x in toy["result"]["rows"] if x["task"] == task):
            table = pq.read_table(out / "runs" / r["run_id"] / "predictions.parquet").to_pylist()
            preds[(r["strategy"], r["seed"])] = {p["example_id"]: p["correct"] for p in table}
        b = sum(preds[("pst", s)][q] and not preds[("pre_thinking", s)][q] for s in (0, 1) for q in preds[("pst", s)])
        c = sum(preds[("pre_thinking", s)][q] and not preds[("pst", s)][q] for s in (0, 1) for q in preds[("pst", s)])
        row = rows[(task, "pre_thinking")]
        assert (row["a_only"], row["b_only"], row["questions"], row["seeds"]) == (b, c, 12, 2)
    pooled = rows[("all tasks", "pre_thinking")]
    assert pooled["questions"] == 24 and pooled["a_only"] == sum(rows[(t, "pre_thinking")]["a_only"] for t in ("multiarith", "coin_flip"))
    assert "| all tasks | pre_thinking | 24 x 2 |" in (out / "paired.md").read_text()


def test_pilot_scores_every_grid_point_on_validation_against_both_floors_and_trains_nothing_new(toy, monkeypatch, tmp_path):
    import dataclasses

    from pst_core.train import loop
    from pst_core.train.run import train_fn

    monkeypatch.setattr(loop, "fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("the pilot's runs are the grid's")))
    # A task the pilot screens may be left out of the experiment's tasks (it did not learn): still screened.
    cfg = dataclasses.replace(toy["cfg"], out=str(tmp_path / "pilot"), tasks=["coin_flip"], pilot_tasks=["multiarith", "coin_flip"],
                              robustness={})
    assert paper.data_tasks(cfg) == ["coin_flip", "multiarith"]
    result = paper.pilot(cfg, toy["root"], train_fn(toy["root"]), log=lambda _: None)
    assert [(r["task"], r["strategy"], r["run_id"][-6:]) for r in result["rows"]] == [
        (t, s, f"-c{k}-s0") for t in ("multiarith", "coin_flip") for s in cfg.pilot for k in range(2)]
    for r in result["rows"]:
        tm = json.loads((Path(toy["root"]) / "runs" / r["run_id"] / "train_metrics.json").read_text())
        assert r["val_exact_match"] == tm["best"]["val_exact_match"]
        floor = json.loads((Path(toy["root"]) / "runs" / f"{r['task']}-untrained-{Path(cfg.train['student']).name}"
                            / "metrics-validation.json").read_text())
        assert (r["untrained"], r["majority"]) == (floor["accuracy"], floor["majority_accuracy"]) and floor["n"] == 6
        assert r["p"] == pytest.approx(paper.binomial_tail(round(r["val_exact_match"] * r["n"]), r["n"], max(r["untrained"], r["majority"])))
    assert "| multiarith | pre_thinking |" in (tmp_path / "pilot" / "pilot.md").read_text()


def test_mcnemar_and_paired_bootstrap_agree_with_scipy_and_a_hand_count():
    from scipy.stats import binomtest

    from pst_core.evaluate import paired

    for b, c in [(0, 0), (3, 0), (10, 4), (7, 7), (40, 25), (1, 12)]:
        expected = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
        assert paired.mcnemar_exact(b, c) == pytest.approx(expected)
    a = [{"q1": True, "q2": True, "q3": False, "q4": True}, {"q1": True, "q2": False, "q3": False, "q4": True}]
    bb = [{"q1": False, "q2": True, "q3": False, "q4": True}, {"q1": True, "q2": True, "q3": True, "q4": False, "extra": True}]
    r = paired.compare(a, bb, samples=500)
    assert r["questions"] == 4 and r["seeds"] == 2  # "extra" is scored by one side only
    assert (r["a_only"], r["b_only"]) == (2, 2) and r["difference"] == 0.0
    assert r["ci_low"] <= 0.0 <= r["ci_high"]
    assert paired.compare([{"q": True}] * 2, [{"q": False}] * 2, samples=50)["difference"] == 1.0
    with pytest.raises(ValueError, match="same seeds"):
        paired.compare(a, bb[:1])


def test_rerun_trains_one_published_run_again_and_compares_its_accuracy(toy, tmp_path):
    import dataclasses
    import shutil

    from pst_core.train.run import train_fn

    out = tmp_path / "results"
    shutil.copytree(toy["result"]["out"], out)
    cfg = dataclasses.replace(toy["cfg"], out=str(out))
    r = toy["result"]["rows"][0]
    logs: list[str] = []
    result = paper.rerun(cfg, toy["root"], r["run_id"], train_fn(toy["root"]), log=logs.append)
    rerun_dir = Path(toy["root"]) / "runs" / f"{r['run_id']}-rerun"
    assert json.loads((rerun_dir / "config.json").read_text()) == json.loads((out / "runs" / r["run_id"] / "config.json").read_text())
    assert result["published"] == r["accuracy"] and result["rerun"] == json.loads((rerun_dir / "metrics.json").read_text())["accuracy"]
    assert result["rerun"] == r["accuracy"]  # same options, seed and data on the same machine: the same model
    assert f"{r['run_id']}: published" in logs[-1] and "spread over seeds" in logs[-1]
    assert json.loads((out / "reruns.json").read_text())[r["run_id"]]["rerun"] == result["rerun"]  # published with the result
    assert any("training again" in line for line in logs)
    again: list[str] = []
    assert paper.rerun(cfg, toy["root"], r["run_id"], train_fn(toy["root"]), log=again.append)["rerun"] == result["rerun"]
    assert "reusing the rerun trained here before" in again[0]  # a second check says it reused the first
    from pst_core.errors import DataError

    with pytest.raises(DataError, match="not a published, evaluated run"):
        paper.rerun(cfg, toy["root"], "nope", train_fn(toy["root"]))


def test_an_option_added_to_pst_after_publishing_does_not_send_published_runs_back_to_training():
    from pst_core.train.checkpoint import config_dict, same_config
    from pst_core.train.config import resolve

    cfg = resolve({"strategy": "pst", "task": "t", "teacher": "x", "lr": 3e-4})
    published = json.loads(json.dumps(config_dict(cfg)))
    assert same_config(published, cfg)
    older = {k: v for k, v in published.items() if k != "keep_last"}  # published before keep_last existed
    assert same_config(older, cfg)  # keep_last is at its default
    assert not same_config(older, resolve({"strategy": "pst", "task": "t", "teacher": "x", "lr": 3e-4, "keep_last": True}))
    assert not same_config({**published, "lr": 1e-3}, cfg)
    assert not same_config({**published, "removed_option": 1}, cfg)


def test_git_committer_commits_only_the_published_path_in_the_repository_that_holds_it(tmp_path, monkeypatch):
    import subprocess

    repo = tmp_path / "repo"
    (repo / "results" / "runs" / "r1").mkdir(parents=True)
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "user.email", "t@example.com"], check=True)
    subprocess.run([*git, "config", "user.name", "t"], check=True)
    (repo / "other.txt").write_text("not committed")
    (repo / "results" / "runs" / "r1" / "metrics.json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # pst runs from elsewhere (a frozen copy of the code)
    (repo / "results" / "wall.json").write_text("{}")
    commit = paper.git_committer("exp results", log=lambda m: (_ for _ in ()).throw(AssertionError(m)),
                                 also=(repo / "results" / "wall.json", repo / "results" / "absent.json"))
    commit(repo / "results" / "runs" / "r1")
    log = subprocess.run([*git, "log", "--format=%s", "--name-only"], capture_output=True, text=True, check=True).stdout
    assert "exp results: r1" in log and "results/runs/r1/metrics.json" in log and "other.txt" not in log
    assert "results/wall.json" in log  # committed with each run: the next machine adds to it
