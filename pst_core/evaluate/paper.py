"""The paper experiment: PST against its four baselines, same student, same recorded teacher data.

Two phases, so the GPU is spent on training and generation only:

* `data` (CPU, needs ../shared/datasets): prepare the tasks, replay the recorded teacher outputs
  through the replay server and harvest them with the real harvester (train + validation), embed
  the rationales. The store it fills is small and can be carried to a GPU machine.
* `runs` (GPU): per task x strategy, train every candidate of the validation grid with the first
  seed and keep the best by validation exact match (never test); train the other seeds with the
  chosen options; evaluate every final run on test; run the robustness experiment on its tasks.
  Every step skips work whose outputs exist, so a killed run resumes.

The config is checked whole when it is built (`validate`): every stage section, and the TrainConfig
of every run either phase may start, so a typo fails before anything is trained or written.
Validation exact match generates with the test evaluation's budget, batch and dtype.

Results go to `out` (default bench/results/paper/): accuracy.md (task x strategy, mean and
spread over seeds, with the teacher's own accuracy on the same test questions), selection.md (the
validation score of every candidate), efficiency.md (Pre-Thinking against PST: new tokens and
latency per example on the same test sets), robustness-<task>.md/.png, results.json (every run),
config.yaml, and README.md with the command, hardware and wall time. A third phase, `plots`, draws the robustness plots from
results.json where the runs phase had no matplotlib (a bare GPU machine).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import platform
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pst_core.config import check, check_keys, from_dict, option, section, to_dict
from pst_core.errors import ConfigError
from pst_core.evaluate import published
from pst_core.evaluate.config import EvalConfig
from pst_core.evaluate.published import OnPublish
from pst_core.evaluate.runner import output_names, stored_metrics, write_json
from pst_core.train.config import resolve, strategy_options
from pst_core.train.strategies import STRATEGIES

STRATEGY_NAMES = STRATEGIES.names()
PHASES = ("data", "pilot", "runs", "plots")
# Validation exact match (which picks the grid point and the checkpoint) generates as the test
# evaluation does: TrainConfig option -> EvalConfig field.
VALIDATION_AS_TEST = {"eval_max_new_tokens": "max_new_tokens", "eval_batch_size": "batch_size", "eval_dtype": "dtype"}
TrainFn = Callable[[dict[str, Any], str], str | Path]  # (training options, run_id) -> run dir
EvalFn = Callable[[Path, EvalConfig], dict[str, Any]]
FloorFn = Callable[[str, EvalConfig], dict[str, Any]]  # (task, eval config) -> the untrained student's metrics
Log = Callable[[str], None]


@dataclass(frozen=True)
class PaperConfig:
    """One experiment; stage sections pass through to the stage configs."""

    tasks: list[str] = option(["multiarith", "svamp", "date_understanding", "coin_flip"], "Tasks (recorded train rationales needed).")
    strategies: list[str] = option(list(STRATEGY_NAMES), "Strategies compared; every one gets the same training budget.")
    seeds: list[int] = option([0, 1], "Training seeds of the final runs; the first also runs the validation grid.")
    teacher: str = option("replay-davinci", "Name the replayed teacher is registered under (store partitions).")
    teacher_model: str = option("text-davinci-002", "Recorded teacher replayed: text-davinci-002 or palm-540b (cqa, svamp_dsbs, anli1).")
    name: str = option("paper", "Prefix of run ids and of the experiment folder under <store>/experiments/.")
    out: str = option("bench/results/paper", "Where the tables, plots and README of the result are written.")
    prepare: dict[str, Any] = option({}, "PrepareConfig options.")
    harvest: dict[str, Any] = option({}, "HarvestConfig options (teacher, task and split are set per call).")
    embed: dict[str, Any] = option({}, "EmbedConfig options.")
    train: dict[str, Any] = option({}, "Training options shared by every run; a strategy's own options nest under its name.")
    search: dict[str, Any] = option({}, "Validation grid {option: [values]} for all strategies; a strategy's own grid under its name.")
    evaluate: dict[str, Any] = option({}, "EvalConfig options of the test evaluation (split is always test).")
    robustness: dict[str, Any] = option({}, "tasks, strategies, kinds, rates, seeds of the robustness experiment ({} = skipped).")
    pilot_tasks: list[str] = option([], "Tasks the pilot phase screens ([] = tasks). A task that does not learn at the budget "
                                        "stays here and leaves tasks: its rows in pilot.md say why it is not in the results.")
    pilot: list[str] = option([], "Strategies the pilot phase trains (every grid candidate, first seed: the grid's own runs, "
                                  "reused by the runs phase) to show that the budget learns; [] = the first of strategies.")

    def __post_init__(self) -> None:
        name = type(self).__name__
        check(bool(self.tasks) and bool(self.strategies) and bool(self.seeds), name, "tasks, strategies and seeds must not be empty")
        unknown = [s for s in self.strategies if s not in STRATEGY_NAMES]
        check(not unknown, name, f"unknown strategies {unknown}; valid: {', '.join(STRATEGY_NAMES)}")
        check(all(isinstance(v, list) and v for v in _flat_grid(self.search).values()), name,
              "search values must be non-empty lists, e.g. search: {lr: [1e-4, 3e-4], pst: {lambda_sem: [0.5, 1.0]}}")
        check(self.train.get("select_by", "exact_match") == "exact_match", name,
              "the grid is chosen by validation exact match: leave train.select_by unset")
        outside = [t for t in self.robustness.get("tasks", []) if t not in self.tasks] + [
            s for s in self.robustness.get("strategies", []) if s not in self.strategies]
        check(not outside, name, f"robustness tasks and strategies must be among tasks and strategies (its p = 0 points are "
                                 f"the final runs, trained with the options chosen there): {outside}")
        check("train" not in self.robustness, name, "robustness runs use the chosen options of each strategy: drop robustness.train")
        check(all(s in self.strategies for s in self.pilot), name, f"pilot strategies must be among strategies: {self.pilot}")
        validate(self)


def _flat_grid(search: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in search.items() if k not in STRATEGY_NAMES} | {
        f"{s}.{k}": v for s in STRATEGY_NAMES for k, v in (search.get(s) or {}).items()}


def screened(cfg: PaperConfig) -> list[str]:
    """The tasks the pilot screens."""
    return cfg.pilot_tasks or cfg.tasks


def pilot_strategies(cfg: PaperConfig) -> list[str]:
    """The strategies the pilot trains."""
    return cfg.pilot or cfg.strategies[:1]


def data_tasks(cfg: PaperConfig) -> list[str]:
    """Every task the data phase prepares: the experiment's and the pilot's, in order, once."""
    return list(dict.fromkeys([*cfg.tasks, *cfg.pilot_tasks]))


def candidates(cfg: PaperConfig, strategy: str) -> list[dict[str, Any]]:
    """The grid of one strategy: the product of its shared and own option lists ([{}] without a grid)."""
    grid = strategy_options(cfg.search, strategy)
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def eval_config(cfg: PaperConfig) -> EvalConfig:
    """The test evaluation's config (split is always test)."""
    return from_dict(EvalConfig, {**cfg.evaluate, "split": "test"})


def validation_options(ecfg: EvalConfig) -> dict[str, Any]:
    """The TrainConfig options that make validation generate as `ecfg` does (budget, batch, dtype)."""
    return {option: getattr(ecfg, field) for option, field in VALIDATION_AS_TEST.items()}


def run_options(cfg: PaperConfig, task: str, strategy: str, seed: int, chosen: dict[str, Any]) -> dict[str, Any]:
    """The full training options of one run: shared, strategy's own, the grid point, then validation as test."""
    return {**strategy_options(cfg.train, strategy), **chosen, **validation_options(eval_config(cfg)), "strategy": strategy,
            "task": task, "teacher": cfg.teacher, "seed": seed, "select_by": "exact_match"}


def robustness_config(cfg: PaperConfig, task: str) -> Any:
    """The RobustnessConfig of one robustness task: the `robustness` section over the experiment's defaults."""
    from pst_core.evaluate.robustness import RobustnessConfig

    spec = {k: v for k, v in cfg.robustness.items() if k != "tasks"}
    return from_dict(RobustnessConfig, {"strategies": ["pre_thinking", "post_thinking", "pst"], "kinds": ["shuffle"],
                                        "rates": [0.0, 0.2, 0.4], "seeds": cfg.seeds[:1], **spec,
                                        "task": task, "teacher": cfg.teacher, "name": f"{cfg.name}-robustness-{task}"})


def robust_options(cfg: PaperConfig, task: str, options: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """A robustness point's training options: its strategy's run with the chosen grid point, plus the
    point's own seed and noise (`options`, from `robustness.points`)."""
    return {**run_options(cfg, task, options["strategy"], options["seed"], chosen), **options}


def check_strategy_keys(section: dict[str, Any], where: str, strategies: list[str]) -> None:
    """Shared keys of a train-like section must be options of every compared strategy, a `<strategy>:`
    sub-section's keys options of that strategy (a typo there would otherwise pass unnoticed
    until the strategy's first run, or forever when the strategy is not compared)."""
    shared = [k for k in section if k not in STRATEGY_NAMES]
    for key in shared:
        owners = [s for s in STRATEGY_NAMES if key in _fields(s)]
        missing = [s for s in strategies if key not in _fields(s)]
        if owners and missing:
            raise ConfigError(f"{where}: {key!r} is an option of {', '.join(owners)} only, not of {', '.join(missing)}: "
                              f"nest it under {where}.{owners[0]}")
    for s in strategies:
        check_keys(STRATEGIES.get(s).config_cls, shared, where)
    for s in STRATEGY_NAMES:
        if s in section and not isinstance(section[s], dict):
            raise ConfigError(f"{where}.{s} must be a mapping of {s}'s own options, got {section[s]!r}")
        check_keys(STRATEGIES.get(s).config_cls, section.get(s) or {}, f"{where}.{s}")


def _fields(strategy: str) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(STRATEGIES.get(strategy).config_cls)}


def _section(where: str) -> Any:
    """Prefix a ConfigError with the part of the experiment config it came from."""
    return section("PaperConfig", where)


def validate(cfg: PaperConfig) -> None:
    """Build every stage config and every run's TrainConfig now: a typo anywhere fails before the
    first run is trained or a file written, not hours later when its run comes up."""
    from pst_core.embed.config import EmbedConfig
    from pst_core.harvest.config import HarvestConfig
    from pst_core.prepare import PrepareConfig
    from pst_core.tasks import TASKS

    with _section("tasks"):
        for task in data_tasks(cfg):
            TASKS.get(task)
    with _section("prepare"):
        from_dict(PrepareConfig, cfg.prepare)
    with _section("harvest"):
        from_dict(HarvestConfig, {"progress": False, **cfg.harvest, "teacher": cfg.teacher, "task": cfg.tasks[0], "split": "train"})
    with _section("embed"):
        from_dict(EmbedConfig, {**cfg.embed, "teacher": cfg.teacher})
    with _section("evaluate"):
        ecfg = eval_config(cfg)
    with _section(""):
        check_strategy_keys(cfg.train, "train", cfg.strategies)
        check_strategy_keys(cfg.search, "search", cfg.strategies)
    for s in cfg.strategies:
        given = strategy_options(cfg.train, s)
        for key, field in VALIDATION_AS_TEST.items():
            if key in given and given[key] != getattr(ecfg, field):
                raise ConfigError(f"PaperConfig: train.{key} is {given[key]!r} but evaluate.{field} is {getattr(ecfg, field)!r}: "
                                  f"validation is scored as test: set evaluate.{field} instead")
            check(key not in strategy_options(cfg.search, s), "PaperConfig",
                  f"search.{key}: validation is scored as test: set evaluate.{field} instead")
    for s in cfg.strategies:
        with _section(f"train{f' + train.{s}' if cfg.train.get(s) else ''} ({s})"):
            resolve(run_options(cfg, cfg.tasks[0], s, cfg.seeds[0], {}))
        for k, point in enumerate(candidates(cfg, s)):
            with _section(f"search ({s} candidate {k}: {point})"):
                resolve(run_options(cfg, cfg.tasks[0], s, cfg.seeds[0], point))
            for task, seed in itertools.product(cfg.tasks, cfg.seeds):
                with _section(f"run {run_id(cfg, task, s, k, seed)}"):
                    resolve(run_options(cfg, task, s, seed, point))
            for task in [t for t in screened(cfg) if t not in cfg.tasks and s in pilot_strategies(cfg)]:
                with _section(f"pilot run {run_id(cfg, task, s, k, cfg.seeds[0])}"):
                    resolve(run_options(cfg, task, s, cfg.seeds[0], point))
    _validate_robustness(cfg)


def _validate_robustness(cfg: PaperConfig) -> None:
    """The robustness section's keys, and every robustness run under every grid point it may be given."""
    from pst_core.evaluate.robustness import RobustnessConfig, points

    if not cfg.robustness:
        return
    with _section("robustness"):
        check_keys(RobustnessConfig, [k for k in cfg.robustness if k != "tasks"])
        fixed = [k for k in ("task", "teacher", "name") if k in cfg.robustness]
        check(not fixed, "RobustnessConfig", f"{', '.join(fixed)} are set by the experiment (one run set per task of "
                                             "robustness.tasks): drop them")
        check(bool(cfg.robustness.get("tasks")), "RobustnessConfig", "robustness.tasks is missing: name the tasks, or set robustness: {} to skip")
        for task in cfg.robustness.get("tasks", []):
            rcfg = robustness_config(cfg, task)
            outside = [s for s in rcfg.strategies if s not in cfg.strategies]
            check(not outside, "RobustnessConfig", f"strategies {outside} are not among the experiment's strategies "
                                                   f"(set robustness.strategies)")
            for point in points(rcfg):
                for chosen in candidates(cfg, point["strategy"]):
                    resolve(robust_options(cfg, task, point["options"], chosen))


def run_id(cfg: PaperConfig, task: str, strategy: str, candidate: int, seed: int) -> str:
    """`<name>-<task>-<strategy>-c<k>-s<seed>`: candidate k of the grid, stable across reruns."""
    return f"{cfg.name}-{task}-{strategy}-c{candidate}-s{seed}"


# --------------------------------------------------------------------------- phase 1: data


def prepare_data(cfg: PaperConfig, root: str, datasets_dir: str, log: Log = print) -> dict[str, Any]:
    """Prepare tasks, harvest the replayed recorded teacher (train + validation), embed. CPU is enough."""
    import os

    from pst_core import prepare, teachers
    from pst_core.embed.config import EmbedConfig
    from pst_core.embed.run import embed_rationales
    from pst_core.harvest.config import HarvestConfig
    from pst_core.harvest.harvester import harvest
    from pst_core.replay import records, server

    registered = teachers.load_all(root).get(cfg.teacher)
    if registered is not None and not registered.model.startswith(cfg.teacher_model):
        raise ConfigError(f"teacher {cfg.teacher!r} is already registered for {registered.model!r}: its rationales would mix "
                          f"with {cfg.teacher_model}'s; set `teacher:` to a new name in the config")
    prep = from_dict(prepare.PrepareConfig, {"datasets_dir": datasets_dir, **cfg.prepare})
    tasks = data_tasks(cfg)
    counts = {task: prepare.prepare_task(task, prep, root) for task in tasks}
    log(f"prepared {', '.join(f'{t} {c}' for t, c in counts.items())}")
    key_env = "PST_REPLAY_KEY"
    os.environ.setdefault(key_env, "replay-no-secret")  # the replay server ignores keys; the client sends one
    harvested = []
    with server.running(records.load(datasets_dir, tasks=tasks, teacher_model=cfg.teacher_model)) as handle:
        teachers.add(root, teachers.TeacherConfig(name=cfg.teacher, base_url=handle.url, model=f"{cfg.teacher_model} (recorded, replayed)",
                                                  api_key_env=key_env), replace=True)
        for line in handle.coverage_lines():
            log(f"replay teacher: {line}")
        for task, split in itertools.product(tasks, ("train", "validation")):
            summary = harvest(from_dict(HarvestConfig, {"progress": False, **cfg.harvest, "teacher": cfg.teacher, "task": task, "split": split}),
                              root, datasets_dir=datasets_dir)
            h = summary.as_dict()
            harvested.append({"task": task, "split": split, **h})
            log(f"harvested {task}/{split}: {h['requested']} questions, {h['cache_hits']} cached, {h['failed']} failed, "
                f"teacher correct {100 * (h.get('correct_rate') or 0):.1f} %")
    embedded = embed_rationales(from_dict(EmbedConfig, {**cfg.embed, "teacher": cfg.teacher}), root, progress=False)
    log(f"embedded {embedded.embedded} new rationale texts ({embedded.already_embedded} already embedded)")
    teacher = teacher_accuracy(cfg, root, datasets_dir)  # kept in the store: a GPU machine has no datasets folder
    write_json(_experiment_file(cfg, root, "teacher.json"), teacher)
    return {"prepared": counts, "harvested": harvested, "embedded": embedded.embedded, "teacher": teacher}


def _experiment_file(cfg: PaperConfig, root: str, name: str) -> Path:
    """`<store>/experiments/<cfg.name>/<name>`: what the experiment keeps beside its runs (folder created)."""
    path = Path(root) / "experiments" / cfg.name / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- phase 2: runs


def best_val_exact_match(run_dir: Path) -> float:
    """The validation exact match of a run's kept checkpoint (what the grid is chosen by)."""
    from pst_core.errors import DataError

    metrics = json.loads((run_dir / "train_metrics.json").read_text())
    value = (metrics.get("best") or {}).get("val_exact_match")
    if value is None:
        raise DataError(f"{run_dir} has no validation exact match to choose by: does {run_dir.name}'s task have validation examples?")
    return float(value)


def select(cfg: PaperConfig, task: str, strategy: str, train_fn: TrainFn, log: Log = print) -> dict[str, Any]:
    """Train every grid candidate of (task, strategy) with the first seed; the best on validation is chosen."""
    scored = []
    for k, point in enumerate(candidates(cfg, strategy)):
        rid = run_id(cfg, task, strategy, k, cfg.seeds[0])
        log(f"{rid}: grid candidate {point or 'defaults'}")
        run_dir = Path(train_fn(run_options(cfg, task, strategy, cfg.seeds[0], point), rid))
        scored.append({"candidate": k, "options": point, "val_exact_match": best_val_exact_match(run_dir), "run_id": rid})
    best = max(scored, key=lambda s: (s["val_exact_match"], -s["candidate"]))  # ties: the first candidate
    return {**best, "grid": scored}


def final_runs(cfg: PaperConfig, task: str, strategy: str, pick: dict[str, Any], train_fn: TrainFn, eval_fn: EvalFn,
               eval_cfg: EvalConfig, log: Log = print) -> list[dict[str, Any]]:
    """Every seed of the chosen options, trained (the first seed's is the grid run) and evaluated on test."""
    rows = []
    for seed in cfg.seeds:
        rid = run_id(cfg, task, strategy, pick["candidate"], seed)
        log(f"{rid}: final run, evaluated on {eval_cfg.split}")
        metrics = eval_fn(Path(train_fn(run_options(cfg, task, strategy, seed, pick["options"]), rid)), eval_cfg)
        rows.append({"task": task, "strategy": strategy, "seed": seed, "run_id": rid,
                     **{k: metrics[k] for k in ("accuracy", "ci_low", "ci_high", "n", "mean_new_tokens", "mean_latency_ms")}})
    return rows


def reusable_eval(evaluate: EvalFn, train_fn: TrainFn, log: Log) -> EvalFn:
    """Evaluate a run unless its metrics were made with the same EvalConfig; a run whose training
    finished but whose checkpoint is gone (results carried back from another machine) is retrained."""
    import shutil

    def run(run_dir: Path, ecfg: EvalConfig) -> dict[str, Any]:
        from pst_core.train.checkpoint import BEST, recover

        metrics = stored_metrics(run_dir, ecfg)
        if metrics is not None:
            return metrics

        if not (recover(Path(run_dir) / BEST) / "config.json").is_file():
            log(f"{Path(run_dir).name}: no checkpoint here, training again")
            options = json.loads((Path(run_dir) / "config.json").read_text())
            for stale in ("train_metrics.json", "last"):
                path = Path(run_dir) / stale
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            run_dir = Path(train_fn(options, Path(run_dir).name))
        return evaluate(run_dir, ecfg)

    return run


def teacher_accuracy(cfg: PaperConfig, root: str, datasets_dir: str) -> dict[str, dict[str, Any]]:
    """The recorded teacher's accuracy on the same test questions (first completion per question)."""
    from pst_core import answers, examples, recorded

    out = {}
    for task in cfg.tasks:
        tests = {e.example_id: e for e in examples.load(root, task, "test")}
        first = {}
        for r in recorded.load_recorded(task, Path(datasets_dir), cfg.teacher_model):
            if r.example_id in tests and r.example_id not in first:
                first[r.example_id] = r
        hits = [answers.is_correct(r.predicted_answer, tests[i].gold_answer, tests[i].answer_type) for i, r in first.items()]
        out[task] = {"accuracy": sum(hits) / len(hits) if hits else None, "n": len(hits), "test_n": len(tests)}
    return out


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread (sample std; min-max) over seeds per (task, strategy), plus cost per example."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["strategy"]), []).append(r)
    out = []
    for (task, strategy), rs in groups.items():
        acc = [r["accuracy"] for r in rs]
        out.append({"task": task, "strategy": strategy, "seeds": len(rs), "mean": statistics.fmean(acc),
                    "std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "min": min(acc), "max": max(acc), "n": rs[0]["n"],
                    "new_tokens": statistics.fmean(r["mean_new_tokens"] for r in rs),
                    "latency_ms": statistics.fmean(r["mean_latency_ms"] for r in rs)})
    return out


def accuracy_markdown(summary: list[dict[str, Any]], teacher: dict[str, dict[str, Any]], cfg: PaperConfig,
                      floors: dict[str, dict[str, Any]] | None = None) -> str:
    """Task x strategy accuracy (%), mean ± std over seeds; the best mean of each task in bold; the
    teacher, the untrained student and the majority class on the same questions beside them."""
    floors = floors or {}
    strategies = [s for s in cfg.strategies if any(r["strategy"] == s for r in summary)]
    cell = {(r["task"], r["strategy"]): r for r in summary}
    lines = [f"# Test accuracy (%), mean ± std over seeds {cfg.seeds}; teacher {cfg.teacher_model} (recorded)", "",
             "| task | n | teacher | untrained | majority | " + " | ".join(strategies) + " |",
             "|---|--:|--:|--:|--:|" + "--:|" * len(strategies)]
    for task in cfg.tasks:
        present = [cell[(task, s)] for s in strategies if (task, s) in cell]
        if not present:
            continue
        top = max(r["mean"] for r in present)
        t = teacher.get(task, {}).get("accuracy")
        cells = []
        for s in strategies:
            r = cell.get((task, s))
            text = "" if r is None else f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}"
            cells.append(f"**{text}**" if r is not None and r["mean"] == top else text)
        f = floors.get(task, {})
        floor = " | ".join("" if f.get(k) is None else f"{100 * f[k]:.1f}" for k in ("accuracy", "majority"))
        lines.append(f"| {task} | {present[0]['n']} | {'' if t is None else f'{100 * t:.1f}'} | {floor} | " + " | ".join(cells) + " |")
    means = {s: [cell[(t, s)]["mean"] for t in cfg.tasks if (t, s) in cell] for s in strategies}
    lines.append("| **mean over tasks** | | | | | " + " | ".join(f"{100 * statistics.fmean(v):.1f}" if v else "" for v in means.values()) + " |")
    return "\n".join(lines) + "\n"


def efficiency_markdown(summary: list[dict[str, Any]], cfg: PaperConfig, batch_size: int) -> str:
    """Pre-Thinking against PST on the same test questions: new tokens and latency per example."""
    cell = {(r["task"], r["strategy"]): r for r in summary}
    lines = [f"# Inference cost on test, Pre-Thinking vs PST with early stop (batched generation, batch {batch_size})", "",
             "| task | pre_thinking new tokens | pst new tokens | pre_thinking ms/example | pst ms/example | PST speed-up |",
             "|---|--:|--:|--:|--:|--:|"]
    for task in cfg.tasks:
        pre, pst = cell.get((task, "pre_thinking")), cell.get((task, "pst"))
        if pre and pst:
            speed = pre["latency_ms"] / pst["latency_ms"] if pst["latency_ms"] else float("nan")
            lines.append(f"| {task} | {pre['new_tokens']:.1f} | {pst['new_tokens']:.1f} | {pre['latency_ms']:.1f} | "
                         f"{pst['latency_ms']:.1f} | {speed:.1f}x |")
    return "\n".join(lines) + "\n"


def selection_markdown(chosen: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Every grid candidate's validation exact match; the chosen one marked."""
    lines = ["# Options chosen on validation exact match (first seed)", "", "| task | strategy | candidate | options | val EM % | |",
             "|---|---|--:|---|--:|---|"]
    for (task, strategy), pick in chosen.items():
        for s in pick["grid"]:
            mark = "chosen" if s["candidate"] == pick["candidate"] else ""
            lines.append(f"| {task} | {strategy} | {s['candidate']} | {json.dumps(s['options']) if s['options'] else 'defaults'} | "
                         f"{100 * s['val_exact_match']:.1f} | {mark} |")
    return "\n".join(lines) + "\n"


def hardware() -> dict[str, Any]:
    """What the runs ran on (device, library versions)."""
    import torch
    import transformers

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"device": gpu or f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
            "python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "cuda": torch.version.cuda if gpu else None}


class DiskPeak:
    """Samples the size of a folder every `every_s` seconds in a thread (a run's last/ exists only
    while it trains, so sampling between runs would miss the peak); `peak` and `last` in bytes."""

    def __init__(self, path: Path, every_s: float = 5.0) -> None:
        self.path, self.every_s, self.peak, self.last = path, every_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="disk-peak")

    def sample(self) -> int:
        from pst_core.train.checkpoint import disk_usage

        try:
            self.last = disk_usage(self.path)
        except OSError:  # a file renamed or deleted while walking (checkpoint swaps)
            return self.last
        self.peak = max(self.peak, self.last)
        return self.last

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> DiskPeak:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (`timeout`, a scheduler) raises SystemExit, so `finally` blocks run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _runs(cfg: PaperConfig, root: str, datasets_dir: str | None, raw_train_fn: TrainFn, eval_fn: EvalFn | None, log: Log,
          on_publish: OnPublish, floor_fn: FloorFn | None) -> dict[str, Any]:
    """Task by task (so an interrupted experiment has whole tasks done): grid, seeds, test, robustness."""
    from pst_core.evaluate.robustness import run_robustness
    from pst_core.evaluate.runner import evaluate_run

    eval_cfg = eval_config(cfg)
    train_fn = published.publishing_train(raw_train_fn, cfg.out, root, on_publish, log)
    evaluate = published.publishing_eval(
        reusable_eval(eval_fn or (lambda run_dir, ecfg: evaluate_run(run_dir, ecfg, root=root)), raw_train_fn, log),
        cfg.out, root, on_publish)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    floors = {}
    for task in cfg.tasks:
        floors[task] = untrained_floor(cfg, task, eval_cfg, root, on_publish, log, floor_fn)
        for strategy in cfg.strategies:
            chosen[(task, strategy)] = select(cfg, task, strategy, train_fn, log)
            rows += final_runs(cfg, task, strategy, chosen[(task, strategy)], train_fn, evaluate, eval_cfg, log)
    if datasets_dir:
        teacher = teacher_accuracy(cfg, root, datasets_dir)
    else:  # computed by the data phase where the datasets folder was
        path = _experiment_file(cfg, root, "teacher.json")
        teacher = json.loads(path.read_text()) if path.is_file() else {}

    robust = []
    for task in cfg.robustness.get("tasks", []):
        rcfg = robustness_config(cfg, task)

        def robust_train(options: dict[str, Any], rid: str, task: str = task) -> str | Path:
            pick = chosen[(task, options["strategy"])]
            if not options.get("perturb_rate") and options["seed"] in cfg.seeds:  # p = 0 is the final run itself
                rid = run_id(cfg, task, options["strategy"], pick["candidate"], options["seed"])
            return train_fn(robust_options(cfg, task, options, pick["options"]), rid)

        result = run_robustness(rcfg, eval_cfg, root, robust_train, evaluate, log)
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        for ext in ("md", "png"):
            if (Path(result["dir"]) / f"robustness.{ext}").is_file():
                (out / f"robustness-{task}.{ext}").write_bytes((Path(result["dir"]) / f"robustness.{ext}").read_bytes())
        robust.append({"task": task, "summary": result["summary"]})
    return {"chosen": chosen, "rows": rows, "summary": aggregate(rows), "teacher": teacher, "robustness": robust, "eval_cfg": eval_cfg,
            "floors": floors}


def student_of(cfg: PaperConfig) -> str:
    """The student every run fine-tunes (train.student, else TrainConfig's default)."""
    from pst_core.train.config import DEFAULT_STUDENT

    return str(cfg.train.get("student", DEFAULT_STUDENT))


def untrained_floor(cfg: PaperConfig, task: str, ecfg: EvalConfig, root: str, on_publish: OnPublish, log: Log,
                    floor_fn: FloorFn | None = None) -> dict[str, Any]:
    """The untrained student's accuracy and the majority-class rate on `ecfg`'s questions (published
    like a run, and reused from there while `ecfg` is unchanged). `floor_fn` replaces the evaluation (tests)."""
    from pst_core.evaluate.runner import evaluate_untrained, untrained_config, untrained_run_id

    rid = untrained_run_id(task, student_of(cfg))
    metrics = stored_metrics(published.published_dir(cfg.out, rid), untrained_config(ecfg))
    if metrics is None:
        log(f"{rid}: scoring the student before distillation on {ecfg.split}")
        metrics = (floor_fn or (lambda t, e: evaluate_untrained(student_of(cfg), t, e, root=root)))(task, ecfg)
        if (Path(root) / "runs" / rid).is_dir():
            on_publish(published.publish(Path(root) / "runs" / rid, cfg.out, ecfg))
    return {"accuracy": metrics["accuracy"], "majority": metrics["majority_accuracy"], "n": metrics["n"], "run_id": rid}


def paired_rows(cfg: PaperConfig, rows: list[dict[str, Any]], eval_cfg: EvalConfig, reference: str = "pst") -> list[dict[str, Any]]:
    """`reference` against every other compared strategy, per task and pooled over tasks, from the
    published test predictions of the final runs (seeds paired)."""
    import pyarrow.parquet as pq

    from pst_core.evaluate import paired

    pred_file = output_names(eval_cfg.split)[0]
    outcomes: dict[tuple[str, str], list[dict[str, bool]]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        path = published.published_dir(cfg.out, r["run_id"]) / pred_file
        if path.is_file():
            table = pq.read_table(path, columns=["example_id", "correct"]).to_pydict()
            outcomes.setdefault((r["task"], r["strategy"]), []).append(dict(zip(table["example_id"], table["correct"])))
    out = []
    for base in [s for s in cfg.strategies if s != reference]:
        pairs = [(t, outcomes[(t, reference)], outcomes[(t, base)]) for t in cfg.tasks
                 if len(outcomes.get((t, reference), [])) == len(outcomes.get((t, base), [])) > 0]
        for task, a, b in pairs:
            out.append({"task": task, "baseline": base, **paired.compare(a, b, confidence=eval_cfg.confidence, seed=eval_cfg.seed)})
        if len(pairs) > 1:
            a, b = paired.pooled([(a, b) for _, a, b in pairs])
            out.append({"task": "all tasks", "baseline": base, **paired.compare(a, b, confidence=eval_cfg.confidence, seed=eval_cfg.seed)})
    return out


class WallClock:
    """Wall seconds a phase has spent, summed over its calls and across machines. A CPU experiment
    runs over several sessions, each maybe on a fresh machine with an empty store, and a GPU session
    runs it repeatedly under `timeout`; so the sum lives in `out`/wall.json, beside the published runs
    (committed with each of them: `git_committer(also=...)`), and is recorded at every log line and
    when a call ends, SIGTERM included."""

    def __init__(self, out: str | Path, phase: str) -> None:
        self.path, self.phase, self.start = wall_path(out), phase, time.perf_counter()
        self.before = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def record(self) -> float:
        """Write and return this phase's seconds so far."""
        seconds = self.before.get(self.phase, 0.0) + time.perf_counter() - self.start
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {**self.before, self.phase: seconds})
        return seconds

    def logging(self, log: Log) -> Log:
        """`log` that records the wall time first."""

        def wrapped(message: str) -> None:
            self.record()
            log(message)

        return wrapped


def wall_path(out: str | Path) -> Path:
    """`out`/wall.json: {phase: seconds}."""
    return Path(out) / "wall.json"


def run_runs(cfg: PaperConfig, root: str, datasets_dir: str | None, train_fn: TrainFn, eval_fn: EvalFn | None = None,
             log: Log = print, command: str = "", config_text: str = "", on_publish: OnPublish = lambda _: None,
             floor_fn: FloorFn | None = None) -> dict[str, Any]:
    """Grid on validation, final seeds on test, robustness, efficiency, paired tests; writes every result
    file to `cfg.out`, and each finished run's small files to `cfg.out`/runs/ as it finishes
    (`on_publish` is then called with that folder: `--commit` commits it)."""
    clock = WallClock(cfg.out, "runs")
    log = clock.logging(log)
    with _sigterm_as_exit(), DiskPeak(Path(root) / "runs") as disk:
        try:
            result = _runs(cfg, root, datasets_dir, train_fn, eval_fn, log, on_publish, floor_fn)
        finally:
            wall = clock.record()
    log(f"disk: the runs use {disk.last / 2**30:.2f} GiB now, at most {disk.peak / 2**30:.2f} GiB during this call "
        f"(a finished run keeps its best checkpoint only)")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen, rows, summary, teacher, robust, eval_cfg, floors = (
        result[k] for k in ("chosen", "rows", "summary", "teacher", "robustness", "eval_cfg", "floors"))
    from pst_core.evaluate import paired

    accuracy = accuracy_markdown(summary, teacher, cfg, floors)
    efficiency = efficiency_markdown(summary, cfg, eval_cfg.batch_size)
    comparisons = paired_rows(cfg, rows, eval_cfg) if "pst" in cfg.strategies and len(cfg.strategies) > 1 else []
    paired_md = paired.markdown(comparisons, "pst", eval_cfg.confidence)
    (out / "accuracy.md").write_text(accuracy)
    (out / "efficiency.md").write_text(efficiency)
    (out / "paired.md").write_text(paired_md)
    (out / "selection.md").write_text(selection_markdown(chosen))
    hw = hardware()
    write_json(out / "results.json", {
        "config": to_dict(cfg), "eval_config": to_dict(eval_cfg), "hardware": hw, "wall_s": wall, "command": command,
        "disk_peak_bytes": disk.peak, "disk_final_bytes": disk.last,
        "teacher_accuracy": teacher, "untrained": floors, "runs": rows, "summary": summary, "robustness": robust, "paired": comparisons,
        "chosen": [{"task": t, "strategy": s, **p} for (t, s), p in chosen.items()]})
    if config_text:
        (out / "config.yaml").write_text(config_text)
    walls = json.loads(wall_path(out).read_text())
    (out / "README.md").write_text("\n".join([
        "# Paper experiment: PST against its baselines", "",
        f"Command: `{command}`" if command else "", f"Hardware: {hw['device']}; torch {hw['torch']}, transformers {hw['transformers']}",
        f"Wall time: runs phase {wall / 3600:.1f} h, pilot {walls.get('pilot', 0.0) / 3600:.1f} h (each summed over its calls, "
        "on every machine; a run the pilot trained is reused by the runs phase)", "",
        "Files: accuracy.md (the table), paired.md (PST against each baseline, paired), selection.md (validation grid),",
        "efficiency.md, robustness-<task>.md/.png, results.json (every run), config.yaml (the config used), runs/<run id>/",
        "(each run's config, data fingerprint, history, metrics and test predictions; no checkpoints), reruns.json (runs",
        "trained again with --rerun RUN_ID, against their published accuracy).", "",
        accuracy, paired_md, efficiency]) + "\n")
    log(accuracy)
    log(paired_md)
    log(efficiency)
    return {"out": str(out), "summary": summary, "chosen": chosen, "rows": rows, "teacher": teacher, "wall_s": wall}


def rerun(cfg: PaperConfig, root: str, run_id: str, train_fn: TrainFn, eval_fn: EvalFn | None = None, log: Log = print,
          on_publish: OnPublish = lambda _: None) -> dict[str, Any]:
    """Train a published run again from scratch under `<run_id>-rerun` with its recorded options, evaluate
    it as the experiment did, and compare with the published accuracy: anyone can check one number.
    The comparison is added to `<out>/reruns.json` (and published), next to the result it checks."""
    from pst_core.errors import DataError
    from pst_core.evaluate.runner import evaluate_run
    from pst_core.train.run import run_dir_of

    pub = published.published_dir(cfg.out, run_id)
    if not (pub / "config.json").is_file() or not (pub / "metrics.json").is_file():
        raise DataError(f"{run_id} is not a published, evaluated run of {cfg.out} (see {cfg.out}/runs/)")
    options = json.loads((pub / "config.json").read_text())
    ecfg = eval_config(cfg)
    earlier = run_dir_of(root, f"{run_id}-rerun")  # where train_fn looks (a remote store's local stage too)
    if (earlier / "train_metrics.json").is_file():  # train_fn reuses a finished run: say so, never claim a new one
        log(f"{run_id}: reusing the rerun trained here before ({earlier}; delete it to train once more)")
    else:
        log(f"{run_id}: training again as {run_id}-rerun, with the published options")
    run_dir = Path(train_fn(options, f"{run_id}-rerun"))
    metrics = (eval_fn or (lambda d, e: evaluate_run(d, e, root=root)))(run_dir, ecfg)
    before = json.loads((pub / "metrics.json").read_text())
    results = Path(cfg.out) / "results.json"
    row = next((r for r in (json.loads(results.read_text())["summary"] if results.is_file() else [])
                if (r["task"], r["strategy"]) == (options["task"], options["strategy"])), None)
    out = {"run_id": run_id, "published": before["accuracy"], "rerun": metrics["accuracy"], "n": metrics["n"],
           "difference": metrics["accuracy"] - before["accuracy"], "spread": row and {k: row[k] for k in ("std", "min", "max")}}
    spread = f"; spread over seeds {100 * row['min']:.1f}-{100 * row['max']:.1f} %" if row else ""
    log(f"{run_id}: published {100 * out['published']:.1f} %, rerun {100 * out['rerun']:.1f} % "
        f"({100 * out['difference']:+.1f} points on {out['n']} questions{spread})")
    record = Path(cfg.out) / "reruns.json"  # every check made, kept with the result it checks
    done = json.loads(record.read_text()) if record.is_file() else {}
    write_json(record, done | {run_id: out | {"hardware": hardware()}})
    on_publish(record)
    return out


# --------------------------------------------------------------------------- pilot


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how often a student at the floor rate p scores k of n or more."""
    import math

    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)) if n else 1.0


def pilot(cfg: PaperConfig, root: str, train_fn: TrainFn, log: Log = print, on_publish: OnPublish = lambda _: None) -> dict[str, Any]:
    """Does the per-run budget learn anything, before the whole grid is spent on it? Per task, every
    grid candidate of every `pilot` strategy (first seed: the grid's own runs, which the runs phase
    reuses, so the pilot costs nothing in the end) against the untrained student and the majority
    class on the validation questions the grid is chosen on. A task where no run beats the higher
    floor (one-sided binomial p < 0.05, uncorrected for the grid: a screen, not a result) does not
    learn at this budget. Writes pilot.md and pilot.json to `cfg.out`; never reads test."""
    import dataclasses

    from pst_core.train.config import resolve

    clock = WallClock(cfg.out, "pilot")
    log = clock.logging(log)
    train_fn = published.publishing_train(train_fn, cfg.out, root, on_publish, log)
    rows, strategies = [], pilot_strategies(cfg)
    for task in screened(cfg):
        n_val = resolve(run_options(cfg, task, strategies[0], cfg.seeds[0], {})).max_val_examples
        vcfg = dataclasses.replace(eval_config(cfg), split="validation", max_examples=n_val)
        floor = untrained_floor(cfg, task, vcfg, root, on_publish, log)
        for strategy, (k, point) in ((s, c) for s in strategies for c in enumerate(candidates(cfg, s))):
            rid = run_id(cfg, task, strategy, k, cfg.seeds[0])
            log(f"{rid}: pilot, {point or 'defaults'}")
            run_dir = Path(train_fn(run_options(cfg, task, strategy, cfg.seeds[0], point), rid))
            em, n = best_val_exact_match(run_dir), json.loads((run_dir / "data.json").read_text())["validation_questions"]
            bar = max(floor["accuracy"], floor["majority"])
            p = binomial_tail(round(em * n), n, bar)
            rows.append({"task": task, "strategy": strategy, "run_id": rid, "options": point, "val_exact_match": em, "n": n,
                         "untrained": floor["accuracy"], "majority": floor["majority"], "floor_n": floor["n"], "p": p,
                         "learns": p < 0.05})
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    clock.record()
    write_json(out / "pilot.json", {"rows": rows})
    (out / "pilot.md").write_text(pilot_markdown(rows, cfg))
    log((out / "pilot.md").read_text())  # before publishing: the log records wall.json, which is published too
    on_publish(out)
    return {"rows": rows}


def pilot_markdown(rows: list[dict[str, Any]], cfg: PaperConfig) -> str:
    """The pilot table: validation exact match against the two floors, and whether it is clearly above."""
    lines = [f"# Pilot on validation: does the budget learn? (every grid candidate, seed {cfg.seeds[0]})", "",
             "p: one-sided binomial probability that a student at the higher floor (untrained or majority) scores as "
             "well; a task learns at this budget when p < 0.05 for at least one run.", "",
             "| task | strategy | options | val EM % | questions | untrained % | majority % | p | learns |",
             "|---|---|---|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['strategy']} | {json.dumps(r['options']) if r['options'] else 'defaults'} | "
                     f"{100 * r['val_exact_match']:.1f} | {r['n']} | {100 * r['untrained']:.1f} | {100 * r['majority']:.1f} | "
                     f"{r['p']:.3g} | {'yes' if r['learns'] else 'no'} |")
    return "\n".join(lines) + "\n"


def git_committer(message: str, log: Log, also: tuple[Path, ...] = ()) -> OnPublish:
    """An `on_publish` hook that commits each published path (only that path, and the existing paths of
    `also`, such as wall.json) to the git repository that holds it, so a session on a fresh machine
    resumes from what is committed (the experiment may run from a frozen copy of the code with
    `--out` in the repository). A failed commit is a warning."""
    import subprocess

    def commit(path: Path) -> None:
        path = Path(path).resolve()  # committed in the repository that holds it, wherever pst runs from
        git = ["git", "-C", str(path if path.is_dir() else path.parent)]
        paths = [str(path), *(str(Path(p).resolve()) for p in also if Path(p).exists())]
        for attempt in range(5):
            add = subprocess.run([*git, "add", "--", *paths], capture_output=True, text=True)
            done = subprocess.run([*git, "commit", "-q", "-m", f"{message}: {path.name}", "--", *paths],
                                  capture_output=True, text=True) if add.returncode == 0 else add
            if done.returncode == 0 or "nothing to commit" in done.stdout + done.stderr:
                return
            time.sleep(2 + attempt)  # another git command holds the index lock
        log(f"warning: could not commit {path}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")

    return commit


def plots(out: str | Path, log: Log = print) -> list[Path]:
    """Draw the robustness plots from `out`/results.json (for results made where matplotlib is absent)."""
    from pst_core.evaluate.robustness import RobustnessConfig, plot

    results = json.loads((Path(out) / "results.json").read_text())
    teacher, split = results["config"]["teacher"], results["eval_config"]["split"]
    drawn = [plot(r["summary"], Path(out) / f"robustness-{r['task']}.png", RobustnessConfig(task=r["task"], teacher=teacher), split)
             for r in results["robustness"]]
    log(f"drew {', '.join(str(p) for p in drawn) or 'nothing (no robustness results)'}")
    return drawn


def run(config: str | Path, phase: str = "all", out: str | None = None, log: Log = print, commit: bool = False,
        rerun_id: str | None = None) -> dict[str, Any]:
    """`pst experiment paper`: load the config, then run the data phase, the pilot, the runs phase, or
    data and runs (`all`). With `commit`, every published run is committed to git as it finishes.
    With `rerun_id`, only that published run is trained again and compared (no phase runs)."""
    import shlex

    from pst_core import settings
    from pst_core.config import load_file
    from pst_core.train.run import train_fn

    if phase not in (*PHASES, "all"):
        raise ConfigError(f"phase must be one of {', '.join(PHASES)}, all (got {phase!r})")
    cfg = from_dict(PaperConfig, load_file(config), out=out)
    root, found = settings.data_root(), settings.datasets_dir()
    datasets = str(found) if found is not None and found.is_dir() else None
    result: dict[str, Any] = {}
    on_publish = git_committer(f"{cfg.name} results", log, also=(wall_path(cfg.out),)) if commit else (lambda _: None)
    if rerun_id:
        return {"rerun": rerun(cfg, root, rerun_id, train_fn(root), log=log, on_publish=on_publish)}
    if phase in ("data", "all"):
        if datasets is None:
            raise ConfigError("the paper experiment replays recorded teacher outputs: set PST_DATASETS_DIR to the datasets folder")
        result["data"] = prepare_data(cfg, root, datasets, log)
    if phase in ("runs", "all"):
        program = "python -m pst_core.evaluate.paper" if sys.argv[0].endswith("paper.py") else Path(sys.argv[0]).name
        command = " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])
        result["runs"] = run_runs(cfg, root, datasets, train_fn(root), log=log, command=command, config_text=Path(config).read_text(),
                                  on_publish=on_publish)
        on_publish(Path(cfg.out))
    if phase == "pilot":
        result["pilot"] = pilot(cfg, root, train_fn(root), log, on_publish)
    if phase == "plots":
        result["plots"] = plots(cfg.out, log)
    return result


def main(argv: list[str] | None = None) -> None:
    """`python -m pst_core.evaluate.paper`: the same as `pst experiment paper`, with only torch/transformers
    installed (no typer, prefect or openai: how it runs on a bare GPU machine)."""
    import argparse

    from pst_core.errors import PstError

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/paper.yaml")
    p.add_argument("--phase", default="all", choices=[*PHASES, "all"])
    p.add_argument("--out", default=None)
    p.add_argument("--commit", action="store_true", help="git-commit each run's published results as it finishes")
    p.add_argument("--rerun", default=None, metavar="RUN_ID", help="train one published run again and compare its accuracy")
    args = p.parse_args(argv)
    try:
        run(args.config, args.phase, args.out, commit=args.commit, rerun_id=args.rerun)
    except PstError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
