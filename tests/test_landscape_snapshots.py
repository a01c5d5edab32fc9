"""Landscape tables: one census with basins and graph, snapshots of a family between events."""

from __future__ import annotations

import io
import math

import pytest
import torch

import memscape as ms
from memscape.landscape import (
    continuation_snapshots,
    landscape_census,
    plot_census,
    plot_morse_smale,
    snapshot_values,
)

TRIANGLE = ms.datasets.load("polygon", size=3).x


def test_snapshot_values_lie_between_consecutive_events():
    v = snapshot_values(2.0, 0.1, [0.5, 1.0, 5.0], log=True)  # 5.0 is outside the range
    assert v == pytest.approx([math.sqrt(2.0), math.sqrt(0.5), math.sqrt(0.05)])
    assert snapshot_values(0.0, 1.0, [], log=False) == [0.5]


@pytest.fixture(scope="module")
def census():
    model = ms.EmpiricalDiffusion(TRIANGLE)
    g = torch.Generator().manual_seed(0)
    return model, landscape_census(model, 0.4, TRIANGLE, n_starts=200, basin_samples=400,
                                   generator=g)  # fmt: skip


def test_landscape_census_of_the_triangle(census):
    _, out = census
    pts = out["critical_points"]
    conv = pts[pts["converged"]]
    # three minima (one per point), three saddles, one maximum: Σ(−1)^index = 1 (Milnor)
    assert sorted(conv["morse_index"].value_counts().items()) == [(0, 3), (1, 3), (2, 1)]
    assert (pts["euler_characteristic"] == 1).all() and pts["is_morse_smale"].all()
    assert out["basins"]["fraction"].sum() == pytest.approx(1.0)
    minima = set(conv.loc[conv["morse_index"] == 0, "point"].astype(str))
    for _, e in out["edges"].groupby("saddle"):  # each saddle joins two different minima
        assert len(e) == 2 and set(e["end"]) <= minima and e["end"].nunique() == 2
    box = out["box"].set_index("axis")
    assert (box["low"] < TRIANGLE.amin(0).numpy()).all()
    assert (box["high"] > TRIANGLE.amax(0).numpy()).all()


def test_snapshots_of_the_exact_family_count_the_events():
    x = ms.datasets.load("four_centroids").x
    model = ms.EmpiricalDiffusion(x)
    out = continuation_snapshots(model, lambda s: (model, s), "sigma", 2.0, 0.25, x, steps=20,
                                 n_starts=100, generator=torch.Generator().manual_seed(0))  # fmt: skip
    snaps, bif = out["snapshots"], out["bifurcations"]
    events = int(bif["kind"].isin(["fold", "pitchfork"]).sum())
    assert events >= 1 and events == int(snaps["n_points"].diff().abs().sum()) // 2
    assert (snaps["euler_characteristic"] == 1).all() and len(snaps) == events + 1
    assert snaps["value"].is_monotonic_decreasing  # ordered from start to stop
    assert int(snaps["n_minima"].iloc[-1]) == 4 and int(snaps["n_points"].iloc[0]) == 1
    assert set(out["census"]["snapshot"]) == set(snaps["snapshot"])
    assert all((t["parameter_name"] == "sigma").all() for t in out.values())


def test_plots_of_a_stored_census(census):
    model, out = census
    pts, edges = out["critical_points"], out["edges"]
    ax = plot_census(model, 0.4, pts, patterns=TRIANGLE, edges=edges, resolution=20,
                     basin_resolution=8)  # fmt: skip
    assert len(ax.collections) >= 3 and len(ax.lines) >= 1 + len(edges)
    ax = plot_morse_smale(pts, edges)
    assert len(ax.collections) >= 1  # the nodes
    ax.figure.savefig(io.BytesIO(), format="png")
