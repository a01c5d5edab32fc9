"""Radial energy profiles and ring radii (memscape.landscape.profiles) against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import memscape as ms
from memscape.diffusion.empirical import EmpiricalDiffusion
from memscape.landscape import radial_profile
from memscape.theory import circle_energy, circle_radius


class _Radial:
    """E(x) = (‖x − c‖ − a(θ))² with a(θ) = a + b cos θ: its minimum on each ray is a(θ)."""

    def __init__(self, a: float, b: float = 0.0, centre=(0.0, 0.0), power: int = 2):
        self.a, self.b, self.c, self.power = a, b, torch.tensor(centre, dtype=torch.float64), power

    def energy(self, x, sigma=None):
        d = x - self.c
        r, theta = d.norm(dim=1), torch.atan2(d[:, 1], d[:, 0])
        return (r - (self.a + self.b * theta.cos())) ** self.power


def test_radial_profile_of_exact_model_is_the_bessel_energy():
    """2σ²(−log p_σ) of equispaced circle points is R² + 1 − 2σ² log I₀(R/σ²) + c."""
    sigma, k = 0.35, 2000
    theta = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    model = EmpiricalDiffusion(torch.stack([theta.cos(), theta.sin()], 1))
    radii = torch.linspace(0, 1.6, 321, dtype=torch.float64)
    p = radial_profile(model, sigma, radii, 8)
    profile, ring = 2 * sigma**2 * p.energy, p.ring_radius
    theory = circle_energy(radii.numpy(), sigma=sigma)
    gap = profile - profile.mean() - (theory - theory.mean())
    assert np.abs(gap).max() < 1e-8
    assert abs(ring - circle_radius(sigma=sigma).exact) < 1e-4


def test_polygon_data_set_gives_the_same_ring():
    # the registered "polygon" set is the equispaced circle; at σ = 0.5 (β = 4) the ring
    # radius root of R = I₁(R/σ²)/I₀(R/σ²) is well inside the unit circle
    sigma = 0.5
    model = EmpiricalDiffusion(ms.datasets.load("polygon", size=500).x)
    p = radial_profile(model, sigma, np.linspace(0.0, 1.5, 601), 5)
    assert p.energies.shape == (601, 5) and p.minimizers.shape == (5,)
    assert abs(p.ring_radius - circle_radius(sigma=sigma).exact) < 1e-5
    assert np.ptp(p.energies, axis=1).max() < 1e-9  # radially symmetric to rounding


def test_parabola_refinement_is_exact_for_a_quadratic_on_any_grid():
    # (r − a)² is a parabola in r: the three-point vertex is a, off-grid and on an uneven grid
    radii = np.sort(np.r_[0.0, np.random.default_rng(0).uniform(0, 2, 40), 2.0])
    p = radial_profile(_Radial(0.7371), None, radii, 12)
    np.testing.assert_allclose(p.minimizers, 0.7371, atol=1e-12)
    np.testing.assert_allclose(p.energy, (radii - 0.7371) ** 2, atol=1e-12)


def test_minimizers_follow_the_ray_angles_and_the_centre():
    model = _Radial(1.0, 0.2, centre=(0.3, -0.2), power=4)  # quartic: refinement approximate
    angles = torch.tensor([0.0, 0.5 * math.pi, math.pi, 4.0])
    p = radial_profile(model, None, torch.linspace(0, 2, 801), angles, centre=(0.3, -0.2))
    np.testing.assert_allclose(p.angles, angles.numpy())
    np.testing.assert_allclose(p.minimizers, 1 + 0.2 * np.cos(angles.numpy()), atol=2.5e-3)
    assert p.ring_radius == pytest.approx(p.minimizers.mean())


def test_radial_profile_rejects_bad_input():
    model = _Radial(1.0)
    with pytest.raises(TypeError, match="energy"):
        radial_profile(ms.diffusion.ScoreModel.mlp(2, width=8, layers=1), 0.5, [0, 1, 2])
    with pytest.raises(ValueError, match="radii"):
        radial_profile(model, None, [0.0, 1.0])
    with pytest.raises(ValueError, match="radii"):
        radial_profile(model, None, [0.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="radii"):
        radial_profile(model, None, [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="angles"):
        radial_profile(model, None, [0, 1, 2], 0)
    with pytest.raises(ValueError, match="centre"):
        radial_profile(model, None, [0, 1, 2], centre=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="sigma"):
        radial_profile(model, -1.0, [0, 1, 2])
