"""Pipeline configuration: one YAML file with a section per stage (see configs/quickstart.yaml).

```yaml
tasks: [coin_flip]                  # defaults for the flow parameters
strategies: [answer_only, pst]
prepare: {source: generator}        # PrepareConfig
harvest: {split: train, limit: 0}   # HarvestConfig minus teacher/task
embed: {batch_size: 64}             # EmbedConfig minus teacher/task
train: {max_steps: 50, pst: {lambda_sem: 1.0}}  # TrainConfig; a strategy's own options nest under its name
evaluate: {max_examples: 100}       # EvalConfig
```
Flow parameters override the file. `validate` builds every stage's config from its section (train
for every strategy, with its own sub-section), so `distill_pipeline` fails on a typo or a value of
the wrong type before any work, with the section and the close match named. Validation exact
match generates as the evaluation does: unless the train section sets them, its generation
budget, batch and dtype come from the evaluate section.
"""

from __future__ import annotations

from typing import Any

from pst_core.config import from_dict, load_file
from pst_core.config import section as config_section
from pst_core.errors import ConfigError
from pst_core.train.strategies import STRATEGIES as STRATEGY_REGISTRY

SECTIONS = ("prepare", "harvest", "embed", "train", "evaluate", "report")
TOP_LEVEL = ("tasks", "strategies", "teachers", "quickstart_student", "untrained")  # untrained: also score the student before training
STRATEGIES = STRATEGY_REGISTRY.names()  # every registered strategy, in registration order


def load(path: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merged pipeline config: file sections, then per-section overrides."""
    data = load_file(path) if path else {}
    unknown = set(data) - set(SECTIONS) - set(TOP_LEVEL)
    if unknown:
        raise ConfigError(f"pipeline config {path}: unknown section(s) {', '.join(sorted(unknown))}; valid: {', '.join(SECTIONS + TOP_LEVEL)}")
    merged = {k: dict(data.get(k) or {}) for k in SECTIONS}
    merged.update({k: data[k] for k in TOP_LEVEL if k in data})
    for section, values in (overrides or {}).items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown override section {section!r}; valid: {', '.join(SECTIONS)}")
        merged[section].update(values or {})
    return validation_as_test(merged)


def validation_as_test(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fill the train section's validation generation options (budget, batch, dtype) from the evaluate
    section where the train section leaves them unset: checkpoints are chosen as test is scored."""
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.paper import validation_options

    with _section("evaluate"):
        ecfg = from_dict(EvalConfig, cfg["evaluate"])
    return {**cfg, "train": {**validation_options(ecfg), **cfg["train"]}}


def _section(where: str) -> Any:
    """Prefix a ConfigError with the part of the pipeline config it came from."""
    return config_section("pipeline config", where)


def validate(cfg: dict[str, Any], strategies: list[str] | None = None) -> None:
    """Build every stage's config from a loaded pipeline config (`load`), train for each strategy run
    (default: the config's, else all), so a bad key or value fails before the first stage starts."""
    from pst_core.embed import EmbedConfig
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.paper import check_strategy_keys
    from pst_core.harvest.config import HarvestConfig
    from pst_core.prepare import PrepareConfig
    from pst_core.schemas import SPLITS
    from pst_core.train.config import resolve

    if not isinstance(cfg.get("untrained", False), bool):
        raise ConfigError(f"pipeline config untrained: must be true or false, got {cfg['untrained']!r}")
    for key in ("tasks", "strategies", "teachers"):
        value = cfg.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ConfigError(f"pipeline config {key}: must be a list of names, got {value!r}")
    with _section("quickstart_student"):
        _check_student(cfg.get("quickstart_student") or {})
    with _section("prepare"):
        from_dict(PrepareConfig, cfg["prepare"])
    harvest = dict(cfg["harvest"])
    splits = as_list(harvest.pop("splits", None)) or [harvest.pop("split", "train")]
    with _section("harvest"):
        for split in splits:  # placeholder teacher and task: the flow sets them per combination
            from_dict(HarvestConfig, {**harvest, "teacher": "teacher", "task": "task", "split": split})
    with _section("embed"):
        from_dict(EmbedConfig, cfg["embed"])
    with _section("evaluate"):
        from_dict(EvalConfig, cfg["evaluate"])
    report = cfg["report"]
    if set(report) - {"split"} or report.get("split", "test") not in SPLITS:
        raise ConfigError(f"pipeline config report: only split ({', '.join(SPLITS)}) is read, got {report!r}")
    chosen = as_list(strategies) or as_list(cfg.get("strategies")) or STRATEGIES
    with _section(""):
        for name in chosen:
            STRATEGY_REGISTRY.get(name)
        check_strategy_keys(cfg["train"], "train", chosen)
    for name in chosen:
        with _section(f"train ({name})"):
            resolve({**train_options(cfg["train"], name), "strategy": name, "task": "task", "teacher": "teacher"})


def _check_student(options: Any) -> None:
    """The quickstart student's options must be `tiny_student` arguments (ints)."""
    import inspect

    from flows.quickstart import tiny_student

    valid = [p for p in inspect.signature(tiny_student).parameters if p != "root"]
    if not isinstance(options, dict):
        raise ConfigError(f"must be a mapping of {', '.join(valid)}, got {options!r}")
    for key, value in options.items():
        if key not in valid:
            raise ConfigError(f"unknown option {key!r}; valid: {', '.join(valid)}")
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"option {key!r} must be an int, got {type(value).__name__} {value!r}")


def check_names(root: str, teachers: list[str] | None = None, tasks: list[str] | None = None, strategies: list[str] | None = None) -> None:
    """Fail before any work when a teacher, task or strategy name is unknown (the error lists the valid ones)."""
    from pst_core import teachers as registry
    from pst_core.tasks import TASKS

    for name in teachers or []:
        registry.get(root, name)
    for name in tasks or []:
        TASKS.get(name)
    for name in strategies or []:
        STRATEGY_REGISTRY.get(name)


def as_list(value: list[str] | str | None) -> list[str] | None:
    """A list parameter that also accepts one name or a comma-separated string (event templates)."""
    if value is None or isinstance(value, list):
        return value
    return [v.strip() for v in str(value).split(",") if v.strip()]


def train_options(section: dict[str, Any], strategy: str) -> dict[str, Any]:
    """The train section for one strategy: shared options plus that strategy's own sub-section."""
    from pst_core.train.config import strategy_options

    return strategy_options(section, strategy)
