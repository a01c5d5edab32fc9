"""Complete censuses: deflated Newton and retries for the critical points a search missed.

**Deflation** (Farrell, Birkisson & Funke 2015, "Deflation techniques for finding distinct
solutions of nonlinear partial differential equations", SIAM J. Sci. Comput. 37(4):A2026,
§2–3). To find a zero of ``g = ∇E`` other than the known roots ``r_1 … r_n``, Newton's
method is applied to ``G(x) = M(x) g(x)`` with the shifted deflation operator

    M(x) = Π_i (‖x − r_i‖^{−p} + shift)          (distances in units of the spacing ℓ)

``G`` has the zeros of ``g`` away from the ``r_i``, and ``‖G‖ ~ ‖x − r_i‖^{1−p}`` blows up
at each known root (``p > 1``), so no iteration converges to one again. By the
Sherman–Morrison formula the Newton step of ``G`` is the Newton step ``δ = −H⁻¹g`` of
``g`` rescaled,

    δ_G = δ / (1 − ⟨∇log M(x), δ⟩),

so one Hessian factorization serves both; the step is globalised by backtracking on
``log ‖G‖``.

**Retries** (:func:`complete_census`). A coercive Morse function on ℝᵈ has
``Σ_x (−1)^index(x) = χ(ℝᵈ) = 1`` (Milnor, *Morse Theory*, Thm 5.2). While the census
misses that, each round seeds Levenberg–Marquardt and deflated Newton from points where
the missing critical points lie: where the segment between two minima crosses the
ridge between them (:func:`memscape.landscape._descent.ridge_points`; index-1 saddles),
circumcentres of triples of minima (the Voronoi vertices near which the maxima of a
sharp landscape sit), centroids of triples of saddles and maxima (the cycles of saddles
around a maximum), midpoints of minimum–saddle and saddle–saddle pairs, the known
points displaced along their Hessian eigenvectors, and uniform points of the box.
"""

from __future__ import annotations

import math
import warnings
from itertools import combinations
from typing import Any

import torch

from memscape.landscape._cluster import dedupe
from memscape.landscape._descent import ridge_points
from memscape.landscape._fields import flat_score, has_energy, slice_sigma
from memscape.landscape.krylov import forcing_term
from memscape.landscape.morse import hessian_spectrum
from memscape.landscape.newton import lm_factor, lm_step, newton_refine, resolve_hessian
from memscape.progress import report
from memscape.protocol import ScoreOrDenoiser

__all__ = ["complete_census", "deflated_newton", "is_coercive"]

#: p of M(x): ‖G‖ grows like ‖x − r‖^{1−p} at a known root r, so p = 2 repels as 1/‖x − r‖
#: (p > 1 is needed; Farrell et al. 2015 use p = 2 throughout).
DEFLATION_POWER = 2.0

#: shift of M(x): M → 1 far from every known root (in units of the spacing ℓ), where the
#: deflated step is Newton's own (Farrell et al. 2015's shifted operator, shift 1).
DEFLATION_SHIFT = 1.0

#: Iterations of deflated Newton per start (Newton is quadratic near a new root; a start
#: that has not found one by then is not near one).
DEFLATION_MAX_ITER = 60

#: Halvings of the deflated step before a start is declared stalled.
LINE_SEARCH_HALVINGS = 12

#: Longest deflated step, in units of ℓ (the step blows up where 1 − ⟨∇log M, δ⟩ → 0).
MAX_STEP = 1.0

#: Tikhonov damping of the Newton step relative to mean(λ²): a pseudo-inverse near singular H.
STEP_DAMPING = 1e-12

#: Seeds per retry round (Levenberg–Marquardt), the first DEFLATION_STARTS also deflated.
RETRY_SEEDS = 256
DEFLATION_STARTS = 64

#: Share of a round's seeds by kind (:func:`retry_seeds`): ridge crossings find most of the
#: missed saddles and circumcentres most of the missed maxima (random 2-D exact models).
SEED_WEIGHTS = {
    "ridge": 4,
    "circumcentre": 2,
    "cycle": 1,
    "midpoint": 1,
    "perturbed": 1,
    "random": 1,
}

#: Displacement of the known points along their eigenvectors, in units of ℓ, per round.
PERTURBATION = 0.3


def is_coercive(model: object) -> bool:
    """``E → ∞`` as ``‖x‖ → ∞``, so ``Σ(−1)^index = 1`` for a complete Morse census.

    ``model.coercive`` when the model sets it; otherwise ``True`` for the exact empirical
    model and the Gaussian mixture (``−log`` of a density with Gaussian tails) and the
    modern Hopfield network (``½‖ξ‖²`` dominates the log-sum-exp; Ramsauer et al. 2020, eq. 2).
    """
    flag = getattr(model, "coercive", None)
    if flag is not None:
        return bool(flag)
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.diffusion.mixture import GaussianMixtureDiffusion
    from memscape.memories.modern import ModernHopfield

    return isinstance(model, (EmpiricalDiffusion, GaussianMixtureDiffusion, ModernHopfield))


def _log_deflation(
    x: torch.Tensor, roots: torch.Tensor, length: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log M(x)`` ``(n,)`` and ``∇log M(x)`` ``(n, d)`` for flat ``x`` and roots ``(m, d)``."""
    if roots.shape[0] == 0:
        return x.new_zeros(x.shape[0]), torch.zeros_like(x)
    dist = (torch.cdist(x, roots) / length).clamp_min(torch.finfo(x.dtype).tiny)
    log_t = -DEFLATION_POWER * dist.log()  # log ‖x − r‖^{−p}
    log_s = math.log(DEFLATION_SHIFT)
    log_m = torch.logaddexp(log_t, torch.full_like(log_t, log_s)).sum(1)
    # ∂/∂x log(d^{−p} + s) = −p · d^{−p}/(d^{−p} + s) · (x − r)/(ℓ² d²)
    c = -DEFLATION_POWER * torch.sigmoid(log_t - log_s) / (length * dist) ** 2
    return log_m, x * c.sum(1, keepdim=True) - c @ roots


def deflated_newton(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
    roots: torch.Tensor,
    *,
    tol: float,
    length: float,
    max_iter: int = DEFLATION_MAX_ITER,
    hessian: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deflated Newton on ``∇E = 0`` away from ``roots`` (Farrell et al. 2015, §3).

    The Newton step ``δ`` of the undeflated problem (damped, from dense Hessians or, with
    ``hessian="hvp"``, from Hessian-vector products as in
    :func:`memscape.landscape.newton_refine`) becomes the deflated one by their eq. 3.3,
    ``δ / (1 − ⟨∇log M, δ⟩)``.

    Args:
        model: any object following the protocol (symmetric ``H`` for energy models).
        x: flat starts ``(B, d)``.
        sigma: noise level (float or ``(B,)``).
        shape: the model's event shape.
        roots: known critical points ``(m, d)`` to deflate.
        tol: a start has converged when ``‖∇E‖ ≤ tol``.
        length: ℓ, the unit of distance of ``M(x)`` and of the step cap.
        max_iter: iteration cap.
        hessian: ``"auto"`` (Hessian-vector products when ``d > 256``), ``"dense"`` or
            ``"hvp"`` (:data:`memscape.landscape.newton.HESSIAN_MODES`).

    Returns:
        ``(x, grad_norm)``: flat end states ``(B, d)`` and their ``‖∇E‖`` ``(B,)``.
    """
    x = x.clone()
    symmetric = has_energy(model)
    mode = resolve_hessian(hessian, x.shape[1])
    g = -flat_score(model, x, sigma, shape)
    gn = g.norm(dim=1)
    gn_prev: torch.Tensor | None = None  # ‖G‖'s Newton residual a step ago (forcing term)
    log_m, dlog_m = _log_deflation(x, roots, length)
    res = log_m + gn.log()  # log ‖G‖
    active = torch.isfinite(res) & (gn > tol)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        sig = slice_sigma(sigma, idx)
        eta = forcing_term(gn[idx], None if gn_prev is None else gn_prev[idx], tol)
        gn_prev = gn.clone()
        fac = lm_factor(model, x[idx], sig, shape, g[idx], mode, eta)
        delta = lm_step(fac, STEP_DAMPING * fac[-1], mode, symmetric)
        step = delta / (1 - (dlog_m[idx] * delta).sum(1, keepdim=True))
        norm = step.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        step = step * torch.clamp(MAX_STEP * length / norm, max=1.0)
        pending = torch.isfinite(step).all(1)  # a non-finite step (1 − ⟨∇log M, δ⟩ = 0): stop
        active[idx[~pending]] = False
        step = torch.where(pending[:, None], step, torch.zeros_like(step))
        t = 1.0
        for _ in range(LINE_SEARCH_HALVINGS):
            rows = pending.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            x_try = x[idx[rows]] + t * step[rows]
            g_try = -flat_score(model, x_try, slice_sigma(sig, rows), shape)
            lm_try, dlm_try = _log_deflation(x_try, roots, length)
            res_try = lm_try + g_try.norm(dim=1).log()
            ok = torch.isfinite(res_try) & (res_try < res[idx[rows]])
            acc = idx[rows[ok]]
            x[acc], g[acc], gn[acc] = x_try[ok], g_try[ok], g_try[ok].norm(dim=1)
            res[acc], dlog_m[acc] = res_try[ok], dlm_try[ok]
            pending[rows[ok]] = False
            t /= 2
        active[idx[pending]] = False  # no decrease of ‖G‖ along the step: stalled
        active &= gn > tol
    return x, gn


def _circumcentres(p: torch.Tensor, triples: list[tuple[int, ...]]) -> torch.Tensor:
    """Circumcentres ``(n, d)`` of triangles of points ``p`` ``(m, d)`` (degenerate ones dropped)."""
    if not triples:
        return p[:0]
    t = torch.tensor(triples, device=p.device)
    a, u, v = p[t[:, 0]], p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]]
    uu, uv, vv = (u * u).sum(1), (u * v).sum(1), (v * v).sum(1)
    det = uu * vv - uv**2
    ok = det > 1e-6 * uu * vv  # not collinear
    alpha = 0.5 * (vv * (uu - uv)) / det.clamp_min(torch.finfo(p.dtype).tiny)
    beta = 0.5 * (uu * (vv - uv)) / det.clamp_min(torch.finfo(p.dtype).tiny)
    return (a + alpha[:, None] * u + beta[:, None] * v)[ok]


def _near_tuples(p: torch.Tensor, size: int, cap: int) -> list[tuple[int, ...]]:
    """All ``size``-subsets of the rows of ``p`` when few; else each row with its nearest."""
    m = p.shape[0]
    if m < size:
        return []
    if math.comb(m, size) <= cap:
        return list(combinations(range(m), size))
    k = min(m - 1, size + 1)
    nn = torch.cdist(p, p).topk(k + 1, largest=False).indices[:, 1:].tolist()
    out = {tuple(sorted((i, *c))) for i in range(m) for c in combinations(nn[i], size - 1)}
    return sorted(out)[:cap]


def _pairs_between(a: torch.Tensor, b: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Midpoints of each row of ``a`` with its ``k`` nearest rows of ``b``: ``(n, d)``."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return a[:0]
    dist = torch.cdist(a, b)
    dist[dist == 0] = float("inf")  # a point is not its own pair
    k = min(k, b.shape[0])
    nn = dist.topk(k, largest=False)
    mids = 0.5 * (a[:, None, :] + b[nn.indices])
    return mids[torch.isfinite(nn.values)]


def retry_seeds(
    model: ScoreOrDenoiser,
    sigma: Any,
    shape: tuple[int, ...],
    points: torch.Tensor,
    index: torch.Tensor,
    vectors: torch.Tensor,
    box: tuple[torch.Tensor, torch.Tensor],
    round_: int,
    length: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, list[str]]:
    """Seeds ``(n ≤ RETRY_SEEDS, d)`` of one retry round and their kinds (see the module).

    The kinds take turns in proportion to :data:`SEED_WEIGHTS` (each list nearest-first
    and rotated by the round), so every kind is tried even when one alone could fill
    the round.
    """
    mins, upper = points[index == 0], points[index > 0]
    lo, hi = box
    pairs = torch.tensor(_near_tuples(mins, 2, RETRY_SEEDS), dtype=torch.long).reshape(-1, 2)
    pairs = pairs.to(mins.device)
    pairs = pairs[(mins[pairs[:, 0]] - mins[pairs[:, 1]]).norm(dim=1).argsort()]
    circ = _circumcentres(mins, _near_tuples(mins, 3, RETRY_SEEDS))
    circ = circ[((circ >= lo) & (circ <= hi)).all(1)]
    if circ.shape[0]:  # Voronoi vertices (Delaunay) first: the 3 nearest minima equidistant
        near = torch.cdist(circ, mins).sort(1).values
        circ = circ[(near[:, 0] / near[:, 2]).argsort(descending=True)]
    cycles = _near_tuples(upper, 3, RETRY_SEEDS)
    eps = PERTURBATION * length * (round_ + 1)
    v = vectors[:, :, : min(vectors.shape[2], 4)].transpose(1, 2)  # (M, k ≤ 4, d)
    u = torch.rand(32 * (round_ + 1), points.shape[1], generator=generator, dtype=points.dtype)
    kinds = {
        "ridge": ridge_points(model, mins[pairs[:, 0]], mins[pairs[:, 1]], sigma, shape),
        "circumcentre": circ,
        "cycle": torch.stack([upper[list(t)].mean(0) for t in cycles]) if cycles else upper[:0],
        "midpoint": torch.cat([_pairs_between(mins, upper), _pairs_between(upper, upper)]),
        "perturbed": torch.stack([points[:, None] + eps * v, points[:, None] - eps * v], 2),
        "random": lo + (hi - lo) * u.to(points.device),
    }
    kinds["perturbed"] = kinds["perturbed"].flatten(0, 2)
    shift = round_ * (RETRY_SEEDS // len(kinds))
    keys, order = [], []
    for k, (name, pts) in enumerate(kinds.items()):  # the j-th seed of a kind at j / weight
        j = torch.arange(pts.shape[0], device=points.device, dtype=torch.float64)
        keys.append(j / SEED_WEIGHTS[name] + 1e-3 * k)
        order.append((j.long() + shift) % max(pts.shape[0], 1))
    every = torch.cat([p[o] for p, o in zip(kinds.values(), order, strict=True)])
    names = [name for name, p in kinds.items() for _ in range(p.shape[0])]
    take = torch.cat(keys).argsort()[:RETRY_SEEDS]
    return every[take], [names[int(i)] for i in take]


def _spectra(
    model: ScoreOrDenoiser, points: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Morse index ``(M,)``, eigenvectors ``(M, d, k)`` and whether every index is exact."""
    spec = hessian_spectrum(model, points.reshape(-1, *shape), sigma)
    index = spec.morse_index().to(points.device)
    exact = spec.complete or bool((index < spec.eigenvalues.shape[1]).all())
    return index, spec.eigenvectors.to(points), exact


def _chi(index: torch.Tensor) -> int:
    return int(((-1) ** index).sum()) if index.numel() else 0


def complete_census(
    model: ScoreOrDenoiser,
    sigma: Any,
    shape: tuple[int, ...],
    known: torch.Tensor,
    index: torch.Tensor,
    *,
    tol: float,
    dedupe_tol: float,
    length: float,
    box: tuple[torch.Tensor, torch.Tensor],
    retries: int,
    generator: torch.Generator | None = None,
    hessian: str = "auto",
) -> tuple[torch.Tensor, list[str], int]:
    """Search again while ``Σ(−1)^index ≠ 1`` (a coercive Morse function on ℝᵈ; Milnor Thm 5.2).

    Each of up to ``retries`` rounds refines :func:`retry_seeds` by Levenberg–Marquardt
    (:func:`memscape.landscape.newton_refine`) and the first :data:`DEFLATION_STARTS` of
    them by :func:`deflated_newton` against every point known so far; it reports
    ``"census"`` progress (``step``/``steps``) through :mod:`memscape.progress`.

    Args:
        model: a coercive model (:func:`is_coercive`).
        sigma: noise level.
        shape: the model's event shape.
        known: converged, distinct critical points ``(M ≥ 1, d)`` of the first search.
        index: their Morse indices ``(M,)`` (all exact).
        tol: gradient tolerance of convergence.
        dedupe_tol: points closer than this are one point.
        length: ℓ, the spacing that sets the seeds' displacements and the deflation unit.
        box: ``(low, high)`` ``(d,)`` bounds of the random seeds.
        retries: the budget of rounds (0: none).
        generator: randomness of the random seeds.
        hessian: the Newton mode of the Levenberg–Marquardt refinements and of the
            deflated steps (:func:`memscape.landscape.newton_refine`).

    Returns:
        ``(points, sources, rounds)``: the new critical points ``(n, d)``, how each was
        found (``retry-<seed kind>`` or ``deflation``) and the rounds used.
    """
    vectors = hessian_spectrum(model, known.reshape(-1, *shape), sigma).eigenvectors.to(known)
    exact = True
    new, src = [known[:0]], []
    rounds = 0
    while exact and _chi(index) != 1 and rounds < retries:
        report("census", step=rounds + 1, steps=retries, what="retry")
        seeds, kinds = retry_seeds(
            model, sigma, shape, known, index, vectors, box, rounds, length, generator
        )
        rounds += 1
        lm = newton_refine(model, seeds.reshape(-1, *shape), sigma, tol=tol, hessian=hessian)
        dx, dg = deflated_newton(
            model,
            seeds[:DEFLATION_STARTS],
            sigma,
            shape,
            known,
            tol=tol,
            length=length,
            hessian=hessian,
        )
        cand = torch.cat([lm.x.reshape(seeds.shape)[lm.converged], dx[dg <= tol]])
        cand_src = [f"retry-{k}" for k, c in zip(kinds, lm.converged.tolist(), strict=True) if c]
        cand_src += ["deflation"] * int((dg <= tol).sum())
        fresh = (torch.cdist(cand, known).amin(1) > dedupe_tol).nonzero().squeeze(1)
        keep = fresh[dedupe(cand[fresh], dedupe_tol)[0]]
        if keep.numel() == 0:
            continue
        pts = cand[keep]
        idx, vec, ex = _spectra(model, pts, sigma, shape)
        known, index, exact = torch.cat([known, pts]), torch.cat([index, idx]), exact and ex
        vectors = torch.cat([vectors, vec])
        new.append(pts)
        src += [cand_src[int(i)] for i in keep]
    return torch.cat(new), src, rounds


def warn_incomplete(model: object, sigma: Any, index: torch.Tensor, rounds: int) -> None:
    """``warnings.warn`` what an incomplete census of a coercive model found."""
    counts = torch.bincount(index[index >= 0]).tolist() if bool((index >= 0).any()) else []
    found = ", ".join(f"{c} of index {i}" for i, c in enumerate(counts) if c) or "nothing"
    where = "" if sigma is None else f" at sigma={sigma}"
    warnings.warn(
        f"critical_points: the census of {type(model).__name__}{where} is incomplete after "
        f"{rounds} retries: found {found}; Σ(−1)^index = {_chi(index)}, but a "
        "coercive Morse function on R^d has Euler characteristic 1. Raise retries= or "
        "n_starts=, or the landscape is degenerate here (see is_morse()).",
        RuntimeWarning,
        stacklevel=3,
    )


def warn_unconverged(n: int, best: float, tol: float, dtype: torch.dtype) -> None:
    """``warnings.warn`` that none of ``n`` candidates reached ``‖∇E‖ ≤ tol``, and why."""
    warnings.warn(
        f"critical_points: none of the {n} candidates converged: the smallest gradient norm "
        f"reached is {best:.3g}, above tol={tol:.3g} (the model's gradient is computed in "
        f"{str(dtype).removeprefix('torch.')}). Pass a larger tol= if that is the model's precision, or more starts.",
        RuntimeWarning,
        stacklevel=3,
    )
