"""The one figure style (memscape.figures): no overlapping tick labels, labelled axes,
legends off the data, a colorbar on every colour-mapped map.

Measured with matplotlib's own text bounding boxes in display pixels. The slow test runs
every experiment's quick configuration and checks each figure it saves.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from memscape import figures
from memscape.figures import (
    NO_COLORBAR,
    finish,
    legend_overlaps_data,
    maps_without_colorbar,
    tick_label_overlaps,
    unlabelled_axes,
)


def crowded_log_figure() -> Figure:
    fig = Figure(figsize=(3.0, 2.2))
    ax = fig.add_subplot()
    x = np.geomspace(30, 60, 20)  # less than a decade: matplotlib labels minor ticks
    ax.loglog(x, x**2)
    ax.set_xticks(np.linspace(30, 60, 31), minor=True)
    ax.set_xticks(np.linspace(30, 60, 31))
    ax.set_xticklabels([f"{v:.1f}" for v in np.linspace(30, 60, 31)])
    ax.set(xlabel="K", ylabel="steps")
    return fig


def test_finish_removes_every_overlap_and_the_check_can_fail():
    fig = crowded_log_figure()
    assert tick_label_overlaps(fig), "the crowded figure must overlap before finish"
    finish(fig)
    assert tick_label_overlaps(fig) == []
    shown = [t for t in fig.axes[0].get_xticklabels() if t.get_visible() and t.get_text()]
    assert len(shown) >= 2  # thinned, not emptied


def test_decades_are_labelled_in_scientific_notation_and_minor_ticks_are_not():
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.loglog([1e-3, 1e2], [1, 1e4])
    ax.set(xlabel="σ", ylabel="E")
    finish(fig)
    minor = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_visible()]
    assert all(not m for m in minor)
    assert tick_label_overlaps(fig) == [] and unlabelled_axes(fig) == []


def test_unlabelled_axes_are_found_but_image_panels_are_not():
    fig = Figure()
    ax, img = fig.subplots(1, 2)
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("t")
    img.imshow(np.zeros((4, 4)))
    img.set_axis_off()
    assert unlabelled_axes(fig) == ["axes 0 (''): no y label"]


def drawn(fig: Figure) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def legend_box(ax):
    return ax.get_legend().get_window_extent(ax.figure.canvas.get_renderer())


def test_legend_overlap_is_measured_in_display_pixels():
    """A marker put (by the inverse transform) at the legend's centre is covered; one in the
    opposite corner is not; a line drawn through the legend box is, one beside it is not."""
    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 0.05], label="low line")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper right")
    drawn(fig)
    assert not legend_overlaps_data(ax)
    box = legend_box(ax)
    centre = ax.transData.inverted().transform([[box.x0 + box.width / 2, box.y0 + box.height / 2]])
    pt = ax.scatter(*centre.T, s=4)
    assert legend_overlaps_data(ax)
    pt.remove()
    across = ax.transData.inverted().transform(
        [[box.x0 - 20, box.y0 + 3], [box.x1 + 20, box.y0 + 3]]
    )
    ax.plot(*across.T)  # both ends outside the box, the segment through it
    assert legend_overlaps_data(ax)
    ax.lines[-1].remove()
    beside = ax.transData.inverted().transform(
        [[box.x0 - 20, box.y0 - 5], [box.x1 + 20, box.y0 - 5]]
    )
    ax.plot(*beside.T)
    assert not legend_overlaps_data(ax)
    ax.get_legend().set_loc("upper left")  # outside the axes, over clipped data
    ax.get_legend().set_bbox_to_anchor((1.02, 1.0), transform=ax.transAxes)
    drawn(fig)
    box = legend_box(ax)
    hidden = ax.transData.inverted().transform([[box.x0 + 5, box.y1 - 5]])
    ax.scatter(*hidden.T)  # beyond xlim: clipped, not drawn under the legend
    assert hidden[0, 0] > 1 and not legend_overlaps_data(ax)


def test_finish_moves_a_legend_that_covers_a_line_to_an_empty_corner():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.add_subplot()
    x = np.linspace(0, 1, 50)
    ax.plot(x, 0.93 + 0.02 * x, label="high line")  # through both upper corners
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="x", ylabel="y")
    ax.legend(loc="upper right")
    drawn(fig)
    assert legend_overlaps_data(ax), "the legend must start on the line"
    finish(fig)
    assert not legend_overlaps_data(ax)
    box, frame = legend_box(ax), ax.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    assert box.y1 < frame.y0 + frame.height / 2  # a lower corner: the line is high everywhere
    assert box.x0 < frame.x0 + 0.1 * frame.width  # the first free one of LEGEND_CORNERS


def test_finish_puts_the_legend_outside_when_data_fills_every_corner():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.add_subplot()
    g = np.linspace(0, 1, 12)
    gx, gy = np.meshgrid(g, g)
    ax.scatter(gx.ravel(), gy.ravel(), s=10, label="grid of points")
    ax.set(xlabel="x", ylabel="y")
    ax.legend(loc="upper right")
    finish(fig)
    assert not legend_overlaps_data(ax)
    box, frame = legend_box(ax), ax.bbox
    assert box.x0 >= frame.x1  # right of the axes
    assert box.x1 <= fig.bbox.x1 + 0.5  # and the layout kept it on the figure


def test_a_legend_reaching_into_the_next_panel_covers_its_data_and_is_moved_back():
    fig = Figure(figsize=(6, 3))  # no layout engine: nothing keeps the legend off the panel
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 0.05], label="low line")
    left.set(xlim=(0, 1), ylim=(0, 1), xlabel="x", ylabel="y")
    g = np.linspace(0, 1, 15)
    right.scatter(*np.meshgrid(g, g), s=10)
    right.set(xlabel="x", ylabel="y")
    left.legend(loc="upper left", bbox_to_anchor=(0.9, 1.0))  # spills into the right panel
    drawn(fig)
    assert legend_box(left).overlaps(right.bbox) and legend_overlaps_data(left)
    finish(fig)
    assert not legend_overlaps_data(left)
    assert not legend_box(left).overlaps(right.bbox)


def test_maps_without_colorbar_are_found():
    fig = Figure()
    a, b, c = fig.subplots(1, 3)
    a.imshow(np.eye(3))
    im = b.imshow(np.eye(3))
    fig.colorbar(im, ax=b)
    c.pcolormesh(np.eye(3), gid=NO_COLORBAR)
    assert [p.split(":")[0] for p in maps_without_colorbar(fig)] == ["axes 0 ('')"]


@pytest.mark.slow
def test_every_quick_experiment_figure_has_readable_ticks_and_labels(tmp_path, monkeypatch):
    """Every figure every experiment saves in quick mode (issue 14's figure test): no
    overlapping tick labels, every axis labelled, no legend over data, every colour map
    with its colorbar."""
    from memscape.experiments import EXPERIMENTS, run_experiment

    problems: list[str] = []
    original = figures.finish

    def checked(fig):
        out = original(fig)
        title = fig._suptitle.get_text() if fig._suptitle else ""
        found = tick_label_overlaps(fig) + unlabelled_axes(fig) + maps_without_colorbar(fig)
        found += [f"legend covers data: axes {ax.get_title()!r}" for ax in fig.axes
                  if legend_overlaps_data(ax)]  # fmt: skip
        problems.extend(f"{title}: {p}" for p in found)
        return out

    monkeypatch.setattr(figures, "finish", checked)
    for name in EXPERIMENTS:
        before = len(problems)
        run_experiment(name, tmp_path / name, quick=True, progress=False)
        problems[before:] = [f"{name}: {p}" for p in problems[before:]]
    assert not problems, "\n".join(problems)
