"""Checks that measure (issue 13): identities are declared, and shown as such in reports.

Every experiment's ``ctx.check`` calls are listed from its recipe source; a check whose
measured and theory values come from one function call fails unless it says
``identity=True``. The slow gallery tests add the run-time side
(:func:`tests._checks.assert_checks_measure`: agreement to machine precision).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pandas as pd
import pytest

from memscape.experiments.registry import EXPERIMENTS
from memscape.runs.results import Check, ResultsFolder
from tests._checks import assert_checks_measure, recipe_checks

SNIPPET = """
def job(x, seed):
    beta_c = theory.critical_beta(x)
    return {"t": pd.DataFrame({"measured": [beta_c], "predicted": [beta_c]})}

def run(cfg, ctx):
    r = fit(data)
    ctx.check("two fields of one call", r.slope, r.intercept, 0.1)
    ctx.check("one call twice", T.f(x), T.f(x), 0.1)
    ctx.check("independent", measure(x), T.f(x), 0.1)
    ctx.check("declared", T.g(x), float(T.g(x)), 0.0, identity=True)
    row = ctx.table("t", res.table("t")).iloc[0]
    ctx.check("two columns of one value", row["measured"], row["predicted"], 0.1)
    a, b = measure(x), T.f(x)
    ctx.check("unpacked pair", a, b, 0.1)
    n = len(table)
    ctx.check("a count of the same table", table["ok"].sum(), n, 0.0)
"""


def test_static_listing_finds_one_call_on_both_sides(tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text(SNIPPET)
    found = {c.name.strip("'"): c for c in recipe_checks(path)}
    assert len(found) == 7
    flagged = {name for name, c in found.items() if c.shared and not c.identity}
    assert flagged == {"two fields of one call", "one call twice", "two columns of one value"}
    assert found["declared"].identity and found["declared"].shared == {"T.g(x)"}
    assert found["independent"].measured == {"measure(x)"}
    assert found["two columns of one value"].shared == {"theory.critical_beta(x)"}


def _recipe_files() -> dict[str, Path]:
    return {name: Path(inspect.getfile(exp.run)) for name, exp in EXPERIMENTS.items()}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_checks_and_no_check_compares_a_call_with_itself(name):
    checks = recipe_checks(_recipe_files()[name])
    assert checks, f"{name}: no ctx.check in its recipe"
    bad = [f"line {c.line} {c.name}: {sorted(c.shared)}" for c in checks
           if c.shared and not c.identity]  # fmt: skip
    assert not bad, f"{name}: measured and theory from one call (mark identity=True?): {bad}"


def test_identity_checks_are_shown_as_identities(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    folder.add_check("measured β_c", 1.3316, 1.3315, 0.002)
    same = folder.add_check("continuation β_c", 1.3315, 1.3315, 0.01, identity=True)
    assert same == Check("continuation β_c", 1.3315, 1.3315, 0.01, True, True) and same.passed
    folder.write_report("demo")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| check | kind | measured |" in md
    assert "| measured β_c | measurement |" in md and "| continuation β_c | identity |" in md
    table = pd.read_parquet(tmp_path / "r" / "checks.parquet")
    assert table["identity"].tolist() == [False, True]


def test_run_time_rule_fails_on_machine_precision_agreement(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    folder.add_check("a real measurement", 0.1379 + 1e-4, 0.1379, 0.01, relative=False)
    folder.add_check("a count", 4, 4, 0.0, relative=False)  # integer theory: exact is fine
    folder.add_check("declared identity", 1.3315109, 1.3315109, 0.01, identity=True)
    folder.write_report("ok")
    assert_checks_measure(folder)
    folder.add_check("hidden identity", 0.2589603 + 1e-16, 0.2589603, 0.01)
    folder.write_report("bad")
    with pytest.raises(AssertionError, match="hidden identity"):
        assert_checks_measure(folder)
