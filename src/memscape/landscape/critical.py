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
4. **Retries** (coercive models): while ``Σ(−1)^index ≠ 1``, up to ``retries``
   rounds seeded at ridge crossings, circumcentres of minima, saddle-cycle
   centroids and perturbed known points, refined by Levenberg–Marquardt and by
   deflated Newton away from the known points (Farrell, Birkisson & Funke 2015;
   :mod:`memscape.landscape.deflation`); a census that stays incomplete warns.

Non-converged candidates are kept as rows with ``converged = False`` and
``morse_index = −1``. For a coercive ``E`` on ℝᵈ whose critical points are all
non-degenerate, ``Σ(−1)^index = 1`` (Milnor, *Morse Theory*, Thm 5.2 with the
Euler characteristic of ℝᵈ); ``complete`` reports that necessary condition.
The default gradient tolerance follows the precision the model computes in
(:func:`memscape.landscape.newton.model_tol`: a float32 network's gradient is
converged at ``10⁻⁴`` of its scale, float64 at ``10⁻⁸``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_device, check_dtype, check_generator, check_int

# isort: split
from memscape._validation import check_choice, check_positive, check_tensor
from memscape.landscape._cluster import dedupe_converged_first
from memscape.landscape._descent import Search, first_search
from memscape.landscape._fields import (
    check_model,
    check_sigma,
    event_shape,
    flat_score,
    has_energy,
)
from memscape.landscape.basins import wilson_interval
from memscape.landscape.deflation import (
    complete_census,
    is_coercive,
    warn_incomplete,
    warn_unconverged,
)
from memscape.landscape.labels import default_tolerance, label_points, median_nn_distance
from memscape.landscape.morse import HYPERBOLIC_RTOL, hessian_spectrum, is_hyperbolic
from memscape.landscape.newton import HESSIAN_MODES, compute_dtype, model_tol, newton_refine
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
            tol: gradient tolerance (default as in :func:`critical_points`: 1e-8 when the
                model computes in float64, else relative to the gradient scale).
            info: search statistics to keep in :attr:`info`.
        """
        check_model(model)
        points = check_tensor(points, "points", min_ndim=1)
        shape = event_shape(model, points)
        n = points.shape[0]
        flat = points.reshape(n, -1)
        d = flat.shape[1]
        pats = default_patterns(model) if patterns is None else patterns.reshape(-1, d)
        pats = None if pats is None else pats.to(flat)
        if tol is None:
            length = median_nn_distance(pats) if pats is not None else 1.0
            tol = model_tol(model, flat, sigma, shape, length)
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
    seeds: bool = True,
    retries: int = 3,
    tol: float | None = None,
    dedupe_tol: float | None = None,
    label_tol: float | None = None,
    max_steps: int = 2000,
    n_eigs: int | None = None,
    discrete: bool | None = None,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    generator: torch.Generator | None = None,
    hessian: str = "auto",
) -> CriticalPoints:
    """Find and analyse the critical points of ``E(·, σ)`` (or a discrete model's fixed points).

    With ``seeds=True`` (the default) the search is the one of the module docstring; for
    a coercive model (:func:`memscape.landscape.deflation.is_coercive`: the exact
    empirical and Gaussian-mixture models, the modern Hopfield network, or any model
    with ``coercive = True``) whose census has ``Σ(−1)^index ≠ 1`` it then searches
    again, up to ``retries`` rounds, from circumcentres of minima, centroids of saddle
    cycles, midpoints, perturbed known points and by deflated Newton (Farrell,
    Birkisson & Funke 2015; :mod:`memscape.landscape.deflation`), and warns
    (``RuntimeWarning``) when the census stays incomplete. A census in which no
    candidate converged warns too, with the best gradient norm it reached.

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
        max_seeds: cap on pair-midpoint and triple-centroid seeds (0: none).
        seeds: ``False`` analyses only the starts (given or random): each is refined by
            Newton (Levenberg–Marquardt) to the critical point it converges to, with no
            descent, extra seeds or retries (basin columns are then NaN).
        retries: budget of further search rounds for an incomplete coercive census
            (0: no retries and no completeness warning, e.g. when only minima matter).
        tol: ``‖∇E‖`` tolerance of convergence. Default by the precision the model
            computes in (:func:`memscape.landscape.newton.model_tol`): 1e-8 in float64,
            ``1e-4 ×`` the gradient scale for a float32 network.
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
        hessian: how every Newton (Levenberg–Marquardt) refinement of the search uses
            the Hessian: ``"auto"`` (Hessian-vector products when ``d > 256``, dense
            matrices otherwise), ``"dense"`` or ``"hvp"``
            (:func:`memscape.landscape.newton.newton_refine`; the deflated Newton steps
            of the retries stay dense).

    Returns:
        :class:`CriticalPoints` whose ``table`` has one row per point with columns
        ``x0..x{d-1}`` (or ``x`` for d > 32), ``energy``, ``score_norm``,
        ``morse_index``, ``hyperbolicity`` (min |eig|), ``min_eigenvalue``,
        ``eigenvalues``, ``index_complete``, ``asymmetry``, ``converged``, ``label``,
        ``nearest_pattern``, ``nearest_distance``, ``nearest_sign``,
        ``mixture_distance``, ``kind``, ``basin_count``, ``basin_fraction``,
        ``basin_ci_low``/``basin_ci_high`` (95 % Wilson; minima only; fraction of
        the descent starts, random or given, ending there) and ``source``
        (``descent``, ``newton``, ``midpoint``, ``centroid3``, ``centroid``,
        ``start``, ``retry-<seed kind>``, ``deflation``). ``info`` holds the search
        statistics (``tol``, ``compute_dtype``, ``retries`` used, ``euler_sum`` …).
    """
    check_model(model)
    check_sigma(model, sigma)
    for value, name, least in ((n_starts, "n_starts", 1), (max_steps, "max_steps", 1),
                               (max_seeds, "max_seeds", 0), (retries, "retries", 0)):  # fmt: skip
        check_int(value, name, minimum=least)
    for opt, name in ((tol, "tol"), (dedupe_tol, "dedupe_tol"), (label_tol, "label_tol")):
        if opt is not None:
            check_positive(opt, name)
    if not isinstance(seeds, bool):
        raise TypeError(f"seeds must be True or False, got {type(seeds).__name__}")
    generator = check_generator(generator)
    check_dtype(dtype)
    device = None if device is None else check_device(device)
    if n_newton_starts is not None:
        check_int(n_newton_starts, "n_newton_starts", minimum=0)
    check_choice(hessian, HESSIAN_MODES, "hessian")
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
    d = torch.Size(shape).numel()
    if pats is not None:
        pats = pats.reshape(pats.shape[0], -1).to(dtype=dtype, device=device)
        if pats.shape[1] != d:
            raise ValueError(f"patterns must have {d} coordinates per row, got {pats.shape[1]}")
    scale = median_nn_distance(pats) if pats is not None else 1.0
    dedupe_tol = 1e-4 * scale if dedupe_tol is None else dedupe_tol
    lo, hi = _box(box, pats, sigma, d, dtype, device)
    if starts is None:
        u = torch.rand(n_starts, d, generator=generator, dtype=dtype).to(device)
        x0 = lo + (hi - lo) * u
    else:
        x0 = starts.reshape(starts.shape[0], -1)
    n0 = x0.shape[0]
    precision = compute_dtype(model, dtype)
    tol = model_tol(model, x0, sigma, shape, scale) if tol is None else tol
    if seeds:
        search = first_search(
            model, x0, sigma, shape, scale, tol, max_steps, max_seeds, n_newton_starts, hessian
        )
    else:
        res = newton_refine(model, x0.reshape(-1, *shape), sigma, tol=tol, hessian=hessian)
        search = Search(res.x.reshape(n0, d), res.grad_norm, ["start"] * n0, None, 0, 0)
    info: dict[str, Any] = {"n_starts": n0, "dedupe_tol": dedupe_tol, "retries": 0,
            "compute_dtype": str(precision).removeprefix("torch.")}  # fmt: skip

    def analyse(search: Search) -> CriticalPoints:
        """Deduplicate (converged first), count basins, analyse the distinct points."""
        conv = search.grad_norm <= tol
        keep, group = dedupe_converged_first(search.x, conv, dedupe_tol)
        counts = None
        if search.start_cand is not None:  # descent start -> candidate -> group
            ok = conv[search.start_cand]
            counts = torch.bincount(group[search.start_cand][ok], minlength=keep.numel()).cpu()
        info.update(
            n_newton_starts=search.n_newton, n_seeds=search.n_seeds,
            n_candidates=search.x.shape[0], n_unconverged_candidates=int((~conv).sum()),
        )  # fmt: skip
        return CriticalPoints.from_points(
            model, search.x[keep].reshape(-1, *shape), sigma, converged=conv[keep],
            patterns=pats, label_tol=label_tol, basin_counts=counts,
            n_basin_starts=n0 if counts is not None else 0,
            source=[search.source[int(i)] for i in keep], n_eigs=n_eigs, tol=tol, info=info,
        )  # fmt: skip

    cps = analyse(search)
    if not bool(cps.converged.any()) and search.x.shape[0]:
        warn_unconverged(search.x.shape[0], float(search.grad_norm.min()), tol, precision)
    conv = cps.converged.to(device)
    exact = bool(cps.table.index_complete[cps.table.converged].all())
    incomplete = seeds and exact and bool(conv.any()) and cps.euler_characteristic() != 1
    incomplete = incomplete and retries > 0 and is_coercive(model)  # χ(ℝᵈ) = 1 if coercive
    if incomplete:
        known = cps.points.reshape(-1, d)[conv]
        extra, extra_src, info["retries"] = complete_census(
            model, sigma, shape, known, cps.morse_index.to(device)[conv], tol=tol,
            dedupe_tol=dedupe_tol, length=scale, box=(lo, hi), retries=retries,
            generator=generator, hessian=hessian,
        )  # fmt: skip
        if extra.shape[0]:
            grad_norm = flat_score(model, extra, sigma, shape).norm(dim=1)
            cps = analyse(search.extend(extra, grad_norm, extra_src))
    if incomplete and cps.euler_characteristic() != 1:
        warn_incomplete(model, sigma, cps.morse_index[cps.converged], info["retries"])
    cps.info.update(retries=info["retries"], euler_sum=cps.euler_characteristic())
    return cps


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
