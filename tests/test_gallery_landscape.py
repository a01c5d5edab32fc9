"""Gallery: landscape, symmetry-breaking and morse-smale experiments and their science helpers.

Fast tests check the new science functions against independent formulas (the
symmetry-breaking science, ProcessLandscape and the SDE coefficients, is tested in
tests/test_process_landscape.py); slow tests run each experiment in quick mode and
read its tables.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from memscape import theory
from memscape.experiments import EXPERIMENTS, build_config, run_experiment
from tests._checks import assert_checks_measure


# ----------------------------------------------------------------------------- fast
def test_configs_name_the_bad_option():
    ls, ms_ = EXPERIMENTS["landscape"], EXPERIMENTS["morse-smale"]
    with pytest.raises(ValueError, match="model"):
        build_config(ls, overrides={"model": "hopfield"})
    with pytest.raises(ValueError, match="sigma"):
        build_config(ls, overrides={"sigma": 0.0})
    with pytest.raises(ValueError, match="perfect square"):
        build_config(ls, overrides={"data": "lattice", "k": 5})
    sb = EXPERIMENTS["symmetry-breaking"]
    with pytest.raises(ValueError, match="processes"):
        build_config(sb, overrides={"processes": ("edm2",)})
    with pytest.raises(ValueError, match="sigma_max"):
        build_config(sb, overrides={"sigma_min": 1.0, "sigma_max": 0.5})
    with pytest.raises(ValueError, match="perfect square"):
        build_config(sb, overrides={"data": "lattice", "k": 3})
    with pytest.raises(ValueError, match="height"):
        build_config(ms_, overrides={"height_start": 1.0, "height_stop": 1.0})


# ----------------------------------------------------------------------------- slow
def _euler(points: pd.DataFrame) -> int:
    idx = points.loc[points["converged"], "morse_index"]
    return int(((-1) ** idx).sum())


@pytest.mark.slow
def test_symmetry_breaking_quick_matches_closed_forms(tmp_path):
    folder = run_experiment("symmetry-breaking", tmp_path / "sb", quick=True, progress=False)
    assert (folder.path / "explorer.html").is_file() and (folder.path / "explorer.json").is_file()
    crit = folder.read_table("critical_times")
    assert len(crit) == 6  # a = 1 × {ve, vp, ou} × {density, drift}
    for r in crit.itertuples():
        theory_fn = (theory.symmetry_breaking_time if r.object == "density"
                     else theory.drift_potential_breaking_time)  # fmt: skip
        assert r.t_c == pytest.approx(theory_fn(r.a, r.process), rel=0.01)  # t_c within 1 %
        assert r.kind == "pitchfork"
        if r.object == "density":
            assert r.sigma_c == pytest.approx(r.a, rel=0.01)  # σ_c within 1 %
        # measured without Hessians: the minima count of E on a grid changes at t_c
        assert r.t_c_scan == pytest.approx(theory_fn(r.a, r.process), rel=1e-5)
        assert r.minima_ends == "(2, 1)"
    dens = crit[crit.object == "density"].set_index("process")["t_c"]
    drift = crit[crit.object == "drift"].set_index("process")["t_c"]
    assert drift["vp"] > 1.05 * dens["vp"] and drift["ou"] > 1.05 * dens["ou"]
    # triangle diagram: the centred data's mean changes index at σ² = λ_max(Cov) = 1/2
    bif = folder.read_table("diagram_bifurcations")
    at_mean = bif[(bif["x0"].abs() < 1e-6) & (bif["x1"].abs() < 1e-6)]
    assert at_mean["parameter"].max() == pytest.approx(math.sqrt(0.5), rel=0.01)
    assert_checks_measure(folder)


@pytest.mark.slow
@pytest.mark.parametrize(("options", "n_minima"), [
    ({}, 3), ({"model": "modern", "data": "polygon", "k": 5}, 5),
])  # fmt: skip
def test_landscape_quick_census_basins_and_graph(tmp_path, options, n_minima):
    folder = run_experiment("landscape", tmp_path / "ls", quick=True, progress=False, **options)
    pts = folder.read_table("critical_points")
    assert _euler(pts) == 1
    conv = pts[pts["converged"]]
    assert int((conv["morse_index"] == 0).sum()) == n_minima
    basins = folder.read_table("basins")
    assert basins["fraction"].sum() == pytest.approx(1.0)
    mins = basins[basins["point"] >= 0]  # every minimum attracts a share inside its interval
    assert len(mins) == n_minima and (mins["fraction"] > 0.05).all()
    assert (mins["ci_low"] <= mins["fraction"]).all()
    assert (mins["fraction"] <= mins["ci_high"]).all()
    edges = folder.read_table("edges")
    minima = set(conv.loc[conv["morse_index"] == 0, "point"].astype(str))
    for _, e in edges.groupby("saddle"):  # each saddle joins two different minima
        assert len(e) == 2 and set(e["end"]) <= minima and e["end"].nunique() == 2
    banner = (folder.path / "report.md").read_text().splitlines()[2]
    assert banner.startswith("> **Quick mode**") and "n_starts = 300 (default 1000)" in banner


@pytest.mark.slow
def test_morse_smale_quick_events_and_censuses(tmp_path):
    folder = run_experiment("morse-smale", tmp_path / "ms", quick=True, progress=False)
    snaps = folder.read_table("snapshots")
    census = folder.read_table("census")
    for (system, snap), pts in census.groupby(["system", "snapshot"]):
        assert _euler(pts) == 1, (system, snap)
    bif = folder.read_table("bifurcations")
    for system in ("exact", "hopfield"):
        s = snaps[snaps["system"] == system].sort_values("snapshot")
        events = int(bif[bif["system"] == system]["kind"].isin(["fold", "pitchfork"]).sum())
        assert events == int(s["n_points"].diff().abs().sum()) // 2
        assert events >= 1
    exact = snaps[snaps["system"] == "exact"]
    assert int(exact.loc[exact["value"].idxmin(), "n_minima"]) == 4  # one per centroid
    assert int(exact.loc[exact["value"].idxmax(), "n_points"]) == 1  # one attractor at large σ
