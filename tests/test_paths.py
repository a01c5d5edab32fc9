"""Minimum-energy paths (NEB, string) and their saddles against independent truth.

- Müller–Brown (Müller & Brown 1979, Theor. Chim. Acta 53, 75): the published minima
  and saddles, refined here by scipy.optimize.root on the closed-form gradient.
- The exact diffusion model: in 2-D the census' index-1 points; in d = 32 an
  independent numpy Newton solve (scipy.optimize.root on the closed-form gradient and
  Hessian of −log p_σ) started from the top of the path at its highest image (found by
  scipy's bounded Brent search on the numpy energy).
- Score-only models: the line-integral barrier against the energy of the same field.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar, root
from scipy.special import logsumexp

import memscape as ms
from memscape.landscape import minimum_energy_path
from memscape.protocol import EnergyModel

F64 = torch.float64

# ---------------------------------------------------------------- Müller–Brown
MB_A = np.array([-200.0, -100.0, -170.0, 15.0])
MB_a = np.array([-1.0, -1.0, -6.5, 0.7])
MB_b = np.array([0.0, 0.0, 11.0, 0.6])
MB_c = np.array([-10.0, -10.0, -6.5, 0.7])
MB_X0 = np.array([1.0, 0.0, -0.5, -1.0])
MB_Y0 = np.array([0.0, 0.5, 1.5, 1.0])
# published (Müller & Brown 1979, Table 1): minima and saddles, energies
MB_MINIMA = [((-0.558, 1.442), -146.70), ((0.623, 0.028), -108.17), ((-0.050, 0.467), -80.77)]
MB_SADDLES = [((-0.822, 0.624), -40.66), ((0.212, 0.293), -72.25)]


class MullerBrown(EnergyModel):
    """``E = Σ_i A_i exp(a_i (x−x⁰_i)² + b_i (x−x⁰_i)(y−y⁰_i) + c_i (y−y⁰_i)²)``; autograd score."""

    event_shape = (2,)

    def energy(self, x, sigma=None):
        dx = x[:, :1] - torch.as_tensor(MB_X0, dtype=x.dtype)
        dy = x[:, 1:] - torch.as_tensor(MB_Y0, dtype=x.dtype)
        t = lambda v: torch.as_tensor(v, dtype=x.dtype)  # noqa: E731
        expo = t(MB_a) * dx**2 + t(MB_b) * dx * dy + t(MB_c) * dy**2
        return (t(MB_A) * torch.exp(expo)).sum(1)


def mb_terms(p):
    dx, dy = p[0] - MB_X0, p[1] - MB_Y0
    e = MB_A * np.exp(MB_a * dx**2 + MB_b * dx * dy + MB_c * dy**2)
    return e, 2 * MB_a * dx + MB_b * dy, MB_b * dx + 2 * MB_c * dy


def mb_energy(p):
    return float(mb_terms(p)[0].sum())


def mb_grad(p):
    e, u, v = mb_terms(p)
    return np.array([(e * u).sum(), (e * v).sum()])


def mb_hess(p):
    e, u, v = mb_terms(p)
    return np.array(
        [[(e * (u * u + 2 * MB_a)).sum(), (e * (u * v + MB_b)).sum()],
         [(e * (u * v + MB_b)).sum(), (e * (v * v + 2 * MB_c)).sum()]]
    )  # fmt: skip


def mb_root(p0):
    sol = root(mb_grad, np.asarray(p0, dtype=float), jac=mb_hess, tol=1e-13)
    assert np.linalg.norm(mb_grad(sol.x)) < 1e-9  # (hybr may flag "no progress" at 1e-13)
    return sol.x


@pytest.fixture(scope="module")
def mb_reference():
    minima = [mb_root(p) for p, _ in MB_MINIMA]
    saddles = [mb_root(p) for p, _ in MB_SADDLES]
    for m in minima:
        assert (np.linalg.eigvalsh(mb_hess(m)) > 0).all()
    for s in saddles:
        assert (np.linalg.eigvalsh(mb_hess(s)) < 0).sum() == 1
    return minima, saddles


@pytest.mark.parametrize("method", ["neb", "string"])
def test_muller_brown_saddles_and_barrier_from_a_path_between_the_deepest_minima(
    method, mb_reference
):
    minima, saddles = mb_reference
    a, b = (torch.tensor(m, dtype=F64) for m in minima[:2])
    res = minimum_energy_path(MullerBrown(), a, b, images=24, method=method)
    assert bool(res.converged.all())
    assert res.saddles.shape == (2, 2) and res.saddle_index.tolist() == [1, 1]
    order = torch.argsort(res.saddle_energy, descending=True)  # S1 (higher), then S2
    for got, ref, (pub, _) in zip(res.saddles[order], saddles, MB_SADDLES, strict=True):
        assert np.abs(got.numpy() - ref).max() < 1e-8
        assert np.abs(got.numpy() - np.array(pub)).max() < 1e-3
    energies = res.saddle_energy[order].numpy()
    assert np.allclose(energies, [mb_energy(s) for s in saddles], rtol=0, atol=1e-8)
    assert np.allclose(energies, [e for _, e in MB_SADDLES], rtol=0, atol=0.01)
    barrier = mb_energy(saddles[0]) - mb_energy(minima[0])
    assert abs(float(res.barrier[0]) - barrier) < 1e-8
    assert abs(barrier - (-40.66 + 146.70)) < 0.02
    # the path runs through the third minimum: the lowest image between the saddles is next to it
    path = res.path[0].numpy()
    lo, hi = sorted(res.saddle_image.tolist())
    inner = lo + int(np.argmin(res.energies[0, lo:hi].numpy()))
    spacing = np.linalg.norm(np.diff(path, axis=0), axis=1).max()
    assert np.linalg.norm(path[inner] - minima[2]) < spacing
    assert res.energies[0, inner] > mb_energy(minima[2])


def test_muller_brown_batch_of_pairs_and_sigma_free_energy_model(mb_reference):
    minima, saddles = mb_reference
    m = torch.tensor(np.array(minima), dtype=F64)
    # C→A and C→B: one saddle each; A→B: both
    res = minimum_energy_path(MullerBrown(), m[[2, 2]], m[[0, 1]], images=12)
    assert res.saddle_pair.tolist() == [0, 1] and res.saddle_index.tolist() == [1, 1]
    assert np.abs(res.saddles[0].numpy() - saddles[0]).max() < 1e-8
    assert np.abs(res.saddles[1].numpy() - saddles[1]).max() < 1e-8
    e_c = mb_energy(minima[2])
    ref = [mb_energy(saddles[0]) - e_c, mb_energy(saddles[1]) - e_c]
    assert np.allclose(res.barrier.numpy(), ref, atol=1e-8, rtol=0)
    assert res.path.shape == (2, 12, 2) and res.energies.shape == (2, 12)
    assert torch.equal(res.path[:, 0], m[[2, 2]]) and torch.equal(res.path[:, -1], m[[0, 1]])


# ---------------------------------------------------------------- exact diffusion model
def exact_terms(x, y, sigma):
    logits = -((x[None, :] - y) ** 2).sum(1) / (2 * sigma**2)
    w = np.exp(logits - logsumexp(logits))
    return logits, w


def exact_energy(x, y, sigma):
    k, d = y.shape
    logits, _ = exact_terms(x, y, sigma)
    return -logsumexp(logits) + np.log(k) + 0.5 * d * np.log(2 * np.pi * sigma**2)


def exact_grad(x, y, sigma):
    _, w = exact_terms(x, y, sigma)
    return (x - w @ y) / sigma**2


def exact_hess(x, y, sigma):
    _, w = exact_terms(x, y, sigma)
    m = w @ y
    cov = (y - m).T @ ((y - m) * w[:, None])
    return (np.eye(y.shape[1]) - cov / sigma**2) / sigma**2


def exact_minima(model, y, sigma):
    """Fixed points of the exact denoiser from the data (minima at small σ)."""
    x = y.clone()
    for _ in range(300):
        x = model.denoise(x, sigma)
    return x


def path_top(path, img, energy):
    """Highest point of the polyline on the two segments at image ``img`` (bounded Brent)."""
    best = path[img]
    for u, v in ((path[img - 1], path[img]), (path[img], path[img + 1])):

        def minus(t, u=u, v=v):
            return -energy(u + t * (v - u))

        r = minimize_scalar(minus, bounds=(0, 1), method="bounded", options={"xatol": 1e-12})
        if -r.fun > energy(best):
            best = u + r.x * (v - u)
    return best


def test_exact_2d_path_saddles_are_the_census_saddles():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(4, 2, generator=g, dtype=F64)
    model, sigma = ms.EmpiricalDiffusion(y), 0.3
    cps = ms.critical_points(model, sigma, n_starts=200, generator=torch.Generator().manual_seed(0))
    minima, census = cps.minima, cps.saddles
    assert minima.shape[0] == 4 and census.shape[0] == 3
    pairs = list(itertools.combinations(range(4), 2))
    a = minima[[i for i, _ in pairs]]
    b = minima[[j for _, j in pairs]]
    res = minimum_energy_path(model, a, b, sigma, images=16)
    assert bool(res.converged.all()) and bool((res.saddle_index == 1).all())
    dist = torch.cdist(res.saddles, census)
    assert float(dist.amin(1).max()) < 1e-8
    assert set(dist.argmin(1).tolist()) == {0, 1, 2}  # every census saddle lies on a path
    census_e = model.energy(census, sigma)
    assert torch.allclose(res.saddle_energy, census_e[dist.argmin(1)], rtol=0, atol=1e-10)
    top = torch.full((len(pairs),), -torch.inf, dtype=F64)
    top = top.scatter_reduce(0, res.saddle_pair, res.saddle_energy, reduce="amax")
    assert torch.allclose(res.barrier, top - model.energy(a, sigma), atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", ["neb", "string"])
def test_exact_d32_saddles_match_an_independent_newton_solve(method):
    g = torch.Generator().manual_seed(1)
    k, d, sigma = 6, 32, 0.25
    y = torch.randn(k, d, generator=g, dtype=F64) * 1.5 / d**0.5
    model = ms.EmpiricalDiffusion(y)
    x = exact_minima(model, y, sigma)
    pairs = [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5)]
    a, b = x[[i for i, _ in pairs]], x[[j for _, j in pairs]]
    res = minimum_energy_path(model, a, b, sigma, images=12, method=method)
    assert bool(res.converged.all()) and bool((res.saddle_index == 1).all())
    yn = y.numpy()
    for s, p, img in zip(res.saddles, res.saddle_pair, res.saddle_image, strict=True):
        start = path_top(res.path[p].numpy(), int(img), lambda z: exact_energy(z, yn, sigma))
        sol = root(exact_grad, start, args=(yn, sigma), jac=exact_hess, tol=1e-13)
        assert np.linalg.norm(exact_grad(sol.x, yn, sigma)) < 1e-9
        assert np.abs(s.numpy() - sol.x).max() < 1e-8
        assert (np.linalg.eigvalsh(exact_hess(sol.x, yn, sigma)) < 0).sum() == 1
    e_ref = [exact_energy(s.numpy(), yn, sigma) for s in res.saddles]
    assert np.allclose(res.saddle_energy.numpy(), e_ref, rtol=1e-12, atol=1e-10)


# ---------------------------------------------------------------- score-only models
class ScoreOnly(EnergyModel):
    """The score of ``inner`` and nothing else (no energy): forces and line integrals only."""

    has_energy = False

    def __init__(self, inner, skew=None, eps=0.0):
        self.inner, self.event_shape = inner, inner.event_shape
        self.noise_conditioned = inner.noise_conditioned
        self.skew, self.eps = skew, eps

    def score(self, x, sigma=None):
        if self.inner.noise_conditioned:
            s = self.inner.score(x, sigma)
        else:  # differentiable score of an autograd energy model
            s = -self.inner._energy_gradient(
                x if x.requires_grad else x.detach().requires_grad_(), sigma
            )
        if self.skew is None:
            return s
        return s + self.eps * s @ self.skew.T  # −(I + εA)∇E, A antisymmetric: not a gradient


def test_score_only_exact_model_line_integral_barrier_equals_the_energy_barrier():
    g = torch.Generator().manual_seed(1)
    k, d, sigma = 6, 32, 0.25
    y = torch.randn(k, d, generator=g, dtype=F64) * 1.5 / d**0.5
    model = ms.EmpiricalDiffusion(y)
    x = exact_minima(model, y, sigma)
    a, b = x[[0, 1, 3]], x[[1, 3, 5]]
    ref = minimum_energy_path(model, a, b, sigma, images=12)
    res = minimum_energy_path(ScoreOnly(model), a, b, sigma, images=12)
    assert bool((res.saddle_index == 1).all()) and torch.equal(res.saddle_pair, ref.saddle_pair)
    assert float((res.saddles - ref.saddles).abs().max()) < 1e-8
    assert torch.allclose(res.barrier, ref.barrier, rtol=0, atol=1e-8)
    assert float(res.energies[:, 0].abs().max()) == 0.0
    e_path = model.energy(res.path.reshape(-1, d), sigma).reshape(3, 12)
    assert torch.allclose(res.energies, e_path - e_path[:, :1], rtol=0, atol=1e-8)


def test_non_conservative_field_keeps_the_saddles_and_bounds_the_barrier_error(mb_reference):
    """``s = −(I + εA)∇E`` (A a rotation generator) vanishes exactly where ∇E does.

    Its line integral differs from ΔE by ``ε ∫ (A∇E)·dx``, at most ``ε ∫ |∇E| ds``.
    """
    minima, saddles = mb_reference
    eps = 0.05
    skew = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    field = ScoreOnly(MullerBrown(), skew, eps)
    c, a = (torch.tensor(m, dtype=F64) for m in (minima[2], minima[0]))
    res = minimum_energy_path(field, c, a, images=16)
    assert res.saddle_index.tolist() == [1]
    assert np.abs(res.saddles[0].numpy() - saddles[0]).max() < 1e-8
    true_barrier = mb_energy(saddles[0]) - mb_energy(minima[2])
    path = np.concatenate([res.path[0, : res.saddle_image[0] + 1].numpy(), res.saddles.numpy()])
    speed = [np.linalg.norm(mb_grad(p)) for p in path]
    ds = np.linalg.norm(np.diff(path, axis=0), axis=1)
    bound = eps * float(np.sum(0.5 * (np.array(speed[1:]) + speed[:-1]) * ds))
    assert 0 < abs(float(res.barrier[0]) - true_barrier) < 1.05 * bound + 1e-6
    # the reported asymmetry is that of H = (I + εA)∇²E at the saddle
    cert = ms.landscape.certify_morse_index(field, res.saddles)
    h = (np.eye(2) + eps * skew.numpy()) @ mb_hess(saddles[0])
    ref = np.linalg.norm(h - h.T) / np.linalg.norm(h)
    assert abs(float(cert.asymmetry[0]) - ref) < 1e-6 * ref


# ---------------------------------------------------------------- input checks
def test_bad_input_is_rejected_before_any_work():
    model = MullerBrown()
    a, b = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    with pytest.raises(ValueError, match="images"):
        minimum_energy_path(model, a, b, images=2)
    with pytest.raises(ValueError, match="method"):
        minimum_energy_path(model, a, b, method="dimer")
    with pytest.raises(ValueError, match="same shape"):
        minimum_energy_path(model, a[None].expand(2, 2), b)
    with pytest.raises(ValueError, match="must differ"):
        minimum_energy_path(model, a, a)
    with pytest.raises(TypeError, match=r"a must be a torch\.Tensor"):
        minimum_energy_path(model, [0.0, 0.0], b)
    with pytest.raises(TypeError, match="climbing"):
        minimum_energy_path(model, a, b, climbing=1)
    with pytest.raises(ValueError, match="spring"):
        minimum_energy_path(model, a, b, spring=-1.0)
    with pytest.raises(ValueError, match="sigma is required"):
        minimum_energy_path(ms.EmpiricalDiffusion(torch.eye(2, dtype=F64)), a, b)
    with pytest.raises(TypeError, match="model"):
        minimum_energy_path(object(), a, b)
