"""One figure style: readable ticks on every axis, and the checks that keep it so.

Every figure a results folder saves goes through :func:`finish`
(:meth:`memscape.runs.results.ResultsFolder.save_figure`), so the rules live here once:

* a log axis labels its decades only, in scientific notation (``10⁻¹``, ``10¹``); minor
  ticks are marked but unlabelled unless the axis spans less than a decade, where
  labelled minor ticks are the only labels;
* on any axis, tick labels that would overlap are thinned — every other one is hidden
  until no two visible labels touch (the outermost labels are kept).

:func:`tick_label_overlaps` and :func:`unlabelled_axes` measure a drawn figure with
matplotlib's text bounding boxes (in display pixels), which is what the figure tests
assert on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["finish", "tick_label_overlaps", "unlabelled_axes"]

#: Visible tick labels closer than this many display pixels count as overlapping.
TICK_GAP_PX = 1.0


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
    """Apply the tick rules above to every visible axes of ``fig`` (in place); return it."""
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
