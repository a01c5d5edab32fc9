"""The flagship's browser explorer on 2-D data: the landscape at each training-set size K.

Pham et al. 2025 ("Memorization to Generalization: Emergence of Diffusion Models from
Associative Memory", arXiv:2505.21777) read the transition from two views at once: the
landscape of a model trained on K points, whose attractors sit on the training points
(memorized), between them (spurious) or spread along the data manifold (generalized;
their Fig. 2), and the fraction of generated samples in each class against K (their
Fig. 3). :func:`memorization_family` puts both in one explorer family
(:mod:`memscape.landscape.explorer`): a slider over K; left, the landscape of the seed-0
model at the census σ with its training points and its attractors (the minima of the
census, Morse index 0, :func:`memscape.memorization.classify_attractors`) coloured by
class; right, the class fractions against K — the median over seeds with the Wilson
(1927) 95 % interval of the median seed's fraction as error bars and the seed range as a
band (:func:`memscape.memorization.median_fractions`) — with a cursor at the slider's K.
:func:`write_memorization_explorer` writes ``explorer.json`` and ``explorer.html`` of a
flagship results folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape.figures import CLASS_COLORS
from memscape.memorization.classes import CLASSES, fraction_column
from memscape.memorization.plot import landscape_limits, trained_model
from memscape.runs.explorer import json_number, json_numbers, write_explorer

__all__ = [
    "EXPLORER_TEXT",
    "fraction_curves",
    "memorization_family",
    "write_memorization_explorer",
]

#: what the flagship's report says of its explorer
EXPLORER_TEXT = (
    "a slider over K; left, the landscape of the seed-0 model at the census σ with its "
    "training points (stars) and its attractors by class; right, the class fractions against "
    "K (median over seeds, Wilson 95 % bars, seed range shaded) with a cursor at the "
    "slider's K (click a point of the curves to move the slider there)."
)
MODELS = {"trained": "the trained model", "exact": "the exact empirical model"}


def _css(color: str) -> str:
    """A matplotlib colour (``"tab:red"``) as CSS hex for the page."""
    from matplotlib.colors import to_hex

    return str(to_hex(color))


def fraction_curves(fractions: pd.DataFrame, *, baseline: pd.DataFrame | None = None) -> dict:
    """The explorer's ``curves`` block of the class fractions against K.

    Args:
        fractions: :func:`memscape.memorization.median_fractions` table (one row per K:
            per class ``s = fraction_column(c)`` the median ``s``, Wilson ``s_low`` /
            ``s_high``, seed range ``s_min`` / ``s_max``).
        baseline: the same table of the exact model: its memorized fraction is added as a
            dotted grey series (``None``: none).

    Returns:
        ``{"title", "x_label", "y_label", "log": True, "y_range", "series"}``, a series per class
        (in the order of :data:`CLASSES`, colours of :data:`memscape.figures.CLASS_COLORS`)
        with ``x`` (K), ``y`` (median), ``low`` / ``high`` (error bars), ``min`` / ``max``.
    """
    missing = [c for c in ("K", *(fraction_column(n) for n in CLASSES)) if c not in fractions]
    if missing or not len(fractions):
        raise ValueError(f"fractions must be a median_fractions table with rows, missing {missing}")
    rows = fractions.sort_values("K")
    ks = [int(k) for k in rows["K"]]
    series = []
    for name in CLASSES:
        s = fraction_column(name)
        series.append({"name": name, "color": _css(CLASS_COLORS[name]), "x": ks,
                       **{k: json_numbers(rows[f"{s}{suffix}"]) for k, suffix in
                          (("y", ""), ("low", "_low"), ("high", "_high"), ("min", "_min"),
                           ("max", "_max"))}})  # fmt: skip
    if baseline is not None and len(baseline):
        b = baseline.sort_values("K")
        series.append({"name": "exact model (theory): memorized", "color": "#7f7f7f",
                       "dash": "dot", "x": [int(k) for k in b["K"]],
                       "y": json_numbers(b[fraction_column("memorized")])})  # fmt: skip
    return {"title": "sample classes against K", "x_label": "training-set size K",
            "y_label": "fraction of samples (median over seeds)", "log": True,
            "y_range": [-0.03, 1.03], "series": series}  # fmt: skip


def _markers(points: Any, table: pd.DataFrame) -> list[dict[str, Any]]:
    """The attractors (minima of the census: Morse index 0) as markers coloured by class.

    In the order of :data:`CLASSES` (so is the page's legend), the census order within one.
    """
    if points is None or not len(table):
        return []
    xy = torch.as_tensor(points).reshape(len(points), -1).double().numpy()
    if len(xy) != len(table):
        raise ValueError(f"attractors: {len(xy)} points but {len(table)} rows")
    energy = table["energy"] if "energy" in table else pd.Series(np.nan, index=table.index)
    out = []
    for (x0, x1), c, e, d1, basin in zip(xy[:, :2], table["class"].astype(str), energy,
                                         table["d1"], table["basin_fraction"], strict=True):  # fmt: skip
        out.append({"x0": json_number(x0), "x1": json_number(x1), "label": f"{c} attractor",
                    "color": _css(CLASS_COLORS.get(c, "k")), "symbol": "circle",
                    "energy": json_number(e), "text": f"minimum (Morse index 0), d₁ = "
                    f"{float(d1):.3g}, basin {float(basin):.0%} of the census starts"})  # fmt: skip
    rank = {f"{c} attractor": i for i, c in enumerate(CLASSES)}  # the legend in class order
    return sorted(out, key=lambda m: rank.get(m["label"], len(rank)))


def memorization_family(
    outputs: Mapping[int, Mapping[str, Any]],
    models: Mapping[int, Any],
    fractions: pd.DataFrame,
    sigma: float,
    *,
    baseline: pd.DataFrame | None = None,
    name: str = "trained",
    seed: int = 0,
    resolution: int = 60,
) -> dict[str, Any]:
    """One explorer family over K: the landscape of each K's model beside the class fractions.

    Args:
        outputs: ``{K: job output}`` of one seed, each with ``train`` ``(K, 2)``,
            ``attractor_points`` ``(A, 2)`` and ``attractors`` (the
            :func:`memscape.memorization.classify_attractors` table: ``class``,
            ``energy``, ``d1``, ``basin_fraction``).
        models: ``{K: model}``, the 2-D model drawn at each K (same keys as ``outputs``).
        fractions: the model's :func:`memscape.memorization.median_fractions` table.
        sigma: the noise level of the landscapes (the census σ).
        baseline: the exact model's fractions, dotted on the curves (``None``: none).
        name: the family's name (``"trained"`` or ``"exact"``).
        seed: the training subset of ``outputs`` (in the titles).
        resolution: grid nodes per axis (≥ 4).

    Returns:
        An explorer family (:func:`memscape.landscape.explorer.explorer_family`'s keys,
        ``parameter`` ``"K"``) whose frames carry the training points as ``patterns``
        and the attractors as ``markers``, with a ``curves`` block
        (:func:`fraction_curves`) in place of the bifurcation diagram.
    """
    from memscape._validation import check_int, check_positive
    from memscape.landscape.explorer import landscape_frame, surface_name  # (labels imports us)

    check_int(resolution, "resolution", minimum=4)
    check_positive(sigma, "sigma")
    ks = sorted(int(k) for k in outputs)
    if not ks or sorted(int(k) for k in models) != ks:
        raise ValueError(f"outputs and models must hold the same K (≥ 1), got {ks} and "
                         f"{sorted(models)}")  # fmt: skip
    trains = {k: torch.as_tensor(outputs[k]["train"]).double().cpu() for k in ks}
    if any(tuple(t.shape[1:]) != (2,) for t in trains.values()):
        raise ValueError("outputs: the explorer needs 2-D training points (K, 2)")
    lim = max(landscape_limits(t)[1] for t in trains.values())  # one box for every K
    axis = np.linspace(-lim, lim, resolution)
    frames = []
    for k in ks:
        fr = landscape_frame(models[k], sigma, k, axis, axis, patterns=trains[k])
        out = outputs[k]
        fr["markers"] = _markers(out.get("attractor_points"), out["attractors"])
        fr["title"] = f"{name}, K = {k}, σ = {sigma:g}, seed {seed}"
        frames.append(fr)
    what = MODELS.get(name, name)
    surface = surface_name(models[ks[0]])
    return {
        "name": name,
        "description": f"{what} on K training points (seed {seed}) at σ = {sigma:g}: "
        f"{surface} with its attractors by class (Pham et al. 2025, Fig. 2), beside the "
        "class fractions of its samples against K (median over seeds, Wilson 95 % bars)",
        "parameter": "K", "symbol": "K", "log": True, "surface": surface,
        "patterns_label": "training points", "x": json_numbers(axis), "y": json_numbers(axis),
        "frames": frames, "curves": fraction_curves(fractions, baseline=baseline),
    }  # fmt: skip


def write_memorization_explorer(
    folder: str | Path,
    outputs: Mapping[str, Mapping[int, Mapping[str, Any]]],
    fractions: Mapping[str, pd.DataFrame],
    sigma: float,
    *,
    resolution: int = 60,
) -> Path | None:
    """``explorer.json`` and ``explorer.html`` of a flagship results folder; ``None`` unless 2-D.

    One family per model kind (``"trained"`` first: the models saved in the folder, see
    :func:`memscape.memorization.plot.trained_model`; ``"exact"``: the exact empirical model of each training set),
    each over the K of ``outputs`` (:func:`memorization_family`); the trained family's
    curves show the exact model's memorized fraction too. A kind whose model is missing
    at some K is left out with a warning.

    Args:
        folder: the results folder (``models/`` inside it for the trained kind).
        outputs: ``{kind: {K: job output of seed 0}}``.
        fractions: ``{kind: median_fractions table}`` (``SweepReduction.fractions``).
        sigma: the census σ of the run.
        resolution: grid nodes per axis.
    """
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.landscape.explorer import explorer_data

    first = next((o for per in outputs.values() for o in per.values()), None)
    if first is None or tuple(first["train"].shape[1:]) != (2,):
        return None
    families = []
    for kind, per in outputs.items():
        if kind == "exact":
            models = {k: EmpiricalDiffusion(o["train"].double()) for k, o in per.items()}
        else:
            models = {k: trained_model(folder, k) for k in per}
        if missing := [k for k, m in models.items() if m is None]:
            warnings.warn(f"explorer: no saved {kind} model at K = {missing}", stacklevel=2)
            continue
        base = fractions.get("exact") if kind != "exact" else None
        families.append(memorization_family(per, models, fractions[kind], sigma, baseline=base,
                                            name=kind, resolution=resolution))  # fmt: skip
    if not families:
        return None
    data = explorer_data("memscape run memorization: landscapes against training-set size K",
                         families, experiment="memorization")  # fmt: skip
    return write_explorer(folder, data)
