"""Bifurcations of two-dimensional exact-model families against independent solvers.

The truth is computed here without memscape. The exact diffusion energy of data ``y_k`` is
``E(x, σ) = −log Σ_k exp(−‖x − y_k‖²/2σ²)``, with ``∇E = (x − D(x))/σ²`` (``D`` the
softmax-weighted mean of the data) and ``∇²E = I/σ² − Cov_w(y)/σ⁴``. The census at one σ
is Newton's method (numpy, vectorized) from a dense grid of starts, each distinct point
polished by ``scipy.optimize.root``; its Morse index is the count of negative Hessian
eigenvalues. Folds are bracketed by bisection on the number of critical points and then
solved jointly, ``∇E = 0, det ∇²E = 0``, with ``scipy.optimize.fsolve``.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import fsolve, root

import memscape as ms
from tests.test_continuation_events import weights

F64 = torch.float64


# ---------------------------------------------------------------- independent truth (numpy)
def grad(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``∇E`` at points ``x`` ``(n, d)``: ``(n, d)``."""
    return (x - weights(x, y, sigma) @ y) / sigma**2


def hess(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """``∇²E = I/σ² − Cov_w(y)/σ⁴`` at points ``x`` ``(n, d)``: ``(n, d, d)``."""
    w = weights(x, y, sigma)
    m = w @ y
    cov = np.einsum("nk,ki,kj->nij", w, y, y) - m[:, :, None] * m[:, None, :]
    return np.eye(y.shape[1])[None] / sigma**2 - cov / sigma**4


def critical_set(f, jac, lo: np.ndarray, hi: np.ndarray, n: int):
    """All zeros of ``f`` (a gradient, ``(N, 2) -> (N, 2)``, Jacobian ``jac``) in a box.

    Newton from an ``n × n`` and an ``(n + 1) × (n + 1)`` grid over the box ``[lo, hi]``
    (one grid alone misses a point whose Newton basin falls between its nodes), then
    ``scipy.optimize.root`` on each distinct point: ``(points (N, 2), Morse indices (N,))``.
    """
    x = np.concatenate([
        np.stack(np.meshgrid(*[np.linspace(a, b, m) for a, b in zip(lo, hi, strict=True)]),
                 -1).reshape(-1, 2)
        for m in (n, n + 1)
    ])  # fmt: skip
    active = np.ones(len(x), dtype=bool)
    for _ in range(60):
        xa = x[active]
        step = np.linalg.solve(jac(xa), f(xa)[..., None])[..., 0]
        x[active] = xa - np.clip(step, -0.2, 0.2)  # a bounded step: starts far out come back
        active[active] = np.abs(step).max(1) > 1e-12
        if not active.any():
            break
    ok = np.linalg.norm(f(x), axis=1) < 1e-10
    pts: list[np.ndarray] = []
    for p in x[ok]:
        if all(np.linalg.norm(p - o) > 1e-7 for o in pts):
            sol = root(lambda z: f(z[None])[0], p, jac=lambda z: jac(z[None])[0], tol=1e-15)
            if sol.success and all(np.linalg.norm(sol.x - o) > 1e-7 for o in pts):
                pts.append(sol.x)
    pts_a = np.array(pts).reshape(-1, 2)
    idx = (np.linalg.eigvalsh(jac(pts_a)) < 0).sum(1) if len(pts) else np.zeros(0)
    return pts_a, idx.astype(int)


def census(y: np.ndarray, sigma: float, n: int = 48, centre=None, half: float | None = None):
    """All critical points at σ (over the data's box, or the square of half-width ``half``
    around ``centre``): ``(points (N, 2), Morse indices (N,))``."""
    lo, hi = (y.min(0) - 0.3, y.max(0) + 0.3) if centre is None else (centre - half, centre + half)
    return critical_set(lambda x: grad(x, y, sigma) * sigma**2,
                        lambda x: hess(x, y, sigma) * sigma**2, lo, hi, n)  # fmt: skip


def index_counts(idx) -> list[int]:
    return sorted(int(i) for i in idx)


# ---------------------------------------------------------------- the D₃-symmetric triangle
def triangle(r: float, offset: tuple[float, float], turn: float) -> np.ndarray:
    ang = turn + 2 * np.pi * np.arange(3) / 3
    return r * np.stack([np.cos(ang), np.sin(ang)], 1) + np.array(offset)


@pytest.mark.parametrize(
    "r, offset, turn, up", [(1.0, (0.0, 0.0), np.pi / 2, True), (0.8, (0.7, -0.4), 0.3, False)]
)
def test_equilateral_triangle_is_one_d3_transcritical(r, offset, turn, up):
    y = triangle(r, offset, turn)
    # at the centroid the weights are equal, so Cov_w = (1/3) Σ (y_k − c)(y_k − c)ᵀ = r²/2 · I
    # (three unit vectors 120° apart: Σ v vᵀ = 3/2 · I) and ∇²E = (1 − r²/2σ²)/σ² · I: a
    # double eigenvalue through zero at σ_c = r/√2, index 2 below, 0 above
    sigma_c = r / math.sqrt(2)
    lo, hi = 0.4 * r, 2.0 * r
    start, stop = (lo, hi) if up else (hi, lo)
    bd = ms.continuation(ms.EmpiricalDiffusion(torch.tensor(y, dtype=F64)), "sigma",
                         start=start, stop=stop,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    bif = bd.bifurcations
    branch = bif[bif.kind != "fold"]
    assert list(branch.kind) == ["transcritical"], bif
    row = branch.iloc[0]
    assert abs(row.parameter - sigma_c) <= 1e-10 * sigma_c
    assert np.allclose([row.x0, row.x1], offset, atol=1e-9)
    assert row.multiplicity == 2
    assert (row.index_before, row.index_after) == ((2, 0) if up else (0, 2))
    # independent local census at σ_c(1 ∓ ε) around the centroid: the centroid and three
    # saddles on each side, all four merging at σ_c
    eps, half = 1e-3, 0.05 * r
    sides = {}
    for s in (sigma_c * (1 - eps), sigma_c * (1 + eps)):
        pts, idx = census(y, s, n=24, centre=np.array(offset), half=half)
        sides[s > sigma_c] = index_counts(idx)
        assert np.linalg.norm(pts - np.array(offset), axis=1).max() < 0.1 * half
    assert sides[False] == [1, 1, 1, 2] and sides[True] == [0, 1, 1, 1]
    assert (row.points_before, row.points_after) == (4, 4)
    assert len(set(row.branches)) == 4  # the central branch and the three saddle branches
    # three simultaneous folds (minima meet the saddles) above σ_c, nothing else
    folds = bif[bif.kind == "fold"]
    assert len(folds) == 3 and (folds.parameter > sigma_c).all()
    assert np.ptp(folds.parameter) <= 1e-9
    # counts by index between events against the independent census
    cuts = sorted([lo, hi, sigma_c, float(folds.parameter.iloc[0])])
    for a, b in itertools.pairwise(cuts):
        s = math.sqrt(a * b)
        assert index_counts(bd.at(s).morse_index) == index_counts(census(y, s)[1]), s


def test_nearly_equilateral_hopfield_memories_give_a_transcritical_at_beta_2():
    # ModernHopfield: ∇E = ξ − Xᵀw, w = softmax(βXξ), ∇²E = I − β Cov_w(X). The memories have
    # mean 0, so ξ = 0 is critical for all β with ∇²E = I − β Cov, Cov = diag(1/2, 0.64·2/3).
    # Along x₀ nothing is symmetric (only x₁ → −x₁ is): the x₀ eigenvalue vanishes at β = 2
    # where a branch on the axis x₁ = 0 crosses the origin, exchanging indices with it
    mem = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])

    def soft(x, beta):  # w = softmax(βXξ), rows ``(n, K)``
        logits = beta * x @ mem.T
        w = np.exp(logits - logits.max(1, keepdims=True))
        return w / w.sum(1, keepdims=True)

    def f(x, beta):
        return x - soft(x, beta) @ mem

    def jac(x, beta):
        w = soft(x, beta)
        m = w @ mem
        cov = np.einsum("nk,ki,kj->nij", w, mem, mem) - m[:, :, None] * m[:, None, :]
        return np.eye(2)[None] - beta * cov

    bd = ms.continuation(lambda beta: ms.ModernHopfield(torch.tensor(mem), beta=beta), "beta",
                         start=0.5, stop=10.0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    bif = bd.bifurcations
    row = bif.iloc[int(np.argmin(np.abs(bif.parameter - 2.0)))]
    assert row.kind == "transcritical", bif
    assert abs(row.parameter - 2.0) <= 1e-10 and abs(row.x0) + abs(row.x1) <= 1e-9
    assert (row.multiplicity, row.index_before, row.index_after) == (1, 0, 1)
    assert (row.points_before, row.points_after) == (2, 2) and len(set(row.branches)) == 2
    box = np.array([0.05, 0.05])
    for beta, origin in ((2 * (1 - 1e-3), 0), (2 * (1 + 1e-3), 1)):  # independent census
        pts, idx = critical_set(lambda x, b=beta: f(x, b), lambda x, b=beta: jac(x, b),
                                -box, box, 16)  # fmt: skip
        assert index_counts(idx) == [0, 1] and np.abs(pts[:, 1]).max() < 1e-9, beta
        assert idx[int(np.argmin(np.linalg.norm(pts, axis=1)))] == origin  # indices exchange


# ---------------------------------------------------------------- random families: folds
def n_critical(y: np.ndarray, sigma: float) -> int:
    # grid spacing below σ/3 so that no saddle's narrow Newton basin is stepped over
    n = int(min(120, max(40, np.ceil(3 * (np.ptp(y, 0).max() + 0.6) / sigma))))
    return len(census(y, sigma, n=n)[1])


def cubic(y: np.ndarray, x: np.ndarray, sigma: float) -> float:
    """``|∂³E/∂v³| σ³`` along the Hessian's null vector ``v`` (central difference of
    ``vᵀ∇²E v``): of order one at a generic fold, zero at a pitchfork."""
    v = np.linalg.eigh(hess(x[None], y, sigma)[0])[1][:, 0]
    h = 1e-4 * sigma
    c = [v @ hess((x + t * v)[None], y, sigma)[0] @ v for t in (h, -h)]
    return abs(float(c[0] - c[1]) / (2 * h)) * sigma**3


#: a fold with ``cubic`` below this is within float64 reach of a pitchfork (a pair of data
#: points far from all others: their imperfection e^{−45} is below round-off). There the
#: joint system is itself singular and fsolve places the point to only ~1e-7 in σ and
#: ~1e-4 in x, and either kind is right.
NEAR_PITCHFORK = 0.05


def folds_2d(y: np.ndarray, lo: float, hi: float, samples: int):
    """``(σ, x, near a pitchfork)`` of every fold in ``[lo, hi]``.

    Bisection on the count of critical points, then the joint solve from the midpoints of
    pairs of adjacent index, nearest first, until one lands in the sampling interval or its
    neighbours (the count may change a little off the fold, where two merging points lie
    closer than the census tells apart).
    """
    sig = np.geomspace(lo, hi, samples)
    counts = [n_critical(y, s) for s in sig]
    out = []

    def system(z: np.ndarray) -> list[float]:
        x, s = z[None, :2], math.exp(min(max(z[2], -10.0), 10.0))  # fsolve may wander off
        return [*(grad(x, y, s)[0] * s**2), float(np.linalg.det(hess(x, y, s)[0] * s**2))]

    def refine(a: float, b: float, na: int, nb: int) -> None:
        if abs(na - nb) > 2:  # several folds in one interval: split it
            m = math.sqrt(a * b)
            nm = n_critical(y, m)
            refine(a, m, na, nm)
            refine(m, b, nm, nb)
            return
        if na == nb:
            return
        lo_s, hi_s = a * a / b, b * b / a  # the interval and its neighbours: the bracket
        for _ in range(10):  # bisection on the count of critical points (then fsolve)
            m = math.sqrt(a * b)
            if n_critical(y, m) == na:
                a = m
            else:
                b = m
        s_many = a if na > nb else b
        pts, idx = census(y, s_many)
        pairs = sorted((np.linalg.norm(pts[i] - pts[j]), i, j)
                       for i, j in itertools.combinations(range(len(pts)), 2)
                       if abs(idx[i] - idx[j]) == 1)  # fmt: skip
        for _, i, j in pairs:
            z0 = [*(0.5 * (pts[i] + pts[j])), math.log(s_many)]
            with warnings.catch_warnings():  # a start that does not converge is no error
                warnings.simplefilter("ignore", RuntimeWarning)
                z = fsolve(system, z0, xtol=1e-14)
            s = math.exp(min(max(z[2], -10.0), 10.0))
            if np.abs(system(z)).max() < 1e-11 and lo_s <= s <= hi_s:
                out.append((s, z[:2], cubic(y, z[:2], s) < NEAR_PITCHFORK))
                return
        raise AssertionError(f"no fold found in [{a}, {b}]")

    for i in range(samples - 1):
        refine(sig[i], sig[i + 1], counts[i], counts[i + 1])
    return sorted(out, key=lambda t: t[0])


def random_family(seed: int) -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 7))
    lo = float(rng.uniform(0.1, 0.3))
    return rng.uniform(-1.5, 1.5, (k, 2)), lo, float(rng.uniform(1.0, 2.0))


def fold_mismatches(y: np.ndarray, lo: float, hi: float, seed: int, samples: int) -> list[str]:
    """What differs between the folds of ``continuation`` and the independent ones."""
    truth = folds_2d(y, lo, hi, samples)
    bd = ms.continuation(ms.EmpiricalDiffusion(torch.tensor(y, dtype=F64)), "sigma",
                         start=lo, stop=hi, census_kwargs={"n_starts": 200},
                         generator=torch.Generator().manual_seed(seed))  # fmt: skip
    bif = bd.bifurcations.sort_values("parameter")
    got = [(r.parameter, np.array([r.x0, r.x1]), r) for r in bif.itertuples()]

    def match(s: float, x: np.ndarray, t: float, xt: np.ndarray, near: bool) -> bool:
        rtol, xtol = (1e-6, 1e-4) if near else (1e-8, 1e-6)
        return abs(s - t) <= rtol * t and bool(np.linalg.norm(x - xt) <= xtol)

    bad = []
    for t, xt, near in truth:
        hits = [g for g in got if match(g[0], g[1], t, xt, near)]
        if len(hits) != 1:
            bad.append(f"fold at σ = {t:.10g}, x = {xt} matched {len(hits)} times")
            continue
        r = hits[0][2]
        kinds = ("fold", "pitchfork") if near else ("fold",)
        if r.kind not in kinds or abs(r.index_before - r.index_after) != 1 or r.grad_norm > 1e-8:
            bad.append(f"fold at σ = {t:.10g}: {r}")
    for s, x, r in got:
        if not any(match(s, x, t, xt, near) for t, xt, near in truth):
            bad.append(f"extra {r.kind} at σ = {s:.10g}, x = {x}")
    return bad


def clustered_family(seed: int) -> tuple[np.ndarray, float, float]:
    """Points around two centres: near-symmetric pairs, folds close together, σ from 0.1."""
    rng = np.random.default_rng(1000 + seed)
    k = int(rng.integers(3, 7))
    centres = rng.uniform(-1.2, 1.2, (2, 2))
    y = centres[rng.integers(0, 2, k)] + rng.normal(0, 0.35, (k, 2))
    return y, 0.1, float(rng.uniform(1.0, 2.0))


def test_random_2d_family_folds_match_the_joint_solver():
    y, lo, hi = random_family(14)  # three points, four folds: the cheapest family (~4 s)
    assert fold_mismatches(y, lo, hi, 14, samples=80) == []


@pytest.mark.slow  # 4–14 s a family, mostly the independent census
@pytest.mark.parametrize("seed", range(20))
def test_random_2d_families_folds_match_the_joint_solver_slow(seed):
    y, lo, hi = random_family(seed)
    assert fold_mismatches(y, lo, hi, seed, samples=80) == []


#: clustered families where the count bisection brackets a fold (σ = 0.10257, 0.12697) but
#: the joint solve started from the census's pairs does not land in the bracket: the truth
#: is not found there (memscape reports one event in each: a fold of index 1 → 2, and the
#: pitchfork of a pair far from the rest, where the joint system is singular).
TRUTH_FLICKERS = {15, 19}


@pytest.mark.slow  # 2–12 s a family
@pytest.mark.parametrize("seed", [s for s in range(30) if s not in TRUTH_FLICKERS])
def test_clustered_2d_families_folds_match_the_joint_solver_slow(seed):
    # family 14 has an exact pitchfork (a pair far from the rest); on family 21 the corrector
    # once diverged to σ = 0 and the model raised
    y, lo, hi = clustered_family(seed)
    assert fold_mismatches(y, lo, hi, seed, samples=80) == []
