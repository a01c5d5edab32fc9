"""Basin fractions, basin maps and the Pham et al. basin-radius probe against exact basins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import memscape as ms
from memscape.landscape import wilson_interval

F64 = torch.float64


class DoubleWell(ms.EnergyModel):
    """E = (x² − 1)² + y²: the basin of (±1, 0) is exactly the half-plane ±x > 0."""

    event_shape = (2,)

    def energy(self, x, sigma=None):
        return (x[:, 0] ** 2 - 1) ** 2 + x[:, 1] ** 2


def uniform_sampler(n, generator):
    return 4 * torch.rand(n, 2, generator=generator, dtype=F64) - 2


@pytest.fixture(scope="module")
def well():
    model = DoubleWell()
    cps = ms.critical_points(
        model, n_starts=100, box=(-2.0, 2.0), generator=torch.Generator().manual_seed(0)
    )
    return model, cps


def test_wilson_interval_closed_form():
    lo, hi = wilson_interval(torch.tensor([0, 5, 10]), 10)
    # Wilson (1927) 95 % bounds, e.g. 5/10 -> (0.2366, 0.7634), 0/10 -> (0, 0.2775)
    assert lo.tolist() == pytest.approx([0.0, 0.236593, 0.722467], abs=1e-5)
    assert hi.tolist() == pytest.approx([0.277533, 0.763407, 1.0], abs=1e-5)


def test_double_well_basin_fractions(well):
    model, cps = well
    n = 600
    df = ms.basin_fractions(model, cps, n=n, sampler=uniform_sampler,
                            generator=torch.Generator().manual_seed(1))  # fmt: skip
    starts = uniform_sampler(n, torch.Generator().manual_seed(1))
    truth = {1: int((starts[:, 0] > 0).sum()), -1: int((starts[:, 0] < 0).sum())}
    mins = df[df.point >= 0]
    assert len(mins) == 2 and int(df[df.point == -1]["count"].iloc[0]) == 0
    for _, row in mins.iterrows():
        side = 1 if cps.points[int(row.point)][0] > 0 else -1
        assert int(row["count"]) == truth[side]  # the exact basin is a half-plane
        assert row.ci_low <= 0.5 <= row.ci_high  # symmetric well: 1/2 each
    assert df.fraction.sum() == pytest.approx(1.0)


def test_census_basin_columns_symmetric(well):
    _, cps = well
    mins = cps.table[cps.table.morse_index == 0]
    assert mins.basin_fraction.sum() == pytest.approx(1.0)
    assert ((mins.basin_ci_low <= 0.5) & (0.5 <= mins.basin_ci_high)).all()
    assert cps.table[cps.table.morse_index == 1].basin_fraction.isna().all()


def test_basin_map_matches_half_planes(well):
    model, cps = well
    bm = ms.basin_map(model, cps, xlim=(-2.0, 2.0), ylim=(-1.0, 1.0), resolution=21)
    assert bm.labels.shape == (21, 21)
    right = int(np.argmax(cps.table.x0.to_numpy() * (cps.table.morse_index == 0)))
    left = int(np.argmin(cps.table.x0.to_numpy() * (cps.table.morse_index == 0)))
    xs = bm.xs.numpy()
    assert (bm.labels[:, xs > 1e-9] == right).all()
    assert (bm.labels[:, xs < -1e-9] == left).all()


@pytest.mark.parametrize("d", [1, 3])
def test_basin_radius_two_points(d):
    """±a exact model at small σ: recovery from a + s z is P(a + s z₁ > 0) = Φ(a/s)."""
    a = 1.0
    y = torch.zeros(2, d, dtype=F64)
    y[0, 0], y[1, 0] = a, -a
    model = ms.EmpiricalDiffusion(y)
    levels = [0.05, 0.5, 1.0, 3.0, 20.0]
    n = 400
    res = ms.basin_radius(model, y[:1], 0.1, levels, n, delta=0.25,
                          generator=torch.Generator().manual_seed(2))  # fmt: skip
    phi = [0.5 * (1 + math.erf(a / s / math.sqrt(2))) for s in levels]
    se = [math.sqrt(p * (1 - p) / n) for p in phi]
    assert res.recovery[0, 0] == 1.0
    for r, p, e in zip(res.recovery[0], phi, se, strict=True):
        assert abs(r - p) <= 4 * e + 1e-12
    assert abs(res.recovery[0, -1] - 0.5) < 0.1
    # radius at p = 0.9: Φ(a/s) ≥ 0.9 for s ≤ a/1.2816, i.e. 0.05 and 0.5 of the levels
    r09 = ms.basin_radius(model, y[:1], 0.1, levels, n, 0.25, p=0.9,
                          generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert r09.radius[0] == 0.5
    assert len(res.table) == len(levels)
    # the model's noise level is ``sigma``; the levels added to the points are ``probe_sigmas``
    kw = ms.basin_radius(model, y[:1], sigma=0.1, probe_sigmas=levels, n_trials=n, delta=0.25,
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    assert np.array_equal(kw.recovery, res.recovery) and list(kw.probe_sigmas) == levels
    assert list(kw.table["probe_sigma"]) == levels


def test_basin_radius_custom_reverse_and_errors():
    y = torch.tensor([[1.0], [-1.0]], dtype=F64)
    model = ms.EmpiricalDiffusion(y)
    never = ms.basin_radius(model, y, 0.1, [0.1, 1.0], 10, 0.1, reverse=lambda x, g: x + 10.0)
    assert np.isnan(never.radius).all() and (never.recovery == 0).all()
    with pytest.raises(ValueError, match="delta"):
        ms.basin_radius(model, y, 0.1, [0.1], 10, 0.0)
    with pytest.raises(ValueError, match="probe_sigmas"):
        ms.basin_radius(model, y, 0.1, [-1.0], 10, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        ms.basin_radius(model, y, 0.0, [0.1], 10, 0.1)
    with pytest.raises(ValueError, match="n_trials"):
        ms.basin_radius(model, y, 0.1, [0.1], 0, 0.1)
    with pytest.raises(ValueError, match="p must"):
        ms.basin_radius(model, y, 0.1, [0.1], 10, 0.1, p=1.5)
