"""Census of critical points: minima, saddles and maxima of ``E(·, σ)``.

Method (descent, then Newton/Levenberg–Marquardt; Wales 2003, *Energy Landscapes*):

1. **Minima**: batched multi-start descent with :func:`memscape.descend` (the
   model's update map, e.g. one exact denoising / CCCP step, when it has one;
   otherwise a clipped gradient flow), then Newton polishing.
2. **Saddles and maxima**: Levenberg–Marquardt on ``∇E = 0``
   (:func:`newton_refine`) from raw random starts, from midpoints of pairs of
   minima (index-1 saddles between two basins) and from centroids of triples and
   of all minima (higher-index points), all in one batch.
3. Deduplication within ``dedupe_tol``, Hessian spectra (:func:`hessian_spectrum`),
   labels (:func:`label_points`) and Monte-Carlo basin fractions with Wilson
   intervals from the random descent starts.

Non-converged candidates are kept as rows with ``converged = False`` and
``morse_index = −1``. For a coercive ``E`` on ℝᵈ whose critical points are all
non-degenerate, ``Σ(−1)^index = 1`` (Milnor, *Morse Theory*, Thm 5.2 with the
Euler characteristic of ℝᵈ); ``complete`` reports that necessary condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import pandas as pd
import torch

from memscape._validation import (
    check_device,
    check_dtype,
    check_generator,
    check_int,
    check_positive,
    check_tensor,
)
from memscape.landscape._cluster import dedupe
from memscape.landscape._descent import descend_flat
from memscape.landscape._fields import (
    check_model,
    check_sigma,
    event_shape,
    flat_score,
    has_energy,
)
from memscape.landscape.basins import wilson_interval
from memscape.landscape.labels import default_tolerance, label_points, median_nn_distance
from memscape.landscape.morse import HYPERBOLIC_RTOL, hessian_spectrum, is_hyperbolic
from memscape.landscape.newton import default_tol, newton_refine
from memscape.protocol import ScoreOrDenoiser

__all__ = ["CriticalPoints", "critical_points", "default_patterns"]

MAX_TABLE_COORDS = 32  # up to this d, locations are x0..x{d-1} columns; else one "x" column


def default_patterns(model: object) -> torch.Tensor | None:
    """A model's stored / training patterns, flattened ``(K, d)``, or ``None``.

    Looks for ``memories``, ``data`` or ``patterns`` attributes, in that order.
    """
    for name in ("memories", "data", "patterns"):
        p = getattr(model, name, None)
        if isinstance(p, torch.Tensor):
            return p.reshape(p.shape[0], -1)
    return None


@dataclass
class CriticalPoints:
    """The critical points of one landscape ``E(·, σ)`` and their analysis.

    Attributes:
        points: ``(N, *event_shape)`` locations, one per table row (converged or not).
        table: tidy :class:`pandas.DataFrame`, one row per point (see
            :func:`critical_points` for the columns).
        eigenvalues: ``(N, k)`` Hessian eigenvalues, ascending (``k = d`` for dense).
        sigma: the noise level of the landscape (``None`` if not conditioned).
        discrete: ``True`` for a census of a discrete (±1) model's fixed points.
        info: search statistics (starts, seeds, tolerances).
    """

    points: torch.Tensor
    table: pd.DataFrame
    eigenvalues: torch.Tensor
    sigma: Any = None
    discrete: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.points.shape[0]

    def __repr__(self) -> str:
        counts = self.table.loc[self.table.converged, "morse_index"].value_counts().sort_index()
        idx = ", ".join(f"index {int(i)}: {int(c)}" for i, c in counts.items())
        return (
            f"CriticalPoints(n={len(self)}, {idx or 'none converged'}, "
            f"unconverged={int((~self.table.converged).sum())}, sigma={self.sigma})"
        )

    # ----------------------------------------------------------- columns as tensors
    @property
    def morse_index(self) -> torch.Tensor:
        """Morse index per point ``(N,)`` long (−1 where not converged)."""
        return torch.tensor(self.table["morse_index"].to_numpy(), dtype=torch.long)

    @property
    def converged(self) -> torch.Tensor:
        """``(N,)`` bool: ``‖∇E‖ ≤ tol`` (for discrete models: a fixed point)."""
        return torch.tensor(self.table["converged"].to_numpy(), dtype=torch.bool)

    @property
    def energy(self) -> torch.Tensor:
        """Energy per point ``(N,)`` (NaN for score-only models)."""
        return torch.tensor(self.table["energy"].to_numpy(), dtype=torch.float64)

    @property
    def labels(self) -> list[str]:
        """Label per point (``memory``, ``mixture``, ``spurious``, ``saddle``, ``maximum``, ...)."""
        return self.table["label"].tolist()

    def of_index(self, index: int) -> torch.Tensor:
        """Converged points of a given Morse index: ``(n, *event_shape)``."""
        return self.points[self.converged & (self.morse_index == index)]

    @property
    def minima(self) -> torch.Tensor:
        """Converged minima (index 0): ``(n, *event_shape)``."""
        return self.of_index(0)

    @property
    def saddles(self) -> torch.Tensor:
        """Converged index-1 saddles: ``(n, *event_shape)``."""
        return self.of_index(1)

    # ----------------------------------------------------------- Morse theory
    def euler_characteristic(self) -> int:
        """``Σ (−1)^index`` over the converged points (1 on ℝᵈ for a complete census)."""
        idx = self.morse_index[self.converged]
        return int(((-1) ** idx).sum()) if idx.numel() else 0

    def is_morse(self, rtol: float = HYPERBOLIC_RTOL) -> bool:
        """All converged points non-degenerate (:func:`~memscape.landscape.morse.is_hyperbolic`).

        ``min|eig| > rtol · max|eig|`` at each. Always ``False`` for discrete models
        (no Hessian).
        """
        if self.discrete:
            return False
        ev = self.eigenvalues[self.converged]
        if ev.numel() == 0:
            return False
        return bool(is_hyperbolic(ev, rtol=rtol).all())

    @property
    def complete(self) -> bool:
        """Necessary condition for a complete census of a coercive Morse function on ℝᵈ.

        ``True`` when :meth:`is_morse` and the Euler characteristic equals 1. (A census
        can satisfy it and still miss a pair of points whose indices differ by one.)
        Always ``False`` for discrete models, where the identity does not apply.
        """
        return (not self.discrete) and self.is_morse() and self.euler_characteristic() == 1

    @classmethod
    def from_points(
        cls,
        model: ScoreOrDenoiser,
        points: torch.Tensor,
        sigma: Any = None,
        *,
        converged: torch.Tensor | None = None,
        patterns: torch.Tensor | None = None,
        label_tol: float | None = None,
        basin_counts: torch.Tensor | None = None,
        n_basin_starts: int = 0,
        source: list[str] | None = None,
        n_eigs: int | None = None,
        tol: float | None = None,
        info: dict[str, Any] | None = None,
    ) -> CriticalPoints:
        """Analyse given critical points (no search): energies, spectra, indices, labels.

        Args:
            model: any object following the protocol.
            points: ``(N, *event_shape)`` critical points (e.g. from :func:`newton_refine`).
            sigma: noise level for noise-conditioned models.
            converged: ``(N,)`` bool; default recomputed as ``‖∇E‖ ≤ tol``.
            patterns: ``(K, d)`` patterns for labels; default the model's own.
            label_tol: distance tolerance of the labels (default :func:`default_tolerance`).
            basin_counts: ``(N,)`` descent starts that ended at each point.
            n_basin_starts: number of those starts (denominator of the fractions).
            source: how each point was found (a string per point).
            n_eigs: lowest eigenvalues computed when ``d > 256`` (Lanczos).
            tol: gradient tolerance (default 1e-8 in float64).
            info: search statistics to keep in :attr:`info`.
        """
        check_model(model)
        points = check_tensor(points, "points", min_ndim=1)
        shape = event_shape(model, points)
        n = points.shape[0]
        flat = points.reshape(n, -1)
        d = flat.shape[1]
        tol = default_tol(points.dtype) if tol is None else tol
        gnorm = flat_score(model, flat, sigma, shape).norm(dim=1)
        conv = gnorm <= tol if converged is None else converged.to(torch.bool).cpu()
        spec = hessian_spectrum(model, points, sigma, k=n_eigs)
        ev = spec.eigenvalues.detach().cpu()
        index = torch.where(conv.cpu(), spec.morse_index().cpu(), torch.tensor(-1))
        energy = (
            model.energy(points, sigma).detach().cpu().to(torch.float64)
            if has_energy(model)
            else torch.full((n,), float("nan"), dtype=torch.float64)
        )
        pats = default_patterns(model) if patterns is None else patterns.reshape(-1, d)
        pats = None if pats is None else pats.to(flat)
        ltol = default_tolerance(pats) if label_tol is None else label_tol
        labels = label_points(flat.detach(), index, d, pats, ltol)
        columns: dict[str, Any] = {}
        if d <= MAX_TABLE_COORDS:
            for j in range(d):
                columns[f"x{j}"] = flat[:, j].detach().cpu().numpy()
        else:
            columns["x"] = list(flat.detach().cpu().numpy())
        columns.update(
            energy=energy.numpy(),
            score_norm=gnorm.detach().cpu().numpy(),
            morse_index=index.numpy(),
            hyperbolicity=spec.hyperbolicity().cpu().numpy(),
            min_eigenvalue=ev[:, 0].numpy(),
            eigenvalues=list(ev.numpy()),
            index_complete=[spec.complete or int(i) < ev.shape[1] for i in index],
            asymmetry=spec.asymmetry.cpu().numpy(),
            converged=conv.cpu().numpy(),
        )
        columns.update(labels)
        columns["kind"] = [_kind(int(i), d) for i in index]
        columns.update(_basin_columns(basin_counts, n_basin_starts, index))
        columns["source"] = source if source is not None else ["given"] * n
        info = dict(info or {})
        info.update(tol=tol, label_tol=ltol)
        return cls(points.detach(), pd.DataFrame(columns), ev, sigma, False, info)


def _kind(index: int, d: int) -> str:
    if index < 0:
        return "unconverged"
    return "minimum" if index == 0 else ("maximum" if index == d else f"saddle-{index}")


def _basin_columns(counts: torch.Tensor | None, n: int, index: torch.Tensor) -> dict[str, Any]:
    m = index.shape[0]
    nan = [float("nan")] * m
    if counts is None or n == 0:
        return {"basin_fraction": nan, "basin_ci_low": nan, "basin_ci_high": nan}
    frac = counts.to(torch.float64) / n
    lo, hi = wilson_interval(counts, n)
    is_min = index == 0
    nan_t = torch.tensor(float("nan"), dtype=torch.float64)
    return {
        "basin_count": torch.where(is_min, counts, torch.zeros_like(counts)).numpy(),
        "basin_fraction": torch.where(is_min, frac, nan_t).numpy(),
        "basin_ci_low": torch.where(is_min, lo, nan_t).numpy(),
        "basin_ci_high": torch.where(is_min, hi, nan_t).numpy(),
    }


# ---------------------------------------------------------------------- search
def critical_points(
    model: ScoreOrDenoiser,
    sigma: Any = None,
    *,
    n_starts: int = 1000,
    starts: torch.Tensor | None = None,
    box: tuple[Any, Any] | None = None,
    patterns: torch.Tensor | None = None,
    n_newton_starts: int | None = None,
    max_seeds: int = 1000,
    tol: float | None = None,
    dedupe_tol: float | None = None,
    label_tol: float | None = None,
    max_steps: int = 2000,
    n_eigs: int | None = None,
    discrete: bool | None = None,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    generator: torch.Generator | None = None,
) -> CriticalPoints:
    """Find and analyse the critical points of ``E(·, σ)`` (or a discrete model's fixed points).

    Args:
        model: any object following the protocol (``score`` or ``denoise``; ``energy``
            and ``hessian`` used when present). Models with ``discrete = True`` (±1
            states, e.g. ``ClassicalHopfield``) get the fixed-point census of
            :func:`memscape.landscape.discrete.discrete_fixed_points`.
        sigma: noise level σ > 0 (required for noise-conditioned models).
        n_starts: random descent starts (≥ 1), drawn uniformly in ``box``.
        starts: explicit starts ``(B, *event_shape)`` used instead of random ones.
        box: ``(low, high)`` floats or ``(d,)`` tensors bounding the random starts.
            Default: the patterns' bounding box widened by 10 % of its range and by σ
            on each side; ``[−3, 3]ᵈ`` for models without patterns.
        patterns: ``(K, *event_shape)`` stored/training patterns for seeding and labels;
            default ``model.memories`` / ``model.data`` / ``model.patterns``.
        n_newton_starts: random starts also sent straight to Newton (default
            ``min(n_starts, 128)``): finds saddles not between two found minima.
        max_seeds: cap on pair-midpoint and triple-centroid seeds.
        tol: ``‖∇E‖`` tolerance of convergence (default 1e-8 in float64).
        dedupe_tol: points closer than this are one point. Default ``10⁻⁴ ×`` the
            median nearest-neighbour distance of the patterns (``10⁻⁴`` without).
        label_tol: tolerance of ``memory`` / ``mixture`` labels (default a third of
            the median nearest-neighbour distance between patterns:
            :func:`memscape.landscape.labels.default_tolerance`).
        max_steps: descent step cap.
        n_eigs: lowest Hessian eigenvalues when ``d > 256`` (Lanczos; default 6).
        discrete: override ``model.discrete``.
        dtype: of the analysis (default float64).
        device: of the analysis (default the patterns' device or CPU).
        generator: ``torch.Generator`` for the random starts.

    Returns:
        :class:`CriticalPoints` whose ``table`` has one row per point with columns
        ``x0..x{d-1}`` (or ``x`` for d > 32), ``energy``, ``score_norm``,
        ``morse_index``, ``hyperbolicity`` (min |eig|), ``min_eigenvalue``,
        ``eigenvalues``, ``index_complete``, ``asymmetry``, ``converged``, ``label``,
        ``nearest_pattern``, ``nearest_distance``, ``nearest_sign``,
        ``mixture_distance``, ``kind``, ``basin_count``, ``basin_fraction``,
        ``basin_ci_low``/``basin_ci_high`` (95 % Wilson; minima only; fraction of
        the descent starts, random or given, ending there) and ``source``
        (``descent``, ``newton``, ``midpoint``, ``centroid3``, ``centroid``).
    """
    check_model(model)
    check_sigma(model, sigma)
    check_int(n_starts, "n_starts")
    check_int(max_seeds, "max_seeds")
    check_int(max_steps, "max_steps")
    if tol is not None:
        check_positive(tol, "tol")
    if dedupe_tol is not None:
        check_positive(dedupe_tol, "dedupe_tol")
    if label_tol is not None:
        check_positive(label_tol, "label_tol")
    generator = check_generator(generator)
    check_dtype(dtype)
    device = None if device is None else check_device(device)
    if n_newton_starts is not None:
        check_int(n_newton_starts, "n_newton_starts", minimum=0)
    pats = default_patterns(model) if patterns is None else check_tensor(patterns, "patterns")
    if discrete if discrete is not None else bool(getattr(model, "discrete", False)):
        from memscape.landscape.discrete import discrete_fixed_points

        return discrete_fixed_points(
            model, n_starts=n_starts, starts=starts, patterns=pats, label_tol=label_tol,
            max_steps=max_steps, generator=generator,
        )  # fmt: skip
    if device is None:
        device = pats.device if pats is not None else torch.device("cpu")
    if starts is not None:
        starts = check_tensor(starts, "starts", min_ndim=1).to(dtype=dtype, device=device)
    shape = event_shape(model, starts)
    if starts is not None and tuple(starts.shape[1:]) not in (shape, (torch.Size(shape).numel(),)):
        raise ValueError(
            f"starts must have shape (B, *event_shape) = (B, {', '.join(map(str, shape))}) "
            f"for {type(model).__name__}, got {tuple(starts.shape)}"
        )
    d = 1
    for s in shape:
        d *= s
    if pats is not None:
        pats = pats.reshape(pats.shape[0], -1).to(dtype=dtype, device=device)
        if pats.shape[1] != d:
            raise ValueError(f"patterns must have {d} coordinates per row, got {pats.shape[1]}")
    tol = default_tol(dtype) if tol is None else tol
    scale = median_nn_distance(pats) if pats is not None else 1.0
    dedupe_tol = 1e-4 * scale if dedupe_tol is None else dedupe_tol
    if starts is None:
        lo, hi = _box(box, pats, sigma, d, dtype, device)
        u = torch.rand(n_starts, d, generator=generator, dtype=dtype).to(device)
        x0 = lo + (hi - lo) * u
    else:
        x0 = starts.reshape(starts.shape[0], -1)
    n0 = x0.shape[0]

    # 1. minima by descent, then Newton on one representative per coarse cell
    xd, _ = descend_flat(model, x0, sigma, shape, max_steps=max_steps, scale=scale)
    reps, inv = dedupe(xd, 1e-2 * scale)
    cand = [xd[reps]]
    cand_src = ["descent"] * reps.numel()
    # 2. saddle seeds: raw random starts, midpoints and centroids of minima
    k_newton = min(n0, 128) if n_newton_starts is None else min(n_newton_starts, n0)
    ref_min = newton_refine(model, xd[reps].reshape(-1, *shape), sigma, tol=tol)
    mins = ref_min.x.reshape(-1, d)[ref_min.converged]
    seeds, seed_src = _seeds(mins, max_seeds)
    cand += [x0[:k_newton], seeds]
    cand_src += ["newton"] * k_newton + seed_src
    rest = torch.cat(cand)[reps.numel() :]
    if rest.shape[0]:
        rest = newton_refine(model, rest.reshape(-1, *shape), sigma, tol=tol).x.reshape(-1, d)
    refined = torch.cat([ref_min.x.reshape(-1, d), rest])
    gn = flat_score(model, refined, sigma, shape).norm(dim=1)
    conv = gn <= tol
    # 3. deduplicate: converged first (so they represent their groups), then the rest
    order = torch.cat([conv.nonzero().squeeze(1), (~conv).nonzero().squeeze(1)])
    group_reps, group = dedupe(refined[order], dedupe_tol)
    keep = order[group_reps]
    # basin counts: descent start -> coarse cell -> refined candidate -> group
    group_of_cand = torch.empty(refined.shape[0], dtype=torch.long, device=device)
    group_of_cand[order] = group
    start_group = group_of_cand[inv]
    conv_keep = conv[keep]
    start_ok = conv[inv]
    counts = torch.bincount(start_group[start_ok], minlength=keep.numel()).cpu()
    info = {
        "n_starts": n0,
        "n_newton_starts": k_newton,
        "n_seeds": seeds.shape[0],
        "n_candidates": refined.shape[0],
        "n_unconverged_candidates": int((~conv).sum()),
        "dedupe_tol": dedupe_tol,
    }
    return CriticalPoints.from_points(
        model,
        refined[keep].reshape(-1, *shape),
        sigma,
        converged=conv_keep,
        patterns=pats,
        label_tol=label_tol,
        basin_counts=counts,
        n_basin_starts=n0,
        source=[cand_src[int(i)] for i in keep],
        n_eigs=n_eigs,
        tol=tol,
        info=info,
    )


def _box(
    box: Any, pats: torch.Tensor | None, sigma: Any, d: int, dtype: torch.dtype, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds ``(d,), (d,)`` of the uniform start distribution."""
    if box is not None:
        if not isinstance(box, (tuple, list)) or len(box) != 2:
            raise TypeError("box must be a (low, high) pair of floats or (d,) tensors")
        lo = torch.as_tensor(box[0], dtype=dtype, device=device).expand(d)
        hi = torch.as_tensor(box[1], dtype=dtype, device=device).expand(d)
        if not bool((hi > lo).all()):
            raise ValueError("box must satisfy high > low in every coordinate")
        return lo, hi
    if pats is None:
        return torch.full((d,), -3.0, dtype=dtype, device=device), torch.full(
            (d,), 3.0, dtype=dtype, device=device
        )
    lo, hi = pats.amin(0), pats.amax(0)
    widen = float(sigma) if isinstance(sigma, (int, float)) else 0.0
    pad = 0.1 * (hi - lo).clamp_min(1e-12) + widen
    return lo - pad, hi + pad


def _seeds(mins: torch.Tensor, max_seeds: int) -> tuple[torch.Tensor, list[str]]:
    """Midpoints of pairs and centroids of triples (and of all) of the minima ``(M, d)``.

    All pairs/triples when few; otherwise pairs of k-nearest neighbours and triples
    from each point's nearest neighbours, capped at ``max_seeds``.
    """
    m = mins.shape[0]
    if m < 2:
        return mins[:0], []
    pairs: list[tuple[int, ...]]
    if m * (m - 1) // 2 <= max_seeds // 2:
        pairs = list(combinations(range(m), 2))
    else:
        k = min(m - 1, 4)
        nn = torch.cdist(mins, mins).topk(k + 1, largest=False).indices[:, 1:]
        pairs = sorted({tuple(sorted((i, int(j)))) for i in range(m) for j in nn[i]})
    triples: list[tuple[int, ...]] = []
    if m >= 3:
        if m * (m - 1) * (m - 2) // 6 <= max_seeds // 2:
            triples = list(combinations(range(m), 3))
        else:
            nn = torch.cdist(mins, mins).topk(3, largest=False).indices[:, 1:]
            triples = sorted({tuple(sorted((i, int(nn[i, 0]), int(nn[i, 1])))) for i in range(m)})
    pairs, triples = pairs[: max_seeds // 2], triples[: max_seeds // 2]
    pts = [mins[list(p)].mean(0) for p in pairs] + [mins[list(t)].mean(0) for t in triples]
    pts.append(mins.mean(0))
    src = ["midpoint"] * len(pairs) + ["centroid3"] * len(triples) + ["centroid"]
    return torch.stack(pts), src
