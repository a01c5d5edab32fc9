"""Matrix-free Newton (Levenberg–Marquardt on Hessian-vector products) against dense truth.

Independent references: Hessians by ``torch.autograd.functional.hessian`` of the energy,
the exact model's gradient and Hessian written out here from the mixture's posterior
weights (``∇E = (x − Σ_k w_k y_k)/σ²``, ``∇²E = (I − Cov_w(y)/σ²)/σ²``), the damped
least-squares step by a dense linear solve, and Morse indices by ``eigvalsh``.
"""

from __future__ import annotations

import pytest
import torch

import memscape as ms
from memscape.landscape import _fields, krylov, newton_refine

F64 = torch.float64


def exact_grad_hess(y: torch.Tensor, x: torch.Tensor, sigma: float, hessian: bool = True):
    """Gradient ``(B, d)`` and Hessian ``(B, d, d)`` of ``−log p_σ`` of the mixture of ``y``."""
    w = torch.softmax(-torch.cdist(x, y).pow(2) / (2 * sigma**2), dim=1)  # (B, K)
    mean = w @ y
    grad = (x - mean) / sigma**2
    if not hessian:
        return grad, None
    dev = y[None] - mean[:, None]  # (B, K, d)
    cov = torch.einsum("bk,bki,bkj->bij", w, dev, dev)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    return grad, (eye - cov / sigma**2) / sigma**2


def spread_points(k: int, d: int, seed: int) -> tuple[torch.Tensor, float]:
    """``k`` Gaussian points in ``ℝᵈ`` (unit scale) and their median nearest-neighbour distance."""
    y = torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=F64) / d**0.5
    dist = torch.cdist(y, y)
    dist.fill_diagonal_(float("inf"))
    return y, float(dist.min(1).values.median())


def pair_starts(y: torch.Tensor, spread: float, seed: int) -> torch.Tensor:
    """Starts near every point and near the midpoint of every pair: ``(K + K(K−1)/2, d)``."""
    g = torch.Generator().manual_seed(seed)
    i, j = torch.triu_indices(y.shape[0], y.shape[0], 1)
    near = y + spread * torch.randn(y.shape, generator=g, dtype=F64)
    mid = (y[i] + y[j]) / 2
    return torch.cat([near, mid + 0.2 * spread * torch.randn(mid.shape, generator=g, dtype=F64)])


@pytest.mark.parametrize("kind", ["exact", "hopfield"])
def test_hvp_equals_autograd_hessian_times_vector(kind):
    y, _ = spread_points(7, 12, seed=1)
    model = ms.EmpiricalDiffusion(y) if kind == "exact" else ms.ModernHopfield(y, beta=6.0)
    sigma = 0.2 if kind == "exact" else None
    g = torch.Generator().manual_seed(2)
    x = y[:4] + 0.1 * torch.randn(4, 12, generator=g, dtype=F64)
    v = torch.randn(4, 12, generator=g, dtype=F64)
    hv = _fields.hvp_of(model, x, sigma, (12,))(v)
    for b in range(4):
        h = torch.autograd.functional.hessian(lambda z: model.energy(z[None], sigma)[0], x[b])
        torch.testing.assert_close(hv[b], h @ v[b], rtol=1e-10, atol=1e-10 * float(h.abs().max()))


def test_krylov_step_is_the_damped_least_squares_step():
    """Full subspace: ``δ(λ)`` solves ``(H² + λI) δ = −Hg`` for a symmetric indefinite H."""
    d, n = 30, 3
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(n, d, d, generator=g, dtype=F64))
    eig = torch.linspace(-2.0, 5.0, d, dtype=F64).expand(n, d)  # indefinite, 8 negative
    h = q @ torch.diag_embed(eig) @ q.transpose(1, 2)
    grad = torch.randn(n, d, generator=g, dtype=F64)
    fac = krylov.krylov_factor(
        lambda v: (h @ v[:, :, None])[:, :, 0], grad, torch.zeros(n), max_dim=d
    )
    for lam in (1e-3, 0.5, 20.0):
        lam_t = torch.full((n,), lam, dtype=F64)
        want = torch.linalg.solve(h @ h + lam * torch.eye(d, dtype=F64), -(h @ grad[:, :, None]))
        torch.testing.assert_close(
            krylov.krylov_step(fac, lam_t), want[:, :, 0], rtol=1e-8, atol=1e-10
        )


def test_krylov_subspace_stops_at_the_forcing_term():
    """A loose η stops Lanczos early, with the MINRES residual ``‖Hδ + g‖ ≤ η‖g‖`` at λ → 0."""
    d = 200
    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    h = q @ torch.diag(torch.logspace(0, 2, d, dtype=F64) * (-1) ** torch.arange(d)) @ q.T
    grad = torch.randn(2, d, generator=g, dtype=F64)
    eta = torch.tensor([0.3, 1e-3], dtype=F64)
    fac = krylov.krylov_factor(lambda v: v @ h, grad, eta, max_dim=d)
    step = krylov.krylov_step(fac, torch.full((2,), 1e-14, dtype=F64))
    residual = (step @ h + grad).norm(dim=1) / grad.norm(dim=1)
    assert bool((residual <= eta * (1 + 1e-6)).all())
    dims = fac[3]
    assert int(dims[0]) < int(dims[1]) < d  # the looser η needs fewer vectors


def test_forcing_term_eisenstat_walker():
    gn = torch.tensor([1.0, 1e-3, 1e-9], dtype=F64)
    torch.testing.assert_close(
        krylov.forcing_term(gn, None, tol=1e-14), torch.full((3,), 0.1, dtype=F64)
    )
    prev = torch.tensor([2.0, 1.0, 1e-8], dtype=F64)
    # 0.9 (‖g‖/‖g_prev‖)²: 0.225 (capped at η_max = 0.1), 0.9e-6, 0.009
    eta = krylov.forcing_term(gn, prev, tol=1e-14)
    torch.testing.assert_close(eta, torch.tensor([0.1, 0.9e-6, 0.009], dtype=F64))
    # no oversolving: η ≥ ½ tol/‖g‖ (5e-6 and 5, capped at 0.1)
    eta = krylov.forcing_term(gn, prev, tol=1e-8)
    torch.testing.assert_close(eta, torch.tensor([0.1, 5e-6, 0.1], dtype=F64))


def test_hvp_newton_finds_the_dense_critical_points_d300():
    d, k = 300, 5
    y, spread = spread_points(k, d, seed=5)
    sigma = 0.3 * spread
    model = ms.EmpiricalDiffusion(y)
    x0 = pair_starts(y, 0.05 * sigma, seed=6)
    dense = newton_refine(model, x0, sigma, hessian="dense")
    hvp = newton_refine(model, x0, sigma, hessian="hvp")
    assert torch.equal(dense.converged, hvp.converged)
    assert int(hvp.converged.sum()) >= k + 3
    ok = hvp.converged
    assert float((dense.x[ok] - hvp.x[ok]).norm(dim=1).max()) < 1e-6 * spread
    grad, hess = exact_grad_hess(y, hvp.x[ok], sigma)
    assert float(grad.norm(dim=1).max()) < 1e-7
    index = (torch.linalg.eigvalsh(hess) < 0).sum(1)
    near = torch.cdist(hvp.x[ok], y).min(1).values
    minima = index == 0
    assert int(minima.sum()) == k and bool((near[minima] < 0.1 * spread).all())
    assert int((index == 1).sum()) >= 3  # saddles between pairs
    # iterations comparable to the dense step's
    assert float(hvp.iterations[ok].float().mean()) <= 1.5 * float(
        dense.iterations[ok].float().mean()
    )


def test_hvp_newton_converges_at_d784_like_dense():
    d, k = 784, 20
    y, spread = spread_points(k, d, seed=7)
    sigma = 0.3 * spread
    model = ms.EmpiricalDiffusion(y)
    x0 = pair_starts(y, 0.05 * sigma, seed=8)  # 20 near points, 190 near midpoints
    res = newton_refine(model, x0, sigma)  # auto: hvp at d = 784
    grad, _ = exact_grad_hess(y, res.x, sigma, hessian=False)
    assert bool(res.converged.all()) and float(grad.norm(dim=1).max()) <= 1e-8 * 1.01
    few = torch.tensor([0, 1, 20, 21])  # dense on a few of the same starts
    dense = newton_refine(model, x0[few], sigma, hessian="dense")
    assert bool(dense.converged.all())
    assert int(res.iterations[few].max()) <= int(dense.iterations.max()) + 2
    assert float(res.iterations.float().mean()) <= 8


class CountingHessian(ms.EmpiricalDiffusion):
    """An exact model that counts calls of its closed-form Hessian."""

    calls = 0

    def hessian(self, x, sigma=None):
        CountingHessian.calls += 1
        return super().hessian(x, sigma)


def test_critical_points_passes_hessian_to_every_newton_refinement():
    y, spread = spread_points(3, 260, seed=9)
    model = CountingHessian(y)
    kw = dict(n_starts=8, retries=0, generator=0, n_eigs=2)
    CountingHessian.calls = 0
    hvp = ms.critical_points(model, 0.3 * spread, hessian="hvp", **kw)
    assert CountingHessian.calls == 0  # no Hessian matrix (the spectrum is Lanczos on HVPs)
    dense = ms.critical_points(model, 0.3 * spread, hessian="dense", **kw)
    assert CountingHessian.calls > 0
    for a, b in ((hvp, dense), (dense, hvp)):
        pa, pb = a.points[a.converged].reshape(-1, 260), b.points[b.converged].reshape(-1, 260)
        assert float(torch.cdist(pa, pb).min(1).values.max()) < 1e-6 * spread
    CountingHessian.calls = 0
    newton_refine(model, y[:1] + 0.01, 0.3 * spread, hessian="dense")
    assert CountingHessian.calls > 0
    CountingHessian.calls = 0
    newton_refine(model, y[:1] + 0.01, 0.3 * spread)  # "auto" at d = 260 > 256: matrix-free
    assert CountingHessian.calls == 0


class Exploding(ms.EmpiricalDiffusion):
    """Fails on any evaluation: an error raised by it means work started."""

    def energy(self, x, sigma=None):
        raise AssertionError("evaluated")

    score = denoise = update = hessian = energy


def test_bad_hessian_options_raise_before_work():
    model = Exploding(torch.randn(4, 300, dtype=F64))
    x = torch.zeros(2, 300, dtype=F64)
    with pytest.raises(ValueError, match="hessian"):
        newton_refine(model, x, 0.5, hessian="sparse")
    with pytest.raises(ValueError, match="hessian"):
        ms.critical_points(model, 0.5, hessian="HVP")
    with pytest.raises(ValueError, match="hessian"):
        ms.critical_points(model, 0.5, hessian=None)


class Rotational:
    """A non-conservative score ``s(x) = −A(x − c) − 0.1 tanh(x − c)``, ``A`` not symmetric.

    Its only zero is ``c``; ``−∂s/∂x = A + 0.1 diag(1 − tanh²)`` is not symmetric.
    """

    has_energy = False

    def __init__(self, d: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
        skew = torch.randn(d, d, generator=g, dtype=F64)
        self.a = q @ torch.diag(torch.linspace(0.5, 3.0, d, dtype=F64)) @ q.T
        self.a = self.a + 0.5 * (skew - skew.T) / d**0.5
        self.c = torch.randn(d, generator=g, dtype=F64)
        self.event_shape = (d,)

    def score(self, x, sigma=None):
        return -(x - self.c) @ self.a.T - 0.1 * torch.tanh(x - self.c)


def test_score_only_models_take_the_bidiagonal_step():
    d = 300
    model = Rotational(d, seed=10)
    h = torch.autograd.functional.jacobian(lambda z: -model.score(z), model.c + 0.3)
    assert float((h - h.T).abs().max()) > 0.1  # non-symmetric
    g = torch.Generator().manual_seed(11)
    x, v = torch.randn(2, 3, d, generator=g, dtype=F64)
    h_v, ht_u = krylov.jacobian_products_of(model, x, None, (d,))
    for b in range(3):
        hb = torch.autograd.functional.jacobian(lambda z: -model.score(z), x[b])
        torch.testing.assert_close(h_v(v)[b], hb @ v[b])
        torch.testing.assert_close(ht_u(v)[b], hb.T @ v[b])
    x0 = model.c + torch.randn(4, d, generator=g, dtype=F64)
    hvp = newton_refine(model, x0)  # auto: matrix-free at d = 300
    dense = newton_refine(model, x0, hessian="dense")
    assert bool(hvp.converged.all()) and bool(dense.converged.all())
    assert float((hvp.x - model.c).norm(dim=1).max()) < 1e-8
    assert int(hvp.iterations.max()) <= int(dense.iterations.max()) + 2


def test_bidiagonal_step_is_the_damped_least_squares_step():
    d, n = 25, 2
    g = torch.Generator().manual_seed(12)
    h = torch.randn(n, d, d, generator=g, dtype=F64)  # non-symmetric
    grad = torch.randn(n, d, generator=g, dtype=F64)
    fac = krylov.bidiagonal_factor(lambda v: (h @ v[:, :, None])[:, :, 0],
                            lambda u: (h.transpose(1, 2) @ u[:, :, None])[:, :, 0],
                            grad, torch.zeros(n, dtype=F64), max_dim=d)  # fmt: skip
    ht = h.transpose(1, 2)
    for lam in (1e-4, 1.0, 30.0):
        want = torch.linalg.solve(ht @ h + lam * torch.eye(d, dtype=F64), -(ht @ grad[:, :, None]))
        got = krylov.krylov_step(fac, torch.full((n,), lam, dtype=F64))
        torch.testing.assert_close(got, want[:, :, 0], rtol=1e-7, atol=1e-9)


def test_lanczos_spectrum_at_high_d_is_the_autograd_hessians_lowest_eigenvalues():
    """The Morse-index spectrum at d > 256 (Lanczos on one backward pass per product)
    against ``eigvalsh`` of the Hessian that autograd forms in the test, at points where
    the lowest eigenvalues are negative (between memories), zero-crossing and positive."""
    from memscape.landscape.morse import hessian_spectrum

    y, spread = spread_points(4, 300, seed=3)
    model = ms.EmpiricalDiffusion(y)
    sigma = 0.45 * spread
    x = torch.stack([y[0], 0.5 * (y[0] + y[1]), y.mean(0), 0.3 * y[2] + 0.7 * y[3]])
    spec = hessian_spectrum(model, x, sigma, method="lanczos", k=4)
    for i in range(len(x)):
        h = torch.autograd.functional.hessian(lambda z: model.energy(z[None], sigma).sum(), x[i])
        low = torch.linalg.eigvalsh(h)[:4]
        assert spec.eigenvalues[i] == pytest.approx(low.tolist(), rel=1e-7, abs=1e-9 / sigma**2)
    assert (spec.eigenvalues[:, 0] < 0).any() and (spec.eigenvalues[:, 0] > 0).any()


def test_deflated_newton_matrix_free_finds_the_dense_points_away_from_the_roots():
    """Deflated Newton (Farrell et al. 2015) from near the midpoints, deflating the minima: the
    matrix-free step reaches the same new critical points as the dense one, forms no
    Hessian matrix, and every end state it reports converged has ∇E ≈ 0 (checked here)."""
    from memscape.landscape.deflation import deflated_newton

    y, spread = spread_points(3, 300, seed=4)
    model = CountingHessian(y)
    sigma = 0.3 * spread
    roots = newton_refine(model, y.clone(), sigma, hessian="dense").x
    g = torch.Generator().manual_seed(1)
    i, j = torch.triu_indices(3, 3, 1)  # near the pairs' midpoints: the saddles' side
    mid = (roots[i] + roots[j]) / 2
    starts = mid + 0.05 * spread * torch.randn(mid.shape, generator=g, dtype=F64) / 300**0.5
    tol = 1e-9 / sigma
    kw = dict(tol=tol, length=spread)
    CountingHessian.calls = 0
    xh, gh = deflated_newton(model, starts, sigma, (300,), roots, hessian="hvp", **kw)
    assert CountingHessian.calls == 0
    xd, gd = deflated_newton(model, starts, sigma, (300,), roots, hessian="dense", **kw)
    assert CountingHessian.calls > 0
    ok = (gh <= tol) & (gd <= tol)
    assert ok.sum() >= 2, (gh, gd)
    assert float((xh[ok] - xd[ok]).norm(dim=1).max()) < 1e-6 * spread
    score = model.score(xh[ok], sigma)  # an independent evaluation of ∇E = −s
    assert float(score.norm(dim=1).max()) <= 2 * tol
    assert float(torch.cdist(xh[ok], roots).min()) > 1e-3 * spread  # new points, not roots
