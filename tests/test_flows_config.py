"""Pipeline config and parameter checks (flows.config): bad names fail before any work starts."""

from __future__ import annotations

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
