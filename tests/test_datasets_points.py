"""Small 2-D point sets of the landscape studies: each against its defining property."""

from __future__ import annotations

import math

import pytest
import torch

import memscape as ms
from memscape.datasets.synthetic import FOUR_CENTROIDS

F64 = torch.float64


def test_polygon_is_regular_with_a_vertex_on_top():
    tri = ms.datasets.load("polygon").x  # size 3: the equilateral triangle
    assert tri.shape == (3, 2) and tri.dtype == F64
    torch.testing.assert_close(tri.norm(dim=1), torch.ones(3, dtype=F64))
    torch.testing.assert_close(tri.mean(0), torch.zeros(2, dtype=F64))
    assert torch.cdist(tri, tri).fill_diagonal_(0).max() == pytest.approx(math.sqrt(3))
    torch.testing.assert_close(tri[0], torch.tensor([0.0, 1.0], dtype=F64))
    hexagon = ms.datasets.load("polygon", size=6, radius=2.0).x
    torch.testing.assert_close(hexagon.norm(dim=1), torch.full((6,), 2.0, dtype=F64))
    gaps = torch.diff(torch.atan2(hexagon[:, 1], hexagon[:, 0]) % (2 * math.pi)) % (2 * math.pi)
    torch.testing.assert_close(gaps, torch.full((5,), 2 * math.pi / 6, dtype=F64))


def test_circle_and_polygon_are_different_sets():
    # circle: uniform random angles (a training distribution); polygon: equispaced
    rand = ms.datasets.load("circle", size=6).x.double()
    poly = ms.datasets.load("polygon", size=6).x
    torch.testing.assert_close(rand.norm(dim=1), poly.norm(dim=1), atol=1e-6, rtol=0)
    assert not torch.allclose(torch.cdist(rand, rand), torch.cdist(poly, poly), atol=1e-3)


def test_lattice_is_a_centred_unit_grid():
    g = ms.datasets.load("lattice", size=9).x
    assert g.shape == (9, 2) and g.dtype == F64
    torch.testing.assert_close(g.mean(0), torch.zeros(2, dtype=F64))
    d = torch.cdist(g, g).fill_diagonal_(math.inf)
    torch.testing.assert_close(d.min(1).values, torch.ones(9, dtype=F64))
    assert set(g[:, 0].tolist()) == {-1.0, 0.0, 1.0}
    with pytest.raises(ValueError, match="perfect square"):
        ms.datasets.load("lattice", size=5)


def test_bimodal_splits_evenly_between_two_blobs():
    d = ms.datasets.load("bimodal", size=20_000, data_seed=3)
    assert d.x.dtype == F64 and torch.equal(d.labels, torch.arange(20_000) % 2)
    for side, centre in ((0, [1.0, 0.0]), (1, [-1.0, 0.0])):
        pts = d.x[d.labels == side]
        torch.testing.assert_close(pts.mean(0), torch.tensor(centre, dtype=F64), atol=0.015, rtol=0)
        assert float(pts.std(0).mean()) == pytest.approx(0.25, rel=0.03)
    torch.testing.assert_close(ms.datasets.load("bimodal", size=8, data_seed=3).x, d.x[:8])
    assert not torch.equal(ms.datasets.load("bimodal", size=8, data_seed=4).x, d.x[:8])


def test_four_centroids_are_generic():
    x = ms.datasets.load("four_centroids").x
    torch.testing.assert_close(x, torch.tensor(FOUR_CENTROIDS, dtype=F64))
    d = torch.pdist(x)
    assert len(d) == 6 and float(torch.diff(d.sort().values).min()) > 0.01  # all distinct
    with pytest.raises(ValueError, match="size"):
        ms.datasets.load("four_centroids", size=5)


def test_three_patterns_move_the_third_one_only():
    lo, hi = ms.datasets.load("three_patterns", height=0.1).x, ms.datasets.load("three_patterns").x
    torch.testing.assert_close(lo[:2], hi[:2])
    torch.testing.assert_close(lo[2], torch.tensor([0.0, 0.1], dtype=F64))
    torch.testing.assert_close(hi[2], torch.tensor([0.0, 1.5], dtype=F64))


def test_landscape_point_sets():
    # the sets of the landscape studies (formerly the landscape recipe's synthetic_points)
    tri = ms.datasets.load("polygon", size=3).x
    assert tri.shape == (3, 2) and tri.dtype == torch.float64
    torch.testing.assert_close(tri.norm(dim=1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(tri.mean(0), torch.zeros(2, dtype=torch.float64))
    assert torch.cdist(tri, tri).fill_diagonal_(0).max() == pytest.approx(math.sqrt(3))
    circ = ms.datasets.load("polygon", size=6).x
    torch.testing.assert_close(circ.norm(dim=1), torch.ones(6, dtype=torch.float64))
    assert ms.datasets.load("lattice", size=9).x.shape == (9, 2)
    torch.testing.assert_close(
        ms.datasets.load("bimodal", size=8, data_seed=3).x,
        ms.datasets.load("bimodal", size=8, data_seed=3).x,
    )
    with pytest.raises(ValueError, match="data"):
        ms.datasets.load("spiral", size=4)
