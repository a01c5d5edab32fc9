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


def test_match_events_is_the_least_total_distance_assignment():
    """Against brute force over every one-to-one pairing of the smaller table into the larger."""
    import itertools

    import numpy as np
    import pandas as pd

    from memscape.landscape.snapshots import match_events

    rng = np.random.default_rng(4)
    for trial in range(20):
        na, nb = int(rng.integers(1, 5)), int(rng.integers(1, 5))

        def table(n):
            return pd.DataFrame({"parameter": rng.uniform(0.1, 2.0, n),
                                 "kind": rng.choice(["fold", "pitchfork"], n),
                                 "x0": rng.normal(size=n), "x1": rng.normal(size=n)})  # fmt: skip

        a, b = table(na), table(nb)
        a.loc[len(a)] = {"parameter": 1.0, "kind": "saddle_connection", "x0": 0.0, "x1": 0.0}
        out = match_events(a, b)
        pairs = out.dropna(subset=["order_a", "order_b"])
        assert len(pairs) == min(na, nb) and len(out) == max(na, nb)
        ea = a[a.kind != "saddle_connection"].sort_values("parameter", ascending=False)
        eb = b.sort_values("parameter", ascending=False)

        def dist(i, j, ea=ea, eb=eb):
            u, v = ea.iloc[i], eb.iloc[j]
            return float(np.sqrt((u.x0 - v.x0) ** 2 + (u.x1 - v.x1) ** 2
                                 + (np.log(u.parameter) - np.log(v.parameter)) ** 2))  # fmt: skip

        if na <= nb:
            best = min(sum(dist(i, j) for i, j in enumerate(p))
                       for p in itertools.permutations(range(nb), na))  # fmt: skip
        else:
            best = min(sum(dist(i, j) for j, i in enumerate(p))
                       for p in itertools.permutations(range(na), nb))  # fmt: skip
        assert pairs["cost"].sum() == pytest.approx(best, rel=1e-12), trial
        for r in pairs.itertuples():
            assert r.cost == pytest.approx(dist(int(r.order_a), int(r.order_b)), rel=1e-12)
            assert r.parameter_a == ea.iloc[int(r.order_a)].parameter
