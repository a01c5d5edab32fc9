"""Associative-memory gallery experiments: hopfield-capacity, dense-capacity, modern-hopfield.

The science they use is tested where it lives (tests/test_capacity.py, test_datasets.py,
test_numeric.py, test_theory.py); here the configs reject bad options, and the slow
tests run each experiment's quick mode and compare its written tables with theory.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special, stats

import memscape as ms
from memscape.experiments import run_experiment
from memscape.experiments.registry import EXPERIMENTS, build_config
from memscape.numeric import level_crossing
from memscape.theory import (
    ags_critical_load,
    ags_overlap,
    critical_beta,
    dense_capacity,
    exponential_capacity,
)
from tests._checks import assert_checks_measure


def predicted_capacity(N: int, n: int, f: float) -> float:
    """K with exp(−N·dense_bit_error) = f: the closed form at per-bit error −ln f / N."""
    return dense_capacity(N, n, error=-math.log(f) / N)


def half_fixed_load(n: int) -> float:
    """α with exp(−N Φ(−1/√α)) = ½."""
    return dense_capacity(n, 2, error=math.log(2) / n) / n


# ----------------------------------------------------------------------------- fast
@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("hopfield-capacity", {"mode": "parallel"}, "mode"),
        ("hopfield-capacity", {"fixed_alphas": ()}, "fixed_alphas"),
        ("hopfield-capacity", {"fail_overlap": 0.8}, "fail_overlap"),
        ("dense-capacity", {"fraction": 1.5}, "fraction"),
        ("dense-capacity", {"min_patterns": 50, "max_patterns": 10}, "min_patterns"),
        ("modern-hopfield", {"separations": (0.5, 2.0)}, "separations"),
        ("modern-hopfield", {"memories": 16, "dim": 8}, "dim"),
    ],
)
def test_configs_reject_bad_options_naming_them(name, bad, match):
    with pytest.raises(ValueError, match=match):
        build_config(EXPERIMENTS[name], overrides=bad)


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_hopfield_capacity_quick_run_finds_alpha_c_and_matches_ags(tmp_path):
    folder = run_experiment("hopfield-capacity", out=tmp_path / "hc", quick=True, progress=False)
    summary = folder.read_table("summary")
    low = summary[(summary["N"] == 2000) & (summary["alpha"] <= 0.1 + 1e-12)]
    assert len(low) >= 2
    assert (low["overlap"] - ags_overlap(low["alpha"].to_numpy())).abs().max() <= 0.01
    assert (summary[summary["alpha"] >= 0.2]["retrieved"] < 0.5).all()  # collapsed above α_c
    # α_½(N) from the written per-probe overlaps, by linear interpolation written here
    patterns = folder.read_table("patterns")
    frac = (patterns["overlap"] >= 0.75).groupby([patterns["N"], patterns["alpha"]]).mean()
    halves = {}
    for n, f in frac.groupby(level="N"):
        a, p = f.index.get_level_values("alpha").to_numpy(), f.to_numpy()
        i = int(np.flatnonzero(p < 0.5)[0])
        halves[n] = a[i - 1] + (p[i - 1] - 0.5) * (a[i] - a[i - 1]) / (p[i - 1] - p[i])
    sizes, alpha_c = sorted(halves), ags_critical_load().alpha_c
    assert all(halves[a] > halves[b] > alpha_c for a, b in itertools.pairwise(sizes))
    # unweighted least squares in N^-1/2 (scipy), against AGS α_c = 0.1379 at the quick tolerance
    fit = stats.linregress(np.array(sizes, float) ** -0.5, [halves[n] for n in sizes])
    assert fit.intercept == pytest.approx(alpha_c, abs=0.02)
    table = folder.read_table("capacity_extrapolation").set_index("nu")
    row = table.loc[0.5]
    assert row["alpha_c"] == pytest.approx(alpha_c, abs=0.02)
    assert row["alpha_c_low"] <= row["alpha_c"] <= row["alpha_c_high"]
    assert row["alpha_c"] == pytest.approx(fit.intercept, abs=0.005)  # weights change little
    fixed = (
        folder.read_table("fixed_points").groupby(["N", "alpha"], as_index=False)["fraction"].mean()
    )
    for n, grp in fixed.groupby("N"):
        grp = grp.sort_values("alpha")
        measured = level_crossing(grp["alpha"].to_numpy(), grp["fraction"].to_numpy(), 0.5)
        assert measured == pytest.approx(half_fixed_load(int(n)), rel=2 / math.sqrt(n))
    assert_checks_measure(folder)


@pytest.mark.slow
def test_dense_capacity_quick_run_scales_as_n_to_the_n_minus_1(tmp_path):
    folder = run_experiment("dense-capacity", out=tmp_path / "dc", quick=True, progress=False)
    cap = folder.read_table("capacity")
    assert set(cap["n"]) == {2, 3, 4}
    for _, row in cap.iterrows():
        theory = predicted_capacity(int(row["N"]), int(row["n"]), 0.5)
        assert row["K"] == pytest.approx(theory, rel=0.25)
    for n, grp in cap.groupby("n"):
        logn = np.log(grp["N"].to_numpy(float))
        k = grp["K"].to_numpy(float)
        z2 = np.array(
            [
                grp["N"].iloc[i] ** (n - 1)
                / (
                    special.factorial2(2 * n - 3)
                    * predicted_capacity(int(grp["N"].iloc[i]), int(n), 0.5)
                )
                for i in range(len(grp))
            ]
        )
        slope = np.polyfit(logn, np.log(k * z2), 1)[0]
        assert slope == pytest.approx(n - 1, rel=0.1)
    ret = folder.read_table("retrieval")
    exp = ret[ret["interaction"] == "exponential"]
    assert (exp["K"] > exp["N"]).all()
    for _, row in exp.iterrows():
        assert row["K"] <= exponential_capacity(int(row["N"]), 0.1).K
        assert row["retrieved"] >= 0.95
    hebb = ret[(ret["interaction"] == "polynomial") & (ret["n"] == 2)]
    assert (hebb["retrieved"] < 0.1).all()  # K ≥ 2N ≫ N/(2 ln N): the classical net fails
    assert_checks_measure(folder)


@pytest.mark.slow
def test_modern_hopfield_quick_run_bound_rate_and_critical_beta(tmp_path):
    folder = run_experiment("modern-hopfield", out=tmp_path / "mh", quick=True, progress=False)
    ret = folder.read_table("retrieval")
    assert (ret["error"] <= ret["bound"]).all()
    for delta, grp in ret[ret["radius"] == 0].groupby("delta"):
        fit = grp[grp["beta"] * delta >= 6]
        slope = np.polyfit(fit["beta"], np.log(fit["error"]), 1)[0]
        assert -slope == pytest.approx(delta, rel=0.02)
    beta_c = critical_beta(ms.datasets.load("gaussian", size=24, data_seed=0).x)  # run seed 0
    forks = folder.read_table("bifurcations")
    first = forks[forks["kind"] == "pitchfork"]["parameter"].min()
    assert first == pytest.approx(beta_c, rel=0.01)
    scan = folder.read_table("hessian_scan")
    lam, b = scan["lambda_min"].to_numpy(), scan["beta"].to_numpy()
    assert level_crossing(b, lam, 0.0) == pytest.approx(beta_c, rel=0.01)
    meta = folder.read_table("metastable")
    assert (meta[meta["beta"] < beta_c]["size"] == 24).all()
    assert meta[meta["beta_factor"] == meta["beta_factor"].max()]["size"].mean() < 1.5
    # measured by descent dynamics: the bracket where perturbations of the mean start to grow
    stab = folder.read_table("stability")
    assert stab["grew"].any() and not stab["grew"].all()
    assert stab.iloc[-1][["low", "high"]].mean() == pytest.approx(beta_c, rel=1e-3)
    checks = folder.read_table("checks").set_index("name")
    assert checks.filter(like="by descent", axis=0)["identity"].tolist() == [False]
    assert checks.filter(like="continuation", axis=0)["identity"].all()
    assert_checks_measure(folder)
