"""Gaussian-mixture exact diffusion and the regimes measurements (Biroli et al. 2024).

Against independent truth: the mixture density built from torch.distributions,
autograd of its energy, the tanh score of the symmetric pair, EmpiricalDiffusion in
the limit of zero component variance, the closed-form cloning probability and a 1-D
quadrature of the collapse curve.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special

from memscape.diffusion import EmpiricalDiffusion, GaussianMixtureDiffusion
from memscape.dynamics import clone_pairs, collapse_crossing, fit_crossing
from memscape.protocol import EnergyModel, jacobian_of
from memscape.theory import (
    clone_probability,
    clone_probability_at_speciation,
    clone_probability_crossing,
    speciation_time,
)


def _mixture_logp(x, means, weights, var):
    comps = torch.distributions.MultivariateNormal(
        means, covariance_matrix=var * torch.eye(means.shape[1], dtype=torch.float64)
    )
    return (comps.log_prob(x[:, None, :]) + weights.log()).logsumexp(1)


# ----------------------------------------------------------------------------- mixture
def test_two_gaussians_energy_score_denoiser_closed_forms():
    g = torch.Generator().manual_seed(0)
    d, v, sigma = 5, 0.7, 0.9
    m = torch.randn(d, generator=g, dtype=torch.float64)
    model = GaussianMixtureDiffusion.symmetric_pair(m, variance=v)
    x = 2 * torch.randn(16, d, generator=g, dtype=torch.float64)
    # energy = −log of the noised mixture density, built independently
    cov = (v + sigma**2) * torch.eye(d, dtype=torch.float64)
    comps = [torch.distributions.MultivariateNormal(s * m, cov) for s in (1, -1)]
    logp = torch.logsumexp(torch.stack([c.log_prob(x) for c in comps]), 0) - math.log(2)
    torch.testing.assert_close(model.energy(x, sigma), -logp)
    # closed-form score = −∇E by autograd (base-class score)
    torch.testing.assert_close(model.score(x, sigma), EnergyModel.score(model, x, sigma))
    torch.testing.assert_close(model.denoise(x, sigma), x + sigma**2 * model.score(x, sigma))
    # the tanh score of ±m (Biroli et al. 2024, §3)
    s2 = v + sigma**2
    tanh_score = (torch.tanh(x @ m / s2)[:, None] * m - x) / s2
    torch.testing.assert_close(model.score(x, sigma), tanh_score)
    # σ as a (B,) tensor broadcasts like a float
    sig = torch.full((16,), sigma, dtype=torch.float64)
    torch.testing.assert_close(model.score(x, sig), model.score(x, sigma))


def test_two_gaussians_rejects_bad_input():
    with pytest.raises(ValueError, match="mean"):
        GaussianMixtureDiffusion.symmetric_pair(torch.ones(2, 2))
    with pytest.raises(ValueError, match="means"):
        GaussianMixtureDiffusion(torch.ones(3))
    with pytest.raises(ValueError, match="variance"):
        GaussianMixtureDiffusion.symmetric_pair(torch.ones(3), variance=0.0)
    with pytest.raises(ValueError, match="x"):
        GaussianMixtureDiffusion.symmetric_pair(torch.ones(3)).score(torch.ones(4, 2), 1.0)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureDiffusion(torch.ones(3, 2), weights=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureDiffusion(torch.ones(2, 2), weights=torch.tensor([1.0, 0.0]))


def test_general_mixture_against_its_density_and_autograd():
    g = torch.Generator().manual_seed(3)
    k, d, v = 4, 3, 0.3
    means = 2 * torch.randn(k, d, generator=g, dtype=torch.float64)
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    model = GaussianMixtureDiffusion(means, variance=v, weights=2 * weights)  # normalized
    x = 2 * torch.randn(9, d, generator=g, dtype=torch.float64)
    sigma = torch.linspace(0.2, 1.5, 9, dtype=torch.float64)  # one σ per state
    logp = torch.stack([
        _mixture_logp(x[i : i + 1], means, weights, v + float(sigma[i]) ** 2)[0] for i in range(9)
    ])  # fmt: skip
    torch.testing.assert_close(model.energy(x, sigma), -logp)
    torch.testing.assert_close(model.score(x, sigma), EnergyModel.score(model, x, sigma))
    torch.testing.assert_close(model.hessian(x, sigma), EnergyModel.hessian(model, x, sigma))
    torch.testing.assert_close(model.hessian(x, sigma), -jacobian_of(
        lambda z: model.score(z, sigma), x))  # fmt: skip
    post = model.posterior(x, sigma)
    torch.testing.assert_close(post.sum(1), torch.ones(9, dtype=torch.float64))
    # data covariance and samples
    xs, comp = model.sample(40000, generator=g)
    assert xs.shape == (40000, d) and comp.shape == (40000,)
    torch.testing.assert_close(torch.cov(xs.T), model.covariance(), atol=0.1, rtol=0.03)
    freq = torch.bincount(comp, minlength=k).double() / 40000
    torch.testing.assert_close(freq, weights, atol=0.01, rtol=0)


def test_mixture_tends_to_the_empirical_model_as_the_variance_vanishes():
    g = torch.Generator().manual_seed(4)
    data = torch.randn(6, 2, generator=g, dtype=torch.float64)
    exact, mix = EmpiricalDiffusion(data), GaussianMixtureDiffusion(data, variance=1e-12)
    x = torch.randn(8, 2, generator=g, dtype=torch.float64)
    for sigma in (0.3, 1.0):
        torch.testing.assert_close(mix.energy(x, sigma), exact.energy(x, sigma))
        torch.testing.assert_close(mix.denoise(x, sigma), exact.denoise(x, sigma))
        torch.testing.assert_close(mix.hessian(x, sigma), exact.hessian(x, sigma))
        torch.testing.assert_close(mix.posterior(x, sigma), exact.posterior(x, sigma))


# ----------------------------------------------------------------------------- regimes
def test_clone_pairs_and_collapse_crossing_reject_bad_input():
    model = GaussianMixtureDiffusion.symmetric_pair(torch.ones(2, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="clone_sigmas"):
        clone_pairs(model, torch.tensor([0.5, 1.0]), 10, 10, g)  # increasing
    with pytest.raises(ValueError, match="pairs"):
        clone_pairs(model, torch.tensor([1.0, 0.5]), 0, 10, g)
    with pytest.raises(TypeError, match="model"):
        clone_pairs(EmpiricalDiffusion(torch.ones(2, 2)), torch.tensor([1.0]), 10, 10, g)
    data = torch.randn(5, 2, generator=g)
    with pytest.raises(ValueError, match="threshold"):
        collapse_crossing(data, 10, 1.0, g, torch.tensor([0.1]))
    with pytest.raises(ValueError, match="times"):
        collapse_crossing(data, 10, 0.5, g, torch.tensor([-0.1]))


def test_clone_pairs_match_exact_cloning_probability_in_one_dimension():
    """Cloned reverse-SDE trajectories (d = 1) against the closed-form φ(t)."""
    a = 2.0
    model = GaussianMixtureDiffusion.symmetric_pair(torch.tensor([a], dtype=torch.float64))
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


def test_fit_crossing_of_a_line_and_of_noisy_points():
    t = np.linspace(0, 2, 9)
    assert fit_crossing(t, 1 - 0.4 * t, 0.7) == pytest.approx(0.75)
    noisy = 1 - 0.4 * t + 0.01 * np.array([1, -1, 1, -1, 1, -1, 1, -1, 1])
    assert fit_crossing(t, noisy, 0.7) == pytest.approx(0.75, abs=0.03)
    assert math.isnan(fit_crossing(t, np.ones(9), 0.7))  # never crosses
    assert math.isnan(fit_crossing(t, 0.5 * np.ones(9), 0.7))  # starts below


def test_clone_probability_crossing_inverts_phi_and_tends_to_t_s():
    a = 2.0
    assert clone_probability_crossing(a, clone_probability(0.7, a)) == pytest.approx(0.7)
    level = clone_probability_at_speciation()
    d = 4096  # ‖m‖² = d, Λ = d + 1: the crossing of ≈ 0.775 approaches t_S = ½ ln Λ
    assert clone_probability_crossing(math.sqrt(d), level) == pytest.approx(
        speciation_time(d + 1.0), abs=1e-3
    )
    with pytest.raises(ValueError, match="level"):
        clone_probability_crossing(a, 0.4)
