"""Labels of critical points relative to stored / training patterns.

A minimum is a ``memory`` when it lies within ``tol`` of a stored pattern, a
``mixture`` when it lies within ``tol`` of the mean of 2 or 3 patterns (for binary
±1 models: of the sign of a signed sum ``sign(±ξ_a ± ξ_b ± ξ_c)``, the classical
mixture states of Amit, Gutfreund & Sompolinsky 1985), otherwise ``spurious``.
Non-minima are labelled by index: ``saddle`` (``0 < index < d``) or ``maximum``.

Default tolerance (:func:`default_tolerance`): the one "same point" rule of
:func:`memscape.memorization.neighbors.same_point_radius`, a third of the median
nearest-neighbour distance between the patterns (below half of it, so two patterns
at the typical spacing never both claim one point; the same radius makes a
generated sample "memorized" in :func:`memscape.memorization.classify_samples`).
Mixture candidates are built from the ``n_near``
patterns nearest to each point (all 2- and 3-subsets), which keeps the search
``O(n_near³)`` per point instead of ``O(K³)``.
"""

from __future__ import annotations

from itertools import combinations

import torch

from memscape.memorization.neighbors import SAME_POINT_FRACTION, median_nn_spacing

__all__ = ["default_tolerance", "label_points", "median_nn_distance"]


def median_nn_distance(patterns: torch.Tensor) -> float:
    """Length scale of the patterns ``(K, d)``: their median nearest-neighbour spacing.

    :func:`memscape.memorization.neighbors.median_nn_spacing` (streamed, no ``K×K``
    matrix); 1.0 when it is undefined (K = 1) or zero (duplicated patterns).
    """
    if patterns.shape[0] < 2:
        return 1.0
    med = median_nn_spacing(patterns)
    return med if med > 0 else 1.0


def default_tolerance(
    patterns: torch.Tensor | None, fraction: float = SAME_POINT_FRACTION
) -> float:
    """``fraction`` × :func:`median_nn_distance` of the patterns (× 1.0 without patterns).

    With the default ``fraction`` this is the "same point" radius of
    :func:`memscape.memorization.neighbors.same_point_radius`.
    """
    if patterns is None:
        return fraction
    return fraction * median_nn_distance(patterns)


def label_points(
    points: torch.Tensor,
    index: torch.Tensor,
    dim: int,
    patterns: torch.Tensor | None,
    tol: float,
    *,
    binary: bool = False,
    n_near: int = 6,
) -> dict[str, list]:
    """Label critical points and find their nearest pattern.

    Args:
        points: ``(N, d)`` flat critical points.
        index: ``(N,)`` Morse index (0 = minimum; ``d`` = maximum; −1 = unknown).
        dim: state dimension ``d``.
        patterns: ``(K, d)`` stored/training patterns or ``None``.
        tol: distance tolerance for ``memory`` and ``mixture``.
        binary: ±1 patterns: negatives count as memories (``nearest_sign = −1``) and
            mixtures are signs of signed sums.
        n_near: patterns considered for mixtures of each point.

    Returns:
        dict of columns ``label``, ``nearest_pattern``, ``nearest_distance``,
        ``nearest_sign``, ``mixture_distance`` (lists of length N).
    """
    n = points.shape[0]
    out: dict[str, list] = {
        "label": [],
        "nearest_pattern": [-1] * n,
        "nearest_distance": [float("nan")] * n,
        "nearest_sign": [1] * n,
        "mixture_distance": [float("nan")] * n,
    }
    if patterns is not None and n > 0:
        pats = patterns.to(points)
        dist = torch.cdist(points, pats)
        sign = torch.ones_like(dist)
        if binary:
            dneg = torch.cdist(points, -pats)
            sign = torch.where(dneg < dist, -1.0, 1.0).to(points)
            dist = torch.minimum(dist, dneg)
        near = dist.argmin(dim=1)
        rows = torch.arange(n)
        out["nearest_pattern"] = near.tolist()
        out["nearest_distance"] = dist[rows, near].tolist()
        out["nearest_sign"] = sign[rows, near].long().tolist()
        if pats.shape[0] >= 2:
            m = min(n_near, pats.shape[0])
            nearest = dist.topk(m, dim=1, largest=False).indices
            out["mixture_distance"] = _mixture_distance(points, pats, nearest, sign, binary)
    for i in range(n):
        idx = int(index[i])
        if idx < 0:
            out["label"].append("unknown")
        elif idx == 0:
            if out["nearest_distance"][i] <= tol:
                out["label"].append("memory")
            elif out["mixture_distance"][i] <= tol:
                out["label"].append("mixture")
            else:
                out["label"].append("spurious")
        else:
            out["label"].append("maximum" if idx == dim else "saddle")
    return out


def _mixture_distance(
    points: torch.Tensor,
    pats: torch.Tensor,
    nearest: torch.Tensor,
    sign: torch.Tensor,
    binary: bool,
) -> list[float]:
    """Distance from each point to the closest 2- or 3-pattern mixture of its nearest patterns."""
    m = nearest.shape[1]
    subsets = [c for r in (2, 3) for c in combinations(range(m), r) if len(c) <= m]
    best = []
    for i in range(points.shape[0]):
        cand = pats[nearest[i]] * sign[i, nearest[i]].unsqueeze(1)
        mix = torch.stack([cand[list(c)].mean(0) for c in subsets])
        if binary:
            mix = torch.sign(mix)
        best.append(float((mix - points[i]).norm(dim=1).min()))
    return best
