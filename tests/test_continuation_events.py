"""Verified bifurcation events of ``continuation`` against an independent fold finder.

The truth is computed here without memscape: the exact diffusion energy of data
``y_k`` is ``E(x, σ) = −log Σ_k exp(−‖x − y_k‖²/2σ²)``, with ``∇E = (x − D(x))/σ²``
(``D`` the softmax-weighted mean) and ``∇²E = I/σ² − Cov_w/σ⁴``. In 1-D the critical
points are the sign changes of ``E'`` on a fine grid (refined by ``brentq``); the σ of
each fold is bracketed by bisection on their count and then solved jointly,
``E'(x, σ) = 0, E''(x, σ) = 0``, with ``scipy.optimize.fsolve``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, fsolve

import memscape as ms
from memscape.landscape.continuation import ContinuationOptions

F64 = torch.float64


# ---------------------------------------------------------------- independent truth (numpy)
def weights(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """Softmax weights ``(n, K)`` of points ``x`` ``(n, d)`` over data ``y`` ``(K, d)``."""
    logits = -((x[:, None, :] - y[None]) ** 2).sum(-1) / (2 * sigma**2)
    logits -= logits.max(1, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(1, keepdims=True)


def grad_1d(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``E'(x)`` for 1-D data ``y`` ``(K,)`` at points ``x`` ``(n,)``."""
    w = weights(x[:, None], y[:, None], sigma)
    return (x - w @ y) / sigma**2


def curv_1d(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``E''(x) = 1/σ² − Var_w(y)/σ⁴``."""
    w = weights(x[:, None], y[:, None], sigma)
    m = w @ y
    return 1 / sigma**2 - (w @ y**2 - m**2) / sigma**4


def roots_1d(y: np.ndarray, sigma: float, n: int = 40001) -> np.ndarray:
    """All critical points at σ: sign changes of ``E'`` on a fine grid, refined by brentq."""
    xs = np.linspace(y.min() - 0.5, y.max() + 0.5, n)
    g = grad_1d(xs, y, sigma)
    idx = np.flatnonzero(((g[:-1] <= 0) & (g[1:] > 0)) | ((g[:-1] >= 0) & (g[1:] < 0)))
    f = lambda x: float(grad_1d(np.array([x]), y, sigma)[0])  # noqa: E731

    def root(i: int) -> float:
        a, b = xs[i], xs[i + 1]
        if f(a) * f(b) > 0:  # a grid value at round-off from 0: the root is that grid point
            return float(a if abs(g[i]) < abs(g[i + 1]) else b)
        return float(brentq(f, a, b, xtol=1e-14))

    return np.array([root(i) for i in idx])


def folds_1d(y: np.ndarray, lo: float, hi: float, samples: int = 300) -> list[tuple[float, float]]:
    """``(σ, x)`` of every fold in ``[lo, hi]``: count bisection, then the joint solve."""
    sig = np.geomspace(lo, hi, samples)
    counts = [len(roots_1d(y, s)) for s in sig]
    out = []

    def refine(a: float, b: float, na: int, nb: int) -> None:
        if abs(na - nb) > 2:  # two folds in one interval: split it
            m = np.sqrt(a * b)
            nm = len(roots_1d(y, m))
            refine(a, m, na, nm)
            refine(m, b, nm, nb)
            return
        if na == nb:
            return
        for _ in range(40):  # bisection on the count of critical points
            m = np.sqrt(a * b)
            if len(roots_1d(y, m)) == na:
                a = m
            else:
                b = m
        s_many = a if na > nb else b
        r = roots_1d(y, s_many)
        k = int(np.argmin(np.diff(r)))  # the annihilating pair: the closest two roots
        x0 = 0.5 * (r[k] + r[k + 1])

        def system(z: np.ndarray) -> list[float]:
            x, s = np.array([z[0]]), float(z[1])
            return [float(grad_1d(x, y, s)[0]) * s**2, float(curv_1d(x, y, s)[0]) * s**2]

        z, info, ier, _ = fsolve(system, [x0, s_many], xtol=1e-14, full_output=True)
        assert np.abs(system(z)).max() < 1e-12, (ier, info)
        out.append((float(z[1]), float(z[0])))

    for i in range(samples - 1):
        refine(sig[i], sig[i + 1], counts[i], counts[i + 1])
    return sorted(out)


def third_derivative(y: np.ndarray, x: float, sigma: float) -> float:
    """``|E'''(x)| σ³`` by a central difference of ``E''``: of order one at a generic fold."""
    h = 1e-4 * sigma
    c = curv_1d(np.array([x + h, x - h]), y, sigma)
    return abs(float(c[0] - c[1]) / (2 * h)) * sigma**3


#: a fold with ``|E'''| σ³`` below this is within float64 reach of a pitchfork: two data
#: points far from all others (e^{−37} at σ = 0.25) make an imperfect pitchfork with
#: imperfection ε, whose fold lies ε^{1/3} from the symmetric point and ε^{2/3} from its σ;
#: below ε ~ 1e-9 no float64 computation can tell it from a pitchfork, so there either kind
#: is right (the σ and the adjacent indices are still checked).
NEAR_PITCHFORK = 0.05


# ---------------------------------------------------------------- checks
def check_folds(
    bd: ms.BifurcationDiagram, truth: list[tuple[float, float]], y: np.ndarray | None = None
) -> None:
    bif = bd.bifurcations.sort_values("parameter")
    assert len(bif) == len(truth), bif
    for kind, (s, x) in zip(bif.kind, truth, strict=True):
        near = y is not None and third_derivative(y, x, s) < NEAR_PITCHFORK
        assert kind in (("fold", "pitchfork") if near else ("fold",)), bif
    got = sorted(bif.parameter)
    for s_true, (s_got, row) in zip(
        [t[0] for t in truth],
        zip(got, bif.sort_values("parameter").itertuples(), strict=True),
        strict=True,
    ):
        assert abs(s_got - s_true) <= 1e-8 * s_true, (s_got, s_true)
        assert abs(row.index_before - row.index_after) == 1, bif
    assert (bif.grad_norm <= 1e-8).all() and (bif.eigenvalue.abs() <= 1e-6).all(), bif


def census_kwargs() -> dict:
    return {"n_starts": 200}


def diagram(y: torch.Tensor, lo: float, hi: float, seed: int = 0, **kw) -> ms.BifurcationDiagram:
    model = ms.EmpiricalDiffusion(y)
    return ms.continuation(model, "sigma", start=lo, stop=hi, census_kwargs=census_kwargs(),
                           generator=torch.Generator().manual_seed(seed), **kw)  # fmt: skip


# ---------------------------------------------------------------- the reproductions of issue 11
@pytest.mark.parametrize("d", [1, 2])
def test_symmetric_pair_is_one_pitchfork_at_sigma_a(d):
    y = torch.zeros(2, d, dtype=F64)
    y[:, 0] = torch.tensor([-1.0, 1.0])
    bd = ms.continuation(ms.EmpiricalDiffusion(y), "sigma", start=0.3, stop=2.0)
    bif = bd.bifurcations
    assert list(bif.kind) == ["pitchfork"], bif
    row = bif.iloc[0]
    # Hessian at the mean is (1 − a²/σ²)/σ²: it vanishes at σ = a = 1
    assert abs(row.parameter - 1.0) <= 1e-10
    assert (row.index_before, row.index_after) == (1, 0)  # σ grows: the saddle becomes the min
    assert row.grad_norm <= 1e-12 and abs(row.eigenvalue) <= 1e-8
    assert len(row.branches) == 3  # the two minima (one curve), the mean below and above
    assert sorted(bd.at(0.9).morse_index) == [0, 0, 1]
    assert list(bd.at(1.1).morse_index) == [0]


def test_four_points_exactly_three_folds():
    y = torch.tensor([[-1.1329366441128625], [-0.8324428058135154], [-0.0708214556683564],
                      [0.641573318117064]], dtype=F64)  # fmt: skip
    bd = ms.continuation(ms.EmpiricalDiffusion(y), "sigma", start=0.1, stop=2.0)
    check_folds(bd, folds_1d(y[:, 0].numpy(), 0.1, 2.0, samples=150))
    got = sorted(bd.bifurcations.parameter)
    assert np.allclose(got, [0.1502456, 0.34728884, 0.37917639], rtol=1e-7, atol=0)


def test_points_0_1_3_embedded_in_3d():
    g = torch.Generator().manual_seed(4)
    axis = torch.randn(3, generator=g, dtype=F64)
    axis /= axis.norm()
    y = torch.tensor([0.0, 1.0, 3.0], dtype=F64)[:, None] * axis + 0.3
    bd = ms.continuation(ms.EmpiricalDiffusion(y), "sigma", start=1.5, stop=0.2,
                         census_kwargs=census_kwargs(), generator=g)  # fmt: skip
    bif = bd.bifurcations.sort_values("parameter")
    assert list(bif.kind) == ["fold", "fold"], bif
    assert np.allclose(bif.parameter, [0.4998159, 0.9011726], rtol=0, atol=1e-7)
    truth = folds_1d(np.array([0.0, 1.0, 3.0]), 0.2, 1.5, samples=100)
    assert np.allclose(bif.parameter, [t[0] for t in truth], rtol=1e-8, atol=0)
    assert (bif.index_before - bif.index_after).abs().eq(1).all()


def test_modern_hopfield_beta_pitchfork_at_one_over_lambda_max():
    g = torch.Generator().manual_seed(2)
    half = torch.randn(3, 2, generator=g, dtype=F64) * torch.tensor([1.0, 0.4], dtype=F64)
    x = torch.cat([half, -half])  # symmetric under ξ → −ξ: a pitchfork at ξ = 0
    beta_c = 1 / float(torch.linalg.eigvalsh(x.T @ x / len(x))[-1])  # Hessian at 0: I − β Cov
    bd = ms.continuation(lambda beta: ms.ModernHopfield(x, beta=beta), "beta",
                         start=0.5 * beta_c, stop=2 * beta_c,
                         starts=torch.zeros(1, 2, dtype=F64), reseed=0)  # fmt: skip
    bif = bd.bifurcations
    assert list(bif.kind) == ["pitchfork"], bif
    assert abs(bif.parameter.iloc[0] * float(1 / beta_c) - 1) <= 1e-10
    assert (bif.index_before.iloc[0], bif.index_after.iloc[0]) == (0, 1)


# ---------------------------------------------------------------- random families
def random_family(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 7))
    return torch.tensor(np.sort(rng.uniform(-1.5, 1.5, k))[:, None], dtype=F64)


@pytest.mark.parametrize("seed", range(3))
def test_random_1d_families_folds_match_the_independent_solver(seed):
    y = random_family(seed)
    lo, hi = 0.12, 2.0
    truth = folds_1d(y[:, 0].numpy(), lo, hi, samples=120)
    check_folds(diagram(y, lo, hi, seed), truth, y[:, 0].numpy())


#: seed 16: data −1.435, −1.218 far from the rest make a pitchfork whose imperfection is
#: round-off (|E‴|σ³ = 8e-5, the other data weigh e^{−32} there) at σ = 0.1086: its fold
#: lies ~1e-9 in σ from the symmetric point, the branches through it come closer than the
#: corrector can separate and stop there. The fold is then solved for directly, reported
#: flagged ``stalled`` and warned about.
ROUND_OFF_PITCHFORK = 16


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 25))
def test_random_1d_families_folds_match_the_independent_solver_slow(seed):
    y = random_family(seed)
    lo, hi = 0.1, 2.0
    truth = folds_1d(y[:, 0].numpy(), lo, hi, samples=300)
    if seed == ROUND_OFF_PITCHFORK:
        with pytest.warns(RuntimeWarning, match="could not step past"):
            bd = diagram(y, lo, hi, seed)
        stalled = bd.bifurcations[bd.bifurcations.stalled]
        assert len(stalled) == 1, bd.bifurcations
        s, x = min(truth, key=lambda t: abs(t[0] - stalled.parameter.iloc[0]))
        assert third_derivative(y[:, 0].numpy(), x, s) < NEAR_PITCHFORK  # the round-off case
    else:
        bd = diagram(y, lo, hi, seed)
        assert not bd.bifurcations.stalled.any(), bd.bifurcations
    check_folds(bd, truth, y[:, 0].numpy())


def test_counts_by_index_match_an_independent_census_between_events():
    y = random_family(11)
    bd = diagram(y, 0.12, 2.0, 11)
    cuts = sorted([0.12, 2.0, *bd.bifurcations.parameter])
    for a, b in itertools.pairwise(cuts):
        s = float(np.sqrt(a * b))
        r = roots_1d(y[:, 0].numpy(), s)
        want = sorted(int(c < 0) for c in curv_1d(r, y[:, 0].numpy(), s))
        assert sorted(bd.at(s).morse_index) == want, s


def test_options_are_validated():
    with pytest.raises(ValueError, match="steps"):
        ContinuationOptions(steps=0)
    with pytest.raises(ValueError, match="tol"):
        ContinuationOptions(tol=-1.0)
    with pytest.raises(TypeError, match="branch_switching"):
        ContinuationOptions(branch_switching=1)  # type: ignore[arg-type]
    model = ms.EmpiricalDiffusion(torch.tensor([[1.0], [-1.0]], dtype=F64))
    with pytest.raises(TypeError, match="unexpected"):
        ms.continuation(model, "sigma", start=1.0, stop=0.5, stepz=3)
    with pytest.raises(TypeError, match="options"):
        ms.continuation(model, "sigma", start=1.0, stop=0.5, options={"steps": 3})
