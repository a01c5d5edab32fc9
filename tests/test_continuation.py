"""Continuation and bifurcations against closed-form bifurcation points."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import memscape as ms
from memscape.landscape.continuation import BifurcationDiagram, continuation
from memscape.protocol import EnergyModel
from tests.toys import TiltedWell

F64 = torch.float64


class Cusp(EnergyModel):
    """Cusp normal form ``E = x⁴/4 + a x²/2 + b x`` (1-D)."""

    event_shape = (1,)

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = a, b

    def energy(self, x, sigma=None):
        z = x[:, 0]
        return z**4 / 4 + self.a * z**2 / 2 + self.b * z  # score and Hessian by autograd


def real_roots(coeffs) -> torch.Tensor:
    r = np.roots(coeffs)
    return torch.tensor(np.sort(r[np.abs(r.imag) < 1e-9].real), dtype=F64)[:, None]


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def two_point_checks(diagram: BifurcationDiagram, a: float, axis: torch.Tensor) -> None:
    bif = diagram.bifurcations
    pitch = bif[bif.kind == "pitchfork"]
    assert len(pitch) == 1, bif
    # Hessian at the midpoint is (1 − a²/σ²)/σ²: it loses positivity at σ = a
    assert rel(pitch.parameter.iloc[0], a) < 0.01
    assert set(bif.kind) == {"pitchfork"}
    below = diagram.at(0.5 * a)
    assert sorted(below.morse_index) == [0, 0, 1]
    assert sorted(diagram.at(0.99 * a).morse_index) == [0, 0, 1]  # right next to the pitchfork
    assert list(diagram.at(1.01 * a).morse_index) == [0]
    # minima on ±axis solve the exact fixed point x = a·tanh(a x / σ²) (D(x) = x)
    br = diagram.branches
    coords = torch.tensor(br[diagram.coordinates].to_numpy())
    along = coords @ axis
    sig = torch.tensor(br.parameter.to_numpy())
    mins = torch.tensor(br.morse_index.to_numpy() == 0) & (sig < 0.95 * a)
    resid = along[mins] - a * torch.tanh(a * along[mins] / sig[mins] ** 2)
    assert mins.sum() > 10 and float(resid.abs().max()) < 1e-7
    off = coords - along[:, None] * axis
    assert float(off.abs().max()) < 1e-8  # every branch stays on the line of the data
    above = diagram.at(1.5 * a)
    assert len(above) == 1 and int(above.morse_index.iloc[0]) == 0


def test_two_points_pitchfork_1d():
    a = 1.5
    model = ms.EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=F64))
    diagram = ms.continuation(
        model, "sigma", start=2 * a, stop=0.1 * a, starts=torch.zeros(1, 1, dtype=F64), reseed=0
    )
    assert diagram.log
    two_point_checks(diagram, a, torch.ones(1, dtype=F64))
    assert diagram.branches.parameter.min() == pytest.approx(0.1 * a, rel=1e-9)


def test_two_points_pitchfork_embedded_in_3d_with_census():
    a = 0.8
    g = torch.Generator().manual_seed(0)
    axis = torch.randn(3, generator=g, dtype=F64)
    axis /= axis.norm()
    model = ms.EmpiricalDiffusion(torch.stack([a * axis, -a * axis]))
    diagram = continuation(
        model,
        "sigma",
        start=2 * a,
        stop=0.1 * a,
        reseed=1,
        census_kwargs={"n_starts": 32, "max_steps": 300},
        generator=g,
    )
    two_point_checks(diagram, a, axis)
    assert diagram.branches.branch.nunique() == 3  # reseeded points deduplicated


@pytest.mark.parametrize("a", [-1.0, -0.5])
def test_cusp_folds(a):
    b_fold = 2 * (-a / 3) ** 1.5
    factory = lambda b: Cusp(a, b)  # noqa: E731
    start = real_roots([1, 0, a, -1.0])  # E' = x³ + a x + b at b = −1
    diagram = continuation(factory, "b", start=-1.0, stop=1.0, starts=start, reseed=0)
    assert not diagram.log
    bif = diagram.bifurcations
    assert list(bif.kind) == ["fold", "fold"], bif
    assert rel(bif.parameter.iloc[0], -b_fold) < 0.01
    assert rel(bif.parameter.iloc[1], b_fold) < 0.01
    # at a fold x³ + a x + b = 0 and 3x² + a = 0
    assert np.allclose(np.abs(bif.x0), math.sqrt(-a / 3), rtol=1e-3)
    assert sorted(diagram.at(0.0).morse_index) == [0, 0, 1]
    br = diagram.branches
    assert np.abs(br.x0**3 + a * br.x0 + br.parameter).max() < 1e-8


def test_fold_born_inside_the_range_is_found_by_reseeding():
    # continuation in a at fixed b = 1/4: a new min/saddle pair is born at
    # 4a³ + 27b² = 0, i.e. a = −3 (b/2)^(2/3) = −0.75, disconnected from the start branch
    b = 0.25
    seeds = {1.0: real_roots([1, 0, 1.0, b]), -1.5: real_roots([1, 0, -1.5, b])}
    diagram = continuation(lambda a: Cusp(a, b), "a", start=1.0, stop=-2.0, starts=seeds, reseed=0)
    bif = diagram.bifurcations
    assert list(bif.kind) == ["fold"]
    assert rel(bif.parameter.iloc[0], -0.75) < 0.01
    assert diagram.branches.branch.nunique() == 2
    assert sorted(diagram.at(-1.9).morse_index) == [0, 0, 1]
    assert len(diagram.at(0.0)) == 1


def test_tilted_double_well_folds_with_census():
    t_fold = 8 / (3 * math.sqrt(3))
    diagram = continuation(
        lambda t: TiltedWell(t),
        "t",
        start=-3.0,
        stop=3.0,
        reseed=1,
        census_kwargs={"n_starts": 16, "max_steps": 300},
        generator=torch.Generator().manual_seed(1),
    )
    bif = diagram.bifurcations
    assert list(bif.kind) == ["fold", "fold"], bif
    assert rel(bif.parameter.iloc[0], -t_fold) < 0.01
    assert rel(bif.parameter.iloc[1], t_fold) < 0.01
    assert np.allclose(bif.x1, 0, atol=1e-8)  # the stable y direction stays at 0
    assert diagram.branches.branch.nunique() == 1  # one S-shaped branch, reseeds deduplicated


@pytest.mark.parametrize("d", [4, 40])
def test_modern_hopfield_mean_loses_stability(d):
    g = torch.Generator().manual_seed(3)
    m = torch.randn(d, generator=g, dtype=F64) / math.sqrt(d)
    memories = torch.stack([m, -m])
    beta_c = 1 / float(m @ m)  # Hessian at 0 is I − β m mᵀ
    diagram = ms.continuation(
        lambda beta: ms.ModernHopfield(memories, beta=beta),
        "beta",
        start=0.2 * beta_c,
        stop=5 * beta_c,
        starts=torch.zeros(1, d, dtype=F64),
        reseed=0,
    )
    bif = diagram.bifurcations
    assert list(bif.kind) == ["pitchfork"]
    assert rel(bif.parameter.iloc[0], beta_c) < 0.01
    assert bif.index_before.iloc[0] == 0 and bif.index_after.iloc[0] == 1
    below = diagram.at(3 * beta_c)
    assert sorted(below.morse_index) == [0, 0, 1]
    # the new minima lie on the line of ±m: ξ = m·tanh(β mᵀξ) (fixed point of the update)
    xs = np.stack(below.x) if d > 32 else below[[f"x{i}" for i in range(d)]].to_numpy()
    mn = m.numpy()
    along = xs @ mn / (mn @ mn)
    assert np.allclose(xs, along[:, None] * mn, atol=1e-3)
    assert np.allclose(along, np.tanh(3 * beta_c * along * (mn @ mn)), atol=1e-3)


def test_bad_input():
    model = ms.EmpiricalDiffusion(torch.tensor([[1.0], [-1.0]], dtype=F64))
    zero = torch.zeros(1, 1, dtype=F64)

    def make(beta, memories=None):
        return ms.ModernHopfield(torch.eye(2, dtype=F64), beta=beta)

    with pytest.raises(ValueError, match="gamma"):
        continuation(make, "gamma", start=0.1, stop=1.0, starts=zero)
    with pytest.raises(ValueError, match="factory"):
        continuation(model, "beta", start=0.1, stop=1.0, starts=zero)
    with pytest.raises(ValueError, match="start and stop"):
        continuation(model, "sigma", start=1.0, stop=1.0, starts=zero)
    with pytest.raises(ValueError, match="positive"):
        continuation(model, "sigma", start=1.0, stop=-0.5, starts=zero)
    with pytest.raises(ValueError, match="positive"):
        continuation(model, "sigma", start=0.0, stop=1.0, starts=zero)
    with pytest.raises(TypeError, match="protocol"):
        continuation(42, "sigma", start=1.0, stop=0.5, starts=zero)
    with pytest.raises(TypeError, match="protocol"):
        continuation(lambda s: "not a model", "s", start=1.0, stop=0.5, starts=zero)
    with pytest.raises(TypeError, match="memories"):  # the class itself: memories missing
        continuation(ms.ModernHopfield, "beta", start=0.1, stop=1.0, starts=zero)
    with pytest.raises(ValueError, match="noise-conditioned"):
        continuation(make(1.0), "sigma", start=1.0, stop=0.5, starts=zero)
    with pytest.raises(ValueError, match="starts"):
        continuation(model, "sigma", start=1.0, stop=0.5, starts=torch.zeros(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="outside"):
        continuation(model, "sigma", start=1.0, stop=0.5, starts={2.0: zero}, reseed=0)


class Crossroads(EnergyModel):
    """``E = (y² − 1)²/4 + (y + ½) x²/2 + x⁴/4 + p x``.

    At ``p = 0`` the axis ``x = 0`` is invariant and holds two saddles, (0, 0) and
    (0, −1): the unstable manifold of the first runs down the axis into the second
    (a saddle connection). For ``p ≠ 0`` it ends in the minimum on the side ``−sign(p)``,
    so the Morse–Smale graph changes at ``p = 0`` without any fold or pitchfork.
    """

    event_shape = (2,)

    def __init__(self, p: float) -> None:
        self.p = p

    def energy(self, x, sigma=None):
        u, v = x[:, 0], x[:, 1]
        return (v**2 - 1) ** 2 / 4 + (v + 0.5) * u**2 / 2 + u**4 / 4 + self.p * u

    def score(self, x, sigma=None):  # closed form: the test's many descents stay cheap
        u, v = x[:, 0], x[:, 1]
        return -torch.stack([(v + 0.5) * u + u**3 + self.p, (v**2 - 1) * v + u**2 / 2], dim=1)


def test_saddle_connection_at_the_symmetric_point():
    diagram = continuation(
        lambda p: Crossroads(p),
        "p",
        start=-0.1,
        stop=0.13,
        reseed=0,
        saddle_connections=True,
        n_graph=5,
        census_kwargs={"n_starts": 32, "max_steps": 300},
        generator=torch.Generator().manual_seed(0),
    )
    bif = diagram.bifurcations
    assert list(bif.kind) == ["saddle_connection"], bif
    assert abs(bif.parameter.iloc[0]) < 1e-3
    assert np.allclose([bif.x0.iloc[0], bif.x1.iloc[0]], [0.0, 0.0], atol=1e-3)  # saddle (0, 0)
    ends = diagram.at(0.05)
    side_minima = ends[(ends.morse_index == 0) & (ends.x1 < -0.5)]
    assert sorted(bif.branches.iloc[0][1:]) == sorted(side_minima.branch)


class CuspScore(EnergyModel):
    """Score-only cusp: ``s = −(x³ + a x + b)`` with a rotation-free second coordinate."""

    has_energy = False
    event_shape = (2,)

    def __init__(self, b: float) -> None:
        self.b = b

    def score(self, x, sigma=None):
        u, v = x[:, 0], x[:, 1]
        return torch.stack([-(u**3 - u + self.b) + 0.3 * v, -v - 0.3 * u], dim=1)


def test_score_only_model_folds():
    # zeros: v = −0.3u and u³ − u + 0.09u + b = 0, so folds at b = ±2((1 − 0.09)/3)^(3/2)
    b_fold = 2 * (0.91 / 3) ** 1.5
    start = real_roots([1, 0, -0.91, -1.0])
    starts = torch.cat([start, -0.3 * start], dim=1)
    diagram = continuation(CuspScore, "b", start=-1.0, stop=1.0, starts=starts, reseed=0)
    bif = diagram.bifurcations
    assert list(bif.kind) == ["fold", "fold"], bif
    assert rel(bif.parameter.iloc[1], b_fold) < 0.01 and rel(bif.parameter.iloc[0], -b_fold) < 0.01
    assert diagram.branches.energy.isna().all()


def test_branch_cut_short_warns():
    model = ms.EmpiricalDiffusion(torch.tensor([[1.0], [-1.0]], dtype=F64))
    with pytest.warns(RuntimeWarning, match="max_points"):
        diagram = continuation(
            model, "sigma", start=2.0, stop=0.1, starts=torch.zeros(1, 1, dtype=F64), reseed=0,
            max_points=5,
        )  # fmt: skip
    assert len(diagram.branches) == 5 and diagram.branches.parameter.min() > 1.0
