"""Samplers and likelihood against closed forms (Gaussian data, the exact empirical model)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import memscape as ms
from memscape.diffusion.samplers import (
    SAMPLERS,
    TrajectoryRecorder,
    karras_sigmas,
    linear_sigmas,
    log_sigmas,
    sample_ddim,
    sample_euler,
    sample_heun,
    sample_ode,
)

F64 = torch.float64


MU = torch.tensor([0.3, -0.2], dtype=F64)
S = torch.tensor([[1.0, 0.3], [0.3, 0.4]], dtype=F64)


class GaussianDenoiser:
    """Closed-form denoiser of N(μ, S) data: D = μ + S(S + σ²I)⁻¹(x − μ). Only ``denoise``."""

    def __init__(self, mu: torch.Tensor, cov: torch.Tensor) -> None:
        self.mu, self.cov = mu, cov

    def denoise(self, x, sigma):
        eye = torch.eye(len(self.mu), dtype=x.dtype)
        a = self.cov @ torch.linalg.inv(self.cov + sigma**2 * eye)
        return self.mu + (x - self.mu) @ a.T


def _flow_map(x_t: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Exact probability-flow ODE map from σ_max to 0 for N(μ, S): μ + S^½(S+σ²I)^-½(x − μ)."""
    lam, q = torch.linalg.eigh(S)
    m = q @ torch.diag((lam / (lam + sigma_max**2)).sqrt()) @ q.T
    return MU + (x_t - MU) @ m.T


def test_karras_schedule_matches_eq5():
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert s.shape == (19,) and s.dtype == F64 and s.device.type == "cpu"
    i = torch.arange(18, dtype=F64)
    ref = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert torch.allclose(s[:-1], ref, rtol=1e-12) and s[-1] == 0
    assert s[0] == pytest.approx(80) and s[-2] == pytest.approx(0.002)
    assert torch.allclose(
        log_sigmas(5, 0.01, 100)[:-1].log10(), torch.linspace(2, -2, 5, dtype=F64)
    )
    assert torch.allclose(linear_sigmas(3, 1, 3)[:-1], torch.tensor([3.0, 2, 1], dtype=F64))


def test_heun_on_gaussian_reproduces_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    n = 8000
    x = ms.sample(
        GaussianDenoiser(MU, S), n, (2,), sampler="heun", steps=18, generator=g, dtype=F64
    )
    se = (S.diagonal() / n).sqrt()
    assert ((x.mean(0) - MU).abs() < 4 * se).all()
    # 18 Heun steps from σ_max = 80 carry a known O(h²) bias of ≲ 10% on the variance
    assert torch.allclose(torch.cov(x.T), S, rtol=0.15, atol=0.05)


def test_heun_is_second_order_against_exact_flow():
    x_t = 80 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact = _flow_map(x_t, 80.0)
    model = GaussianDenoiser(MU, S)
    err = [(sample_heun(model, x_t, karras_sigmas(n)) - exact).abs().max() for n in (18, 36, 72)]
    assert err[2] < err[1] < err[0]
    assert 2.5 < err[0] / err[1] < 6.5 and 2.5 < err[1] / err[2] < 6.5  # ≈ 4 = 2²
    ode = sample_ode(model, x_t, karras_sigmas(18), rtol=1e-8, atol=1e-8)
    assert (ode - exact).abs().max() < 1e-3


def test_euler_maruyama_on_gaussian_within_sampling_error():
    g = torch.Generator().manual_seed(2)
    n = 8000
    x = ms.sample(
        GaussianDenoiser(MU, S),
        n,
        (2,),
        sampler="euler_maruyama",
        steps=400,
        sigma_max=20.0,
        generator=g,
        dtype=F64,
    )
    se_mean = (S.diagonal() / n).sqrt()
    assert ((x.mean(0) - MU).abs() < 4 * se_mean).all()
    cov = torch.cov(x.T)
    se_cov = ((S**2 + torch.outer(S.diagonal(), S.diagonal())) / n).sqrt()  # Wishart s.d.
    assert ((cov - S).abs() < 4 * se_cov + 0.01).all()


def test_ddim_equals_euler_in_sigma_space():
    x_t = 10 * torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    s = karras_sigmas(10, sigma_max=10.0)
    m = GaussianDenoiser(MU, S)
    assert torch.allclose(sample_ddim(m, x_t, s), sample_euler(m, x_t, s), atol=1e-10)
    # DDIM (η = 0) in σ-space is the Euler update rearranged: one function, one name each
    assert sample_ddim is sample_euler and SAMPLERS["ddim"] is sample_euler
    direct = x_t.clone()
    for i in range(len(s) - 1):  # x ← D + (σ_{i+1}/σ_i)(x − D), Song et al. 2021 eq. 12
        d = m.denoise(direct, float(s[i]))
        direct = d + float(s[i + 1] / s[i]) * (direct - d)
    assert torch.allclose(sample_ddim(m, x_t, s), direct, atol=1e-10)
    y = ms.sample(m, 16, (2,), sampler="ddim", steps=10, sigma_max=10.0, seed=3, dtype=F64)
    z = ms.sample(m, 16, (2,), sampler="euler", steps=10, sigma_max=10.0, seed=3, dtype=F64)
    assert torch.equal(y, z)


def test_heun_on_empirical_model_ends_on_training_points():
    y = torch.randn(16, 2, generator=torch.Generator().manual_seed(4))
    model = ms.EmpiricalDiffusion(y)
    x = ms.sample(model, 500, sampler="heun", steps=18, generator=torch.Generator().manual_seed(5))
    assert x.shape == (500, 2) and x.dtype == y.dtype
    d = torch.cdist(x.double(), y.double()).min(1).values
    assert (d < 1e-2).float().mean() >= 0.99


def test_trajectory_callback_and_churn_reproducibility():
    model = GaussianDenoiser(MU, S)
    seen = []
    rec = TrajectoryRecorder(callback=lambda info: seen.append(info["sigma"]))
    x = ms.sample(model, 7, (2,), steps=5, dtype=F64, callback=rec)
    traj = rec.trajectory
    assert traj.shape == (6, 7, 2) and torch.equal(traj[-1], x)
    assert seen == karras_sigmas(5)[:-1].tolist()
    assert rec.sigmas == karras_sigmas(5).tolist()
    a = ms.sample(model, 7, (2,), s_churn=10.0, seed=1, dtype=F64)
    b = ms.sample(model, 7, (2,), s_churn=10.0, seed=1, dtype=F64)
    c = ms.sample(model, 7, (2,), s_churn=10.0, seed=2, dtype=F64)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_returns_a_tensor_and_records_n_plus_one_states(name):
    """One calling convention: the final tensor, the trajectory through the callback."""
    model = ms.EmpiricalDiffusion(
        torch.randn(6, 1, 2, 3, generator=torch.Generator().manual_seed(9))
    )
    sigmas = karras_sigmas(4, 0.01, 5.0)
    x = 5.0 * torch.randn(3, 1, 2, 3, generator=torch.Generator().manual_seed(10))
    fn = SAMPLERS[name]
    stochastic = "generator" in inspect.signature(fn).parameters

    def options() -> dict:
        return {"generator": torch.Generator().manual_seed(11)} if stochastic else {}

    plain = fn(model, x, sigmas, **options())
    assert isinstance(plain, torch.Tensor) and plain.shape == x.shape and plain.dtype == x.dtype
    rec = TrajectoryRecorder()
    out = fn(model, x, sigmas, callback=rec, **options())
    assert isinstance(out, torch.Tensor) and torch.equal(out, plain)  # recording changes nothing
    traj = rec.trajectory
    assert traj.shape == (len(sigmas), *x.shape)  # N + 1 states
    assert torch.equal(traj[0], x) and torch.equal(traj[-1], out)
    assert rec.sigmas == sigmas.tolist()
    # a reused recorder starts over with the next run
    fn(model, x, sigmas, callback=rec, **options())
    assert rec.trajectory.shape == (len(sigmas), *x.shape)
    with pytest.raises(TypeError, match="return_trajectory"):
        fn(model, x, sigmas, return_trajectory=True)


def test_recorder_device_and_errors():
    model = GaussianDenoiser(MU, S)
    rec = TrajectoryRecorder(device="cpu")
    with pytest.raises(RuntimeError, match="nothing recorded"):
        _ = rec.trajectory
    x = ms.sample(model, 3, (2,), steps=4, dtype=F64, callback=rec)
    assert rec.trajectory.device.type == "cpu" and torch.equal(rec.trajectory[-1], x)
    with pytest.raises(TypeError, match="callback"):
        TrajectoryRecorder(callback=3)
    with pytest.raises(TypeError, match="callback"):
        sample_euler(model, x, karras_sigmas(3), callback=3)
    with pytest.raises(ValueError, match="return_trajectory"):
        ms.sample(model, 3, (2,), return_trajectory=True)


def test_sample_bad_input():
    m = GaussianDenoiser(MU, S)
    with pytest.raises(ValueError, match="sampler"):
        ms.sample(m, 4, (2,), sampler="rk99")
    with pytest.raises(ValueError, match="steps"):
        ms.sample(m, 4, (2,), steps=0)
    with pytest.raises(ValueError, match="n must"):
        ms.sample(m, 0, (2,))
    with pytest.raises(ValueError, match="shape"):
        ms.sample(m, 4)
    with pytest.raises(ValueError, match="s_churn"):
        ms.sample(m, 4, (2,), sampler="euler", s_churn=1.0)
    with pytest.raises(TypeError, match="denoise"):
        ms.sample(object(), 4, (2,))
    with pytest.raises(ValueError, match="decreasing"):
        sample_euler(m, torch.zeros(2, 2, dtype=F64), [1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="sigma_max"):
        ms.sample(m, 4, (2,), sigma_min=1.0, sigma_max=0.5)


def test_sample_defaults_to_the_sigma_range_the_model_declares():
    """An adapted model's [sigma_min, sigma_max] is the default grid's range (eq. 5 ends)."""
    wiener, seen = GaussianDenoiser(MU, S), []

    def denoise(x, sigma):  # the adapter passes σ as a (B,) tensor; one σ per step here
        seen.append(float(sigma.min()))
        return wiener.denoise(x, float(sigma[0]))

    model = ms.adapters.from_denoiser(denoise, event_shape=(2,), sigma_min=0.05, sigma_max=3.0)
    rec = TrajectoryRecorder()
    ms.sample(model, 5, steps=6, sampler="euler", dtype=F64, callback=rec)
    assert rec.sigmas[0] == pytest.approx(3.0, rel=1e-12)
    assert rec.sigmas[-2] == pytest.approx(0.05, rel=1e-12) and rec.sigmas[-1] == 0
    assert len(seen) == 6 and min(seen) == pytest.approx(0.05, rel=1e-12)
    # the default EDM range would have asked the model for σ = 80, outside its range
    with pytest.raises(ValueError, match=r"sigma 80 is outside the valid range"):
        ms.sample(model, 5, steps=6, sigma_min=0.002, sigma_max=80.0, dtype=F64)
    # one bound given: the other from the model; a model declaring none: EDM's [0.002, 80]
    ms.sample(model, 5, steps=6, sampler="euler", sigma_max=2.0, dtype=F64, callback=rec)
    assert (rec.sigmas[0], rec.sigmas[-2]) == pytest.approx((2.0, 0.05), rel=1e-12)
    ms.sample(wiener, 5, (2,), steps=6, sampler="euler", dtype=F64, callback=rec)
    assert (rec.sigmas[0], rec.sigmas[-2]) == pytest.approx((80.0, 0.002), rel=1e-12)
    unbounded = ms.adapters.from_denoiser(denoise, event_shape=(2,), sigma_max=4.0)
    ms.sample(unbounded, 5, steps=6, sampler="euler", dtype=F64, callback=rec)
    assert (rec.sigmas[0], rec.sigmas[-2]) == pytest.approx((4.0, 0.002), rel=1e-12)


def test_log_likelihood_matches_exact_energy():
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    model = ms.EmpiricalDiffusion(y)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    ll = ms.log_likelihood(model, x, sigma_min=0.5, sigma_max=80.0, method="exact")
    assert torch.allclose(ll, -model.energy(x, 0.5), atol=0.02)


def test_log_likelihood_gaussian_closed_form_and_hutchinson_unbiased():
    model = GaussianDenoiser(MU, S)
    x = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=F64)
    sigma = 0.1
    ref = torch.distributions.MultivariateNormal(MU, S + sigma**2 * torch.eye(2, dtype=F64))
    ll = ms.log_likelihood(model, x, sigma_min=sigma, sigma_max=80.0)
    assert torch.allclose(ll, ref.log_prob(x), atol=0.02)
    reps = x[:1].expand(256, 2).contiguous()
    hutch = ms.log_likelihood(
        model,
        reps,
        sigma_min=sigma,
        sigma_max=80.0,
        method="hutchinson",
        generator=torch.Generator().manual_seed(8),
    )
    se = hutch.std() / math.sqrt(len(hutch))
    assert abs(hutch.mean() - ref.log_prob(x[:1])) < 4 * se + 0.02
    assert hutch.std() > 0  # the estimator is stochastic, its mean is not
