"""Disconnectivity graphs: the merge tree of minima by the energies of the saddles between them.

Becker & Karplus 1997 (J. Chem. Phys. 106, 1495) and Wales, Miller & Walsh 1998
(Nature 394, 758): at energy ``E`` two minima lie in one superbasin when a path
between them never rises above ``E``. Sweeping ``E`` upwards, superbasins merge at
saddle energies; the merge tree summarizes the whole landscape, however high ``d``.

Built by union-find (:class:`networkx.utils.UnionFind`) over the saddles sorted by
energy, Kruskal's minimum-spanning-tree order (a saddle joining two minima already in
one superbasin changes nothing). When superbasins with lowest minima ``m_A`` above
``m_B`` merge at ``E_s``, ``m_A`` has found a deeper basin: its **barrier** is
``E_s − E(m_A)`` (the lowest possible highest point on a path to any deeper minimum),
its **partner** ``m_B``. This is the elder rule of 0-dimensional persistence
(Edelsbrunner, Letscher & Zomorodian 2002): each minimum is born at its energy and
dies at its merge, so the barrier is also its **persistence**; the lowest minimum of
each connected set never dies (``inf``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from memscape.figures import CLASS_COLORS

__all__ = [
    "DisconnectivityGraph",
    "disconnectivity_graph",
    "plot_disconnectivity",
    "plot_disconnectivity_panels",
]

EXTRA_COLORS = ("tab:blue", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


@dataclass
class DisconnectivityGraph:
    """The merge tree of ``n`` minima (see the module doc).

    Attributes:
        tree: :class:`networkx.DiGraph`, edges parent → child. Leaves are the minima
            ``0 … n−1`` (attributes ``kind="minimum"``, ``energy``, ``label``); merge
            nodes ``n, n+1, …`` in order of energy (``kind="merge"``, ``energy``,
            ``saddle``: the row of the saddle list, ``minima``: the minima below).
        barriers: one row per minimum: ``minimum``, ``energy``, ``label``,
            ``merge_energy`` (``inf`` for the lowest of each connected set), ``barrier``
            (``merge_energy − energy``, its persistence), ``partner`` (the lowest
            minimum of the deeper superbasin; −1 if none), ``saddle`` (the row of the
            saddle at which it merges; −1 if none).
        roots: the top node of each connected set of minima, lowest first.
    """

    tree: nx.DiGraph
    barriers: pd.DataFrame
    roots: list[int]

    @property
    def merge_order(self) -> list[tuple[int, int, float]]:
        """``(dying minimum, partner, merge energy)`` of each merge, lowest energy first."""
        t = self.barriers[self.barriers.partner >= 0].sort_values("merge_energy", kind="stable")
        return [(int(r.minimum), int(r.partner), float(r.merge_energy)) for r in t.itertuples()]

    def join_energy(self, i: int, j: int) -> float:
        """The energy at which minima ``i`` and ``j`` join: their lowest common merge.

        The minimax connection level of the two (the lowest ``max E`` over known paths
        between them); ``inf`` when no known saddle joins their sets, ``E_i`` when
        ``i == j``.
        """
        n = len(self.barriers)
        for m in (i, j):
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 0 <= m < n:
                raise ValueError(f"minima must be integers in 0..{n - 1}, got {m!r}")
        if i == j:
            return float(self.tree.nodes[i]["energy"])
        up = nx.ancestors(self.tree, i) & nx.ancestors(self.tree, j)
        return min((float(self.tree.nodes[u]["energy"]) for u in up), default=math.inf)

    def plot(self, ax: Any, **kwargs: Any) -> Any:
        """Draw on a matplotlib ``ax`` (:func:`plot_disconnectivity`); returns ``ax``."""
        return plot_disconnectivity(self, ax, **kwargs)


def _check_inputs(
    minima_energies: Any, saddles: Any, labels: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str] | None]:
    e = np.asarray(minima_energies, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"minima_energies must be a non-empty 1-D array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("minima_energies must be finite")
    if isinstance(saddles, pd.DataFrame):
        saddles = saddles[["i", "j", "energy"]].to_numpy()
    rows = np.asarray(saddles, dtype=np.float64).reshape(-1, 3)
    ij, es = rows[:, :2], rows[:, 2]
    if not (np.isfinite(rows).all() and (ij == np.round(ij)).all()):
        raise ValueError("saddles must be finite (i, j, energy) rows with integer i, j")
    ij = ij.astype(np.int64)
    if ((ij < 0) | (ij >= e.size)).any():
        raise ValueError(f"saddles name minima outside 0..{e.size - 1}")
    low = es < np.maximum(e[ij[:, 0]], e[ij[:, 1]]) - 1e-12 * (1 + np.abs(es))
    if low.any():
        r = int(np.flatnonzero(low)[0])
        raise ValueError(
            f"saddles row {r}: energy {es[r]:g} is below the minima it joins "
            f"({e[ij[r, 0]]:g}, {e[ij[r, 1]]:g})"
        )
    if labels is not None:
        labels = [str(v) for v in labels]
        if len(labels) != e.size:
            raise ValueError(f"labels must have {e.size} entries, got {len(labels)}")
    return e, ij, es, labels


def disconnectivity_graph(
    minima_energies: Any,
    saddles: Any,
    labels: Sequence[Any] | None = None,
) -> DisconnectivityGraph:
    """Merge tree, barriers and persistence of minima joined by saddles (module doc).

    Args:
        minima_energies: ``(n,)`` energy of each minimum.
        saddles: ``(S, 3)`` rows ``(i, j, energy)``: a saddle at ``energy`` joining
            minima ``i`` and ``j`` (array, list of triples, or a DataFrame with
            columns ``i``, ``j``, ``energy``), e.g. from
            :func:`~memscape.landscape.paths.minimum_energy_path`. Rows with ``i == j``
            are ignored; an energy below either minimum raises ``ValueError``.
        labels: optional ``n`` classes of the minima (``memory``, ``spurious``, …),
            kept on the leaves and coloured by :meth:`DisconnectivityGraph.plot`.

    Returns:
        :class:`DisconnectivityGraph`. Ties in energy are broken by order (saddles:
        as given; minima: the lower index counts as deeper).
    """
    e, ij, es, labels = _check_inputs(minima_energies, saddles, labels)
    n = e.size
    tree = nx.DiGraph()
    for m in range(n):
        label = None if labels is None else labels[m]
        tree.add_node(m, kind="minimum", energy=float(e[m]), label=label)
    uf = nx.utils.UnionFind(range(n))
    top = {m: m for m in range(n)}  # component representative → its tree node
    lowest = {m: m for m in range(n)}  # component representative → its lowest minimum
    members = {m: [m] for m in range(n)}  # component representative → its minima
    merge = np.full(n, np.inf)
    partner = np.full(n, -1, dtype=np.int64)
    via = np.full(n, -1, dtype=np.int64)
    for s in np.argsort(es, kind="stable"):
        i, j = int(ij[s, 0]), int(ij[s, 1])
        ri, rj = uf[i], uf[j]
        if ri == rj:
            continue
        mi, mj = lowest[ri], lowest[rj]
        dies, lives = (mi, mj) if (e[mi], mi) > (e[mj], mj) else (mj, mi)
        merge[dies], partner[dies], via[dies] = es[s], lives, s
        node = tree.number_of_nodes()
        below = sorted(members.pop(ri) + members.pop(rj))
        tree.add_node(node, kind="merge", energy=float(es[s]), saddle=int(s), minima=below)
        tree.add_edge(node, top[ri])
        tree.add_edge(node, top[rj])
        uf.union(ri, rj)
        r = uf[ri]
        top[r], lowest[r], members[r] = node, lives, below
    reps = sorted(members, key=lambda r: (e[lowest[r]], lowest[r]))
    roots = [top[r] for r in reps]
    table = pd.DataFrame(
        {
            "minimum": np.arange(n),
            "energy": e,
            "label": labels if labels is not None else [None] * n,
            "merge_energy": merge,
            "barrier": merge - e,
            "partner": partner,
            "saddle": via,
        }
    )
    return DisconnectivityGraph(tree, table, roots)


def _layout(graph: DisconnectivityGraph) -> dict[int, float]:
    """x position of every node: leaves in depth-first order, children deepest first."""
    tree = graph.tree
    x: dict[int, float] = {}

    def low(node: int) -> float:
        kind = tree.nodes[node]["kind"]
        if kind == "minimum":
            return tree.nodes[node]["energy"]
        return min(tree.nodes[m]["energy"] for m in tree.nodes[node]["minima"])

    def place(node: int) -> None:
        kids = sorted(tree.successors(node), key=low)
        if not kids:
            x[node] = float(len([v for v in x if tree.nodes[v]["kind"] == "minimum"]))
            return
        for c in kids:
            place(c)
        x[node] = float(np.mean([x[c] for c in kids]))

    for r in graph.roots:
        place(r)
    return x


def plot_disconnectivity(
    graph: DisconnectivityGraph,
    ax: Any,
    *,
    colors: dict[str, Any] | None = None,
    marker_size: float = 18,
    line_color: Any = "0.25",
) -> Any:
    """Draw a disconnectivity graph on ``ax`` (energy upwards, minima at the bottom).

    Each minimum is a vertical line from its energy up to the energy at which it
    merges; merges are horizontal bars (Becker & Karplus 1997, Fig. 2). Leaves are
    marked, coloured by their label (:data:`memscape.figures.CLASS_COLORS`, then the rest of tab10) with
    a legend, when the graph has labels.

    Args:
        graph: a :class:`DisconnectivityGraph`.
        ax: a matplotlib ``Axes``.
        colors: label → colour overrides.
        marker_size: leaf marker size (points²).
        line_color: colour of the tree's lines.

    Returns:
        ``ax``.
    """
    tree = graph.tree
    x = _layout(graph)
    energies = [d["energy"] for _, d in tree.nodes(data=True)]
    span = (max(energies) - min(energies)) or 1.0
    segments = []  # one line broken by NaN: thousands of minima draw in one call
    for node in tree.nodes:
        parents = list(tree.predecessors(node))
        y0 = tree.nodes[node]["energy"]
        y1 = tree.nodes[parents[0]]["energy"] if parents else y0 + 0.05 * span
        segments.append([(x[node], y0), (x[node], y1)])
        kids = list(tree.successors(node))
        if kids:
            xs = [x[c] for c in kids]
            segments.append([(min(xs), y0), (max(xs), y0)])
    path = np.array([p for seg in segments for p in (*seg, (np.nan, np.nan))])
    ax.plot(path[:, 0], path[:, 1], color=line_color, lw=1.0, zorder=1)
    leaves = [m for m, d in tree.nodes(data=True) if d["kind"] == "minimum"]
    labels = [tree.nodes[m]["label"] for m in leaves]
    if any(lab is not None for lab in labels):
        palette = {**CLASS_COLORS, **(colors or {})}
        cycle = itertools.cycle(EXTRA_COLORS)
        for lab in dict.fromkeys(labels):
            if lab not in palette:
                palette[str(lab)] = next(cycle)
            sel = [m for m in leaves if tree.nodes[m]["label"] == lab]
            ax.scatter([x[m] for m in sel], [tree.nodes[m]["energy"] for m in sel], s=marker_size,
                       color=palette[str(lab)], zorder=3, label=str(lab))  # fmt: skip
        ax.legend(loc="best", fontsize="small", frameon=False)
    ax.set_xticks([])
    ax.set_ylabel("energy")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    return ax


def plot_disconnectivity_panels(
    minima: pd.DataFrame,
    edges: pd.DataFrame,
    axes: Any,
    *,
    by: Sequence[str],
    label: str = "label",
) -> list[DisconnectivityGraph]:
    """One disconnectivity graph per group of a sweep's tables, each on its own axes.

    Args:
        minima: one row per minimum and group: ``minimum`` (0 … n−1 within its group),
            ``energy``, the ``label`` column and the ``by`` columns (e.g. the atlas
            minima of :func:`memscape.memorization.attractors.attractor_atlas` with
            ``model``, ``K`` and ``seed``).
        edges: the merge trees' edges ``i``, ``j``, ``energy`` with the ``by`` columns.
        axes: matplotlib ``Axes``, at least one per group (a sequence or array), groups
            in sorted order; axes beyond the groups (the rest of a grid) are removed.
        by: the columns that name a group.
        label: the column of the leaves' classes.

    Returns:
        The graphs, in the order of ``axes``. Energies are drawn above each group's lowest
        minimum (one constant per panel: the tree does not change).
    """
    by = list(by)
    groups = list(minima.groupby(by, sort=True))
    if len(groups) > len(axes):
        raise ValueError(f"axes must have at least one entry per group of {by} ({len(groups)}), "
                         f"got {len(axes)}")  # fmt: skip
    for spare in list(axes)[len(groups) :]:
        spare.remove()
    axes = list(axes)[: len(groups)]
    graphs = []
    for (key, part), ax in zip(groups, axes, strict=True):
        part = part.sort_values("minimum")
        mask = np.ones(len(edges), dtype=bool)
        for column, value in zip(by, key, strict=True):
            mask &= (edges[column] == value).to_numpy()
        low = float(part["energy"].min())
        rows = edges.loc[mask, ["i", "j", "energy"]].to_numpy(np.float64) - [0.0, 0.0, low]
        graph = disconnectivity_graph(part["energy"].to_numpy() - low, rows, part[label].tolist())
        graph.plot(ax)
        ax.set_ylabel("energy above the lowest minimum")
        name = ", ".join(
            f"{c}={v}" if c != "model" else str(v) for c, v in zip(by, key, strict=True)
        )
        ax.set_title(f"{name}: {len(part)} minima", fontsize="medium")
        graphs.append(graph)
    return graphs
