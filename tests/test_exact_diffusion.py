"""The exact diffusion model against naive references and closed forms, and the
key identity of the design (docs/concepts.md): exact diffusion energy = modern Hopfield energy at β = 1/σ²."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from memscape import EmpiricalDiffusion, ModernHopfield
from memscape.kernels import streamed_softmax

F64 = torch.float64


def randn(*shape: int, seed: int = 0, scale: float = 1.0, dtype=F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def naive_log_density(x, y, sigma):
    """log p_σ(x) = log (1/K) Σ_k N(x; y_k, σ²I), written out from the Gaussian pdf."""
    d = x.shape[1]
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)  # (B, K)
    log_n = -sq / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)
    return torch.logsumexp(log_n, dim=1) - math.log(y.shape[0])


def naive_denoiser(x, y, sigma):
    w = torch.softmax(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2 * sigma**2), dim=1)
    return w @ y


# ---------------------------------------------------------------- the key identity
@pytest.mark.parametrize("sigma", [0.05, 0.4, 3.0])
def test_diffusion_energy_is_modern_hopfield_energy(sigma):
    """σ²(−log p_σ − (d/2) log 2πσ²) = E_MH(β = 1/σ², c = −‖y‖²/2) − ½M², and one
    exact denoising step is one CCCP update."""
    y = randn(30, 6, seed=1, scale=2.0)
    x = randn(10, 6, seed=2, scale=2.0)
    d = 6
    diff = EmpiricalDiffusion(y)
    mh = ModernHopfield(y, beta=1 / sigma**2, bias=-0.5 * y.pow(2).sum(1))
    big_m2 = y.pow(2).sum(1).max()
    lhs = sigma**2 * (diff.energy(x, sigma) - 0.5 * d * math.log(2 * math.pi * sigma**2))
    torch.testing.assert_close(lhs, mh.energy(x) - 0.5 * big_m2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(diff.denoise(x, sigma), mh.update(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(diff.update(x, sigma), mh.update(x), rtol=1e-10, atol=1e-10)
    # the energies agree with −log p from the Gaussian pdf
    torch.testing.assert_close(
        diff.energy(x, sigma), -naive_log_density(x, y, sigma), rtol=1e-10, atol=1e-10
    )


def test_equal_norm_data_needs_no_bias():
    """‖y_k‖ = r for all k: the bias is a constant and the unbiased energy matches exactly."""
    y = torch.nn.functional.normalize(randn(25, 5, seed=3), dim=1) * 1.7
    x = randn(8, 5, seed=4)
    sigma = 0.3
    diff = EmpiricalDiffusion(y)
    mh = ModernHopfield(y, beta=1 / sigma**2)
    lhs = sigma**2 * (diff.energy(x, sigma) - 2.5 * math.log(2 * math.pi * sigma**2))
    torch.testing.assert_close(lhs, mh.energy(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(diff.denoise(x, sigma), mh.update(x), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- streaming vs naive
@pytest.mark.parametrize("chunk", [1, 7, 10, 50, 4096])
def test_streamed_equals_naive_full_softmax(chunk):
    y = randn(50, 4, seed=5, scale=3.0)
    x = randn(9, 4, seed=6, scale=3.0)
    sigma = torch.linspace(0.1, 2.0, 9, dtype=F64)
    model = EmpiricalDiffusion(y, chunk_size=chunk)
    for i in range(9):
        s = float(sigma[i])
        xi = x[i : i + 1]
        torch.testing.assert_close(
            model.denoise(xi, s), naive_denoiser(xi, y, s), rtol=1e-10, atol=1e-12
        )
    want = torch.cat([naive_denoiser(x[i : i + 1], y, float(sigma[i])) for i in range(9)])
    torch.testing.assert_close(model.denoise(x, sigma), want, rtol=1e-10, atol=1e-12)
    e = -torch.cat([naive_log_density(x[i : i + 1], y, float(sigma[i])) for i in range(9)])
    torch.testing.assert_close(model.energy(x, sigma), e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chunk", [3, 16, 100])
def test_streamed_covariance_and_lse(chunk):
    y = randn(16, 3, seed=7)
    x = randn(5, 3, seed=8)
    beta = torch.rand(5, generator=torch.Generator().manual_seed(9), dtype=F64) * 4 + 0.1
    bias = randn(16, seed=10)
    st = streamed_softmax(x, y, beta, bias, chunk_size=chunk, covariance=True)
    logits = beta[:, None] * (x @ y.T + bias)
    w = torch.softmax(logits, dim=1)
    mean = w @ y
    cov = torch.einsum("bk,ki,kj->bij", w, y, y) - mean[:, :, None] * mean[:, None, :]
    torch.testing.assert_close(st.lse, torch.logsumexp(logits, 1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.mean, mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(st.cov, cov, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- closed forms
def test_single_point_score():
    y = randn(1, 5, seed=11)
    x = randn(7, 5, seed=12, scale=4)
    model = EmpiricalDiffusion(y)
    for sigma in (0.01, 0.5, 10.0):
        torch.testing.assert_close(model.score(x, sigma), (y - x) / sigma**2, rtol=1e-10, atol=0)
        torch.testing.assert_close(model.denoise(x, sigma), y.expand(7, 5), rtol=0, atol=1e-14)


def test_two_point_symmetric_set_tanh_denoiser():
    """Data {+a, −a}: D(x, σ) = a tanh(aᵀx / σ²) (equal norms, two-point posterior)."""
    a = randn(1, 3, seed=13)
    model = EmpiricalDiffusion(torch.cat([a, -a]))
    x = randn(11, 3, seed=14)
    for sigma in (0.2, 1.0, 5.0):
        want = a * torch.tanh(x @ a.T / sigma**2)
        torch.testing.assert_close(model.denoise(x, sigma), want, rtol=1e-10, atol=1e-12)


def test_score_is_gradient_of_naive_mixture_density():
    """Score = ∇ log p_σ with log p from the Gaussian pdf (autograd on the naive formula)."""
    y = randn(40, 3, seed=15, scale=2)
    x = randn(6, 3, seed=16, scale=2)
    sigma = 0.7
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(naive_log_density(xg, y, sigma).sum(), xg)
    torch.testing.assert_close(EmpiricalDiffusion(y).score(x, sigma), g, rtol=1e-10, atol=1e-12)


def test_small_sigma_memorizes_large_sigma_averages():
    y = randn(20, 4, seed=17)
    model = EmpiricalDiffusion(y)
    torch.testing.assert_close(model.denoise(y, 1e-3), y)  # every training point is a fixed point
    torch.testing.assert_close(model.denoise(randn(3, 4, seed=18), 1e4), y.mean(0).expand(3, 4))


def test_event_shape_images():
    y = randn(6, 1, 3, 3, seed=19)
    model = EmpiricalDiffusion(y)
    x = randn(2, 1, 3, 3, seed=20)
    want = naive_denoiser(x.reshape(2, 9), y.reshape(6, 9), 0.5).reshape(2, 1, 3, 3)
    torch.testing.assert_close(model.denoise(x, 0.5), want, rtol=1e-10, atol=1e-12)
    assert model.hessian(x, 0.5).shape == (2, 9, 9)


# ---------------------------------------------------------------- numerics
def test_float32_small_sigma_is_finite():
    g = torch.Generator().manual_seed(21)
    y = torch.randn(200, 16, generator=g)
    y = y / y.norm(dim=1, keepdim=True) * torch.empty(200, 1).uniform_(1, 10, generator=g)
    x = y[:5] + 0.1 * torch.randn(5, 16, generator=g)
    model = EmpiricalDiffusion(y, chunk_size=64)
    for out in (
        model.energy(x, 1e-3),
        model.score(x, 1e-3),
        model.denoise(x, 1e-3),
        model.hessian(x, 1e-3),
    ):
        assert out.dtype == torch.float32
        assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(model.denoise(x, 1e-3), y[:5])


@pytest.mark.slow
def test_million_points_streams_without_b_by_k_matrix():
    """K = 10⁶, d = 64, B = 256, float32: a B×K matrix would be 1 GB; the streamed
    denoiser must raise the peak RSS by far less (fresh subprocess, maxrss delta)."""
    code = textwrap.dedent(
        """
        import resource, torch
        from memscape import EmpiricalDiffusion
        g = torch.Generator().manual_seed(0)
        y = torch.randn(1_000_000, 64, generator=g)
        x = y[:256] + 0.01 * torch.randn(256, 64, generator=g)
        model = EmpiricalDiffusion(y)
        model.denoise(x[:2], 1.0)  # warm up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d = model.denoise(x, 0.05)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert bool(torch.isfinite(d).all())
        print((after - before) / 1024, float((d - y[:256]).abs().max()))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    delta_mb, err = map(float, out.stdout.split())
    assert delta_mb < 300, delta_mb  # B×K float32 alone is 1000 MB
    assert err < 1e-3  # σ = 0.05 ≪ spacing: each query denoises to its own point
