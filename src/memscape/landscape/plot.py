"""Figures of landscapes and bifurcation diagrams (matplotlib, headless).

Without ``ax=`` a new :class:`matplotlib.figure.Figure` is made on the Agg canvas
(no screen, no pyplot global state); every function returns the Axes it drew on
(``ax.figure`` is the Figure, e.g. ``ax.figure.savefig("f.png")``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from memscape._validation import check_choice, check_int
from memscape.figures import NO_COLORBAR
from memscape.landscape._fields import (
    check_model,
    check_sigma,
    event_shape,
    flat_score,
    has_energy,
)
from memscape.landscape.basins import basin_map
from memscape.landscape.critical import CriticalPoints, default_patterns
from memscape.protocol import ScoreOrDenoiser

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from memscape.landscape.continuation import BifurcationDiagram

__all__ = [
    "landscape_title",
    "plot_bifurcation",
    "plot_census",
    "plot_landscape",
]

#: marker and name of critical points by Morse index (index ≥ 3 share the last style)
INDEX_STYLE = {0: ("o", "minimum"), 1: ("X", "saddle (index 1)"), 2: ("^", "maximum (index 2)")}
INDEX_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:brown")
KIND_MARKERS = {"fold": "s", "pitchfork": "D", "saddle_connection": "*"}
#: axis labels of the usual family parameters (others are shown by their own name)
PARAMETER_NAMES = {"sigma": "noise level σ", "beta": "inverse temperature β", "t": "time t"}
#: colour map of energy contour lines (dark = low), readable over pale basin colours
ENERGY_CMAP = "viridis"


def _new_axes(ax: Any, figsize: tuple[float, float] = (5.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _index_style(index: int) -> tuple[str, str, str]:
    marker, name = INDEX_STYLE.get(index, ("P", f"index {index}"))
    return marker, name, INDEX_COLORS[min(index, len(INDEX_COLORS) - 1)]


def _limits(model: object, cps: CriticalPoints | None, sigma: Any, xlim: Any, ylim: Any):
    if xlim is not None and ylim is not None:
        return xlim, ylim
    pts = default_patterns(model)
    if cps is not None and len(cps):
        pts = cps.points.reshape(len(cps), -1) if pts is None else torch.cat(
            [pts.to(cps.points), cps.points.reshape(len(cps), -1)]
        )  # fmt: skip
    if pts is None:
        lims = [(-3.0, 3.0), (-3.0, 3.0)]
    else:
        lo, hi = pts.min(0).values.double(), pts.max(0).values.double()
        pad = torch.maximum(0.25 * (hi - lo), torch.full_like(lo, 0.5))
        if isinstance(sigma, (int, float)):
            pad = torch.maximum(pad, torch.full_like(lo, 2 * float(sigma)))
        lims = [(float(lo[j] - pad[j]), float(hi[j] + pad[j])) for j in range(2)]
    return xlim or lims[0], ylim or lims[1]


def plot_landscape(
    model: ScoreOrDenoiser,
    sigma: Any = None,
    *,
    cps: CriticalPoints | None = None,
    ax: Any = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    resolution: int = 120,
    levels: int = 20,
    streamlines: bool = True,
    basins: bool | None = None,
    basin_resolution: int = 60,
    legend: bool = True,
    plane: Any = None,
    colorbar: bool = True,
    basin_colors: Any = None,
) -> Axes:
    """Energy landscape of a 2-D model: contours, score stream lines, basins, critical points.

    Energy contours are drawn at quantiles of the energy on the grid (so that both
    wells and walls show), coloured by the energy with a colorbar; for score-only models
    the score magnitude ``log(1 + ‖s(x, σ)‖)`` is shaded instead (with its colorbar).
    Basins are coloured by the census minimum that gradient descent from each grid node
    reaches (:func:`memscape.landscape.basins.basin_map`), and critical points are marked
    by Morse index (minimum ``o``, saddle ``X``, maximum ``^``) with a legend. The title
    names the model, σ (or β for a Hopfield network) and the number K of patterns.

    Args:
        model: a model following the protocol with ``d = 2`` coordinates.
        sigma: noise level (required for noise-conditioned models).
        cps: a :class:`CriticalPoints` census of the same landscape: its converged
            points are marked and its minima colour the basins.
        ax: Axes to draw on (default a new Agg figure).
        xlim: plot ranges (default: the patterns and critical points, padded).
        ylim: plot ranges (default: the patterns and critical points, padded).
        resolution: grid nodes per axis for contours and stream lines (≥ 4).
        levels: number of contour levels (≥ 2).
        streamlines: draw the score field ``s = −∇E`` as stream lines.
        basins: colour the basins (default: when ``cps`` has a minimum).
        basin_resolution: grid nodes per axis of the basin map (each is descended).
        legend: add a legend of the Morse indices.
        plane: for a model with ``d > 2`` coordinates, the plane drawn
            (:func:`landscape_plane`): ``"pca"`` (through the mean of the model's patterns
            along their two principal axes) or a ``(3, d)`` tensor of three points (the
            plane through them; the first at the origin, the second on the first axis).
            The energy is drawn on the plane, the stream lines follow the in-plane part of
            the score, and the model's patterns and the critical points are shown by their
            projections (faded with their distance from the plane). Basins need ``d = 2``.
        colorbar: add the energy (or score-magnitude) colorbar beside the Axes.
        basin_colors: one colour per census row (``len(cps)``, e.g. from
            :func:`~memscape.landscape.attractor_colors`, so that an attractor keeps its colour across
            panels); a basin takes its minimum's colour. Default ``C0, C1, …`` in the
            order of the minima.

    Returns:
        The Axes (``ax.figure`` is the Figure).
    """
    check_model(model)
    check_sigma(model, sigma)
    check_int(resolution, "resolution", minimum=4)
    check_int(levels, "levels", minimum=2)
    check_int(basin_resolution, "basin_resolution", minimum=2)
    shape = event_shape(model)
    if plane is None and int(np.prod(shape)) != 2:
        raise ValueError(
            f"plot_landscape needs a model with 2 coordinates (or a plane=), got event_shape "
            f"{shape}"
        )
    if plane is not None:
        if basins:
            raise ValueError("basins=True needs a model with 2 coordinates, not a plane")
        basins = False
        origin, basis = landscape_plane(model, plane)
    if cps is not None and not isinstance(cps, CriticalPoints):
        raise TypeError(
            f"cps must be a CriticalPoints (from critical_points), got {type(cps).__name__}"
        )
    if basin_colors is not None and (cps is None or len(basin_colors) != len(cps)):
        raise ValueError(
            f"basin_colors must give one colour per census row "
            f"({None if cps is None else len(cps)}), got {len(basin_colors)}"
        )
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if lim is not None and not (len(lim) == 2 and lim[1] > lim[0]):
            raise ValueError(f"{name} must be (low, high) with high > low, got {lim!r}")
    if plane is None:
        xlim, ylim = _limits(model, cps, sigma, xlim, ylim)
    else:
        xlim, ylim = _plane_limits(model, cps, sigma, origin, basis, xlim, ylim)
    ax = _new_axes(ax)

    xs = torch.linspace(float(xlim[0]), float(xlim[1]), resolution, dtype=torch.float64)
    ys = torch.linspace(float(ylim[0]), float(ylim[1]), resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    if plane is not None:  # the plane's points in the model's space; the in-plane score
        grid = origin + grid @ basis
        field = flat_score(model, grid, sigma, shape) @ basis.T
    else:
        field = flat_score(model, grid, sigma, shape)
    score = field.reshape(resolution, resolution, 2).numpy()
    if basins is None:
        basins = cps is not None and bool((cps.converged & (cps.morse_index == 0)).any())
    if basins:
        if cps is None:
            raise ValueError("basins=True needs cps (the minima whose basins are coloured)")
        bm = basin_map(model, cps, sigma, xlim=xlim, ylim=ylim, resolution=basin_resolution)
        labels = bm.labels.numpy()
        ids = np.unique(labels[labels >= 0])
        coded = np.searchsorted(ids, labels).astype(float)
        coded[labels < 0] = np.nan
        colors = [basin_colors[int(i)] if basin_colors is not None else f"C{j % 10}"
                  for j, i in enumerate(ids)]  # fmt: skip
        cmap = ListedColormap(colors or ["C0"])
        # categorical (each basin its minimum's colour): no colorbar
        ax.pcolormesh(bm.xs.numpy(), bm.ys.numpy(), coded, cmap=cmap, alpha=0.25,
                      shading="nearest", vmin=-0.5, vmax=max(len(ids), 1) - 0.5,
                      gid=NO_COLORBAR)  # fmt: skip
    gxn, gyn = gx.numpy(), gy.numpy()
    if has_energy(model):
        energy = model.energy(grid.reshape(-1, *shape), sigma).detach().double().numpy()
        energy = energy.reshape(resolution, resolution)
        lv = np.unique(np.quantile(energy, np.linspace(0, 1, levels + 2)[1:-1]))
        cs = ax.contour(gxn, gyn, energy, levels=lv, cmap=ENERGY_CMAP, linewidths=0.9,
                        negative_linestyles="solid")  # fmt: skip
        what = "energy E(x)" if sigma is None else "energy E(x, σ)"
    else:
        norm = np.linalg.norm(score, axis=-1)
        cs = ax.contourf(gxn, gyn, np.log1p(norm), levels=levels, cmap="Greys", alpha=0.5)
        what = "log(1 + ‖s(x, σ)‖)"
    if colorbar:
        # below the Axes: the right side is where a legend goes when the map is full
        bar = ax.figure.colorbar(cs, ax=ax, label=what, location="bottom", shrink=0.85,
                                 aspect=30, pad=0.02)  # fmt: skip
        bar.ax.xaxis.set_major_locator(MaxNLocator(5))
    else:
        cs.set_gid(NO_COLORBAR)  # the caller draws one colorbar for several panels
    if streamlines:
        ax.streamplot(xs.numpy(), ys.numpy(), score[..., 0], score[..., 1], color="0.45",
                      density=0.9, linewidth=0.6, arrowsize=0.7)  # fmt: skip
    if plane is not None and (pats := default_patterns(model)) is not None:
        uv, alpha = _on_plane(pats, origin, basis)
        ax.scatter(uv[:, 0], uv[:, 1], marker="*", s=50, c="k", alpha=alpha, zorder=4,
                   label="patterns (faded: off the plane)")  # fmt: skip
    if cps is not None:
        flat = cps.points.reshape(len(cps), -1).detach().cpu().double()
        pts, alpha = flat.numpy(), np.ones(len(cps))
        if plane is not None:
            pts, alpha = _on_plane(flat, origin, basis)
        index = cps.morse_index.numpy()
        for i in sorted(set(index[index >= 0].tolist())):
            marker, name, color = _index_style(i)
            sel = index == i
            ax.scatter(pts[sel, 0], pts[sel, 1], marker=marker, s=60, c=color, alpha=alpha[sel],
                       edgecolors="k", linewidths=0.8, zorder=5, label=name)  # fmt: skip
        if legend and (index >= 0).any():
            ax.legend(loc="best", fontsize="small")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("x0" if plane is None else "u (first in-plane axis)")
    ax.set_ylabel("x1" if plane is None else "v (second in-plane axis)")
    title = landscape_title(model, sigma)
    if plane is not None:
        title += ", PCA plane" if isinstance(plane, str) else ", plane of 3 points"
    ax.set_title(title)
    return ax


def landscape_title(model: Any, sigma: Any = None) -> str:
    """``"<Model>, σ = …, K = …"``: the model, its noise level σ (or its inverse temperature
    β when it has one and no σ is given) and its number K of patterns (when it has them)."""
    parts = [type(model).__name__]
    if sigma is not None:
        parts.append(f"σ = {float(sigma):.3g}")
    elif isinstance(getattr(model, "beta", None), (int, float)):
        parts.append(f"β = {float(model.beta):.3g}")
    pats = default_patterns(model)
    if pats is not None:
        parts.append(f"K = {len(pats)}")
    return ", ".join(parts)


def landscape_plane(model: Any, plane: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(origin (d,), basis (2, d))`` of a plane through the model's space, orthonormal rows.

    ``"pca"``: the mean of the model's patterns and their two principal axes (the top
    right singular vectors of the centred patterns); a ``(3, d)`` tensor ``(a, b, c)``:
    origin ``a``, first axis along ``b − a``, second along the part of ``c − a``
    orthogonal to it (Gram–Schmidt).
    """
    d = int(np.prod(event_shape(model)))
    if isinstance(plane, str):
        if plane != "pca":
            raise ValueError(f"plane must be 'pca' or a (3, d) tensor of points, got {plane!r}")
        pats = default_patterns(model)
        if pats is None or len(pats) < 3:
            raise ValueError("plane='pca' needs a model with at least 3 patterns (data, memories)")
        pats = pats.reshape(len(pats), -1).double().cpu()
        origin = pats.mean(0)
        basis = torch.linalg.svd(pats - origin, full_matrices=False).Vh[:2]
        return origin, basis
    pts = torch.as_tensor(plane, dtype=torch.float64).reshape(len(plane), -1).cpu()
    if pts.shape != (3, d) or not torch.isfinite(pts).all():
        raise ValueError(
            f"plane must be 3 finite points of {d} coordinates, got {tuple(pts.shape)}"
        )
    e1 = pts[1] - pts[0]
    e2 = pts[2] - pts[0]
    if float(e1.norm()) == 0:
        raise ValueError("plane: the first two points coincide")
    e1 = e1 / e1.norm()
    e2 = e2 - (e2 @ e1) * e1
    if float(e2.norm()) <= 1e-12 * float((pts[2] - pts[0]).norm().clamp_min(1e-300)):
        raise ValueError("plane: the three points are collinear")
    return pts[0], torch.stack([e1, e2 / e2.norm()])


def _on_plane(points: torch.Tensor, origin: torch.Tensor, basis: torch.Tensor):
    """Plane coordinates ``(n, 2)`` of points and an opacity that fades with their distance."""
    rel = points.reshape(len(points), -1).double().cpu() - origin
    uv = rel @ basis.T
    off = (rel - uv @ basis).norm(dim=1)
    scale = float(uv.norm(dim=1).max().clamp_min(1e-12))
    return uv.numpy(), np.clip(1.0 - off.numpy() / scale, 0.15, 1.0)


def _plane_limits(model, cps, sigma, origin, basis, xlim, ylim):
    """Ranges of the plane coordinates: the projected patterns and critical points, padded."""
    shown = [
        p for p in (default_patterns(model), None if cps is None else cps.points) if p is not None
    ]
    if not shown or (xlim is not None and ylim is not None):
        return xlim or (-3.0, 3.0), ylim or (-3.0, 3.0)
    uv = np.concatenate([_on_plane(p, origin, basis)[0] for p in shown])
    lo, hi = uv.min(0), uv.max(0)
    pad = np.maximum(0.25 * (hi - lo), 0.5)
    if isinstance(sigma, (int, float)):
        pad = np.maximum(pad, 2 * float(sigma))
    lims = [(float(lo[j] - pad[j]), float(hi[j] + pad[j])) for j in range(2)]
    return xlim or lims[0], ylim or lims[1]


def plot_bifurcation(
    diagram: BifurcationDiagram,
    ax: Any = None,
    *,
    y: Any = None,
    legend: bool = True,
    ylabel: str | None = None,
) -> Axes:
    """Bifurcation diagram: a coordinate (or the energy) of every branch against the parameter.

    Branch pieces are coloured by Morse index (solid when stable, dashed otherwise);
    bifurcations are marked by kind (fold ``s``, pitchfork ``D``, saddle connection
    ``*``).  The parameter axis is logarithmic when the continuation ran in ``log p``.

    Args:
        diagram: a :class:`~memscape.landscape.continuation.BifurcationDiagram`.
        ax: Axes to draw on (default a new Agg figure).
        y: ``"energy"``, a coordinate column (``"x0"``, ...), a coordinate number, or a
            direction ``(d,)`` to project the states on (a symmetry-adapted coordinate,
            e.g. a principal axis, where critical points that share a coordinate part).
            Default: the coordinate with the largest range over the branches.
        legend: add a legend of Morse indices and bifurcation kinds.
        ylabel: the y-axis label (default: the column, or "projection on the direction").

    Returns:
        The Axes (``ax.figure`` is the Figure).
    """
    br, bif = diagram.branches, diagram.bifurcations
    coords = diagram.coordinates
    if y is not None and not isinstance(y, (str, int)):
        u = np.asarray(y, dtype=float).ravel()
        if len(u) != len(coords) or not np.isfinite(u).all() or not u.any():
            raise ValueError(f"y as a direction must be {len(coords)} finite numbers, not all 0")
        u = u / np.linalg.norm(u)
        br = br.assign(projection=br[coords].to_numpy(float) @ u)
        bif = bif.assign(projection=bif[coords].to_numpy(float).reshape(len(bif), -1) @ u)
        y, coords, ylabel = "projection", ["projection"], ylabel or "projection on the direction"
    if isinstance(y, int) and not isinstance(y, bool):
        y = f"x{y}"
    if y is None:  # the most varying coordinate; the energy when d > 32 (one "x" column)
        y = max(coords, key=lambda c: float(br[c].max() - br[c].min())) if coords else "energy"
    check_choice(y, [*coords, "energy"], "y")
    ax = _new_axes(ax)
    seen: set[int] = set()
    for _, b in br.groupby("branch", sort=True):
        p, v, idx = b["parameter"].to_numpy(), b[y].to_numpy(), b["morse_index"].to_numpy()
        cuts = np.flatnonzero(np.diff(idx)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(idx)], strict=True):
            i = int(idx[lo])
            _, _, color = _index_style(i)
            stop = min(hi + 1, len(idx))  # join to the next piece
            ax.plot(p[lo:stop], v[lo:stop], color=color, lw=1.6, ls="-" if i == 0 else "--")
            seen.add(i)
    for kind, rows in bif.groupby("kind"):
        ax.scatter(rows["parameter"], rows[y], marker=KIND_MARKERS.get(str(kind), "o"), s=50,
                   c="k", zorder=5, label=str(kind))  # fmt: skip
    if diagram.log:
        ax.set_xscale("log")
    ax.set_xlabel(PARAMETER_NAMES.get(diagram.parameter, diagram.parameter))
    ax.set_ylabel(ylabel or y)
    if legend and (seen or len(bif)):
        styles = [_index_style(i) for i in sorted(seen)]
        handles = [
            Line2D([], [], color=color, ls="--" if i else "-", label=name)
            for i, (_, name, color) in zip(sorted(seen), styles, strict=True)
        ]
        handles += [
            Line2D([], [], marker=KIND_MARKERS.get(str(k), "o"), color="k", ls="", label=str(k))
            for k in sorted(set(bif["kind"]))
        ]
        ax.legend(handles=handles, loc="best", fontsize="small")
    return ax


def plot_census(
    model: ScoreOrDenoiser,
    sigma: Any,
    points: Any,
    *,
    patterns: torch.Tensor | None = None,
    edges: Any = None,
    ax: Any = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    resolution: int = 120,
    basin_resolution: int = 60,
    legend: bool = True,
    colorbar: bool = True,
    basin_colors: Any = None,
) -> Axes:
    """:func:`plot_landscape` of a stored census table, with the patterns and graph edges.

    The converged rows of ``points`` are re-analysed in place
    (:meth:`CriticalPoints.from_points`, no new search), so a census saved as a table
    draws the same as the census itself.

    Args:
        model: the 2-D model of the census.
        sigma: its noise level (``None`` when not noise-conditioned).
        points: a census table (:func:`memscape.landscape.snapshots.census_table`:
            columns ``point``, ``x0``, ``x1``, ``converged``).
        patterns: ``(K, 2)`` stored / training points, drawn as black stars.
        edges: a Morse–Smale edge table (:func:`memscape.landscape.snapshots.edge_table`):
            each saddle → census-point edge is drawn as a black segment.
        ax: Axes to draw on (default a new Agg figure).
        xlim: plot ranges (default as :func:`plot_landscape`).
        ylim: plot ranges (default as :func:`plot_landscape`).
        resolution: as :func:`plot_landscape`.
        basin_resolution: as :func:`plot_landscape`.
        legend: as :func:`plot_landscape`.
        colorbar: as :func:`plot_landscape`.
        basin_colors: one colour per *converged* row of ``points`` (as
            :func:`plot_landscape`'s, e.g. :func:`~memscape.landscape.attractor_colors`).
    """
    conv = points[points["converged"]]
    xy = torch.tensor(conv[["x0", "x1"]].to_numpy(), dtype=torch.float64)
    ok = torch.ones(xy.shape[0], dtype=torch.bool)  # converged in the census that found them
    cps = CriticalPoints.from_points(model, xy, sigma, converged=ok, patterns=patterns)
    ax = plot_landscape(model, sigma, cps=cps, ax=ax, xlim=xlim, ylim=ylim, resolution=resolution,
                        basin_resolution=basin_resolution, legend=legend, colorbar=colorbar,
                        basin_colors=basin_colors)  # fmt: skip
    if patterns is not None:
        pats = patterns.reshape(len(patterns), -1).double().numpy()
        ax.plot(pats[:, 0], pats[:, 1], "k*", ms=5, zorder=6)
    if edges is not None and len(edges):
        pos = conv.set_index("point")
        for e in edges[edges["end"].astype(str).str.isdigit()].itertuples():
            if int(e.saddle) in pos.index and int(e.end) in pos.index:
                a, b = pos.loc[int(e.saddle)], pos.loc[int(e.end)]
                ax.plot([a.x0, b.x0], [a.x1, b.x1], c="k", lw=1.0, alpha=0.7, zorder=4)
    return ax
