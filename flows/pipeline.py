"""The pipeline flows: one per stage, and `distill_pipeline` chaining them.

Each stage flow fans out over teachers x tasks (x strategies) by submitting one task per
combination to the flow's task runner (threads by default; `flows.runners` for Dask). Flows only
compose tasks and pass config dicts; every task is cached on the state of the store, so a rerun
(or a flow retry) skips completed work and a new teacher reruns only what depends on it.

Training reads the store after the harvest: a run whose teacher has no usable rationales for a
split it needs (a teacher whose outputs cover only test questions) is skipped with one line per
teacher, not failed; a strategy that reads no rationale (answer_only) trains once per task, not
once per teacher.
"""

from __future__ import annotations

import itertools
from typing import Any

from prefect import flow, get_run_logger

from flows import runners
from flows.config import STRATEGIES, as_list, check_names, load, train_options, validate
from pst_core import settings
from pst_core.coverage import skip_line, uses_rationale
from pst_core.train.config import DEFAULT_STUDENT
from tasks.coverage import coverage
from tasks.embed import embed
from tasks.evaluate import evaluate, evaluate_untrained, report
from tasks.harvest import harvest
from tasks.prepare import prepare
from tasks.train import teacher_free, train

DEFAULT_TASKS = ["coin_flip", "last_letter_concatenation"]
HARVEST_SPLITS = ["train", "validation"]


def task_runner() -> Any:
    """Threads by default; `PST_TASK_RUNNER=dask` uses prefect-dask (see `flows.runners`)."""
    return runners.task_runner()


def _teachers(root: str, teachers: list[str] | str | None) -> list[str]:
    """The named teachers, or every registered one."""
    from pst_core import teachers as registry

    return as_list(teachers) or sorted(registry.load_all(root))


@flow(name="prepare-flow", task_runner=task_runner())
def prepare_flow(tasks: list[str] | str | None = None, config: str | None = None, overrides: dict | None = None, root: str | None = None) -> list[dict]:
    """Prepare the example store for every task."""
    cfg, root = load(config, overrides), root or settings.data_root()
    futures = [prepare.submit(root, t, cfg["prepare"]) for t in as_list(tasks) or cfg.get("tasks") or DEFAULT_TASKS]
    return [f.result() for f in futures]


@flow(name="harvest-flow", task_runner=task_runner())
def harvest_flow(teachers: list[str] | str | None = None, tasks: list[str] | str | None = None, config: str | None = None, overrides: dict | None = None, root: str | None = None) -> list[dict]:
    """Harvest rationales for teachers x tasks x splits (all registered teachers; train and validation)."""
    cfg, root = load(config, overrides), root or settings.data_root()
    section = dict(cfg["harvest"])
    # Validation rationales too: training selects its checkpoint on validation loss.
    splits = as_list(section.pop("splits", None)) or ([section.pop("split")] if "split" in section else HARVEST_SPLITS)
    combos = itertools.product(_teachers(root, teachers), as_list(tasks) or cfg.get("tasks") or DEFAULT_TASKS, splits)
    futures = [harvest.submit(root, {**section, "teacher": te, "task": ta, "split": sp}) for te, ta, sp in combos]
    return [f.result() for f in futures]


@flow(name="embed-flow", task_runner=task_runner())
def embed_flow(teachers: list[str] | str | None = None, tasks: list[str] | str | None = None, config: str | None = None, overrides: dict | None = None, root: str | None = None) -> list[dict]:
    """Embed the new rationale texts of teachers x tasks: one at a time in this process (threads would
    share one encoder's cores), at once on Dask workers (each process loads its own encoder)."""
    cfg, root = load(config, overrides), root or settings.data_root()
    pairs = itertools.product(_teachers(root, teachers), as_list(tasks) or cfg.get("tasks") or DEFAULT_TASKS)
    configs = [{**cfg["embed"], "teacher": te, "task": ta} for te, ta in pairs]
    if not runners.in_own_process():
        return [embed(root, c) for c in configs]
    futures = [embed.submit(root, c) for c in configs]
    return [f.result() for f in futures]


def train_configs(teachers: list[str], tasks: list[str], strategies: list[str], section: dict[str, Any]) -> list[dict[str, Any]]:
    """One TrainConfig dict per run: teacher x task x strategy, but once per task for a strategy that
    reads no rationale (answer_only trains on gold answers only, the same for every teacher)."""
    configs, seen = [], set()
    for te, ta, s in itertools.product(teachers, tasks, strategies):
        config = teacher_free({**train_options(section, s), "teacher": te, "task": ta, "strategy": s})
        key = (config["teacher"], ta, s)
        if key not in seen:
            seen.add(key)
            configs.append(config)
    return configs


def covered(root: str, configs: list[dict[str, Any]], covers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The configs whose teacher covers every split their training needs, and one line per teacher that
    misses some (`covers`: the coverage task's results, one per config that reads rationales)."""
    blocked = {(c["teacher"], c["task"], c["strategy"]) for c in covers if c["blocking"]}
    keep = [c for c in configs if (c["teacher"], c["task"], c["strategy"]) not in blocked]
    lines = [skip_line(te, [c for c in covers if c["teacher"] == te], root) for te in dict.fromkeys(c["teacher"] for c in covers)]
    return keep, [line for line in lines if line]


@flow(name="train-flow", task_runner=task_runner())
def train_flow(teachers: list[str] | str | None = None, tasks: list[str] | str | None = None, strategies: list[str] | str | None = None, config: str | None = None, overrides: dict | None = None, root: str | None = None) -> list[dict]:
    """Train one student per teacher x task x strategy (once per task for answer_only), skipping with one
    line per teacher the runs whose teacher has no usable rationales for a split they need."""
    cfg, root = load(config, overrides), root or settings.data_root()
    configs = train_configs(_teachers(root, teachers), as_list(tasks) or cfg.get("tasks") or DEFAULT_TASKS,
                            as_list(strategies) or cfg.get("strategies") or STRATEGIES, cfg["train"])
    checks = [coverage.submit(root, c) for c in configs if uses_rationale(c["strategy"])]
    configs, lines = covered(root, configs, [f.result() for f in checks])
    for line in lines:
        get_run_logger().warning(line)
    futures = [train.submit(root, c) for c in configs]
    return [f.result() for f in futures]


@flow(name="evaluate-flow", task_runner=task_runner())
def evaluate_flow(runs: list[str] | str, config: str | None = None, overrides: dict | None = None, root: str | None = None,
                  untrained_tasks: list[str] | str | None = None) -> dict:
    """Evaluate trained runs (ids under <root>/runs/), and the untrained student on `untrained_tasks`
    (the floor each trained run is read against), then write the report over all evaluated runs."""
    cfg, root = load(config, overrides), root or settings.data_root()
    student = train_options(cfg["train"], "answer_only").get("student") or DEFAULT_STUDENT
    futures = [evaluate.submit(root, run_id, cfg["evaluate"]) for run_id in as_list(runs) or []]
    floors = [evaluate_untrained.submit(root, t, student, cfg["evaluate"]) for t in as_list(untrained_tasks) or []]
    metrics = [f.result() for f in futures]
    untrained = [f.result() for f in floors]
    return {"runs": metrics, "untrained": untrained, "report": report(root, [m["run_id"] for m in metrics], cfg["report"])}


@flow(name="distill-pipeline", task_runner=task_runner())
def distill_pipeline(
    teachers: list[str] | str | None = None,
    tasks: list[str] | str | None = None,
    strategies: list[str] | str | None = None,
    config: str | None = None,
    overrides: dict | None = None,
    root: str | None = None,
) -> dict:
    """Prepare -> harvest -> embed -> train -> evaluate -> report for teachers x tasks x strategies."""
    cfg, root = load(config, overrides), root or settings.data_root()
    validate(cfg, as_list(strategies))
    tasks = as_list(tasks) or cfg.get("tasks") or DEFAULT_TASKS
    teachers = _teachers(root, as_list(teachers) or cfg.get("teachers"))
    check_names(root, teachers, tasks, as_list(strategies) or cfg.get("strategies"))
    common = {"config": config, "overrides": overrides, "root": root}
    with runners.for_stages() as runner:  # with Dask: one cluster for every stage

        def stage(f: Any) -> Any:
            return f.with_options(task_runner=runner)

        prepared = stage(prepare_flow)(tasks=tasks, **common)
        harvested = stage(harvest_flow)(teachers=teachers, tasks=tasks, **common)
        embedded = stage(embed_flow)(teachers=teachers, tasks=tasks, **common)
        runs = stage(train_flow)(teachers=teachers, tasks=tasks, strategies=strategies or cfg.get("strategies"), **common)
        evaluated = stage(evaluate_flow)(runs=[r["run_id"] for r in runs], untrained_tasks=tasks if cfg.get("untrained") else None, **common)
    return {"prepare": prepared, "harvest": harvested, "embed": embedded, "train": runs, **evaluated}
