"""Capacity measurements on binary memories: exact fixed points and the capacity bisection."""

from __future__ import annotations

import math

import pytest
import torch

import memscape as ms
from memscape.memories import capacity_bisection, fixed_point_fraction, fixed_points


def _brute_force_fixed(patterns: torch.Tensor, n: int) -> torch.Tensor:
    """A pattern is fixed iff flipping any single bit does not lower E = −Σ_μ (ξ_μ·σ)ⁿ."""

    def energy(s):
        return -((patterns @ s) ** n).sum()

    out = []
    for s in patterns:
        e0 = energy(s)
        stable = True
        for i in range(s.numel()):
            t = s.clone()
            t[i] = -t[i]
            stable &= bool(energy(t) >= e0)
        out.append(stable)
    return torch.tensor(out)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_fixed_fraction_agrees_with_brute_force_single_flip_energies(n):
    g = torch.Generator().manual_seed(n)
    patterns = (torch.randint(0, 2, (14, 12), generator=g) * 2 - 1).double()
    truth = _brute_force_fixed(patterns, n)
    assert 0.0 < truth.double().mean().item() < 1.0  # the test must be able to fail both ways
    keep = patterns.clone()
    net = ms.DenseAM(patterns, "polynomial", n=n)
    assert fixed_point_fraction(net, patterns, generator=g) == pytest.approx(
        truth.double().mean().item()
    )
    assert torch.equal(fixed_points(net, patterns, generator=g, chunk=5), truth)  # chunked
    assert torch.equal(patterns, keep)


def test_fixed_points_of_the_hebbian_network_sync_and_async_agree_with_the_local_fields():
    patterns = ms.datasets.load("binary_patterns", size=40, dim=200, data_seed=3).x
    net = ms.ClassicalHopfield(patterns)
    j = patterns.T @ patterns  # Hebbian couplings N·W in exact integers, zero diagonal
    j.fill_diagonal_(0)
    truth = ((patterns @ j) * patterns >= 0).all(1)  # every unit aligned with its field (ties stay)
    assert 0 < int(truth.sum()) < len(truth)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(fixed_points(net, patterns, mode="sync"), truth)
    assert torch.equal(fixed_points(net, patterns, generator=g, mode="async"), truth)


def test_fixed_points_rejects_a_model_without_update():
    with pytest.raises(TypeError, match="update"):
        fixed_points(object(), torch.ones(2, 3))
    with pytest.raises(ValueError, match="states"):
        fixed_points(ms.DenseAM(torch.ones(2, 3)), torch.ones(3))


@pytest.mark.parametrize(("capacity", "guess"), [(37, 10.0), (37, 200.0), (1, 5.0), (640, 641.0)])
def test_capacity_bisection_finds_the_last_k_above_the_level(capacity, guess):
    # a decreasing step: fraction 1 up to the capacity, 0 after
    res = capacity_bisection(lambda k: float(k <= capacity), 0.5, guess, resolution=1e-9)
    assert res.K == capacity and res.K_upper == capacity + 1
    assert all(f == float(k <= capacity) for k, f in res.evaluations)


def test_capacity_bisection_stops_at_the_relative_resolution():
    # f(K) = exp(−K/100) crosses ½ at K = 100 ln 2 ≈ 69.3
    res = capacity_bisection(lambda k: math.exp(-k / 100), 0.5, 20.0, resolution=0.1)
    assert res.K <= 100 * math.log(2) < res.K_upper
    assert res.K_upper - res.K <= max(1.0, 0.1 * res.K)
    assert len(res.evaluations) == len({k for k, _ in res.evaluations})  # nothing measured twice


def test_capacity_bisection_validates_and_refuses_a_fraction_that_never_falls():
    with pytest.raises(ValueError, match="level"):
        capacity_bisection(lambda k: 1.0, 1.5, 10.0)
    with pytest.raises(ValueError, match="guess"):
        capacity_bisection(lambda k: 1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="max_patterns"):
        capacity_bisection(lambda k: 1.0, 0.5, 10.0, max_patterns=1000)
