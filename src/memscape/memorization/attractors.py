"""The attractors of a model and their classes (Pham et al. 2025, "Memorization to
Generalization: Emergence of Diffusion Models from Associative Memory", §3–4).

Where :func:`memscape.memorization.classify_samples` labels generated *samples*,
:func:`classify_attractors` labels the *minima* of the landscape ``E(·, σ)`` at a small σ:

* **memorized**: within ``δ_m`` of a training point (a stored pattern);
* else **generalized**: the Hessian is nearly flat along some direction,
  ``λ_min/λ_max < flatness`` — the minimum is a point of an attracting manifold, Pham
  et al.'s generalization regime;
* else **spurious**: an isolated attractor that is no training point (the spurious
  states of an associative memory past its capacity).

:func:`attractor_atlas` joins the attractors by minimum-energy paths and certified saddles
into a disconnectivity graph (Becker & Karplus 1997), its leaves in these classes.

:func:`critical_sigma` is Pham et al.'s probe of an attractor's basin: the largest noise
level from which the reverse process brings a perturbed point back (probability ≥ ½).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_int, check_positive, check_tensor
from memscape.memorization.neighbors import nearest_neighbors

if TYPE_CHECKING:  # the landscape layer (and matplotlib) load when a function runs
    from memscape.landscape import BasinRadius

__all__ = [
    "ATLAS_COLUMNS",
    "ATTRACTOR_CLASSES",
    "FLATNESS",
    "PROBE_LEVELS",
    "attractor_atlas",
    "attractor_summary",
    "classify_attractors",
    "critical_sigma",
]

#: Classes of :func:`classify_attractors` (a minimum is never off-data: it is a model's own).
ATTRACTOR_CLASSES = ("memorized", "spurious", "generalized")

#: ``λ_min/λ_max`` below this: the minimum lies on a (near-)flat attracting manifold.
FLATNESS = 0.05

#: Default probe noise levels of :func:`critical_sigma` (10 levels, geometric).
PROBE_LEVELS = tuple(np.geomspace(0.005, 2.0, 10).tolist())

_COLUMNS = ("energy", "basin_fraction", "flatness", "d1", "class")


def classify_attractors(
    model: Any,
    sigma: Any,
    train: torch.Tensor,
    *,
    delta_m: float,
    n_starts: int = 256,
    flatness: float = FLATNESS,
    max_seeds: int = 64,
    tol: float | None = None,
    dedupe_tol: float | None = None,
    generator: torch.Generator | None = None,
) -> pd.DataFrame:
    """The minima of ``E(·, σ)``, each labelled memorized, generalized or spurious (Pham et al. 2025).

    The census (:func:`memscape.landscape.critical_points`, descent from ``n_starts``
    random starts plus pair/triple seeds of the training points, float64) keeps the
    converged index-0 points. A minimum is ``memorized`` when its nearest training
    point is within ``delta_m`` (``d1 ≤ δ_m``), else ``generalized`` when
    ``λ_min/λ_max < flatness`` of its Hessian (``−∂s/∂x`` for score models), else
    ``spurious``.

    Args:
        model: a model following the protocol (a ``torch.nn.Module`` is copied to float64).
        sigma: the (small) noise level of the landscape; ``None`` if not noise-conditioned.
        train: ``(K, *event_shape)`` training points.
        delta_m: memorization radius δ_m > 0 (e.g. :func:`same_point_radius` of ``train``).
        n_starts: random descent starts of the census.
        flatness: threshold of ``λ_min/λ_max`` below which a minimum is generalized.
        max_seeds: cap on the census' midpoint / centroid seeds.
        tol: census gradient tolerance (default 1e-8; a trained network's score is smooth
            only to its training error: pass e.g. 1e-5).
        dedupe_tol: census points closer than this are one (default: tiny; for a trained
            network pass e.g. δ_m/2 so that one flat manifold is not counted many times).
        generator: randomness of the census starts.

    Returns:
        One row per minimum: ``energy``, ``basin_fraction`` (share of the census' descent
        starts), ``flatness`` (``λ_min/λ_max``), ``d1`` (distance to the nearest training
        point) and ``class``.
    """
    return _attractor_census(model, sigma, train, delta_m=delta_m, n_starts=n_starts,
                             flatness=flatness, max_seeds=max_seeds, tol=tol,
                             dedupe_tol=dedupe_tol, generator=generator)[0]  # fmt: skip


def _attractor_census(
    model: Any,
    sigma: Any,
    train: torch.Tensor,
    *,
    delta_m: float,
    n_starts: int,
    flatness: float,
    max_seeds: int,
    tol: float | None,
    dedupe_tol: float | None,
    generator: torch.Generator | None,
) -> tuple[pd.DataFrame, torch.Tensor]:
    """:func:`classify_attractors`'s table and the minima ``(A, *event_shape)`` it describes."""
    from memscape.landscape import critical_points

    train = check_tensor(train, "train", min_ndim=2)
    check_positive(delta_m, "delta_m")
    check_positive(flatness, "flatness")
    check_int(n_starts, "n_starts")
    flat = train.reshape(len(train), -1).to(torch.float64)
    model = _float64(model)
    # minima only: retries=0 (no search for the saddles and maxima a complete census needs)
    cps = critical_points(model, sigma, n_starts=n_starts, generator=generator, patterns=flat,
                          n_newton_starts=0, max_seeds=max_seeds, tol=tol,
                          dedupe_tol=dedupe_tol, retries=0)  # fmt: skip
    is_min = cps.converged & (cps.morse_index == 0)
    if not bool(is_min.any()):
        empty = {c: pd.Series([], dtype=str if c == "class" else float) for c in _COLUMNS}
        return pd.DataFrame(empty), cps.points[:0]
    pts = cps.points[is_min].reshape(int(is_min.sum()), -1)
    d1 = nearest_neighbors(pts, flat, k=1)[0][:, 0].numpy()
    eig = cps.eigenvalues[is_min]
    ratio = (eig[:, 0] / eig[:, -1]).numpy()
    label = np.where(d1 <= delta_m, "memorized",
                     np.where(ratio < flatness, "generalized", "spurious"))  # fmt: skip
    minima = cps.table[is_min.numpy()]
    table = pd.DataFrame({"energy": minima["energy"].to_numpy(),
                          "basin_fraction": minima["basin_fraction"].to_numpy(),
                          "flatness": ratio, "d1": d1, "class": label})  # fmt: skip
    return table, cps.points[is_min]


def _float64(model: Any) -> Any:
    """A ``torch.nn.Module`` copied to float64 (Newton and path tolerances); others as given."""
    return copy.deepcopy(model).double() if isinstance(model, torch.nn.Module) else model


#: columns of :func:`attractor_atlas`'s minima table
ATLAS_COLUMNS = ("minimum", "energy", "class", "merge_energy", "barrier", "partner", "morse_index")


def attractor_atlas(
    model: Any,
    sigma: Any,
    attractors: torch.Tensor,
    classes: Sequence[str],
    *,
    neighbors: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The disconnectivity graph of a model's attractors, its leaves in their classes.

    A landscape atlas (:func:`memscape.landscape.landscape_atlas`; Becker & Karplus 1997,
    Wales, Miller & Walsh 1998) started from the attractors of :func:`classify_attractors`
    (already minima, so each descends to itself): minimum-energy paths to each one's
    ``neighbors`` nearest, certified saddles and the merge tree. Each minimum keeps the
    class of the attractor it came from (Pham et al. 2025: memorized / spurious /
    generalized), so the tree shows which classes share a funnel and how deep each is:
    memories in deep separate funnels while the model memorizes, shallow merged ones as
    it generalizes.

    Args:
        model: an energy model (a ``torch.nn.Module`` is copied to float64).
        sigma: the noise level of the attractors.
        attractors: ``(A, *event_shape)`` minima, e.g. of :func:`classify_attractors`.
        classes: the ``A`` classes of ``attractors``.
        neighbors: nearest minima joined to each minimum.

    Returns:
        ``(minima, edges)``: one row per minimum of the atlas (:data:`ATLAS_COLUMNS`:
        ``barrier`` its persistence, ``inf`` for the lowest of each connected set) and
        the merge tree's edges ``i, j, energy, verified``.
    """
    from memscape.landscape import landscape_atlas

    attractors = check_tensor(attractors, "attractors", min_ndim=2)
    classes = [str(c) for c in classes]
    if len(classes) != len(attractors):
        raise ValueError(f"classes must have {len(attractors)} entries, got {len(classes)}")
    atlas = landscape_atlas(_float64(model), sigma, attractors.to(torch.float64),
                            neighbors=neighbors)  # fmt: skip
    starts = atlas.start_minimum.tolist()
    first = {int(m): c for m, c in zip(starts[::-1], classes[::-1], strict=True)}
    table = atlas.barriers.assign(**{"class": [first[m] for m in atlas.barriers["minimum"]]})
    return table[list(ATLAS_COLUMNS)], atlas.edges


def critical_sigma(
    model: Any,
    points: torch.Tensor,
    delta: float,
    *,
    n_trials: int = 16,
    levels: Sequence[float] = PROBE_LEVELS,
    sampler_steps: int = 18,
    sigma_min: float = 0.002,
    generator: torch.Generator | None = None,
) -> BasinRadius:
    """Pham et al. 2025's critical noise σ* of each point: its basin under the reverse process.

    For each point ``x*``, level ``s`` and trial, ``x = x* + s·z`` is denoised by the
    deterministic Heun sampler (Karras et al. 2022, Alg. 1) over ``sampler_steps``
    Karras levels from ``s`` down to ``min(σ_min, s/2)``; the trial is recovered when it
    ends within ``delta`` of ``x*``. σ* (``radius``) is the largest level such that it and
    every smaller level are recovered with probability ≥ ½
    (:func:`memscape.landscape.basin_radius`).

    Args:
        model: a denoiser (``ScoreModel``, ``EmpiricalDiffusion``, …).
        points: ``(P, *event_shape)`` points to probe (e.g. generated samples).
        delta: recovery distance δ > 0 (e.g. the memorization radius δ_m).
        n_trials: noise draws per point and level.
        levels: probe noise levels ``s`` (ascending after sorting).
        sampler_steps: Heun steps of each reverse run.
        sigma_min: smallest σ of each reverse run.
        generator: randomness of the perturbations.

    Returns:
        :class:`memscape.landscape.BasinRadius`: ``radius`` ``(P,)`` is σ*, ``recovery``
        ``(P, L)`` the recovered fractions.
    """
    from memscape.diffusion.samplers import karras_sigmas, sample_heun
    from memscape.landscape import basin_radius

    points = check_tensor(points, "points", min_ndim=2)
    check_int(sampler_steps, "sampler_steps")
    check_int(n_trials, "n_trials")
    check_positive(sigma_min, "sigma_min")
    lv = sorted(float(s) for s in levels)
    if not lv or lv[0] <= 0:
        raise ValueError(f"levels must be a non-empty sequence of noise levels > 0, got {levels}")
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    dtype = params[0].dtype if params else points.dtype
    shape = tuple(points.shape[1:])

    def reverse(x: torch.Tensor, _: torch.Generator | None) -> torch.Tensor:
        # rows are ordered (point, level, trial): run each level's rows from s down to ~0
        xs = x.reshape(len(points), len(lv), n_trials, -1)
        out = torch.empty_like(xs)
        for j, s in enumerate(lv):
            sig = karras_sigmas(sampler_steps, min(sigma_min, s / 2), s)
            xj = xs[:, j].reshape(-1, *shape).to(dtype)
            out[:, j] = sample_heun(model, xj, sig).reshape(xs[:, j].shape).to(x)
        return out.reshape(x.shape)

    # σ of basin_radius only drives its default descent, replaced here by ``reverse``
    return basin_radius(model, points.to(torch.float64), sigma_min, lv, n_trials, delta,
                        reverse=reverse, generator=generator)  # fmt: skip


def attractor_summary(
    attractors: pd.DataFrame, probe: pd.DataFrame, top: float = max(PROBE_LEVELS)
) -> dict[str, Any]:
    """Attractors per class and the mean critical σ of the probed samples of each class.

    A critical σ at the largest probe level ``top`` is censored — the basin reaches at least
    the probe range, a bound ``≥ top``, not a measurement: such samples are counted in
    ``critical_sigma_<class>_censored`` and kept out of the mean ``critical_sigma_<class>``
    (NaN when no probed sample of the class has a finite uncensored σ*).

    Args:
        attractors: :func:`classify_attractors` table (column ``class``).
        probe: one row per probed sample: ``class`` (a sample class) and ``critical_sigma``.
        top: the largest probe level.

    Returns:
        ``{"attractors_<c>": count, "critical_sigma_<c>": mean, "critical_sigma_<c>_censored": n}``
        with ``<c>`` a class name with ``-`` written ``_``.
    """
    from memscape.memorization.classes import CLASSES

    out: dict[str, Any] = {}
    for c in ATTRACTOR_CLASSES:
        out[f"attractors_{c}"] = int((attractors["class"] == c).sum())
    for c in CLASSES:
        sig = probe.loc[probe["class"] == c, "critical_sigma"].to_numpy(float)
        censored = sig >= top * (1 - 1e-9)
        name = f"critical_sigma_{c.replace('-', '_')}"
        kept = sig[~censored & np.isfinite(sig)]
        out[name] = float(kept.mean()) if len(kept) else np.nan
        out[f"{name}_censored"] = int(censored.sum())
    return out
