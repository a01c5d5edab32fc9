"""Descent shared by the census, basins and Morse–Smale graph (via :func:`memscape.descend`),
and the census' first search (descent, then Newton from starts and seeds)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch

from memscape.dynamics import descend
from memscape.landscape._cluster import dedupe
from memscape.landscape._fields import flat_score
from memscape.landscape.morse import hessian_spectrum
from memscape.landscape.newton import newton_refine
from memscape.protocol import ScoreOrDenoiser

#: points per segment on which :func:`ridge_points` samples the directional derivative.
RIDGE_SAMPLES = 32


class ClippedGradientStep:
    """Update map ``x ← x + clip(η s(x, σ), r)`` for models without an update of their own.

    ``η = 0.5/L`` with ``L`` the 90th percentile of the Hessian's spectral radius at
    (up to 64) sample states; ``r`` bounds the length of one step.
    """

    def __init__(
        self, model: ScoreOrDenoiser, shape: tuple[int, ...], eta: float, radius: float
    ) -> None:
        self.model, self.shape, self.eta, self.radius = model, shape, eta, radius

    def update(self, x: torch.Tensor, sigma: Any = None, *, generator: Any = None) -> torch.Tensor:
        step = self.eta * flat_score(self.model, x, sigma, self.shape)
        norm = step.norm(dim=1, keepdim=True)
        return x + step * torch.clamp(self.radius / norm.clamp_min(1e-300), max=1.0)


def descend_flat(
    model: ScoreOrDenoiser,
    x0: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
    *,
    max_steps: int = 2000,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Descend flat states ``(B, d)``: the model's update map, else a clipped gradient flow.

    Returns:
        ``(x, converged)``: flat endpoints ``(B, d)`` and ``(B,)`` bool.
    """
    if callable(getattr(model, "update", None)):
        res = descend(model, x0.reshape(-1, *shape), sigma, method="update", max_steps=max_steps)
        return res.x.reshape(x0.shape[0], -1), res.converged
    sample = x0[: min(64, x0.shape[0])]
    spec = hessian_spectrum(model, sample.reshape(-1, *shape), sigma)
    lip = float(spec.eigenvalues.abs().amax(1).quantile(0.9))
    stepper = ClippedGradientStep(model, shape, 0.5 / max(lip, 1e-12), 0.1 * scale)
    res = descend(stepper, x0, sigma, method="update", tol=1e-7 * scale, max_steps=max_steps)
    return res.x, res.converged


@dataclass
class Search:
    """Refined candidates: flat points ``(N, d)``, ``‖∇E‖``, sources, and for each
    descent start the candidate it ended at (``None`` without descent)."""

    x: torch.Tensor
    grad_norm: torch.Tensor
    source: list[str]
    start_cand: torch.Tensor | None
    n_newton: int
    n_seeds: int

    def extend(self, x: torch.Tensor, grad_norm: torch.Tensor, source: list[str]) -> Search:
        return Search(torch.cat([self.x, x]), torch.cat([self.grad_norm, grad_norm]),
                       self.source + source, self.start_cand, self.n_newton, self.n_seeds)  # fmt: skip


def first_search(
    model: ScoreOrDenoiser, x0: torch.Tensor, sigma: Any, shape: tuple[int, ...], scale: float,
    tol: float, max_steps: int, max_seeds: int, n_newton_starts: int | None,
    hessian: str = "auto",
) -> Search:  # fmt: skip
    """The census' first search: descent, then Newton from starts and seeds.

    1. minima by descent (:func:`descend_flat`), Newton on one representative per
       cell of side ``10⁻² × scale``; 2. Levenberg–Marquardt from the first
       ``n_newton_starts`` starts and from midpoints / centroids of the minima (both
       with the Newton ``hessian`` mode, :func:`memscape.landscape.newton_refine`).
    """
    n0, d = x0.shape
    # 1. minima by descent, then Newton on one representative per coarse cell
    xd, _ = descend_flat(model, x0, sigma, shape, max_steps=max_steps, scale=scale)
    reps, inv = dedupe(xd, 1e-2 * scale)
    ref_min = newton_refine(model, xd[reps].reshape(-1, *shape), sigma, tol=tol, hessian=hessian)
    mins = ref_min.x.reshape(-1, d)[ref_min.converged]
    mins = mins[dedupe(mins, 1e-4 * scale)[0]]  # distinct minima only: no repeated seeds
    # 2. saddle seeds: raw random starts, midpoints and centroids of minima
    k_newton = min(n0, 128) if n_newton_starts is None else min(n_newton_starts, n0)
    seeds, seed_src = _seeds(mins, max_seeds)
    rest = torch.cat([x0[:k_newton], seeds])
    if rest.shape[0]:
        rest = newton_refine(model, rest.reshape(-1, *shape), sigma, tol=tol,
                             hessian=hessian).x.reshape(-1, d)  # fmt: skip
    refined = torch.cat([ref_min.x.reshape(-1, d), rest])
    gn = flat_score(model, refined, sigma, shape).norm(dim=1)
    source = ["descent"] * reps.numel() + ["newton"] * k_newton + seed_src
    return Search(refined, gn, source, inv, k_newton, seeds.shape[0])


def _seeds(mins: torch.Tensor, max_seeds: int) -> tuple[torch.Tensor, list[str]]:
    """Midpoints of pairs and centroids of triples (and of all) of the minima ``(M, d)``.

    All pairs/triples when few; otherwise pairs of k-nearest neighbours and triples
    from each point's nearest neighbours, capped at ``max_seeds``.
    """
    m = mins.shape[0]
    if m < 2 or max_seeds == 0:
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


def ridge_points(
    model: ScoreOrDenoiser,
    a: torch.Tensor,
    b: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """Where each segment ``a → b`` ``(P, d)`` crosses a ridge: the maximum of ``E`` along it.

    The directional derivative ``⟨∇E, b − a⟩`` is sampled at :data:`RIDGE_SAMPLES`
    points and its sign change ``+ → −`` nearest the midpoint is interpolated
    linearly (the midpoint when there is none). Between two minima the crossing lies
    on the ridge that separates their basins, where Newton finds the index-1 saddle
    even when the ridge is much narrower than the distance from the midpoint to it.
    Works from the score alone: ``(P, d)``.
    """
    p, d = a.shape
    if p == 0:
        return a.clone()
    t = torch.linspace(0, 1, RIDGE_SAMPLES, dtype=a.dtype, device=a.device)
    seg = b - a
    pts = (a[:, None] + t[None, :, None] * seg[:, None]).reshape(-1, d)
    slope = -(flat_score(model, pts, sigma, shape).reshape(p, -1, d) * seg[:, None]).sum(-1)
    down = (slope[:, :-1] > 0) & (slope[:, 1:] <= 0)  # (P, n − 1)
    centre = (t[:-1] + t[1:]) / 2
    dist = torch.where(down, (centre - 0.5).abs(), torch.full_like(slope[:, 1:], 2.0))
    j = dist.argmin(1)
    s0, s1 = slope.gather(1, j[:, None])[:, 0], slope.gather(1, j[:, None] + 1)[:, 0]
    tj = t[j] + s0 / (s0 - s1).clamp_min(torch.finfo(a.dtype).tiny) * (t[1] - t[0])
    tj = torch.where(down.any(1), tj, torch.full_like(tj, 0.5))
    return a + tj[:, None] * seg
