"""The one figure style (memscape.figures): no overlapping tick labels, labelled axes.

Measured with matplotlib's own text bounding boxes in display pixels. The slow test runs
every experiment's quick configuration and checks each figure it saves.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from memscape import figures
from memscape.figures import finish, tick_label_overlaps, unlabelled_axes


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


@pytest.mark.slow
def test_every_quick_experiment_figure_has_readable_ticks_and_labels(tmp_path, monkeypatch):
    """Every figure every experiment saves in quick mode (issue 14's figure test)."""
    from memscape.experiments import EXPERIMENTS, run_experiment

    problems: list[str] = []
    original = figures.finish

    def checked(fig):
        out = original(fig)
        title = fig._suptitle.get_text() if fig._suptitle else ""
        problems.extend(f"{title}: {p}" for p in tick_label_overlaps(fig) + unlabelled_axes(fig))
        return out

    monkeypatch.setattr(figures, "finish", checked)
    for name in EXPERIMENTS:
        before = len(problems)
        run_experiment(name, tmp_path / name, quick=True, progress=False)
        problems[before:] = [f"{name}: {p}" for p in problems[before:]]
    assert not problems, "\n".join(problems)
