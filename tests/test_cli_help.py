"""``memscape run NAME --help``: every option typed, its range and default said once."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from memscape.cli import _option_help, app
from memscape.config import option_spec
from memscape.experiments import EXPERIMENTS


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_help_lists_every_option_with_its_type(name):
    result = CliRunner().invoke(app, ["run", name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for opt, spec in option_spec(EXPERIMENTS[name].config).items():
        assert f"--{opt.replace('_', '-')}" in result.output
        if spec["type"] != "bool":
            assert f"<{spec['type']}>" in result.output, f"{name} --{opt}: no type shown"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_default_appears_once(name):
    for opt, spec in option_spec(EXPERIMENTS[name].config).items():
        text = _option_help(spec)
        assert text.count("default") <= 1 + (spec["help"] or "").count("default"), (name, opt)
        if spec["default"] is not None:
            assert "default" in text.replace(spec["help"] or "", ""), f"{name} --{opt}: no default"
        # rich reads "[word…]" as markup and drops it ("[0, 1.6]" stays)
        assert not re.search(r"\[[a-z#/@]", text), f"{name} --{opt}: rich markup in help"


def test_option_help_states_range_and_choices():
    spec = {"help": "steps", "default": 3, "ge": 1, "gt": None, "le": None, "lt": 10,
            "choices": None}  # fmt: skip
    assert _option_help(spec) == "steps (>= 1; < 10; default 3)"
    spec = {"help": "sampler", "default": "heun", "choices": ("heun", "euler")}
    assert _option_help(spec) == "sampler (one of heun, euler; default heun)"
