"""Theory functions added for the gallery experiments, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from memscape.theory import clone_probability, clone_probability_at_speciation, speciation_time


def _clone_probability_by_quadrature(t: float, a: float, v: float) -> float:
    """φ(t) from Bayes' rule by brute-force integration over (x₀, q) (no Gaussian algebra)."""
    e, delta = math.exp(-t), 1 - math.exp(-2 * t)
    q = np.linspace(-e * a - 10, e * a + 10, 2001)

    def side(x0: np.ndarray) -> np.ndarray:  # ∫ p(x₀) p(q | x₀) dx₀ over one half-line
        p0 = 0.5 * (stats.norm.pdf(x0, a, math.sqrt(v)) + stats.norm.pdf(x0, -a, math.sqrt(v)))
        joint = p0[None, :] * stats.norm.pdf(q[:, None], e * x0[None, :], math.sqrt(delta))
        return integrate.simpson(joint, x=x0, axis=1)

    half = np.linspace(0, a + 12 * math.sqrt(v), 2001)
    plus, minus = side(half), side(-half[::-1])
    total = np.maximum(plus + minus, 1e-300)
    return float(integrate.trapezoid((plus**2 + minus**2) / total, q))


@pytest.mark.parametrize(("t", "a", "v"), [(0.3, 1.5, 1.0), (1.0, 2.0, 1.0), (0.7, 1.0, 0.5)])
def test_clone_probability_matches_bayes_quadrature(t, a, v):
    expected = _clone_probability_by_quadrature(t, a, v)
    assert clone_probability(t, a, v) == pytest.approx(expected, abs=1e-4)


def test_clone_probability_limits_and_monotonicity():
    t = np.array([0.05, 0.5, 1.0, 2.0, 4.0, 8.0])
    phi = clone_probability(t, 3.0)
    assert phi[0] > 0.99 and abs(phi[-1] - 0.5) < 1e-3  # committed early, a coin flip at t → ∞
    assert np.all(np.diff(phi) < 0)


def test_clone_probability_at_speciation_is_the_large_d_limit():
    # Biroli et al. 2024: ≈ 0.775 at t_S for two Gaussians in large d
    assert clone_probability_at_speciation() == pytest.approx(0.775, abs=5e-4)
    a = 1e4  # ‖m‖² = dμ̃² with d → ∞
    assert clone_probability(speciation_time(a**2 + 1), a) == pytest.approx(
        clone_probability_at_speciation(), abs=1e-6
    )
    # finite d: below the limit, approaching it as d grows
    vals = [clone_probability(speciation_time(d + 1.0), math.sqrt(d)) for d in (4, 32, 256)]
    assert vals[0] < vals[1] < vals[2] < clone_probability_at_speciation()


def test_clone_probability_rejects_bad_input():
    with pytest.raises(ValueError, match="mean_norm"):
        clone_probability(1.0, 0.0)
    with pytest.raises(ValueError, match="t"):
        clone_probability(-1.0, 1.0)
    with pytest.raises(ValueError, match="variance"):
        clone_probability(1.0, 1.0, variance=-1.0)
