"""Figures made of many landscape panels or of a census as a graph.

:func:`plot_snapshots` draws census snapshots along a family with one colour per attractor
(:func:`attractor_colors`), :func:`plot_morse_smale` the Morse–Smale graph with the energy
on the vertical axis, and :func:`plot_fraction` a binomial fraction with its Wilson
interval. The single-panel figures are in :mod:`memscape.landscape.plot`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from memscape.landscape.basins import wilson_interval
from memscape.landscape.plot import INDEX_STYLE, _index_style, _new_axes, plot_census

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["attractor_colors", "plot_fraction", "plot_morse_smale", "plot_snapshots"]


def attractor_colors(censuses: Any, *, palette: Any = None) -> list[list[str]]:
    """One colour per attractor across a sequence of censuses (e.g. snapshots along σ).

    The minima of consecutive censuses are matched one to one by the assignment of least
    total Euclidean distance between their positions (Kuhn 1955, as
    :func:`memscape.landscape.snapshots.match_events` pairs events); a matched minimum keeps
    its predecessor's colour, an unmatched one (born at a fold or pitchfork) takes the
    next colour of ``palette``. Critical points of index ≥ 1 get grey.

    Args:
        censuses: census tables (columns ``x0``, ``x1``, ``converged``, ``morse_index``),
            in the order of the panels.
        palette: colours to hand out in turn (default matplotlib's ``C0`` … ``C9``, cycled).

    Returns:
        For each census, one colour per *converged* row, in order (what
        :func:`plot_census` takes as ``basin_colors``).
    """
    palette = list(palette) if palette is not None else [f"C{i}" for i in range(10)]
    if not palette:
        raise ValueError("palette must hold at least one colour")
    out: list[list[str]] = []
    prev = np.zeros((0, 2))
    prev_ids: list[int] = []
    next_id = 0
    for table in censuses:
        conv = table[table["converged"]]
        is_min = conv["morse_index"].to_numpy(int) == 0
        pos = conv[["x0", "x1"]].to_numpy(float)[is_min]
        ids = [-1] * len(pos)
        if len(prev) and len(pos):  # least total distance, as memscape matches events
            dist = np.linalg.norm(pos[:, None] - prev[None], axis=-1)
            for a, b in zip(*linear_sum_assignment(dist), strict=True):
                ids[int(a)] = prev_ids[int(b)]
        for a in range(len(ids)):
            if ids[a] < 0:
                ids[a], next_id = next_id, next_id + 1
        it = iter(ids)
        out.append([palette[next(it) % len(palette)] if m else "0.6" for m in is_min])
        prev, prev_ids = pos, ids
    return out


def plot_fraction(ax: Any, x: Any, fraction: Any, trials: Any, fmt: str = "o", **kw: Any) -> Any:
    """A binomial fraction against ``x`` with its Wilson 95 % interval as error bars.

    The interval is :func:`memscape.landscape.basins.wilson_interval` (Wilson 1927) of
    ``round(fraction · trials)`` successes in ``trials``; ``kw`` go to ``ax.errorbar``
    (``color``, ``label``, ``ms``, ...).

    Args:
        ax: Axes to draw on.
        x: ``(n,)`` positions.
        fraction: ``(n,)`` measured fractions in ``[0, 1]``.
        trials: ``(n,)`` (or one) number of trials behind each fraction (≥ 1).
        fmt: marker / line format of the points.
        **kw: passed to ``ax.errorbar`` (``color``, ``label``, ``ms``, ``capsize``, ...).

    Returns:
        The data line (a ``Line2D``: its colour is the series' colour).
    """
    p = np.asarray(fraction, dtype=float)
    n = np.broadcast_to(np.asarray(trials, dtype=float), p.shape)
    if np.any(n < 1) or np.any((p < 0) | (p > 1)):
        raise ValueError("plot_fraction needs fractions in [0, 1] and trials ≥ 1")
    counts = np.round(p * n)
    bounds = [wilson_interval(torch.tensor(c), int(m)) for c, m in zip(counts, n, strict=True)]
    low, high = (np.array([float(b[j]) for b in bounds]) for j in (0, 1))
    err = np.stack([np.clip(p - low, 0, None), np.clip(high - p, 0, None)])
    kw.setdefault("capsize", 2)
    return ax.errorbar(np.asarray(x, dtype=float), p, yerr=err, fmt=fmt, **kw).lines[0]


def plot_snapshots(panels: Any, axes: Any, **census_kw: Any) -> Any:
    """Census snapshots along a family (e.g. σ decreasing), one :func:`plot_census` per Axes.

    An attractor keeps its basin colour from panel to panel (:func:`attractor_colors`); one
    Morse-index legend (every index shown in any panel) goes on the top-right panel; each
    title gets the panel's K (its number of patterns) after the given title's first part.

    Args:
        panels: one dict per snapshot with ``model``, ``sigma``, ``census`` (a census table),
            ``edges`` (its Morse–Smale edge table), ``patterns`` (``(K, 2)``) and ``title``
            (``"<parameter>: <what>"``, e.g. ``"σ = 0.5: χ = 1, 4 edges"``).
        axes: as many Axes as panels.
        census_kw: passed to :func:`plot_census` (``resolution``, ``xlim``, ...).
    """
    if len(axes) != len(panels):
        raise ValueError(f"axes must hold one Axes per panel ({len(panels)}), got {len(axes)}")
    colors = attractor_colors([p["census"] for p in panels])
    handles: dict[str, Any] = {}
    for j, (ax, p) in enumerate(zip(axes, panels, strict=True)):
        plot_census(p["model"], p["sigma"], p["census"], patterns=p["patterns"], edges=p["edges"],
                    ax=ax, legend=False, basin_colors=colors[j], **census_kw)  # fmt: skip
        head, _, tail = str(p["title"]).partition(": ")
        k = f", K = {len(p['patterns'])}" if p["patterns"] is not None else ""
        ax.set_title(f"{head}{k}" + (f": {tail}" if tail else ""), fontsize=9)
        handles.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if handles and len(axes):
        names = [name for _, name in INDEX_STYLE.values()]
        order = sorted(handles, key=lambda n: names.index(n) if n in names else len(names))
        spec = [(a.get_subplotspec(), a) for a in axes if a.get_subplotspec() is not None]
        top_right = (
            min(spec, key=lambda sa: (sa[0].rowspan.start, -sa[0].colspan.start))[1]
            if spec
            else axes[-1]
        )
        top_right.legend([handles[n] for n in order], order, fontsize="small")
    return axes


def plot_morse_smale(
    points: Any, edges: Any, ax: Any = None, *, node_size: float = 90, fontsize: float = 8
) -> Axes:
    """The Morse–Smale graph with the energy on the vertical axis (a disconnectivity view).

    Each converged critical point is a node at (its ``x0`` coordinate, its energy), marked
    and coloured by Morse index as in :func:`plot_landscape` (legend), labelled with its
    census row number; each saddle → end edge of the gradient flow (Milnor 1963;
    Ambrogioni 2023) is an arrow, so a barrier ``E(saddle) − E(minimum)`` is the drop of
    its arrow. A census without energies (a score-only model) is drawn against ``x1``.

    Args:
        points: a census table (columns ``point``, ``x0``, ``x1``, ``converged``,
            ``morse_index``, and ``energy``); its converged rows are the nodes.
        edges: a Morse–Smale edge table (columns ``saddle``, ``end``); edges to
            unresolved end points are left out.
        ax: Axes to draw on (default a new Agg figure).
        node_size: marker area of a node (points²).
        fontsize: of the node labels (points, at least 8).
    """
    if fontsize < 8:
        raise ValueError(f"fontsize must be at least 8 points (readable), got {fontsize}")
    ax = _new_axes(ax, (5.0, 4.5))
    conv = points[points["converged"]]
    energy = conv["energy"].to_numpy(float) if "energy" in conv else np.full(len(conv), np.nan)
    ycol = "energy" if np.isfinite(energy).any() else "x1"
    pos = {str(r.point): (float(r.x0), float(getattr(r, ycol))) for r in conv.itertuples()}
    for r in edges.itertuples():
        if str(r.saddle) in pos and str(r.end) in pos:
            ax.annotate("", xy=pos[str(r.end)], xytext=pos[str(r.saddle)], zorder=2,
                        arrowprops={"arrowstyle": "-|>", "color": "0.35", "lw": 1.0,
                                    "shrinkA": 5, "shrinkB": 5})  # fmt: skip
    index = conv["morse_index"].to_numpy(int)
    for i in sorted(set(index.tolist())):
        marker, name, color = _index_style(i) if i >= 0 else ("x", "unresolved", "0.5")
        sel = conv[index == i]
        ax.scatter(sel["x0"], sel[ycol], marker=marker, s=node_size, c=color, edgecolors="k",
                   linewidths=0.8, zorder=3, label=name)  # fmt: skip
    for key, (x, y) in pos.items():
        ax.annotate(key, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=fontsize,
                    zorder=4)  # fmt: skip
    if len(pos):
        ax.margins(0.12)
        ax.legend(fontsize=fontsize)
    ax.set(xlabel="x0 (position of the critical point)",
           ylabel="energy E" if ycol == "energy" else "x1 (no energy: score-only model)")  # fmt: skip
    return ax
