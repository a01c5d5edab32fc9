"""Figures of memorization against training-set size (Pham et al. 2025; Kadkhodaie et al. 2024).

Every function draws on a given matplotlib ``Axes`` (or a new headless figure when
``ax`` is None) and returns it. ``summary`` tables have one row per (model, K, seed):
columns ``model``, ``K``, ``<class>_fraction`` for each of :data:`CLASSES`,
``ratio_memorized_fraction`` and optionally ``pair_cosine``, ``pair_l2``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from memscape.memorization.classes import CLASSES

__all__ = [
    "CLASS_COLORS",
    "plot_class_fractions",
    "plot_nearest",
    "plot_pair_similarity",
    "plot_samples",
]

#: colour of each class of :data:`CLASSES`
CLASS_COLORS = {"memorized": "tab:red", "spurious": "tab:orange", "generalized": "tab:green",
                "off-data": "tab:gray"}  # fmt: skip


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4), layout="constrained").add_subplot()


def plot_class_fractions(
    summary: Any, ax: Any = None, *, model: str = "trained", baseline: str | None = "exact"
) -> Any:
    """Fraction of samples per class against K (log axis), mean and seed range.

    Also the ratio criterion ``d₁/d₂ < 1/3`` (Yoon et al. 2023; Gu et al. 2023) of
    ``model`` and, dotted, of the ``baseline`` model (the exact empirical denoiser: the
    theory, memorizing at every K).

    Args:
        summary: the summary table (module docstring).
        ax: Axes to draw on.
        model: the ``model`` rows to show.
        baseline: rows drawn as the theory line (``None``: none).
    """
    ax = _axes(ax)
    rows = summary[summary["model"] == model]
    cols = [f"{c}_fraction" for c in CLASSES] + ["ratio_memorized_fraction"]
    stats = rows.groupby("K")[cols].agg(["mean", "min", "max"])
    ks = stats.index.to_numpy()
    for name in CLASSES:
        s, color = stats[f"{name}_fraction"], CLASS_COLORS[name]
        ax.plot(ks, s["mean"], "o-", color=color, label=name)
        ax.fill_between(ks, s["min"], s["max"], color=color, alpha=0.2)
    ax.plot(ks, stats["ratio_memorized_fraction"]["mean"], "s--", color="k", ms=4,
            label="d₁/d₂ < 1/3")  # fmt: skip
    base = summary[summary["model"] == baseline]
    if baseline is not None and baseline != model and len(base):
        e = base.groupby("K")["ratio_memorized_fraction"].mean()
        ax.plot(e.index, e.to_numpy(), ":", color="gray", lw=2, label=f"{baseline} model (theory)")
    ax.set(xscale="log", xlabel="training-set size K", ylabel="fraction of samples",
           ylim=(-0.03, 1.03), title="memorization → generalization")  # fmt: skip
    ax.legend(fontsize=8)
    return ax


def plot_pair_similarity(summary: Any, ax: Any = None, *, model: str = "trained") -> Any:
    """Kadkhodaie et al. 2024: paired samples of twin models trained on disjoint sets.

    Mean cosine (about the data mean, left axis) and L2 distance (right axis) of the
    samples the two models draw from the same noise, against K: they agree once both
    generalize.
    """
    ax = _axes(ax)
    rows = summary[summary["model"] == model]
    for col, color, label in (("pair_cosine", "tab:blue", "cosine (about the data mean)"),
                              ("pair_l2", "tab:purple", "L2 distance")):  # fmt: skip
        p = rows.groupby("K")[col].agg(["mean", "min", "max"]).dropna()
        axis = ax if col == "pair_cosine" else ax.twinx()
        axis.plot(p.index, p["mean"], "o-", color=color, label=label)
        axis.fill_between(p.index, p["min"], p["max"], color=color, alpha=0.2)
        axis.set_ylabel(label, color=color)
    ax.set(xscale="log", xlabel="training-set size K",
           title="paired samples of two models on disjoint sets\n(Kadkhodaie et al. 2024)")  # fmt: skip
    return ax


def plot_samples(
    generated: torch.Tensor, train: torch.Tensor, classes: Any, ax: Any = None, title: str = ""
) -> Any:
    """2-D generated samples coloured by class, with the training points as open circles.

    Args:
        generated: ``(M, 2)`` samples.
        train: ``(K, 2)`` training points.
        classes: ``(M,)`` class names (of :data:`CLASSES`).
        ax: Axes to draw on.
        title: of the Axes.
    """
    ax = _axes(ax)
    cls = np.asarray(classes)
    for name in CLASSES:
        pts = generated[torch.as_tensor(cls == name)].numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=6, color=CLASS_COLORS[name], label=name)
    t = train.numpy()
    ax.scatter(t[:, 0], t[:, 1], s=30, facecolors="none", edgecolors="k", lw=0.8, label="training")
    ax.set(aspect="equal", title=title)
    return ax


def plot_nearest(generated: torch.Tensor, train: torch.Tensor, axes: Any, title: str = "") -> Any:
    """Generated samples (left column) beside their nearest training points (right column).

    Square samples are shown as grey images in ``[−1, 1]``, others as line plots.

    Args:
        generated: ``(M, ...)`` samples; the first ``len(axes)`` are shown.
        train: ``(K, ...)`` training points of the same size.
        axes: ``(rows, 2)`` array of Axes.
        title: shown above the two columns.
    """
    flat_g, flat_t = generated.reshape(len(generated), -1), train.reshape(len(train), -1)
    nearest = torch.cdist(flat_g.double(), flat_t.double()).argmin(1)
    side = math.isqrt(flat_g.shape[1])
    for i, row in enumerate(axes):
        for ax, vec in zip(row, (flat_g[i], flat_t[nearest[i]]), strict=True):
            arr = vec.numpy()
            if side * side == arr.size:
                ax.imshow(arr.reshape(side, side), cmap="gray", vmin=-1, vmax=1)
            else:
                ax.plot(arr, lw=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title(f"{title}\nsample".strip(), fontsize=8)
    axes[0][1].set_title("nearest train", fontsize=8)
    return axes
