"""Saddle refinement and Morse-index certificates on Hessian-vector products (d > 64).

Truth: the closed-form Hessian of the exact model, ``(I − Cov_w(y)/σ²)/σ²``, built
and diagonalized in numpy (and scipy.optimize.root on its closed-form gradient).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import root

import memscape as ms
from memscape.landscape import (
    certify_morse_index,
    minimum_energy_path,
    refine_saddles,
)
from tests.test_paths import ScoreOnly, exact_energy, exact_grad, exact_hess, exact_minima

F64 = torch.float64


def exact_setup(k, d, sigma, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(k, d, generator=g, dtype=F64) * 1.5 / d**0.5
    model = ms.EmpiricalDiffusion(y)
    return y, model, exact_minima(model, y, sigma)


@pytest.fixture(scope="module")
def d96():
    sigma = 0.25
    y, model, x = exact_setup(8, 96, sigma)
    res = minimum_energy_path(model, x[[0, 1, 2]], x[[1, 2, 3]], sigma, images=10)
    return y, model, sigma, res


def test_lanczos_certificate_matches_the_closed_form_spectrum(d96):
    y, model, sigma, res = d96
    assert res.saddle_index.tolist() == [1, 1, 1]
    cert = certify_morse_index(model, res.saddles, sigma, k=6)
    for s, w, top in zip(res.saddles.numpy(), cert.eigenvalues, cert.lambda_max, strict=True):
        assert np.linalg.norm(exact_grad(s, y.numpy(), sigma)) < 1e-8
        ref = np.linalg.eigvalsh(exact_hess(s, y.numpy(), sigma))
        assert np.allclose(w.numpy(), ref[:6], rtol=0, atol=1e-8 * ref[-1])
        assert abs(float(top) - ref[-1]) < 1e-3 * ref[-1]
    assert cert.morse_index.tolist() == [1, 1, 1] and bool(cert.certified.all())
    assert float(cert.asymmetry.abs().max()) == 0.0


def test_refinement_from_a_perturbed_saddle_returns_to_it(d96):
    y, model, sigma, res = d96
    g = torch.Generator().manual_seed(5)
    start = res.saddles + 0.01 * torch.randn(res.saddles.shape, generator=g, dtype=F64)
    out = refine_saddles(model, start, sigma)
    assert bool(out.converged.all()) and bool(out.certified.all())
    assert float((out.x - res.saddles).abs().max()) < 1e-8
    assert out.morse_index.tolist() == [1, 1, 1]
    yn = y.numpy()
    for s, mode, e in zip(out.x.numpy(), out.mode.numpy(), out.energy.numpy(), strict=True):
        sol = root(exact_grad, s + 1e-3, args=(yn, sigma), jac=exact_hess, tol=1e-13)
        assert np.abs(sol.x - s).max() < 1e-8
        _, v = np.linalg.eigh(exact_hess(s, yn, sigma))
        assert abs(abs(float(v[:, 0] @ mode)) - 1) < 1e-6  # the unstable direction
        assert abs(e - exact_energy(s, yn, sigma)) < 1e-10 * (1 + abs(e))


def test_certificate_counts_index_0_and_2_exactly():
    """A minimum (a memory at small σ) and the centroid of an equilateral triangle of memories.

    At the centroid ``w = 1/3`` each and ``Cov`` has the eigenvalue ``r²/2`` twice
    (``r`` the circumradius), so ``∇²E`` has ``(1 − r²/2σ²)/σ²`` twice: index 2 when
    ``r² > 2σ²``.
    """
    d, r, sigma = 80, 1.0, 0.4
    basis = torch.linalg.qr(
        torch.randn(d, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    )[0]
    ang = torch.tensor([0.0, 2 * np.pi / 3, 4 * np.pi / 3], dtype=F64)
    y = r * torch.stack([ang.cos(), ang.sin()], 1) @ basis.T
    model = ms.EmpiricalDiffusion(y)
    points = torch.stack([exact_minima(model, y, sigma)[0], torch.zeros(d, dtype=F64)])
    cert = certify_morse_index(model, points, sigma, k=4)
    assert cert.morse_index.tolist() == [0, 2] and bool(cert.certified.all())
    expected = (1 - r**2 / (2 * sigma**2)) / sigma**2
    assert np.allclose(cert.eigenvalues[1, :2].numpy(), expected, rtol=1e-9)
    assert np.allclose(cert.eigenvalues[1, 2:].numpy(), 1 / sigma**2, rtol=1e-9)
    assert abs(float(cert.lambda_max[1]) - 1 / sigma**2) < 1e-3 / sigma**2
    # k no larger than the count: the index is only a lower bound, so not exact
    low = certify_morse_index(model, points[1:], sigma, k=2)
    assert low.morse_index.tolist() == [2] and not bool(low.exact.any())


def test_score_only_asymmetry_estimate_against_the_exact_value():
    """Hutchinson estimate of ``‖H − Hᵀ‖_F/‖H‖_F`` for ``s = −(I + εA)∇E`` at d = 96."""
    sigma = 0.25
    y, model, x = exact_setup(8, 96, sigma)
    g = torch.Generator().manual_seed(2)
    a = torch.randn(96, 96, generator=g, dtype=F64)
    skew = (a - a.T) / np.sqrt(2 * 96)
    field = ScoreOnly(model, skew, 0.1)
    pts = x[:2] + 0.05
    cert = certify_morse_index(field, pts, sigma, k=3)
    for p, est in zip(pts.numpy(), cert.asymmetry, strict=True):
        h = (np.eye(96) + 0.1 * skew.numpy()) @ exact_hess(p, y.numpy(), sigma)
        ref = np.linalg.norm(h - h.T) / np.linalg.norm(h)
        assert abs(float(est) - ref) < 0.25 * ref
    conservative = certify_morse_index(ScoreOnly(model), pts, sigma, k=3)
    assert float(conservative.asymmetry.max()) < 1e-12
    assert torch.allclose(
        conservative.eigenvalues, certify_morse_index(model, pts, sigma, k=3).eigenvalues
    )


def test_bad_input_is_rejected():
    model = ms.EmpiricalDiffusion(torch.eye(3, dtype=F64))
    x = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(ValueError, match="k must be >= 2"):
        refine_saddles(model, x, 0.5, k=1)
    with pytest.raises(ValueError, match="tol"):
        refine_saddles(model, x, 0.5, tol=0.0)
    with pytest.raises(ValueError, match="max_step"):
        refine_saddles(model, x, 0.5, max_step=-1.0)
    with pytest.raises(TypeError, match="floating-point"):
        refine_saddles(model, torch.zeros(2, 3, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="sigma is required"):
        certify_morse_index(model, x)
    with pytest.raises(ValueError, match="k must be >= 1"):
        certify_morse_index(model, x, 0.5, k=0)


@pytest.mark.slow
def test_d3072_patch_saddles_are_certified_against_the_closed_form_hessian():
    """Exact model of 8 colour 32×32 patches (d = 3072): nearest-neighbour saddles."""
    data = ms.datasets.load("patches", n=8, size=32, color=True, num_patches=64)
    y = data.x.double().reshape(8, -1)
    sigma = 0.5 * float(torch.pdist(y).min()) / 2
    model = ms.EmpiricalDiffusion(data.x.double())
    x = exact_minima(model, data.x.double(), sigma).reshape(8, -1)
    nn = torch.cdist(x, x).fill_diagonal_(float("inf")).argmin(1)
    res = minimum_energy_path(model, x[:3].reshape(3, 3, 32, 32), x[nn[:3]].reshape(3, 3, 32, 32),
                              sigma, images=8)  # fmt: skip
    assert bool((res.saddle_index == 1).all())
    yn = y.numpy()
    for s in res.saddles.reshape(res.saddles.shape[0], -1).numpy():
        assert np.linalg.norm(exact_grad(s, yn, sigma)) < 1e-8
        ref = np.linalg.eigvalsh(exact_hess(s, yn, sigma))
        assert (ref < 0).sum() == 1
        cert = certify_morse_index(model, torch.as_tensor(s).reshape(1, 3, 32, 32), sigma, k=4)
        assert np.allclose(cert.eigenvalues[0].numpy(), ref[:4], rtol=0, atol=1e-8 * ref[-1])
