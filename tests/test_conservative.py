"""Conservativeness of score fields: Jacobian asymmetry, line integrals, path dependence."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import memscape as ms
from memscape.landscape import (
    is_conservative,
    line_integral,
    path_dependence,
    relative_energy,
    score_asymmetry,
)

F64 = torch.float64


class Quartic(ms.EnergyModel):
    """E = (x² − 1)² + y² + x y / 2: a gradient field (score by autograd)."""

    event_shape = (2,)

    def energy(self, x, sigma=None):
        return (x[:, 0] ** 2 - 1) ** 2 + x[:, 1] ** 2 + 0.5 * x[:, 0] * x[:, 1]


class Rotated(ms.EnergyModel):
    """Score-only field s = −x + ω(−y, x): a gradient plus a rigid rotation (curl 2ω)."""

    has_energy = False
    event_shape = (2,)

    def __init__(self, omega):
        self.omega = omega

    def score(self, x, sigma=None):
        rot = torch.stack([-x[:, 1], x[:, 0]], dim=1)
        return -x + self.omega * rot


def points(n=5, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_gradient_field_is_conservative():
    x = points()
    assert score_asymmetry(Quartic(), x).max() < 1e-12
    assert is_conservative(Quartic(), x)
    assert path_dependence(Quartic(), x[:3], x[2:5]).abs().max() < 1e-10


def test_rotation_is_flagged_with_closed_form_asymmetry():
    omega = 0.7
    model = Rotated(omega)
    x = points()
    # J = −I + ωR (R the 90° rotation): ‖J − Jᵀ‖_F/‖J‖_F = 2ω√2 / √(2 + 2ω²)
    expected = 2 * omega / math.sqrt(1 + omega**2)
    assert score_asymmetry(model, x).tolist() == pytest.approx([expected] * 5, rel=1e-12)
    assert not is_conservative(model, x)


class Linear(ms.EnergyModel):
    """Score-only linear field s(x) = A x in d dimensions: J = A everywhere."""

    has_energy = False

    def __init__(self, a):
        self.a, self.event_shape = a, (a.shape[0],)

    def score(self, x, sigma=None):
        return x @ self.a.T


def test_probe_estimate_of_the_asymmetry_matches_the_closed_form_without_forming_j():
    """‖A − Aᵀ‖_F/‖A‖_F of a random A (d = 300 > the dense limit) from Gaussian probes:
    relative standard error ≈ 1/√probes, so 4000 probes give ≈ 1.6 %; checked at 6 %."""
    g = torch.Generator().manual_seed(3)
    d = 300
    a = torch.randn(d, d, generator=g, dtype=F64) + 2 * torch.eye(d, dtype=F64)
    a = a + 0.8 * a.T  # partly symmetric: asymmetry well inside (0, √2)
    truth = float((a - a.T).norm() / a.norm())
    x = torch.randn(2, d, generator=g, dtype=F64)
    est = score_asymmetry(Linear(a), x, probes=4000, generator=1)
    assert est.tolist() == pytest.approx([truth, truth], rel=0.06)
    est_default = score_asymmetry(Linear(a), x, generator=2)  # d > DENSE_JACOBIAN_MAX: probes
    assert est_default.tolist() == pytest.approx([truth, truth], rel=0.5)
    sym = Linear(a + a.T)  # a gradient field: the estimate is 0 up to round-off
    assert score_asymmetry(sym, x, probes=8, generator=0).max() < 1e-12
    # probes on a small field agree with the dense Jacobian of the rotation
    rot = score_asymmetry(Rotated(0.7), points(), probes=2000, generator=0)
    assert rot.tolist() == pytest.approx([2 * 0.7 / math.sqrt(1 + 0.49)] * 5, rel=0.06)
    with pytest.raises(ValueError, match="probes"):
        score_asymmetry(sym, x, probes=0)
    with pytest.raises(TypeError, match="generator"):
        score_asymmetry(sym, x, probes=2, generator="seed")


def test_path_dependence_equals_circulation():
    """Straight minus detour = ∮ s·dx = 2ω × signed area of the loop (Stokes)."""
    omega = 0.7
    a = torch.tensor([[0.0, 0.0]], dtype=F64)
    b = torch.tensor([[1.0, 0.0]], dtype=F64)
    via = torch.tensor([[0.5, 0.5]], dtype=F64)
    # loop a → via → b → a is clockwise with area 1/4
    dep = path_dependence(Rotated(omega), a, b, via=via)
    assert float(dep) == pytest.approx(2 * omega * -0.25, rel=1e-12)
    assert float(path_dependence(Rotated(0.0), a, b, via=via)) == pytest.approx(0.0, abs=1e-14)
    default = path_dependence(Rotated(omega), a, b)  # default detour: half-length bump
    assert abs(float(default)) == pytest.approx(2 * omega * 0.25, rel=1e-12)


def test_line_integral_matches_energy_difference():
    model = Quartic()
    x = points(6, seed=1)
    a, b = x[:3], x[3:]
    true = model.energy(b) - model.energy(a)
    assert line_integral(model, a, b).tolist() == pytest.approx(true.tolist(), abs=1e-10)
    bent = torch.tensor([[2.0, -1.0], [0.0, 3.0]], dtype=F64)  # any path gives the same
    assert line_integral(model, a, b, path=bent).tolist() == pytest.approx(true.tolist(), abs=1e-9)


def test_relative_energy_of_denoiser_only_model():
    """A user object with only denoise(): −∫ s·dx recovers −log p_σ differences."""
    data = torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.2, -1.0]], dtype=F64)
    exact = ms.EmpiricalDiffusion(data)
    user = SimpleNamespace(denoise=exact.denoise, event_shape=(2,))
    a = torch.tensor([[0.9, 0.1], [0.0, 0.0]], dtype=F64)
    b = torch.tensor([[-0.8, 0.4], [0.2, -0.9]], dtype=F64)
    sigma = 0.5
    true = exact.energy(b, sigma) - exact.energy(a, sigma)
    got = relative_energy(user, a, b, sigma)
    assert got.tolist() == pytest.approx(true.tolist(), abs=1e-8)


def test_census_of_score_only_field_reports_asymmetry():
    omega = 0.7
    cps = ms.critical_points(Rotated(omega), n_starts=20, box=(-1.0, 1.0),
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
    tb = cps.table[cps.table.converged]
    assert len(tb) == 1 and abs(tb.x0.iloc[0]) < 1e-9 and int(tb.morse_index.iloc[0]) == 0
    assert tb.asymmetry.iloc[0] == pytest.approx(2 * omega / math.sqrt(1 + omega**2), rel=1e-10)
    assert tb.energy.isna().all()


def test_lanczos_on_score_only_field_uses_symmetric_part():
    """H = −J = I − ωR has symmetric part I: Lanczos on Hessian-vector products gives 1, 1."""
    from memscape.landscape import hessian_spectrum

    spec = hessian_spectrum(Rotated(0.7), points(3), method="lanczos", k=1)
    assert spec.eigenvalues.flatten().tolist() == pytest.approx([1.0] * 3, rel=1e-10)


def test_bad_input():
    with pytest.raises(TypeError, match="protocol"):
        score_asymmetry(object(), points())
    with pytest.raises(ValueError, match="same shape"):
        line_integral(Quartic(), points(2), points(3))
    with pytest.raises(ValueError, match="sigma"):
        relative_energy(ms.EmpiricalDiffusion(points(3)), points(1), points(1), 0.0)
    with pytest.raises(ValueError, match="n_nodes"):
        line_integral(Quartic(), points(2), points(2), n_nodes=0)
