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
Flow parameters override the file; a section key that a stage's config does not know fails when
the stage starts, with the close match named.
"""

from __future__ import annotations

from typing import Any

from pst_core.config import load_file
from pst_core.errors import ConfigError
from pst_core.train.strategies import STRATEGIES as STRATEGY_REGISTRY

SECTIONS = ("prepare", "harvest", "embed", "train", "evaluate", "report")
TOP_LEVEL = ("tasks", "strategies", "teachers", "quickstart_student")
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
    return merged


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
