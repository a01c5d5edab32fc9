"""Gallery experiments ``regimes`` (Biroli et al. 2024) and ``circle`` (Pham et al. 2025).

Their science is tested in the library's tests (regimes: tests/test_regimes.py; the
circle's radial profile against the Bessel energy: tests/test_landscape_profiles.py);
here the options are validated, and slow tests run each quick mode and read the tables.
"""

from __future__ import annotations

import pytest
from scipy import stats

from memscape.experiments import run_experiment
from memscape.experiments.registry import EXPERIMENTS, build_config
from memscape.theory import circle_radius
from tests._checks import assert_checks_measure


# ----------------------------------------------------------------------------- fast
def test_configs_validate_and_name_the_option():
    for bad, name in (
        ({"threshold": 1.5}, "threshold"),
        ({"pairs": 0}, "pairs"),
        ({"dims": (1,), "mean_scale": 0.1}, "mean_scale"),  # Λ − 1 = dμ̃² too small
    ):
        with pytest.raises(ValueError, match=name):
            build_config(EXPERIMENTS["regimes"], overrides=bad)
    with pytest.raises(ValueError, match="sigma"):
        build_config(EXPERIMENTS["circle"], overrides={"sigma": 0.8})
    with pytest.raises(ValueError, match="sizes"):
        build_config(EXPERIMENTS["circle"], overrides={"sizes": ()})
    with pytest.raises(ValueError, match="unknown option"):
        run_experiment("regimes", out=None, quick=True, bogus=1)


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_regimes_quick_matches_speciation_and_collapse_theory(tmp_path):
    folder = run_experiment("regimes", tmp_path / "regimes", quick=True, progress=False)
    collapse = folder.read_table("collapse")
    assert len(collapse) >= 2 and collapse["t_C"].notna().all()
    assert (collapse["t_C"] - collapse["t_C_theory"]).abs().max() <= 0.05  # issue tolerance
    spec = folder.read_table("speciation")
    top = spec.loc[spec["d"].idxmax()]
    assert abs(top["crossing"] - top["t_S"]) <= 0.1  # crosses ≈ 0.775 at t_S
    cloning = folder.read_table("cloning")
    # every measured count inside the exact binomial acceptance interval of the exact
    # probability, 99 % family-wise over the cloning times of one d (Bonferroni)
    for _, grp in cloning.groupby("d"):
        same = (grp["same_class"] * grp["pairs"]).round()
        lo, hi = stats.binom.interval(1 - 0.01 / len(grp), grp["pairs"], grp["theory"])
        assert ((lo <= same) & (same <= hi)).all(), grp
    assert (spec["max_z"] <= spec["z_limit"]).all()
    assert_checks_measure(folder)
    # the probability falls through ≈ 0.775 between t_S − 0.5 and t_S + 0.5 at the largest d
    big = cloning[cloning["d"] == top["d"]]
    assert big.loc[big["t_minus_t_S"] <= -0.5 + 1e-9, "same_class"].min() > 0.775
    assert big.loc[big["t_minus_t_S"] >= 0.5 - 1e-9, "same_class"].max() < 0.775


@pytest.mark.slow
def test_circle_quick_ring_radius_and_energy_profile(tmp_path):
    folder = run_experiment("circle", tmp_path / "circle", quick=True, progress=False)
    rings = folder.read_table("rings")
    top = rings[rings["K"] == rings["K"].max()].set_index("model")
    theory = circle_radius(sigma=0.3).exact
    assert abs(top.loc["exact", "ring_radius"] - theory) < 0.01
    assert abs(top.loc["trained", "ring_radius"] - theory) < 0.08
    assert top.loc["exact", "profile_rms_gap"] < 1e-3
    assert top.loc["trained", "profile_corr"] > 0.5
    minima = folder.read_table("minima")
    two = minima[(minima["K"] == 2) & (minima["model"] == "exact")]
    assert two.groupby("label")["count"].sum().to_dict() == {"memory": 2}
