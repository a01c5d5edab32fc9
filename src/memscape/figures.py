"""One figure style: readable ticks on every axis, and the checks that keep it so.

Every figure a results folder saves goes through :func:`finish`
(:meth:`memscape.runs.results.ResultsFolder.save_figure`), so the rules live here once:

* a log axis labels its decades only, in scientific notation (``10⁻¹``, ``10¹``); minor
  ticks are marked but unlabelled unless the axis spans less than a decade, where
  labelled minor ticks are the only labels;
* on any axis, tick labels that would overlap are thinned — every other one is hidden
  until no two visible labels touch (the outermost labels are kept);
* a legend never covers data: one whose box overlaps a plotted line, marker, image,
  mesh, contour or filled area (:func:`legend_overlaps_data`) moves to the first empty
  corner of its axes, or, when every corner is taken, outside the axes on the right.

:func:`tick_label_overlaps`, :func:`unlabelled_axes`, :func:`legend_overlaps_data` and
:func:`maps_without_colorbar` measure a drawn figure with matplotlib's own bounding boxes
(in display pixels), which is what the figure tests assert on.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CLASS_COLORS",
    "NO_COLORBAR",
    "finish",
    "legend_overlaps_data",
    "maps_without_colorbar",
    "tick_label_overlaps",
    "unlabelled_axes",
]

#: Visible tick labels closer than this many display pixels count as overlapping.
TICK_GAP_PX = 1.0
#: Corners a legend that covers data is tried in, in this order (then: outside, right).
LEGEND_CORNERS = ("upper right", "upper left", "lower left", "lower right")
#: gid of a colour-mapped artist that needs no colorbar (categorical maps such as basins,
#: whose colours a legend names, and pictures such as image samples)
NO_COLORBAR = "memscape-no-colorbar"

#: one colour per class of samples, attractors and minima, in every figure (the memorization
#: classes of Pham et al. 2025; ``memory`` and ``mixture`` are census labels)
CLASS_COLORS = {
    "memorized": "tab:red",
    "memory": "tab:red",
    "spurious": "tab:orange",
    "generalized": "tab:green",
    "off-data": "tab:gray",
    "mixture": "tab:purple",
}


def _visible_labels(axis: Any, renderer: Any) -> list[tuple[Any, Any]]:
    """``(label, bbox)`` of the visible, non-empty tick labels of an axis, major and minor."""
    out = []
    ticks = list(axis.get_major_ticks()) + list(axis.get_minor_ticks())
    lo, hi = sorted(axis.get_view_interval())
    for tick in ticks:
        label = tick.label1
        if not (tick.get_visible() and label.get_visible() and label.get_text().strip()):
            continue
        if not lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
            continue
        out.append((label, label.get_window_extent(renderer)))
    return out


def _overlaps(labels: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    pairs = []
    for i, (a, ba) in enumerate(labels):
        for b, bb in labels[i + 1 :]:
            if ba.padded(TICK_GAP_PX / 2).overlaps(bb.padded(TICK_GAP_PX / 2)):
                pairs.append((a, b))
    return pairs


def _renderer(fig: Any) -> Any:
    """Draw ``fig`` (on an Agg canvas if it has none that renders) and return the renderer."""
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: no backend chosen
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()  # tick labels and their boxes exist only once drawn
    return fig.canvas.get_renderer()


def _axes(fig: Any) -> list[Any]:
    return [ax for ax in fig.get_axes() if ax.get_visible() and ax.axison]


def finish(fig: Any) -> Any:
    """Apply the tick and legend rules above to every visible axes of ``fig`` (in place);
    return it."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    for ax in _axes(fig):
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            lo, hi = sorted(axis.get_view_interval())
            if lo > 0 and hi / lo >= 10:  # at least one decade: label decades only
                axis.set_major_locator(LogLocator(base=10))
                axis.set_major_formatter(LogFormatterSciNotation(base=10))
                axis.set_minor_formatter(NullFormatter())
    renderer = _renderer(fig)
    for _ in range(2):  # again once the layout has made room for legends moved outside
        if not _place_legends(fig, renderer):
            break
        renderer = _renderer(fig)
    for ax in _axes(fig):
        for axis in (ax.xaxis, ax.yaxis):
            labels = _visible_labels(axis, renderer)
            while len(labels) > 2 and _overlaps(labels):
                order = sorted(labels, key=lambda lb: (lb[1].x0, lb[1].y0))
                for label, _ in order[1:-1:2]:  # hide every other inner label
                    label.set_visible(False)
                labels = _visible_labels(axis, renderer)
    return fig


def tick_label_overlaps(fig: Any) -> list[str]:
    """Descriptions of every pair of visible tick labels that overlap on one axis of ``fig``."""
    renderer = _renderer(fig)
    found = []
    for k, ax in enumerate(_axes(fig)):
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            for a, b in _overlaps(_visible_labels(axis, renderer)):
                found.append(
                    f"axes {k} ({ax.get_title()!r}) {name}: {a.get_text()!r} / {b.get_text()!r}"
                )
    return found


def unlabelled_axes(fig: Any) -> list[str]:
    """Visible axes of ``fig`` that show tick labels on an axis without an axis label.

    Image panels (no tick labels) and axes switched off need none; a shared axis is
    labelled once, on the outer panel (matplotlib hides the inner panels' tick labels).
    """
    renderer = _renderer(fig)
    found = []
    for k, ax in enumerate(_axes(fig)):
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            if _visible_labels(axis, renderer) and not axis.get_label_text().strip():
                found.append(f"axes {k} ({ax.get_title()!r}): no {name} label")
    return found


def _segments_hit(seg: Any, box: Any) -> Any:
    """Which display segments ``(m, 2, 2)`` meet the rectangle ``box`` (Liang–Barsky clipping)."""
    import numpy as np

    a, d = seg[:, 0], seg[:, 1] - seg[:, 0]
    p = np.stack([-d[:, 0], d[:, 0], -d[:, 1], d[:, 1]], axis=1)
    q = np.stack([a[:, 0] - box.x0, box.x1 - a[:, 0], a[:, 1] - box.y0, box.y1 - a[:, 1]], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = q / p
    t0 = np.max(np.where(p < 0, r, 0.0), axis=1, initial=0.0)
    t1 = np.min(np.where(p > 0, r, 1.0), axis=1, initial=1.0)
    parallel_out = ((p == 0) & (q < 0)).any(axis=1)
    return (t0 <= t1) & ~parallel_out


def _path_segments(path: Any, transform: Any) -> Any:
    """Display segments ``(m, 2, 2)`` of a path (curves flattened, NaN gaps dropped)."""
    import numpy as np

    out = []
    for poly in transform.transform_path(path).to_polygons(closed_only=False):
        if len(poly) >= 2:
            out.append(np.stack([poly[:-1], poly[1:]], axis=1))
    seg = np.concatenate(out) if out else np.zeros((0, 2, 2))
    return seg[np.isfinite(seg).all(axis=(1, 2))]


def _is_span(ax: Any, path: Any, transform: Any) -> bool:
    """Whether a filled region is a span (``axvspan`` / ``axhspan``: a rectangle reaching
    across the whole axes in x or in y) — background marking an interval: covering part of
    it hides no data point."""
    import numpy as np

    disp = transform.transform_path(path)
    if len(np.unique(np.round(disp.vertices, 3), axis=0)) > 4:
        return False
    ext, box = disp.get_extents(), ax.bbox
    across_x = ext.x0 <= box.x0 + 1 and ext.x1 >= box.x1 - 1
    across_y = ext.y0 <= box.y0 + 1 and ext.y1 >= box.y1 - 1
    return bool(across_x or across_y)


def _area_hit(paths: Any, transform: Any, box: Any) -> bool:
    """Whether filled display paths meet ``box``: a vertex inside it, or a sample of it inside."""
    import numpy as np

    xs, ys = np.meshgrid(np.linspace(box.x0, box.x1, 7), np.linspace(box.y0, box.y1, 7))
    probe = np.stack([xs.ravel(), ys.ravel()], axis=1)
    for path in paths:
        disp = transform.transform_path(path)
        v = disp.vertices[np.isfinite(disp.vertices).all(axis=1)]
        if _inside(v, box):
            return True
        if len(v) >= 3 and disp.contains_points(probe).any():
            return True
    return False


def _covers(ax: Any, box: Any, renderer: Any) -> bool:
    """Whether the display rectangle ``box`` meets any data drawn on ``ax`` (data are
    clipped to the axes, so only the part of ``box`` on the axes counts)."""
    box = _on_axes(ax, box)
    if box is None or box.width <= 0 or box.height <= 0:
        return False
    import numpy as np
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection, QuadMesh
    from matplotlib.contour import ContourSet
    from matplotlib.path import Path

    seen = lambda a: a.get_visible() and a is not ax.get_legend()  # noqa: E731
    for line in filter(seen, ax.lines):
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if line.get_linestyle() not in ("None", "", " ") and len(xy) >= 2:
            if _segments_hit(np.stack([xy[:-1], xy[1:]], axis=1), box).any():
                return True
        if line.get_marker() not in ("None", "", " ", None) and len(xy):
            r = line.get_markersize() * renderer.points_to_pixels(1.0) / 2
            if _inside(xy, box.padded(r)):
                return True
    for im in filter(seen, ax.images):
        if im.get_window_extent(renderer).overlaps(box):
            return True
    for coll in filter(seen, ax.collections):
        if isinstance(coll, PathCollection):  # scatter markers (networkx nodes too)
            xy = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float))
            sizes = coll.get_sizes()
            r = np.sqrt(sizes.max() if len(sizes) else 36.0) * renderer.points_to_pixels(1.0) / 2
            if _inside(xy[np.isfinite(xy).all(axis=1)], box.padded(r)):
                return True
        elif isinstance(coll, QuadMesh) or (isinstance(coll, ContourSet) and coll.filled):
            if coll.get_window_extent(renderer).overlaps(box):
                return True
        elif isinstance(coll, PolyCollection) and not isinstance(coll, LineCollection):
            areas = [p for p in coll.get_paths() if not _is_span(ax, p, coll.get_transform())]
            if _area_hit(areas, coll.get_transform(), box):
                return True
        else:  # line collections: stream lines, error bars, contour lines
            paths = coll.get_paths()
            tr = coll.get_transform()
            if any(_segments_hit(_path_segments(p, tr), box).any() for p in paths):
                return True
    for patch in filter(seen, ax.patches):
        path, tr = patch.get_path(), patch.get_transform()
        if patch.get_fill():
            if not _is_span(ax, path, tr) and _area_hit([path], tr, box):
                return True
        elif _segments_hit(_path_segments(Path(path.vertices, path.codes), tr), box).any():
            return True
    return False


def _inside(xy: Any, box: Any) -> bool:
    """Whether any display point ``(n, 2)`` lies in the rectangle ``box``."""
    x, y = xy[:, 0], xy[:, 1]
    return bool(((x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)).any())


def legend_overlaps_data(ax: Any) -> bool:
    """Whether the legend of ``ax`` covers any of its data, in display coordinates.

    Only the part of the legend on an axes counts (data are clipped to their axes). Data:
    line segments and markers, scatter markers (their radius included), images, meshes,
    filled contours and filled areas (a filled region spanning the whole axes in x
    or y — an ``axvspan`` band — is background and not counted), contour and stream lines,
    error bars and patch outlines — on ``ax`` and on any other axes of the figure the legend
    reaches into (a neighbouring panel, a colorbar). ``False`` for an axes without a
    visible legend.
    """
    legend = ax.get_legend()
    if legend is None or not legend.get_visible():
        return False
    renderer = _renderer(ax.figure)
    return _covers_figure(ax, legend.get_window_extent(renderer), renderer)


def _covers_figure(ax: Any, box: Any, renderer: Any) -> bool:
    """Whether ``box`` (the legend of ``ax``) meets data on ``ax`` or on any other axes of
    its figure (a neighbouring panel, a colorbar)."""
    return any(
        _covers(other, box, renderer)
        for other in ax.figure.get_axes()
        if other.get_visible() and (other is ax or other.bbox.overlaps(box))
    )


def _on_axes(ax: Any, box: Any) -> Any:
    """The part of a display rectangle inside ``ax`` (where clipped data can be), or None."""
    from matplotlib.transforms import Bbox

    return Bbox.intersection(box, ax.bbox)


def _place_legends(fig: Any, renderer: Any) -> bool:
    """Move every legend that covers data (see module docstring); whether any moved."""
    moved = False
    for ax in _axes(fig):
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        if not _covers_figure(ax, legend.get_window_extent(renderer), renderer):
            continue
        moved = True
        legend.set_bbox_to_anchor(None)
        for loc in LEGEND_CORNERS:
            legend.set_loc(loc)
            if not _covers_figure(ax, legend.get_window_extent(renderer), renderer):
                break
        else:  # every corner covers data: outside the axes, on the right
            legend.set_loc("upper left")
            legend.set_bbox_to_anchor((1.02, 1.0), transform=ax.transAxes)
    return moved


def maps_without_colorbar(fig: Any) -> list[str]:
    """Colour-mapped images, meshes, contour sets and colour-mapped scatters of ``fig`` that
    no colorbar explains (one whose gid is :data:`NO_COLORBAR` is exempt: a categorical
    map whose colours a legend names, or a picture)."""
    from matplotlib.collections import PathCollection, QuadMesh
    from matplotlib.contour import ContourSet
    from matplotlib.image import AxesImage

    found = []
    for k, ax in enumerate(_axes(fig)):
        if hasattr(ax, "_colorbar"):  # the colorbar's own axes
            continue
        for art in [*ax.images, *ax.collections]:
            if not isinstance(art, (AxesImage, QuadMesh, ContourSet, PathCollection)):
                continue
            if isinstance(art, PathCollection) and art.get_array() is None:
                continue  # a scatter in fixed colours
            if art.get_gid() == NO_COLORBAR or getattr(art, "colorbar", None) is not None:
                continue
            found.append(f"axes {k} ({ax.get_title()!r}): {type(art).__name__} without colorbar")
    return found
