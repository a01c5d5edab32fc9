"""Critical-point census, Morse indices, labels and the Morse–Smale graph against closed forms."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import memscape as ms
from memscape.landscape import hessian_spectrum, morse_smale_graph, newton_refine
from memscape.memories.classical import ClassicalHopfield

F64 = torch.float64


class DoubleWell(ms.EnergyModel):
    """E = (x² − 1)² + y²: minima (±1, 0), index-1 saddle at the origin."""

    event_shape = (2,)

    def energy(self, x, sigma=None):
        return (x[:, 0] ** 2 - 1) ** 2 + x[:, 1] ** 2


class Cusp(ms.EnergyModel):
    """Cusp normal form E = x⁴/4 + a x²/2 + b x (Thom); critical points solve x³ + a x + b = 0."""

    event_shape = (1,)

    def __init__(self, a, b):
        self.a, self.b = a, b

    def energy(self, x, sigma=None):
        x = x[:, 0]
        return x**4 / 4 + self.a * x**2 / 2 + self.b * x


class NoCritical(ms.EnergyModel):
    """E = x³/3 + x: ∇E = x² + 1 never vanishes; ‖∇E‖² has a non-critical minimum at 0."""

    event_shape = (1,)

    def energy(self, x, sigma=None):
        return x[:, 0] ** 3 / 3 + x[:, 0]


def two_points(a, d):
    y = torch.zeros(2, d, dtype=F64)
    y[0, 0], y[1, 0] = a, -a
    return y


def mixture_energy(x, a, sigma):
    """−log(½N(x; a, σ²) + ½N(x; −a, σ²)) up to a constant, written out independently (1-D)."""
    return -np.logaddexp(-((x - a) ** 2) / (2 * sigma**2), -((x + a) ** 2) / (2 * sigma**2))


# ---------------------------------------------------------------- two training points
@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("sigma", [0.6, 1.5])
def test_two_points_pitchfork(d, sigma):
    a = 1.0
    model = ms.EmpiricalDiffusion(two_points(a, d))
    cps = ms.critical_points(model, sigma, n_starts=300, generator=torch.Generator().manual_seed(0))
    conv = cps.table[cps.table.converged]
    assert cps.complete and cps.euler_characteristic() == 1
    if sigma > a:
        assert len(conv) == 1 and int(conv.morse_index.iloc[0]) == 0
        assert abs(float(cps.minima[0].abs().max())) < 1e-8
        return
    assert sorted(conv.morse_index.tolist()) == [0, 0, 1]
    # minima solve x = a tanh(a x / σ²) (the exact denoiser of ±a is a·tanh(ax/σ²))
    root = brentq(lambda x: x - a * math.tanh(a * x / sigma**2), 1e-3, 2 * a)
    xs = sorted(float(m[0]) for m in cps.minima)
    assert xs == pytest.approx([-root, root], abs=1e-7)
    assert cps.minima[:, 1:].abs().max() < 1e-8 if d > 1 else True
    saddle = cps.saddles
    assert saddle.shape[0] == 1 and float(saddle.abs().max()) < 1e-8


def test_denoiser_only_user_object():
    """Any object with denoise() works: its score is (D(x) − x)/σ² and it has no energy."""
    from types import SimpleNamespace

    exact = ms.EmpiricalDiffusion(two_points(1.0, 1))
    user = SimpleNamespace(denoise=exact.denoise)
    starts = torch.linspace(-2, 2, 41, dtype=F64)[:, None]
    cps = ms.critical_points(user, 0.6, starts=starts)
    conv = cps.table[cps.table.converged].sort_values("x0")
    root = brentq(lambda x: x - math.tanh(x / 0.36), 1e-3, 2.0)
    assert conv.x0.tolist() == pytest.approx([-root, 0.0, root], abs=1e-7)
    assert conv.morse_index.tolist() == [0, 1, 0]
    assert conv.energy.isna().all() and cps.euler_characteristic() == 1


@pytest.mark.parametrize("sigma", [0.5, 0.8, 2.0])
def test_midpoint_hessian_closed_form(sigma):
    """H(0) along the axis = (1 − a²/σ²)/σ²; the posterior covariance of ±a at 0 is a²."""
    a = 1.0
    model = ms.EmpiricalDiffusion(two_points(a, 3))
    spec = hessian_spectrum(model, torch.zeros(1, 3, dtype=F64), sigma)
    expected = sorted([(1 - a**2 / sigma**2) / sigma**2, 1 / sigma**2, 1 / sigma**2])
    assert spec.eigenvalues[0].tolist() == pytest.approx(expected, rel=1e-10)
    # and independently: finite-difference second derivative of the written-out energy
    h = 1e-4
    fd = (
        mixture_energy(h, a, sigma) - 2 * mixture_energy(0, a, sigma) + mixture_energy(-h, a, sigma)
    ) / h**2
    assert fd == pytest.approx((1 - a**2 / sigma**2) / sigma**2, rel=1e-5)


def test_lanczos_lowest_eigenvalues_match_closed_form():
    """Hessian-vector-product Lanczos (the d > 256 path) on the ±a model at the midpoint."""
    sigma, d = 0.8, 20
    model = ms.EmpiricalDiffusion(two_points(1.0, d))
    spec = hessian_spectrum(model, torch.zeros(2, d, dtype=F64), sigma, method="lanczos", k=3)
    expected = [(1 - 1 / sigma**2) / sigma**2, 1 / sigma**2, 1 / sigma**2]
    assert not spec.complete
    assert spec.eigenvalues.tolist() == [pytest.approx(expected, rel=1e-8)] * 2
    assert spec.morse_index().tolist() == [1, 1]
    assert spec.eigenvectors[0, :, 0].abs().tolist() == pytest.approx(
        [1.0] + [0.0] * (d - 1), abs=1e-6
    )


# ---------------------------------------------------------------- textbook energies
def test_double_well_census():
    cps = ms.critical_points(
        DoubleWell(), n_starts=200, box=(-2.0, 2.0), generator=torch.Generator().manual_seed(1)
    )
    tb = cps.table[cps.table.converged].sort_values("x0")
    assert tb[["x0", "x1"]].to_numpy() == pytest.approx(
        np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]), abs=1e-8
    )
    assert tb.morse_index.tolist() == [0, 1, 0]
    assert tb.energy.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-12)
    eig = np.stack(tb.eigenvalues.to_numpy())  # closed form: diag(12x² − 4, 2)
    assert eig == pytest.approx(np.array([[2.0, 8.0], [-4.0, 2.0], [2.0, 8.0]]), abs=1e-6)
    assert tb.kind.tolist() == ["minimum", "saddle-1", "minimum"]
    assert cps.is_morse() and cps.euler_characteristic() == 1 and cps.complete
    assert (tb.asymmetry < 1e-12).all()


@pytest.mark.parametrize("a,b", [(-3.0, 0.5), (-3.0, 2.5), (1.0, 0.3), (-1.0, 0.0)])
def test_cusp_count_matches_discriminant(a, b):
    cps = ms.critical_points(
        Cusp(a, b), n_starts=200, box=(-4.0, 4.0), generator=torch.Generator().manual_seed(2)
    )
    roots = np.roots([1.0, 0.0, a, b])
    real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    disc = -4 * a**3 - 27 * b**2
    assert len(real) == (3 if disc > 0 else 1)
    conv = cps.table[cps.table.converged].sort_values("x0")
    assert conv.x0.to_numpy() == pytest.approx(real, abs=1e-7)
    # the index of x* is 1 exactly where E''(x*) = 3x*² + a < 0 (a maximum in 1-D)
    assert conv.morse_index.tolist() == [int(3 * r**2 + a < 0) for r in real]
    assert cps.euler_characteristic() == 1


def test_newton_refine_flags_non_critical_minimum_of_gradient_norm():
    res = newton_refine(NoCritical(), torch.tensor([[0.3], [-0.7]], dtype=F64))
    assert not bool(res.converged.any())
    assert res.x.shape == (2, 1)  # failures are returned, not dropped
    assert res.grad_norm.min() >= 1.0 - 1e-12  # ∇E = x² + 1 ≥ 1


def test_newton_refine_finds_saddle_and_respects_trust_radius():
    model = DoubleWell()
    res = newton_refine(model, torch.tensor([[0.2, 0.3]], dtype=F64))
    assert bool(res.converged.all()) and res.x.abs().max() < 1e-9
    short = newton_refine(model, torch.tensor([[0.2, 0.3]], dtype=F64), max_step=1e-3, max_iter=3)
    assert float((short.x - torch.tensor([[0.2, 0.3]], dtype=F64)).norm()) <= 3e-3 + 1e-12


# ---------------------------------------------------------------- triangle: full Morse complex
def test_equilateral_triangle_morse_complex():
    ang = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=F64)
    tri = torch.stack([ang.cos(), ang.sin()], dim=1)
    model = ms.EmpiricalDiffusion(tri)
    cps = ms.critical_points(model, 0.3, n_starts=400, generator=torch.Generator().manual_seed(3))
    conv = cps.table[cps.table.converged]
    assert sorted(conv.morse_index.tolist()) == [0, 0, 0, 1, 1, 1, 2]
    assert cps.euler_characteristic() == 1 and cps.complete
    mins = conv[conv.morse_index == 0]
    assert (mins.label == "memory").all()
    assert sorted(mins.nearest_pattern.tolist()) == [0, 1, 2]
    assert conv[conv.morse_index == 2].label.tolist() == ["maximum"]
    assert float(cps.of_index(2).norm()) < 1e-8  # by symmetry the maximum is the centroid
    graph = morse_smale_graph(model, cps)
    assert graph.graph["is_morse_smale"]
    joined = set()
    for s in cps.table.index[cps.table.converged & (cps.table.morse_index == 1)]:
        ends = [v for _, v in graph.out_edges(s)]
        assert len(ends) == 2 and ends[0] != ends[1]
        assert all(graph.nodes[v]["index"] == 0 for v in ends)
        # the saddle lies between the two patterns it joins
        pats = sorted(int(cps.table.nearest_pattern[v]) for v in ends)
        mid = tri[pats].mean(0)
        assert float((cps.points[s] - mid).norm()) < 0.05
        joined.add(tuple(pats))
    assert joined == set(combinations(range(3), 2))


# ---------------------------------------------------------------- modern Hopfield labels
def test_modern_hopfield_memories_and_mean():
    g = torch.Generator().manual_seed(4)
    pats = (
        3.0 * torch.linalg.qr(torch.randn(8, 4, generator=g, dtype=F64))[0].T
    )  # orthogonal, norm 3
    big = ms.critical_points(ms.ModernHopfield(pats, beta=4.0), n_starts=300, generator=g)
    mins = big.table[big.table.converged & (big.table.morse_index == 0)]
    assert len(mins) == 4 and (mins.label == "memory").all()
    assert sorted(mins.nearest_pattern.tolist()) == [0, 1, 2, 3]
    assert mins.nearest_distance.max() < 1e-3
    small = ms.critical_points(ms.ModernHopfield(pats, beta=0.05), n_starts=300, generator=g)
    assert small.table.converged.all()
    assert small.minima.shape[0] == 1 and len(small) == 1
    # fixed point ξ = X softmax(βXᵀξ); for β → 0 it tends to the mean of the patterns
    assert float((small.minima[0] - pats.mean(0)).norm()) < 0.1 * float(pats.norm(dim=1).max())


# ---------------------------------------------------------------- classical Hopfield
def hebbian_fixed(states, pats):
    """sign(Ws) = s with ties kept, in exact integer arithmetic (W = ΞᵀΞ/N, zero diagonal)."""
    j = pats.long().T @ pats.long()
    j.fill_diagonal_(0)
    h = states.long() @ j
    return bool(((h * states.long()) >= 0).all())


@pytest.mark.parametrize("k", [3, 10])
def test_classical_hopfield_fixed_points(k):
    n = 60
    g = torch.Generator().manual_seed(5)
    pats = 2.0 * torch.randint(0, 2, (k, n), generator=g).to(F64) - 1
    model = ClassicalHopfield(pats)
    cps = ms.critical_points(model, n_starts=60, discrete=True, generator=g)
    tb = cps.table
    assert cps.discrete and not cps.complete
    fixed = cps.points[cps.converged]
    assert hebbian_fixed(fixed, pats)  # every reported fixed point passes sign(Ws) = s
    if k == 3:  # low load: every pattern and its negative is a memory fixed point
        for sgn in (1, -1):
            rows = tb[
                (tb.label == "memory") & (tb.nearest_sign == sgn) & (tb.nearest_distance == 0)
            ]
            assert sorted(rows.nearest_pattern.tolist()) == list(range(k))
    else:  # load 1/6 > 0.138: spurious fixed points appear, labelled mixture or spurious
        other = tb[tb.converged & tb.label.isin(["mixture", "spurious"])]
        assert len(other) > 0
        assert (other.nearest_distance > 0).all()


def test_discrete_flag_dispatches():
    class Flagged(ClassicalHopfield):
        discrete = True

    pats = torch.tensor([[1.0, 1, -1, -1, 1, -1, 1, 1]], dtype=F64)
    cps = ms.critical_points(Flagged(pats), n_starts=8, generator=torch.Generator().manual_seed(0))
    assert cps.discrete and set(cps.table.nearest_distance[cps.table.converged]) == {0.0}


# ---------------------------------------------------------------- bad input
def test_bad_input():
    model = ms.EmpiricalDiffusion(two_points(1.0, 2))
    with pytest.raises(ValueError, match="sigma"):
        ms.critical_points(model, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        ms.critical_points(model, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        ms.critical_points(model, None)
    with pytest.raises(ValueError, match="n_starts"):
        ms.critical_points(model, 0.5, n_starts=0)
    with pytest.raises(TypeError, match="n_starts"):
        ms.critical_points(model, 0.5, n_starts=2.5)
    with pytest.raises(TypeError, match="protocol"):
        ms.critical_points(object(), 0.5)
    with pytest.raises(TypeError, match="protocol"):
        newton_refine("not a model", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="box"):
        ms.critical_points(DoubleWell(), box=(1.0, -1.0))
    with pytest.raises(ValueError, match="dedupe_tol"):
        ms.critical_points(model, 0.5, dedupe_tol=0.0)
    with pytest.raises(ValueError, match="label_tol"):
        ms.critical_points(model, 0.5, label_tol=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        ms.critical_points(model, 0.5, max_steps=0)
    with pytest.raises(ValueError, match="x"):
        newton_refine(DoubleWell(), torch.tensor([[float("nan"), 0.0]]))
