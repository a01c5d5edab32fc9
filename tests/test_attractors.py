"""Attractor classes and the critical-noise probe (Pham et al. 2025), on cases of known answer."""

from __future__ import annotations

import math

import pytest
import torch

import memscape as ms
from memscape.memorization import classify_attractors, critical_sigma, same_point_radius
from memscape.protocol import EnergyModel

PENTAGON = ms.datasets.load("polygon", size=5).x


class Ring(EnergyModel):
    """``E(x) = (‖x‖² − 1)²``: a flat ring of minima (the Hessian vanishes along it)."""

    event_shape = (2,)

    def energy(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return ((x**2).sum(-1) - 1) ** 2


def _classes(model, sigma, train, delta_m):
    g = torch.Generator().manual_seed(0)
    return classify_attractors(model, sigma, train, delta_m=delta_m, n_starts=64, generator=g)


def test_exact_model_at_small_sigma_memorizes_every_training_point():
    delta = same_point_radius(PENTAGON)
    table = _classes(ms.EmpiricalDiffusion(PENTAGON), 0.02, PENTAGON, delta)
    assert len(table) == 5 and (table["class"] == "memorized").all()
    assert table["d1"].max() < 1e-6
    assert table["flatness"].min() > 0.9  # isotropic wells: H ≈ I/σ²
    assert table["basin_fraction"].sum() == pytest.approx(1.0)


def test_isolated_minima_away_from_the_training_set_are_spurious():
    # the same wells, classified against points halfway between them (d1 ≈ 0.59 > δ_m)
    turned = ms.datasets.load("polygon", size=5).x @ torch.tensor(
        [[math.cos(math.pi / 5), math.sin(math.pi / 5)],
         [-math.sin(math.pi / 5), math.cos(math.pi / 5)]], dtype=torch.float64)  # fmt: skip
    table = _classes(ms.EmpiricalDiffusion(PENTAGON), 0.02, turned, same_point_radius(turned))
    assert len(table) == 5 and (table["class"] == "spurious").all()
    assert table["d1"].to_numpy() == pytest.approx(2 * math.sin(math.pi / 10), rel=1e-4)


def test_minima_on_a_flat_ring_are_generalized_except_at_training_points():
    table = _classes(Ring(), None, PENTAGON, 0.05)
    assert set(table["class"]) == {"memorized", "generalized"}  # none spurious
    assert (table.loc[table["class"] == "generalized", "d1"] > 0.05).all()
    assert table["flatness"].abs().max() < 1e-6
    assert (table["class"] == "generalized").sum() > len(table) / 2


def test_classify_attractors_rejects_bad_input():
    with pytest.raises(ValueError, match="delta_m"):
        classify_attractors(Ring(), None, PENTAGON, delta_m=0.0)
    with pytest.raises(ValueError, match="train"):
        classify_attractors(Ring(), None, PENTAGON[0], delta_m=0.1)


def test_critical_sigma_of_two_points_is_the_gaussian_sign_probability():
    # Exact denoiser of ±a: the PF-ODE is odd, so a start a + s·z returns to +a iff it is
    # > 0 — probability Φ(a/s) — and always lands near ±a.
    a, n = 1.0, 400
    model = ms.EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    levels = (0.25, 0.5, 1.0, 2.0, 4.0)
    res = critical_sigma(model, torch.tensor([[a]], dtype=torch.float64), 0.1, n_trials=n,
                         levels=levels, generator=torch.Generator().manual_seed(0))  # fmt: skip
    for s, measured in zip(levels, res.recovery[0], strict=True):
        p = 0.5 * (1 + math.erf(a / s / math.sqrt(2)))
        assert measured == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n) + 1e-9), s
    assert res.radius[0] == max(levels)  # Φ ≥ ½ at every level
    with pytest.raises(ValueError, match="levels"):
        critical_sigma(model, torch.zeros(1, 1), 0.1, levels=(0.0, 1.0))


def test_attractor_summary_counts_classes_and_keeps_censored_sigma_out_of_means():
    import pandas as pd

    from memscape.memorization import PROBE_LEVELS, attractor_summary

    attractors = pd.DataFrame({"class": ["memorized", "memorized", "spurious", "generalized"]})
    top = max(PROBE_LEVELS)
    probe = pd.DataFrame({"class": ["memorized", "memorized", "memorized", "spurious", "off-data"],
                          "critical_sigma": [0.1, 0.3, top, math.nan, top]})  # fmt: skip
    s = attractor_summary(attractors, probe)
    assert (s["attractors_memorized"], s["attractors_spurious"], s["attractors_generalized"]) == (
        2,
        1,
        1,
    )
    # σ* = top is a bound (≥ 2.0), not a value: out of the mean, counted apart
    assert s["critical_sigma_memorized"] == pytest.approx(0.2)
    assert s["critical_sigma_memorized_censored"] == 1
    assert math.isnan(s["critical_sigma_spurious"]) and s["critical_sigma_spurious_censored"] == 0
    assert math.isnan(s["critical_sigma_off_data"]) and s["critical_sigma_off_data_censored"] == 1
    assert math.isnan(s["critical_sigma_generalized"])
