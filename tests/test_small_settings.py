"""Small and odd settings run: one-K grids, two samples, one census start, no probe, no minimum.

The flagship once died in the attractor census on ``sizes: [2], seeds: 1, steps: 50,
samples: 8, census_starts: 4, probe_points: 1, probe_trials: 2, pairs: false``
("cannot reshape tensor of 0 elements"). Here that run goes end to end (under umask 022,
so the same run also checks that every file is 0644 and every folder 0755 with a
portable name), and a grid of minimal settings goes through the job itself, with the
invariants every output must meet.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch

import memscape.experiments.recipes.memorization as recipe
from memscape.experiments import run_experiment
from memscape.memorization import ATTRACTOR_CLASSES, CLASSES, classify_attractors
from memscape.memorization.classes import fraction_column
from memscape.protocol import EnergyModel

ISSUE = {"sizes": "2", "seeds": 1, "steps": 50, "samples": 8, "census_starts": 4,
         "probe_points": 1, "probe_trials": 2, "pairs": False}  # fmt: skip


@pytest.fixture(scope="module")
def issue_run(tmp_path_factory):
    """The configuration of the crash, run whole under umask 022."""
    out = tmp_path_factory.mktemp("small") / "run"
    old = os.umask(0o022)
    try:
        run_experiment("memorization", out, progress=False, **ISSUE)
    finally:
        os.umask(old)
    return out


def test_the_crashing_configuration_runs_end_to_end(issue_run):
    summary = pd.read_parquet(issue_run / "summary.parquet")
    assert sorted(summary["model"]) == ["exact", "trained"] and (summary["K"] == 2).all()
    fractions = summary[[fraction_column(c) for c in CLASSES]].sum(axis=1)
    np.testing.assert_allclose(fractions, 1.0)
    checks = pd.read_parquet(issue_run / "checks.parquet")
    assert len(checks) >= 1 and checks["measured"].notna().all()
    for name in ("report.md", "report.html", "class_fractions.png", "landscapes.png"):
        assert (issue_run / name).is_file(), name


def test_files_get_the_umask_and_portable_names(issue_run):
    """Under umask 022: every file 0644, every folder 0755; names ASCII without spaces or colons."""
    portable = re.compile(r"[A-Za-z0-9._=+-]+")
    paths = [issue_run, *issue_run.rglob("*")]
    assert any(p.name == "model.safetensors" for p in paths)  # training wrote here too
    assert any(p.name == "run.json" for p in paths)  # and the sweep
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
        assert portable.fullmatch(p.name), p
        assert not p.name.startswith(".")  # no temporary file left behind


# ------------------------------------------------------------------ the job on a grid
GRID = [
    pytest.param({"steps": 1, "samples": 2, "census_starts": 1, "probe_points": 0}, id="untrained"),
    pytest.param(
        {"kind": "exact", "samples": 2, "census_starts": 1, "probe_trials": 1},
        id="exact-two-samples",
    ),
    pytest.param({"pairs": True, "pool": 4, "energy": True}, id="energy-twin-pool-4"),
    pytest.param({"kind": "exact", "census_sigma": 10.0}, id="exact-one-blurred-minimum"),
    pytest.param({"delta_m": 1e-9, "probe_points": 8}, id="nothing-memorized"),
    pytest.param({"sampler": "ddim", "sampler_steps": 1, "census_starts": 1}, id="ddim-1-step"),
]


@pytest.mark.parametrize("settings", GRID)
def test_minimal_settings_give_consistent_tables(settings):
    settings = dict(settings)
    kind = settings.pop("kind", "trained")
    base = {"sizes": (2,), "seeds": 1, "steps": 20, "samples": 4, "width": 8, "layers": 1,
            "batch": 8, "census_starts": 2, "probe_points": 1, "probe_trials": 2,
            "sampler_steps": 4, "pairs": False, "pool": 16}  # fmt: skip
    cfg = recipe.MemorizationConfig(**{**base, **settings})
    cfg.validate()
    out = recipe.memorization_job(kind, 2, 0, 1, asdict(cfg), None)
    samples, summary, attractors, probe = (out[n] for n in ("samples", "summary", "attractors",
                                                             "probe"))  # fmt: skip
    assert len(samples) == cfg.samples and set(samples["class"]) <= set(CLASSES)
    assert samples["d1"].ge(0).all() and samples["ratio"].ge(0).all()
    assert len(summary) == 1
    row = summary.iloc[0]
    assert sum(row[fraction_column(c)] for c in CLASSES) == pytest.approx(1.0)
    assert sum(row[f"attractors_{c}"] for c in ATTRACTOR_CLASSES) == len(attractors)
    assert set(attractors["class"]) <= set(CLASSES)
    assert attractors["basin_fraction"].between(0, 1).all()
    counts = samples["class"].value_counts()
    assert len(probe) == sum(min(cfg.probe_points, counts.get(c, 0)) for c in CLASSES)
    assert out["generated"].shape == (cfg.samples, 2) and torch.isfinite(out["generated"]).all()
    if cfg.pairs and kind == "trained":
        assert np.isfinite(row["mean_twin_l2"]) and np.isfinite(row["mean_reference_l2"])


class Slope(EnergyModel):
    """``E(x) = x₀ + x₁²``: a tilted valley, ∂E/∂x₀ = 1 everywhere: no critical point."""

    event_shape = (2,)

    def energy(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return x[:, 0] + x[:, 1] ** 2


def test_a_landscape_without_minima_gives_an_empty_census_table():
    train = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    table = classify_attractors(Slope(), None, train, delta_m=0.1, n_starts=4,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert len(table) == 0
    assert list(table.columns) == ["energy", "basin_fraction", "flatness", "d1", "class"]
