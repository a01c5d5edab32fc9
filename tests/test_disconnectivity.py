"""Disconnectivity graphs against a brute-force census of a 1-D landscape on a fine grid.

On a line the only path between two minima is the interval between them, so the
barrier of a minimum to a deeper basin is ``min over deeper j of max_[x_i, x_j] E − E_i``
and its partner is the lowest minimum of the sublevel interval it then joins — both
read off the grid here, independently of the union-find.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.optimize import minimize_scalar

from memscape.landscape import disconnectivity_graph


def energy(x):
    return np.sin(3 * x) + 0.6 * np.sin(7.3 * x + 1.0) + 0.08 * x**2


GRID = np.linspace(-4.0, 4.0, 400_001)
VALUES = energy(GRID)


def polish(i, sign):
    """Refine a grid extremum ``i`` (sign +1 minimum, −1 maximum) by bounded Brent."""
    lo, hi = GRID[i - 1], GRID[i + 1]
    r = minimize_scalar(lambda x: sign * energy(x), bounds=(lo, hi), method="bounded",
                        options={"xatol": 1e-13})  # fmt: skip
    return r.x, energy(r.x)


@pytest.fixture(scope="module")
def landscape():
    v = VALUES
    interior = np.arange(1, v.size - 1)
    mins = interior[(v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])]
    maxs = interior[(v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])]
    x_min, e_min = map(np.array, zip(*(polish(i, 1) for i in mins), strict=True))
    between = [maxs[(maxs > a) & (maxs < b)] for a, b in itertools.pairwise(mins)]
    assert all(len(m) == 1 for m in between)  # minima and maxima alternate
    saddles = [(i, i + 1, polish(m[0], -1)[1]) for i, m in enumerate(between)]
    return mins, x_min, e_min, saddles


def brute_force(mins, e_min):
    """Barrier, merge level and partner of each minimum from the grid alone."""
    n = len(mins)
    barrier, partner = np.full(n, np.inf), np.full(n, -1)
    for i in range(n):
        deeper = [j for j in range(n) if (e_min[j], j) < (e_min[i], i)]
        if not deeper:
            continue
        tops = [VALUES[min(mins[i], mins[j]) : max(mins[i], mins[j]) + 1].max() for j in deeper]
        level = min(tops)
        # the sublevel interval {E ≤ level} around x_i, and its lowest minimum (≠ i)
        lo = hi = mins[i]
        while lo > 0 and VALUES[lo - 1] <= level + 1e-12:
            lo -= 1
        while hi < VALUES.size - 1 and VALUES[hi + 1] <= level + 1e-12:
            hi += 1
        inside = [j for j in range(n) if lo <= mins[j] <= hi and j != i]
        partner[i] = min(inside, key=lambda j: (e_min[j], j))
        barrier[i] = level - e_min[i]
    return barrier, partner


def test_merge_order_barriers_and_partners_match_the_grid(landscape):
    mins, _, e_min, saddles = landscape
    assert len(mins) >= 6
    graph = disconnectivity_graph(e_min, saddles)
    barrier, partner = brute_force(mins, e_min)
    table = graph.barriers
    # the grid maxima are within (grid step)² · E'' of the polished saddle energies
    assert np.allclose(table.barrier.to_numpy(), barrier, rtol=0, atol=1e-8)
    assert (table.partner.to_numpy() == partner).all()
    assert np.isinf(table.barrier).sum() == 1 and int(table.barrier.idxmax()) == int(
        np.argmin(e_min)
    )
    truth = sorted(
        (barrier[i] + e_min[i], i, partner[i]) for i in range(len(mins)) if partner[i] >= 0
    )
    order = graph.merge_order
    assert [(m, p) for m, p, _ in order] == [(i, p) for _, i, p in truth]
    assert np.allclose([e for *_, e in order], [e for e, *_ in truth], atol=1e-8, rtol=0)
    # persistence under the elder rule: born at E_i, dies at the merge
    assert np.allclose(table.merge_energy - table.energy, table.barrier, equal_nan=True)


def test_join_energy_is_the_grid_minimax_between_two_minima(landscape):
    """On a line the only path from x_i to x_j is the interval: join level = its grid max."""
    mins, _, e_min, saddles = landscape
    graph = disconnectivity_graph(e_min, saddles)
    for i, j in itertools.combinations(range(len(mins)), 2):
        top = VALUES[mins[i] : mins[j] + 1].max()
        assert graph.join_energy(i, j) == pytest.approx(top, abs=1e-8)
    assert graph.join_energy(3, 3) == e_min[3]
    apart = disconnectivity_graph([0.0, 1.0, -1.0], [(0, 1, 3.0)])
    assert apart.join_energy(0, 1) == 3.0 and apart.join_energy(0, 2) == np.inf
    for bad in (-1, 3, 1.0, True):
        with pytest.raises(ValueError, match="minima"):
            apart.join_energy(0, bad)


def test_tree_structure_and_redundant_saddles(landscape):
    _, _, e_min, saddles = landscape
    n = len(e_min)
    extra = [(0, n - 1, max(s[2] for s in saddles) + 1.0), (2, 2, 5.0)]  # higher cycle, self-loop
    graph = disconnectivity_graph(
        e_min, saddles + extra, labels=["memory"] * (n - 1) + ["spurious"]
    )
    tree = graph.tree
    assert tree.number_of_nodes() == 2 * n - 1 and len(graph.roots) == 1
    root = graph.roots[0]
    assert sorted(tree.nodes[root]["minima"]) == list(range(n))
    for node, data in tree.nodes(data=True):  # a merge sits above everything below it
        for child in tree.successors(node):
            assert tree.nodes[child]["energy"] <= data["energy"]
        if data["kind"] == "minimum":
            assert tree.out_degree(node) == 0
    assert tree.nodes[n - 1]["label"] == "spurious"
    assert (graph.barriers.saddle < len(saddles)).all()  # the extra saddles merge nothing


def test_disconnected_sets_and_drawing():
    graph = disconnectivity_graph([0.0, 1.0, -1.0, 2.0], [(0, 1, 3.0), (2, 3, 2.5)],
                                  labels=["memory", "spurious", "memory", "off-data"])  # fmt: skip
    assert len(graph.roots) == 2
    assert graph.tree.nodes[graph.roots[0]]["minima"] == [2, 3]  # lowest set first
    assert graph.barriers.partner.tolist() == [-1, 0, -1, 2]
    assert np.isinf(graph.barriers.barrier[[0, 2]]).all()
    fig = Figure()
    ax = graph.plot(fig.add_subplot())
    assert ax.get_ylabel() == "energy"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"memory", "spurious", "off-data"}


def test_bad_input():
    with pytest.raises(ValueError, match="below the minima"):
        disconnectivity_graph([0.0, 1.0], [(0, 1, 0.5)])
    with pytest.raises(ValueError, match="outside"):
        disconnectivity_graph([0.0, 1.0], [(0, 2, 3.0)])
    with pytest.raises(ValueError, match="integer"):
        disconnectivity_graph([0.0, 1.0], [(0, 0.5, 3.0)])
    with pytest.raises(ValueError, match="labels"):
        disconnectivity_graph([0.0, 1.0], [(0, 1, 3.0)], labels=["a"])
    with pytest.raises(ValueError, match="1-D"):
        disconnectivity_graph([], [])


def test_panels_draw_one_tree_per_group_of_a_sweep_table():
    """Two groups of one long table: each panel's tree is its own group's (hand-computed)."""
    import pandas as pd

    from memscape.landscape.disconnectivity import plot_disconnectivity_panels

    minima = pd.DataFrame({"K": [2, 2, 8, 8, 8], "minimum": [1, 0, 0, 1, 2],
                           "energy": [11.0, 10.0, 0.0, 0.5, 2.0],
                           "class": ["memorized", "memorized", "memorized", "spurious",
                                     "generalized"]})  # fmt: skip
    edges = pd.DataFrame({"K": [8, 2, 8], "i": [0, 0, 1], "j": [1, 1, 2],
                          "energy": [4.0, 13.0, 3.0]})  # fmt: skip
    fig = Figure()
    axes = fig.subplots(1, 2)
    graphs = plot_disconnectivity_panels(minima, edges, axes, by=["K"], label="class")
    # K = 2: minimum 1 (E 11) dies into 0 (E 10) at 13 → barrier 2, energies shifted by −10
    assert graphs[0].barriers.barrier.tolist()[1] == pytest.approx(2.0)
    assert graphs[0].barriers.energy.tolist() == [0.0, 1.0]
    # K = 8: 1–2 merge at 3 (2 dies, barrier 1), then {1, 2}–0 at 4 (1 dies, barrier 3.5)
    assert graphs[1].barriers.barrier.tolist()[1:] == pytest.approx([3.5, 1.0])
    assert graphs[1].barriers.partner.tolist() == [-1, 0, 1]
    assert axes[1].get_title() == "K=8: 3 minima"
    legend = {t.get_text() for t in axes[1].get_legend().get_texts()}
    assert legend == {"memorized", "spurious", "generalized"}
    with pytest.raises(ValueError, match="one entry per group"):
        plot_disconnectivity_panels(minima, edges, axes[:1], by=["K"], label="class")
    grid = Figure().subplots(2, 2).ravel()  # a grid larger than the groups: the rest removed
    plot_disconnectivity_panels(minima, edges, grid, by=["K"], label="class")
    assert len(grid[0].figure.axes) == 2
