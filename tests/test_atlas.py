"""The landscape atlas of a 2-D exact model against the census and a flooded grid.

Truth: :func:`memscape.critical_points` (its minima and index-1 saddles) and, for the
barriers, the sublevel sets of the energy on a fine grid (scipy.ndimage.label): a
minimum's barrier is the lowest level at which its connected sublevel set holds a
deeper minimum.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import memscape as ms
from memscape.landscape import landscape_atlas

F64 = torch.float64


def flooded_barriers(model, sigma, minima, energies, n=500, pad=1.0):
    lo, hi = minima.min(0).values - pad, minima.max(0).values + pad
    xs = [torch.linspace(float(lo[k]), float(hi[k]), n, dtype=F64) for k in range(2)]
    gx, gy = torch.meshgrid(*xs, indexing="ij")
    grid = model.energy(torch.stack([gx.ravel(), gy.ravel()], 1), sigma).reshape(n, n).numpy()
    cells = [
        tuple(int(torch.argmin((x - c).abs())) for x, c in zip(xs, p, strict=True)) for p in minima
    ]
    out = np.full(len(minima), np.inf)
    for i, ci in enumerate(cells):
        deeper = [cells[j] for j in range(len(minima)) if energies[j] < energies[i]]
        if not deeper:
            continue
        a, b = energies[i], grid.max()
        for _ in range(50):  # bisection on the level
            mid = 0.5 * (a + b)
            lab, _ = ndimage.label(grid <= mid)
            joined = lab[ci] > 0 and any(lab[c] == lab[ci] for c in deeper)
            a, b = (a, mid) if joined else (mid, b)
        out[i] = b - energies[i]
    return out


def test_atlas_of_a_2d_exact_model_matches_census_and_flooding():
    g = torch.Generator().manual_seed(3)
    y = torch.randn(4, 2, generator=g, dtype=F64)
    model, sigma = ms.EmpiricalDiffusion(y), 0.3
    starts = torch.cat([y, torch.randn(20, 2, generator=g, dtype=F64)])
    seen = []
    atlas = landscape_atlas(model, sigma, starts, neighbors=3, progress=lambda *a: seen.append(a))
    assert seen == [(6, 6)] and len(atlas.pairs) == 6 and bool(atlas.pairs.certified.all())
    cps = ms.critical_points(model, sigma, n_starts=200, generator=torch.Generator().manual_seed(0))
    dist = torch.cdist(atlas.minima, cps.minima)
    assert dist.shape == (4, 4) and float(dist.amin(1).max()) < 1e-5
    census_saddles = model.energy(cps.saddles, sigma).numpy()
    for e in atlas.pairs.energy:  # every join is at a census saddle
        assert np.abs(census_saddles - e).min() < 1e-8
    # each start went to its own minimum's basin: its descent end is that minimum
    ends = ms.descend(model, starts, sigma).x
    near = torch.cdist(ends, atlas.minima).argmin(1)
    assert torch.equal(near, atlas.start_minimum)
    energies = model.energy(atlas.minima, sigma).numpy()
    ref = flooded_barriers(model, sigma, atlas.minima, energies)
    got = atlas.barriers.barrier.to_numpy()
    assert np.isinf(got).sum() == 1 and np.isinf(ref[np.isinf(got)]).all()
    finite = np.isfinite(got)
    assert np.allclose(got[finite], ref[finite], atol=5e-3, rtol=0)
    assert set(atlas.barriers.label) == {"memory"}
    assert (atlas.barriers.morse_index == 0).all()


def test_atlas_rejects_score_only_models_and_bad_options():
    class ScoreOnly:
        event_shape = (2,)
        has_energy = False

        def score(self, x, sigma=None):
            return -x

    starts = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(TypeError, match="energy model"):
        landscape_atlas(ScoreOnly(), None, starts)
    model = ms.EmpiricalDiffusion(torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="neighbors"):
        landscape_atlas(model, 0.3, starts, neighbors=0)
    with pytest.raises(ValueError, match="method"):
        landscape_atlas(model, 0.3, starts, method="dimer")
    with pytest.raises(ValueError, match="one noise level"):
        landscape_atlas(model, torch.tensor([0.3, 0.3, 0.3]), starts)


def test_a_path_through_a_middle_minimum_is_joined_by_a_verified_chain_of_saddles():
    """Three points on a line: the path 0 → 2 crosses minimum 1; its two saddles each join
    a neighbouring pair, so the pair (0, 2) joins at the higher of the two cols — found
    here by bounded Brent on the energy along the line (the saddles lie on it by symmetry
    of the energy about the line)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    y = np.array([[0.0, 0.0], [1.0, 0.0], [2.3, 0.0]])
    sigma = 0.3
    model = ms.EmpiricalDiffusion(torch.tensor(y))
    atlas = landscape_atlas(model, sigma, torch.tensor(y), neighbors=2, images=15)
    assert len(atlas.minima) == 3 and atlas.pairs.verified.all()
    order = np.argsort(atlas.minima[:, 0].numpy())  # minima from left to right

    def energy(t):  # the exact energy up to a constant, along the line y = 0
        return -logsumexp(-((y - [t, 0.0]) ** 2).sum(1) / (2 * sigma**2))

    cols = [-minimize_scalar(lambda t: -energy(t), bounds=b, method="bounded",
                             options={"xatol": 1e-12}).fun for b in ((0.2, 0.8), (1.2, 2.0))]  # fmt: skip
    offset = (
        float(model.energy(atlas.minima[[order[1]]], sigma))
        - minimize_scalar(energy, bounds=(0.8, 1.2), method="bounded", options={"xatol": 1e-12}).fun
    )  # memscape's energy minus this one: a constant
    ends = atlas.pairs.set_index(["i", "j"])["energy"]
    outer = tuple(sorted((int(order[0]), int(order[2]))))
    assert ends[outer] == pytest.approx(max(cols) + offset, abs=1e-7)
    assert atlas.graph.join_energy(*outer) == pytest.approx(max(cols) + offset, abs=1e-7)
    verified = atlas.edges[atlas.edges.verified]
    assert sorted(verified.energy.round(6)) == sorted(np.round(np.array(cols) + offset, 6))
