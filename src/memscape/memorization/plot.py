"""Figures of memorization against training-set size (Pham et al. 2025; Kadkhodaie et al. 2024).

Every function draws on a given matplotlib ``Axes`` (or a new headless figure when
``ax`` is None) and returns it; the tables are those of
:mod:`memscape.memorization.transitions` (one row per K: medians over seeds, ranges,
Wilson intervals).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from memscape.figures import CLASS_COLORS, NO_COLORBAR
from memscape.memorization.classes import CLASSES, fraction_column

__all__ = [
    "CLASS_COLORS",
    "landscape_limits",
    "plot_class_fractions",
    "plot_d1_histogram",
    "plot_d1_panels",
    "plot_landscape_panels",
    "plot_landscapes",
    "plot_nearest",
    "plot_pair_similarity",
    "plot_sample_panels",
    "plot_samples",
    "trained_model",
]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4), layout="constrained").add_subplot()


def _band(ax: Any, ks: Any, stats: Any, col: str, color: str, label: str, fmt: str = "o-") -> None:
    ax.plot(ks, stats[col], fmt, color=color, label=label)
    ax.fill_between(ks, stats[f"{col}_min"], stats[f"{col}_max"], color=color, alpha=0.2)


def plot_class_fractions(
    fractions: Any, ax: Any = None, *, baseline: Any = None, transition: Any = None
) -> Any:
    """Median fraction of samples per class against K (log axis), seed range as bands.

    Error bars: the Wilson 95 % interval of the median seed's fraction. The memorized
    fraction of the ``baseline`` (the exact empirical denoiser: the theory, memorizing at
    every K) is dotted; ``transition``'s ``K_A`` and ``K_B`` intervals are shaded.

    Args:
        fractions: :func:`memscape.memorization.transitions.median_fractions` table.
        ax: Axes to draw on.
        baseline: the same table of the baseline model (``None``: none).
        transition: a :class:`memscape.memorization.transitions.Transition` (``None``: none).
    """
    ax = _axes(ax)
    ks = fractions["K"].to_numpy(float)
    for name in CLASSES:
        col, color = fraction_column(name), CLASS_COLORS[name]
        _band(ax, ks, fractions, col, color, name)
        err = [fractions[col] - fractions[f"{col}_low"], fractions[f"{col}_high"] - fractions[col]]
        ax.errorbar(ks, fractions[col], yerr=np.abs(np.asarray(err)), fmt="none", color=color,
                    capsize=2, lw=0.8)  # fmt: skip
    if baseline is not None and len(baseline):
        col = fraction_column("memorized")
        ax.plot(baseline["K"], baseline[col], ":", color="gray", lw=2, label="exact model (theory)")
    if transition is not None:
        for iv, color, name in ((transition.k_a, "tab:red", "K_A"),
                                (transition.k_b, "tab:green", "K_B")):  # fmt: skip
            lo, hi = max(iv.low, ks.min()), min(iv.high, ks.max())
            if lo < hi:
                ax.axvspan(lo, hi, color=color, alpha=0.08, label=f"{name} ∈ {iv}")
    ax.set(xscale="log", xlabel="training-set size K", ylabel="fraction of samples (median)",
           ylim=(-0.03, 1.03), title="memorization → generalization")  # fmt: skip
    ax.legend(fontsize=7)
    return ax


def plot_pair_similarity(agreement: Any, ax: Any = None) -> Any:
    """Kadkhodaie et al. 2024: paired samples of twin models trained on disjoint sets.

    Median over seeds of the mean cosine (about the data mean) between the samples two
    models draw from the same noise, seed range as a band, against K; dashed, with its
    seed range as a band, the reference level: the cosine between independent samples
    of one model. The twins
    agree above the reference once both generalize.

    Args:
        agreement: :func:`memscape.memorization.transitions.twin_agreement` table.
        ax: Axes to draw on.
    """
    ax = _axes(ax)
    ks = agreement["K"].to_numpy(float)
    _band(ax, ks, agreement, "twin_cosine", "tab:blue", "twin models, same noise")
    _band(ax, ks, agreement, "reference_cosine", "gray",
          "reference: independent samples of one model", fmt="s--")  # fmt: skip
    ax.set(xscale="log", xlabel="training-set size K", ylabel="cosine (about the data mean)",
           ylim=(-1.05, 1.05),
           title="paired samples of two models on disjoint sets\n(Kadkhodaie et al. 2024)")  # fmt: skip
    ax.legend(fontsize=7)
    return ax


def plot_d1_histogram(
    d1: Any,
    reference_d1: Any,
    threshold: float,
    ax: Any = None,
    *,
    floor: float = 0.0,
    delta_m: float | None = None,
    title: str = "",
) -> Any:
    """Histograms of the nearest-training distance d₁ of generated and of held-out real samples.

    Pham et al. 2025's classes on one axis (log d₁): ``delta_m`` (memorized below), the
    off-data ``threshold`` (off-data above: the held-out quantile, or the resolution
    ``floor`` ``σ·√χ²_d(q)`` where that is larger), as in
    :func:`memscape.memorization.classify_samples`.

    Args:
        d1: ``(M,)`` d₁ of generated samples.
        reference_d1: ``(H,)`` d₁ of held-out real samples to the same training set.
        threshold: the off-data threshold used.
        ax: Axes to draw on.
        floor: the resolution floor of the threshold (drawn when > 0).
        delta_m: the memorization radius (drawn when given).
        title: of the Axes.
    """
    ax = _axes(ax)
    gen, ref = (np.asarray(v, float) for v in (d1, reference_d1))
    pos = np.concatenate([gen, ref, [threshold]])
    pos = pos[pos > 0]
    lo = max(pos.min() if len(pos) else 1e-6, 1e-6)
    bins = np.geomspace(lo, max(pos.max(), lo * 10), 40)
    for v, color, label in ((gen, "tab:blue", "generated"), (ref, "k", "held-out real")):
        ax.hist(np.clip(v, lo, None), bins=bins, histtype="step", color=color, label=label,
                weights=np.full(len(v), 1 / max(len(v), 1)))  # fmt: skip
    ax.axvline(threshold, color=CLASS_COLORS["off-data"], lw=2, label=f"off-data > {threshold:.3g}")
    if floor > 0:
        ax.axvline(
            floor, color=CLASS_COLORS["off-data"], ls=":", label=f"resolution floor {floor:.3g}"
        )
    if delta_m is not None and delta_m > 0:
        ax.axvline(delta_m, color=CLASS_COLORS["memorized"], ls="--", label=f"δ_m = {delta_m:.3g}")
    ax.set(xscale="log", xlabel="d₁ (distance to the nearest training point)",
           ylabel="fraction of samples per bin",
           title=title)  # fmt: skip
    ax.legend(fontsize=7)
    return ax


def plot_d1_panels(outputs: Any, axes: Any, titles: Any) -> Any:
    """:func:`plot_d1_histogram` of each flagship job output on its Axes.

    Each output holds ``samples`` (column ``d1``), ``reference_d1`` and a one-row ``summary``
    with ``off_data_threshold``, ``off_data_floor`` and ``delta_m``.
    """
    for ax, out, title in zip(axes, outputs, titles, strict=True):
        s = out["summary"].iloc[0]
        plot_d1_histogram(out["samples"]["d1"], out["reference_d1"], s["off_data_threshold"], ax,
                          floor=s["off_data_floor"], delta_m=s["delta_m"], title=title)  # fmt: skip
    return axes


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
    ax.set(aspect="equal", title=title, xlabel="x0", ylabel="x1")
    return ax


def plot_nearest(
    generated: torch.Tensor, train: torch.Tensor, axes: Any, title: str = "", classes: Any = None
) -> Any:
    """Generated samples (left column) beside their nearest training points (right column).

    Square samples are shown as grey images in ``[−1, 1]``, others as line plots. With
    ``classes`` the rows are grouped by class (Pham et al. 2025): samples are taken from
    each class in turn (in the order of :data:`CLASSES`), so rare classes are shown too,
    then sorted by class, and each row is labelled with its class in the class colour.

    Args:
        generated: ``(M, ...)`` samples; without ``classes`` the first ``len(axes)`` are shown.
        train: ``(K, ...)`` training points of the same size.
        axes: ``(rows, 2)`` array of Axes; rows left over (fewer samples) are blanked.
        title: shown above the two columns.
        classes: ``(M,)`` class names of the samples (of :data:`CLASSES`), or ``None``.
    """
    flat_g, flat_t = generated.reshape(len(generated), -1), train.reshape(len(train), -1)
    picks = _by_class(classes, len(axes)) if classes is not None else range(len(axes))
    picks = [i for i in picks if i < len(flat_g)]
    nearest = torch.cdist(flat_g[picks].double(), flat_t.double()).argmin(1)
    side = math.isqrt(flat_g.shape[1])
    for r, row in enumerate(axes):
        for ax, vec in zip(
            row, (flat_g[picks[r]], flat_t[nearest[r]]) if r < len(picks) else (), strict=False
        ):
            arr = vec.numpy()
            if side * side == arr.size:
                ax.imshow(arr.reshape(side, side), cmap="gray", vmin=-1, vmax=1, gid=NO_COLORBAR)
            else:
                ax.plot(arr, lw=0.8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(r < len(picks))
        if classes is not None and r < len(picks):
            name = str(np.asarray(classes)[picks[r]])
            row[0].set_ylabel(name, fontsize=7, color=CLASS_COLORS.get(name, "k"))
    axes[0][0].set_title(f"{title}\nsample".strip(), fontsize=8)
    axes[0][1].set_title("nearest train", fontsize=8)
    return axes


def _by_class(classes: Any, rows: int) -> list[int]:
    """Up to ``rows`` sample indices, one class at a time in turn, sorted by class."""
    labels = np.asarray(classes).astype(str)
    order = list(CLASSES) + sorted(set(labels) - set(CLASSES))
    groups = [np.flatnonzero(labels == c).tolist() for c in order]
    picks: list[int] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        picks += [g[depth] for g in groups if depth < len(g)][: rows - len(picks)]
        if len(picks) == rows:
            break
    return sorted(picks, key=lambda i: (order.index(labels[i]), i))


def plot_landscapes(
    trained: Any, train: torch.Tensor, sigma: float, axes: Any, title: str = "",
    attractors: Any = None,
) -> Any:  # fmt: skip
    """A trained 2-D model's landscape at ``sigma`` above that of the exact empirical model.

    Pham et al. 2025, Fig. 2: the trained model's attractors against the stored patterns
    (the exact empirical denoiser of the same K points: one minimum per point). Both
    panels show the training points (black stars), an energy colorbar, and σ and K in
    their titles.

    Args:
        trained: the trained model (``None``: leave the top Axes empty).
        train: ``(K, 2)`` training points.
        sigma: noise level of both landscapes.
        axes: two Axes (top: trained, bottom: exact).
        title: suffix of both titles (σ and K are always shown; ``"K=8"`` adds nothing).
        attractors: ``(points, classes)``, the trained model's attractors ``(A, 2)`` and
            their classes (``memorized`` / ``spurious`` / ``generalized``), drawn on the
            top Axes in the class colours of :func:`plot_class_fractions` (``None`` or
            ``points`` ``None``: not drawn, e.g. a results folder from before they were kept).
    """
    from memscape.diffusion import EmpiricalDiffusion
    from memscape.landscape.plot import plot_landscape

    lim = landscape_limits(train)
    if trained is not None:
        plot_landscape(trained, sigma, ax=axes[0], xlim=lim, ylim=lim)
    plot_landscape(EmpiricalDiffusion(train.to(torch.float64)), sigma, ax=axes[1], xlim=lim,
                   ylim=lim)  # fmt: skip
    t = train.reshape(len(train), -1).double().numpy()
    where = f"σ = {float(sigma):.3g}, K = {len(train)}"
    for ax, name in zip(axes[:2], ("trained", "exact empirical"), strict=True):
        if trained is not None or name != "trained":
            ax.scatter(t[:, 0], t[:, 1], marker="*", s=40, c="k", zorder=6, label="training points")
            ax.legend(fontsize=7)
        if name == "trained" and trained is not None and attractors is not None:
            _draw_attractors(ax, *attractors)
        extra = "" if title.replace(" ", "") in ("", f"K={len(train)}") else f" ({title})"
        ax.set_title(f"{name}, {where}{extra}", fontsize=9)
    return axes


def trained_model(folder: Any, K: int, seed: int = 0, tag: str = "a") -> Any:
    """The flagship's trained model on K points of subset ``seed``, float64; ``None`` if absent.

    The flagship keeps each training in ``models/K=<K>_seed=<seed>/<tag>`` of its results
    folder (``tag`` ``"a"``: the model, ``"b"``: its twin on a disjoint set).
    """
    from pathlib import Path

    from memscape.diffusion.model import ScoreModel

    saved = Path(folder) / "models" / f"K={K}_seed={seed}" / tag
    return ScoreModel.load(saved).double() if (saved / "model.json").is_file() else None


def plot_landscape_panels(folder: Any, outputs: Any, sigma: float, axes: Any) -> Any:
    """:func:`plot_landscapes` of flagship job outputs (seed 0), one column each.

    Each output holds ``train`` ``(K, 2)``, ``attractor_points`` and ``attractors`` (column
    ``class``); the trained model of its K is loaded from ``folder``
    (:func:`trained_model`; an empty top panel where there is none, e.g. an exact-only run).

    Args:
        folder: the results folder.
        outputs: the job outputs, one per column.
        sigma: noise level of the landscapes.
        axes: ``(2, n)`` Axes.
    """
    axes = np.asarray(axes).reshape(2, len(outputs))
    for j, out in enumerate(outputs):
        k = len(out["train"])
        plot_landscapes(trained_model(folder, k), out["train"], sigma, axes[:, j], f"K={k}",
                        attractors=(out.get("attractor_points"), out["attractors"]["class"]))  # fmt: skip
    return axes


def landscape_limits(train: torch.Tensor) -> tuple[float, float]:
    """The square box ``(−m, m)`` of a 2-D landscape: ``m = 1.4 max |x| + 0.2`` over ``train``."""
    m = float(torch.as_tensor(train).abs().max()) * 1.4 + 0.2
    return -m, m


def _draw_attractors(ax: Any, points: Any, classes: Any) -> None:
    """The attractors on a 2-D landscape, one marker colour per class, with a legend."""
    if points is None or len(points) == 0:
        return
    xy = torch.as_tensor(points).reshape(len(points), -1).double().numpy()
    labels = np.asarray(list(classes))
    if len(labels) != len(xy):
        raise ValueError(f"attractors: {len(xy)} points but {len(labels)} classes")
    for name in CLASSES:
        sel = labels == name
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=28, marker="o", c=CLASS_COLORS[name],
                       edgecolors="w", linewidths=0.6, zorder=7, label=f"{name} attractor")  # fmt: skip
    ax.legend(fontsize=7)


def plot_sample_panels(outputs: Any, axes: Any, titles: Any) -> Any:
    """Each flagship job output's samples: classes over the training set (2-D data,
    :func:`plot_samples`, ``axes`` of shape ``(1, n)``) or next to their nearest training
    points (:func:`plot_nearest`, ``axes`` of shape ``(rows, 2n)``).

    Each output holds ``generated``, ``train`` and ``samples`` (column ``class``).
    """
    axes = np.asarray(axes)
    for j, (out, title) in enumerate(zip(outputs, titles, strict=True)):
        if tuple(out["generated"].shape[1:]) == (2,):
            plot_samples(out["generated"], out["train"], out["samples"]["class"], axes[0, j], title)
        else:
            plot_nearest(out["generated"], out["train"], axes[:, 2 * j : 2 * j + 2], title,
                         classes=out["samples"]["class"])  # fmt: skip
    if tuple(outputs[0]["generated"].shape[1:]) == (2,):
        axes[0, 0].legend(fontsize=7)
    return axes
