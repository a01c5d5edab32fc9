"""Figures of the ``memorization`` experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

COLORS = {"memorized": "tab:red", "spurious": "tab:orange", "generalized": "tab:green"}


def class_fractions(summary: pd.DataFrame, primary: str = "trained"):
    """Class fractions against K (log axis) with seed spread; exact baseline; twin-model similarity."""
    has_pairs = "pair_cosine" in summary and summary["pair_cosine"].notna().any()
    fig, axes = plt.subplots(
        1, 2 if has_pairs else 1, figsize=(11 if has_pairs else 6, 4), squeeze=False
    )
    ax = axes[0, 0]
    trained = summary[summary["model"] == primary]
    cols = [f"{c}_fraction" for c in COLORS] + ["ratio_memorized_fraction"]
    stats = trained.groupby("K")[cols].agg(["mean", "min", "max"])
    ks = stats.index.to_numpy()
    for name, color in COLORS.items():
        s = stats[f"{name}_fraction"]
        ax.plot(ks, s["mean"], "o-", color=color, label=name)
        ax.fill_between(ks, s["min"], s["max"], color=color, alpha=0.2)
    r = stats["ratio_memorized_fraction"]
    ax.plot(ks, r["mean"], "s--", color="k", ms=4, label="d₁/d₂ < 1/3")
    exact = summary[summary["model"] == "exact"]
    if len(exact) and primary != "exact":
        e = exact.groupby("K")["ratio_memorized_fraction"].mean()
        ax.plot(e.index, e.to_numpy(), ":", color="gray", lw=2, label="exact model (theory)")
    ax.set(
        xscale="log",
        xlabel="training-set size K",
        ylabel="fraction of samples",
        ylim=(-0.03, 1.03),
        title="memorization → generalization",
    )
    ax.legend(fontsize=8)
    if has_pairs:
        ax2 = axes[0, 1]
        for col, color, label in (
            ("pair_cosine", "tab:blue", "cosine (about the data mean)"),
            ("pair_l2", "tab:purple", "L2 distance"),
        ):
            p = trained.groupby("K")[col].agg(["mean", "min", "max"]).dropna()
            axis = ax2 if col == "pair_cosine" else ax2.twinx()
            axis.plot(p.index, p["mean"], "o-", color=color, label=label)
            axis.fill_between(p.index, p["min"], p["max"], color=color, alpha=0.2)
            axis.set_ylabel(label, color=color)
        ax2.set(
            xscale="log",
            xlabel="training-set size K",
            title="paired samples of two models on disjoint sets\n(Kadkhodaie et al. 2024)",
        )
    fig.tight_layout()
    return fig


def _keys(outputs: dict[str, Any], primary: str, seed: int = 0) -> list[str]:
    keys = [k for k in outputs if k.startswith(f"{primary}_") and k.endswith(f"seed={seed}")]
    return sorted(keys, key=lambda k: int(k.split("K=")[1].split("_")[0]))


def _pick(keys: list[str], n: int = 3) -> list[str]:
    if len(keys) <= n:
        return keys
    return [keys[i] for i in np.linspace(0, len(keys) - 1, n).round().astype(int)]


def is_planar(outputs: dict[str, Any]) -> bool:
    """True when samples are 2-D points (landscape figures make sense)."""
    first = next(iter(outputs.values()))
    return first["generated"].ndim == 2 and first["generated"].shape[1] == 2


def sample_grid(outputs: dict[str, Any], primary: str = "trained"):
    """Generated samples beside their nearest training samples, for a few K."""
    keys = _pick(_keys(outputs, primary))
    if is_planar(outputs):
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 4), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            o = outputs[key]
            cls = o["samples"]["class"].to_numpy()
            for name, color in COLORS.items():
                pts = o["generated"][cls == name].numpy()
                ax.scatter(pts[:, 0], pts[:, 1], s=6, color=color, label=name)
            t = o["train"].numpy()
            ax.scatter(
                t[:, 0], t[:, 1], s=30, facecolors="none", edgecolors="k", lw=0.8, label="training"
            )
            ax.set(title=key.split("_")[1], aspect="equal")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        return fig
    rows = 6
    fig, axes = plt.subplots(
        rows, 2 * len(keys), figsize=(2.2 * len(keys), 1.1 * rows), squeeze=False
    )
    for j, key in enumerate(keys):
        o = outputs[key]
        gen, train = o["generated"], o["train"]
        nearest = torch.cdist(gen.reshape(len(gen), -1), train.reshape(len(train), -1)).argmin(1)
        side = round(np.sqrt(gen[0].numel()))
        for i in range(rows):
            for col, img in ((2 * j, gen[i]), (2 * j + 1, train[nearest[i]])):
                ax = axes[i, col]
                arr = img.reshape(-1).numpy()
                if side * side == arr.size:
                    ax.imshow(arr.reshape(side, side), cmap="gray", vmin=-1, vmax=1)
                else:
                    ax.plot(arr, lw=0.8)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[0, 2 * j].set_title(f"{key.split('_')[1]}\nsample", fontsize=8)
        axes[0, 2 * j + 1].set_title("nearest train", fontsize=8)
    fig.tight_layout()
    return fig


def landscapes(cfg: Any, root: Path, outputs: dict[str, Any], primary: str = "trained"):
    """Trained-model landscape at small, middle and large K beside the exact empirical energy."""
    from memscape import EmpiricalDiffusion, ScoreModel
    from memscape.landscape import plot_landscape

    keys = _pick(_keys(outputs, primary))
    fig, axes = plt.subplots(2, len(keys), figsize=(4.2 * len(keys), 8.4), squeeze=False)
    for j, key in enumerate(keys):
        o = outputs[key]
        k_part = key.split("_")[1]
        train = o["train"].to(torch.float64)
        lim = float(train.abs().max()) * 1.4 + 0.2
        model_dir = root / "models" / f"{k_part}_seed=0" / "a"
        if model_dir.exists():
            model = ScoreModel.load(model_dir).double()
            plot_landscape(
                model, sigma=cfg.census_sigma, ax=axes[0, j], xlim=(-lim, lim), ylim=(-lim, lim)
            )
        axes[0, j].set_title(f"trained, {k_part}")
        plot_landscape(
            EmpiricalDiffusion(train),
            sigma=cfg.census_sigma,
            ax=axes[1, j],
            xlim=(-lim, lim),
            ylim=(-lim, lim),
        )
        axes[1, j].set_title(f"exact empirical, {k_part}")
    fig.tight_layout()
    return fig
