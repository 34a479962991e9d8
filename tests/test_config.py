"""Config loading (pst_core.config): YAML floats, value types against the field annotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pst_core.config import from_dict, load_file, to_dict
from pst_core.errors import ConfigError
from pst_core.train.config import TrainConfig, resolve


def test_yaml_exponent_floats_load_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nb: 5e-4\nc: 1E+3\nd: -2.5e-3\ne: 0.0002\nsteps: 10\nname: '1e-4'\nversion: v1e3\n")
    data = load_file(path)
    assert data == {"lr": 1e-4, "b": 5e-4, "c": 1000.0, "d": -2.5e-3, "e": 0.0002, "steps": 10, "name": "1e-4", "version": "v1e3"}
    assert isinstance(data["lr"], float) and isinstance(data["steps"], int)
    assert resolve({"lr": data["lr"]}).lr == 1e-4


def test_a_string_where_a_float_belongs_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^TrainConfig: option 'lr' must be a float, got str '1e-4'$"):
        from_dict(TrainConfig, {"lr": "1e-4"})
    path = tmp_path / "c.json"  # JSON has no YAML resolver to help: the type check catches it
    path.write_text(json.dumps({"strategy": "pst", "lr": "1e-4"}))
    with pytest.raises(ConfigError, match="PSTConfig: option 'lr' must be a float, got str '1e-4'"):
        resolve(load_file(path))


@pytest.mark.parametrize(("values", "message"), [
    ({"batch_size": 1.5}, "option 'batch_size' must be an int, got float 1.5"),
    ({"batch_size": True}, "option 'batch_size' must be an int, got bool True"),
    ({"compile": 1}, "option 'compile' must be a bool"),
    ({"student": 7}, "option 'student' must be a string, got int 7"),
    ({"perturb": 3}, "option 'perturb' must be a string or null, got int 3"),
    ({"betas": [0.9]}, "option 'betas' must be a list of 2 floats"),
    ({"betas": "0.9,0.95"}, "option 'betas' must be a list of 2 floats"),
])
def test_values_are_checked_against_the_field_annotations(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, values)


def test_ints_pass_as_floats_and_lists_as_tuples() -> None:
    cfg = from_dict(TrainConfig, {"epochs": 10, "lr": 1, "perturb": None, "betas": [0.9, 0.99]})
    assert cfg.epochs == 10 and cfg.lr == 1 and cfg.perturb is None
    from pst_core.evaluate.robustness import RobustnessConfig

    with pytest.raises(ConfigError, match="option 'rates' must be a list of floats, got list \\[0.0, '0.2'\\]"):
        from_dict(RobustnessConfig, {"task": "t", "teacher": "x", "rates": [0.0, "0.2"]})
    with pytest.raises(ConfigError, match="option 'train' must be a mapping"):
        from_dict(RobustnessConfig, {"task": "t", "teacher": "x", "train": ["lr"]})


def _config_classes() -> list[tuple[type, dict]]:
    """Every stage config with the fields it requires."""
    from pst_core.embed import EmbedConfig
    from pst_core.evaluate.config import EvalConfig
    from pst_core.evaluate.paper import PaperConfig
    from pst_core.evaluate.robustness import RobustnessConfig
    from pst_core.harvest.config import HarvestConfig
    from pst_core.prepare import PrepareConfig
    from pst_core.teachers import TeacherConfig
    from pst_core.train.strategies import STRATEGIES

    strategies = [(STRATEGIES.get(s).config_cls, {"strategy": s}) for s in STRATEGIES.names()]
    return [*strategies, (EvalConfig, {}), (EmbedConfig, {}), (PrepareConfig, {}), (PaperConfig, {}),
            (HarvestConfig, {"teacher": "t", "task": "coin_flip"}), (RobustnessConfig, {"task": "coin_flip", "teacher": "t"}),
            (TeacherConfig, {"name": "t", "base_url": "http://localhost:1/v1", "model": "m"})]


@pytest.mark.parametrize(("cls", "required"), _config_classes(), ids=lambda v: getattr(v, "__name__", ""))
def test_every_config_class_builds_from_its_defaults_and_its_stored_json(cls: type, required: dict) -> None:
    cfg = from_dict(cls, required)
    stored = json.loads(json.dumps(to_dict(cfg)))  # as config.json / metrics.json keep it: tuples become lists
    assert json.loads(json.dumps(to_dict(from_dict(cls, stored)))) == stored
