"""Basins of attraction: Monte-Carlo fractions, 2-D basin maps, and the basin-radius probe.

* :func:`basin_fractions`: draw starts, descend, assign each endpoint to the
  nearest minimum of a census; fractions carry 95 % Wilson score intervals
  (Wilson 1927, "Probable inference, the law of succession, and statistical inference").
* :func:`basin_map`: the minimum reached from every node of a 2-D grid (a plane
  through state space for d > 2).
* :func:`basin_radius`: the critical-noise probe of Pham et al. 2025
  ("Memorization to generalization", 2025): noise a point to a probe noise level
  ``s``, run the reverse dynamics, and count it recovered when it returns within ``δ``;
  the basin radius is the largest probe level still recovered with probability ≥ ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_int, check_positive, check_tensor
from memscape.landscape._fields import check_model, check_sigma, event_shape
from memscape.landscape.labels import default_tolerance
from memscape.protocol import ScoreOrDenoiser

if TYPE_CHECKING:
    from memscape.landscape.critical import CriticalPoints

__all__ = [
    "BasinMap",
    "BasinRadius",
    "basin_fractions",
    "basin_map",
    "basin_radius",
    "wilson_interval",
]


def wilson_interval(
    count: torch.Tensor, n: int, z: float = 1.959964
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wilson score interval of a binomial proportion ``count / n`` (95 % for z = 1.96).

    ``(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)``; returns ``(low, high)``
    float64 tensors shaped like ``count``.
    """
    c = torch.as_tensor(count, dtype=torch.float64)
    if n <= 0:
        nan = torch.full_like(c, float("nan"))
        return nan, nan
    p = c / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * torch.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (centre - half).clamp_min(0.0), (centre + half).clamp_max(1.0)


def _assign(
    cps: CriticalPoints, x: torch.Tensor, ok: torch.Tensor, tol: float | None
) -> torch.Tensor:
    """Row of ``cps.table`` of the minimum each flat endpoint ``(B, d)`` reached, −1 if none."""
    rows = torch.nonzero(cps.converged & (cps.morse_index == 0)).squeeze(1)
    out = torch.full((x.shape[0],), -1, dtype=torch.long)
    if rows.numel() == 0:
        return out
    mins = cps.points[rows].reshape(rows.numel(), -1).to(x)
    if tol is None:
        label_tol = cps.info.get("label_tol")
        tol = float(label_tol) if label_tol else default_tolerance(None)
    dist = torch.cdist(x, mins)
    near = dist.argmin(1)
    hit = (dist.gather(1, near[:, None]).squeeze(1) <= tol) & ok.to(x.device)
    out[hit.cpu()] = rows[near[hit].cpu()]
    return out


def _descend_to_minima(model: ScoreOrDenoiser, cps: CriticalPoints, x: torch.Tensor, sigma: Any, tol: Any,
                       max_steps: int) -> torch.Tensor:  # fmt: skip
    from memscape.landscape._descent import descend_flat

    shape = tuple(cps.points.shape[1:])
    xf, ok = descend_flat(model, x, sigma, shape, max_steps=max_steps)
    return _assign(cps, xf, ok, tol)


def basin_fractions(
    model: ScoreOrDenoiser,
    cps: CriticalPoints,
    sigma: Any = None,
    *,
    n: int = 2000,
    box: tuple[Any, Any] | None = None,
    sampler: Callable[[int, torch.Generator | None], torch.Tensor] | None = None,
    tol: float | None = None,
    max_steps: int = 2000,
    generator: torch.Generator | None = None,
) -> pd.DataFrame:
    """Monte-Carlo basin fractions of the minima of a census, with Wilson intervals.

    Args:
        model: the model of the census.
        cps: its :class:`CriticalPoints`.
        sigma: noise level (defaults to ``cps.sigma``).
        n: number of starts (≥ 1).
        box: ``(low, high)`` of uniform starts; default the bounding box of the
            census points widened by half its range.
        sampler: ``sampler(n, generator) -> (n, *event_shape)``; replaces ``box``
            (e.g. Gaussian noise for the generative basins of a diffusion model).
        tol: an endpoint belongs to a minimum within this distance (default the
            census' label tolerance).
        max_steps: descent step cap.
        generator: ``torch.Generator`` of the starts.

    Returns:
        DataFrame, one row per minimum (``point`` = its row in ``cps.table``) plus a
        row ``point = −1`` for unassigned starts: ``point``, ``label``, ``count``,
        ``fraction``, ``ci_low``, ``ci_high``.
    """
    check_model(model)
    sigma = cps.sigma if sigma is None else sigma
    check_sigma(model, sigma)
    check_int(n, "n")
    x = _starts(cps, n, box, sampler, generator)
    rows = _descend_to_minima(model, cps, x, sigma, tol, max_steps)
    mins = torch.nonzero(cps.converged & (cps.morse_index == 0)).squeeze(1).tolist()
    ids = [*mins, -1]
    counts = torch.tensor([int((rows == i).sum()) for i in ids])
    lo, hi = wilson_interval(counts, n)
    labels = [cps.table["label"].iloc[i] for i in mins] + ["unassigned"]
    return pd.DataFrame(
        {
            "point": ids,
            "label": labels,
            "count": counts.numpy(),
            "fraction": (counts / n).numpy(),
            "ci_low": lo.numpy(),
            "ci_high": hi.numpy(),
        }
    )


def _starts(
    cps: CriticalPoints,
    n: int,
    box: Any,
    sampler: Any,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Flat starts ``(n, d)`` in float64 on the census' device."""
    pts = cps.points.reshape(len(cps), -1)
    d = pts.shape[1]
    if sampler is not None:
        if not callable(sampler):
            raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
        x = check_tensor(sampler(n, generator), "sampler output", min_ndim=1)
        if x.shape[0] != n or x[0].numel() != d:
            raise ValueError(f"sampler must return ({n}, ...) with {d} coordinates per row")
        return x.reshape(n, d).to(pts)
    if box is None:
        lo, hi = pts.amin(0), pts.amax(0)
        pad = 0.5 * (hi - lo).clamp_min(1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        lo = torch.as_tensor(box[0]).to(pts).expand(d)
        hi = torch.as_tensor(box[1]).to(pts).expand(d)
        if not bool((hi > lo).all()):
            raise ValueError("box must satisfy high > low in every coordinate")
    u = torch.rand(n, d, generator=generator, dtype=pts.dtype).to(pts.device)
    return lo + (hi - lo) * u


@dataclass
class BasinMap:
    """Minimum reached from each node of a 2-D grid.

    Attributes:
        xs: ``(W,)`` plane coordinates along the first direction.
        ys: ``(H,)`` along the second.
        labels: ``(H, W)`` long, the row of ``cps.table`` of the minimum reached
            (−1: no census minimum reached).
        origin: ``(d,)`` plane origin; directions: ``(2, d)`` orthonormal plane axes.
    """

    xs: torch.Tensor
    ys: torch.Tensor
    labels: torch.Tensor
    origin: torch.Tensor
    directions: torch.Tensor


def basin_map(
    model: ScoreOrDenoiser,
    cps: CriticalPoints,
    sigma: Any = None,
    *,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    resolution: int = 100,
    origin: torch.Tensor | None = None,
    directions: torch.Tensor | None = None,
    tol: float | None = None,
    max_steps: int = 2000,
) -> BasinMap:
    """Basin labels on a ``resolution × resolution`` grid, all nodes descended in one batch.

    Args:
        model: as in :func:`basin_fractions`.
        cps: as in :func:`basin_fractions`.
        sigma: as in :func:`basin_fractions`.
        xlim: plane-coordinate ranges; default the census points' range
            widened by half.
        ylim: plane-coordinate ranges; default the census points' range
            widened by half.
        resolution: nodes per axis (≥ 2).
        origin: ``(d,)`` plane origin (default 0 for d = 2, else the first minimum).
        directions: ``(2, d)`` plane axes, orthonormalized (default the coordinate
            axes for d = 2; for d > 2 the plane through the first three minima).
        tol: assignment distance (default the census' label tolerance).
        max_steps: descent step cap.
    """
    check_model(model)
    sigma = cps.sigma if sigma is None else sigma
    check_sigma(model, sigma)
    check_int(resolution, "resolution", minimum=2)
    pts = cps.points.reshape(len(cps), -1)
    d = pts.shape[1]
    origin, axes = _plane(cps, pts, origin, directions)
    proj = (pts - origin) @ axes.T
    lims = []
    for j, lim in enumerate((xlim, ylim)):
        if lim is None:
            lo, hi = float(proj[:, j].min()), float(proj[:, j].max())
            pad = 0.5 * max(hi - lo, 1e-3)
            lim = (lo - pad, hi + pad)
        if not lim[1] > lim[0]:
            raise ValueError(f"{'xy'[j]}lim must be (low, high) with high > low, got {lim}")
        lims.append(lim)
    xs = torch.linspace(*lims[0], resolution, dtype=pts.dtype)
    ys = torch.linspace(*lims[1], resolution, dtype=pts.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = origin + gx.reshape(-1, 1) * axes[0] + gy.reshape(-1, 1) * axes[1]
    rows = _descend_to_minima(model, cps, grid.reshape(-1, d), sigma, tol, max_steps)
    return BasinMap(xs, ys, rows.reshape(resolution, resolution), origin, axes)


def _plane(
    cps: CriticalPoints, pts: torch.Tensor, origin: Any, directions: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    d = pts.shape[1]
    if directions is None:
        if d == 2:
            directions = torch.eye(2, dtype=pts.dtype)
        else:
            mins = cps.minima.reshape(-1, d)
            if mins.shape[0] < 3:
                raise ValueError("directions is required for d > 2 with fewer than 3 minima")
            directions = torch.stack([mins[1] - mins[0], mins[2] - mins[0]])
            origin = mins[0] if origin is None else origin
    directions = check_tensor(directions, "directions", ndim=2).to(pts)
    if directions.shape != (2, d):
        raise ValueError(f"directions must have shape (2, {d}), got {tuple(directions.shape)}")
    q, r = torch.linalg.qr(directions.T)
    if bool((r.diagonal().abs() < 1e-12).any()):
        raise ValueError("directions must be linearly independent")
    origin = torch.zeros(d, dtype=pts.dtype) if origin is None else origin
    origin = check_tensor(torch.as_tensor(origin), "origin").reshape(-1).to(pts)
    if origin.shape[0] != d:
        raise ValueError(f"origin must have {d} coordinates, got {origin.shape[0]}")
    return origin, (q.T * torch.sign(r.diagonal())[:, None])


@dataclass
class BasinRadius:
    """Result of :func:`basin_radius`.

    Attributes:
        probe_sigmas: ``(L,)`` probe noise levels, ascending.
        recovery: ``(P, L)`` fraction of trials recovered per point and level.
        ci_low: ``(P, L)`` 95 % Wilson bounds.
        ci_high: ``(P, L)`` 95 % Wilson bounds.
        radius: ``(P,)`` largest level such that it and every smaller level are
            recovered with probability ≥ ``p`` (NaN if even the smallest is not).
        table: tidy DataFrame (``point``, ``probe_sigma``, ``recovery``, ``ci_low``,
            ``ci_high``, ``n_trials``).
    """

    probe_sigmas: np.ndarray
    recovery: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    radius: np.ndarray
    table: pd.DataFrame


def basin_radius(
    model: ScoreOrDenoiser,
    points: torch.Tensor,
    sigma: Any,
    probe_sigmas: Sequence[float] | torch.Tensor,
    n_trials: int,
    delta: float,
    p: float = 0.5,
    *,
    reverse: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None,
    max_steps: int = 2000,
    generator: torch.Generator | None = None,
) -> BasinRadius:
    """Pham et al. 2025 critical-noise probe of the basin around each point.

    For every point ``x*``, probe noise level ``s`` and trial: ``x = x* + s z``,
    ``z ~ N(0, I)``; run the reverse dynamics and count the trial recovered when
    ``‖x_final − x*‖ ≤ δ``. All ``P·L·n_trials`` trials run in one batch.

    Args:
        model: the model (used by the default reverse dynamics).
        points: ``(P, *event_shape)`` attractors to probe (e.g. training points).
        sigma: the model's (small) noise level σ at which the default reverse
            dynamics (:func:`memscape.descend`: update map / gradient flow) runs;
            ``None`` for models that are not noise-conditioned.
        probe_sigmas: the noise levels ``s ≥ 0`` added to the points (sorted ascending
            internally); not the model's σ.
        n_trials: trials per point and level (≥ 1).
        delta: recovery distance δ > 0.
        p: recovery probability defining the radius, in (0, 1].
        reverse: ``reverse(x, generator) -> x_final`` replacing the default, e.g. a
            reverse-SDE sampler started at noise level ``s``.
        max_steps: descent step cap of the default reverse dynamics.
        generator: ``torch.Generator`` for the noise (and ``reverse``).
    """
    check_model(model)
    check_sigma(model, sigma)
    points = check_tensor(points, "points", min_ndim=1)
    check_int(n_trials, "n_trials")
    check_positive(delta, "delta")
    check_positive(p, "p")
    if p > 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    levels = torch.as_tensor(probe_sigmas, dtype=torch.float64).reshape(-1).sort().values
    if levels.numel() == 0 or not bool(torch.isfinite(levels).all()) or bool((levels < 0).any()):
        raise ValueError("probe_sigmas must be a non-empty sequence of finite levels >= 0")
    if reverse is not None and not callable(reverse):
        raise TypeError(f"reverse must be callable, got {type(reverse).__name__}")
    shape = event_shape(model, points)
    n_pts, n_lev = points.shape[0], levels.numel()
    flat = points.reshape(n_pts, -1)
    d = flat.shape[1]
    z = torch.randn(n_pts, n_lev, n_trials, d, generator=generator, dtype=flat.dtype)
    z = z.to(flat.device)
    lev = levels.to(flat)
    x = flat[:, None, None, :] + lev[None, :, None, None] * z
    x = x.reshape(-1, d)
    if reverse is None:
        from memscape.landscape._descent import descend_flat

        xf, _ = descend_flat(model, x, sigma, shape, max_steps=max_steps)
    else:
        xf = reverse(x.reshape(-1, *shape), generator).reshape(-1, d)
    xf = xf.reshape(n_pts, n_lev, n_trials, d)
    ok = (xf - flat[:, None, None, :]).norm(dim=-1) <= delta
    counts = ok.sum(-1).cpu()
    rec = (counts.to(torch.float64) / n_trials).numpy()
    lo, hi = wilson_interval(counts, n_trials)
    radius = np.full(n_pts, math.nan)
    lev_np = levels.numpy()
    for i in range(n_pts):
        good = np.cumprod(rec[i] >= p).astype(bool)
        if good.any():
            radius[i] = lev_np[good][-1]
    table = pd.DataFrame(
        {
            "point": np.repeat(np.arange(n_pts), n_lev),
            "probe_sigma": np.tile(lev_np, n_pts),
            "recovery": rec.reshape(-1),
            "ci_low": lo.numpy().reshape(-1),
            "ci_high": hi.numpy().reshape(-1),
            "n_trials": n_trials,
        }
    )
    return BasinRadius(lev_np, rec, lo.numpy(), hi.numpy(), radius, table)
