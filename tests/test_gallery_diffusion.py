"""Gallery experiments ``regimes`` (Biroli et al. 2024) and ``circle`` (Pham et al. 2025).

Fast tests check the science functions these experiments add against independent
truth (autograd, a Gaussian-mixture density, the Bessel integral of the circle, a
1-D closed form); slow tests run each quick mode and read the written tables.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special

from memscape.diffusion.empirical import EmpiricalDiffusion
from memscape.experiments import run_experiment
from memscape.experiments.circle import CircleConfig, radial_profile
from memscape.experiments.recipes.regimes import (
    RegimesConfig,
    TwoGaussians,
    clone_pairs,
    collapse_crossing,
)
from memscape.protocol import EnergyModel
from memscape.theory import circle_energy, circle_radius, clone_probability


# ----------------------------------------------------------------------------- fast
def test_two_gaussians_energy_score_denoiser_closed_forms():
    g = torch.Generator().manual_seed(0)
    d, v, sigma = 5, 0.7, 0.9
    m = torch.randn(d, generator=g, dtype=torch.float64)
    model = TwoGaussians(m, variance=v)
    x = 2 * torch.randn(16, d, generator=g, dtype=torch.float64)
    # energy = −log of the noised mixture density, built independently
    cov = (v + sigma**2) * torch.eye(d, dtype=torch.float64)
    comps = [torch.distributions.MultivariateNormal(s * m, cov) for s in (1, -1)]
    logp = torch.logsumexp(torch.stack([c.log_prob(x) for c in comps]), 0) - math.log(2)
    torch.testing.assert_close(model.energy(x, sigma), -logp)
    # closed-form score = −∇E by autograd (base-class score)
    torch.testing.assert_close(model.score(x, sigma), EnergyModel.score(model, x, sigma))
    torch.testing.assert_close(model.denoise(x, sigma), x + sigma**2 * model.score(x, sigma))
    # σ as a (B,) tensor broadcasts like a float
    sig = torch.full((16,), sigma, dtype=torch.float64)
    torch.testing.assert_close(model.score(x, sig), model.score(x, sigma))


def test_two_gaussians_rejects_bad_input():
    with pytest.raises(ValueError, match="mean"):
        TwoGaussians(torch.ones(2, 2))
    with pytest.raises(ValueError, match="variance"):
        TwoGaussians(torch.ones(3), variance=0.0)
    with pytest.raises(ValueError, match="x"):
        TwoGaussians(torch.ones(3)).score(torch.ones(4, 2), 1.0)


def test_clone_pairs_and_collapse_crossing_reject_bad_input():
    model = TwoGaussians(torch.ones(2, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="clone_sigmas"):
        clone_pairs(model, torch.tensor([0.5, 1.0]), 10, 10, g)  # increasing
    with pytest.raises(ValueError, match="pairs"):
        clone_pairs(model, torch.tensor([1.0, 0.5]), 0, 10, g)
    data = torch.randn(5, 2, generator=g)
    with pytest.raises(ValueError, match="threshold"):
        collapse_crossing(data, 10, 1.0, g, torch.tensor([0.1]))
    with pytest.raises(ValueError, match="times"):
        collapse_crossing(data, 10, 0.5, g, torch.tensor([-0.1]))


def test_clone_pairs_match_exact_cloning_probability_in_one_dimension():
    """Cloned reverse-SDE trajectories (d = 1) against the closed-form φ(t)."""
    a = 2.0
    model = TwoGaussians(torch.tensor([a], dtype=torch.float64))
    times = np.array([1.6, 0.9, 0.4])
    sig = torch.sqrt(torch.expm1(2 * torch.tensor(times)))
    pairs = 3000
    same = clone_pairs(model, sig, pairs, 150, torch.Generator().manual_seed(1)).numpy()
    exact = clone_probability(times, a)
    se = np.sqrt(exact * (1 - exact) / pairs)
    assert np.all(np.abs(same - exact) < 4 * se + 0.01), (same, exact)
    assert exact[0] < exact[1] < exact[2]  # later cloning (smaller t) → more often the same class


def test_collapse_crossing_two_points_closed_form():
    """Points ±1, d = 1: mean end-point weight E_z[ς(2(1 + σz)/σ²)], crossing by quadrature."""
    data = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    nodes, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()

    def mean_weight(t: float) -> float:
        s = math.sqrt(math.expm1(2 * t))
        return float((w * special.expit(2 * (1 + s * nodes) / s**2)).sum())

    level = 0.8
    exact = optimize.brentq(lambda t: mean_weight(t) - level, 1e-3, 5.0)
    times = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    t_c, curve = collapse_crossing(data, 40000, level, torch.Generator().manual_seed(0), times)
    assert abs(t_c - exact) < 0.02
    expected = torch.tensor([mean_weight(float(t)) for t in times], dtype=torch.float64)
    torch.testing.assert_close(curve, expected, atol=0.01, rtol=0)


def test_radial_profile_of_exact_model_is_the_bessel_energy():
    """2σ²(−log p_σ) of equispaced circle points is R² + 1 − 2σ² log I₀(R/σ²) + c."""
    sigma, k = 0.35, 2000
    theta = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    model = EmpiricalDiffusion(torch.stack([theta.cos(), theta.sin()], 1))
    radii = torch.linspace(0, 1.6, 321, dtype=torch.float64)
    profile, ring = radial_profile(model, sigma, 8, radii)
    theory = circle_energy(radii.numpy(), sigma=sigma)
    gap = profile - profile.mean() - (theory - theory.mean())
    assert np.abs(gap).max() < 1e-8
    assert abs(ring - circle_radius(sigma=sigma).exact) < 1e-4


def test_configs_validate_and_name_the_option():
    with pytest.raises(ValueError, match="threshold"):
        RegimesConfig(threshold=1.5).validate()
    with pytest.raises(ValueError, match="pairs"):
        RegimesConfig(pairs=0).validate()
    with pytest.raises(ValueError, match="sigma"):
        CircleConfig(sigma=0.8).validate()
    with pytest.raises(ValueError, match="sizes"):
        CircleConfig(sizes=()).validate()
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
    pairs = int(cloning["pairs"].iat[0])
    assert (cloning["same_class"] - cloning["theory"]).abs().max() <= 4 / math.sqrt(pairs) + 0.01
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
