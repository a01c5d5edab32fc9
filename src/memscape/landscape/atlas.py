"""A landscape atlas: minima from starts, paths to their nearest minima, saddles, merge tree.

Wales 2003 (*Energy Landscapes*, §6) builds a landscape's disconnectivity graph from a
database of minima and the transition states between neighbours; here:

1. every start descends to a minimum (the model's update map, e.g. one exact
   denoising step, else a clipped gradient flow); minima closer than ``dedupe_tol``
   are one (10⁻⁴ of the patterns' median nearest-neighbour spacing by default, the
   census' rule);
2. each minimum is joined to its ``neighbors`` nearest minima by a minimum-energy path
   (:func:`~memscape.landscape.paths.minimum_energy_path`, batched over pairs), whose
   profile maxima are refined to certified index-1 saddles;
3. each certified saddle is tested for what it connects (a descent from it toward the
   path images on either side; Wales 2003, §6.1): a saddle whose two descents end at
   two known minima is an edge of the merge tree at its energy. A pair is
   ``verified`` when a chain of such saddles joins its two minima (its level: the
   highest saddle on the chain); otherwise (refinement wandered to a saddle off the
   path, or the descents end elsewhere) the pair's edge is the path's highest image,
   an estimate of its col, not verified;
4. the merge tree of the edges is the disconnectivity graph
   (:func:`~memscape.landscape.disconnectivity.disconnectivity_graph`), with the minima
   labelled ``memory`` / ``mixture`` / ``spurious`` against the model's patterns within
   their same-point radius (:func:`~memscape.landscape.labels.label_points`).

Only nearest-neighbour pairs are joined, so a barrier is an upper bound when the
lowest col of a minimum leads to a minimum outside its ``neighbors`` nearest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor
from memscape.landscape._cluster import dedupe
from memscape.landscape._descent import descend_flat
from memscape.landscape._fields import check_model, check_sigma, event_shape, has_energy
from memscape.landscape.critical import default_patterns
from memscape.landscape.disconnectivity import DisconnectivityGraph, disconnectivity_graph
from memscape.landscape.labels import default_tolerance, label_points, median_nn_distance
from memscape.landscape.paths import minimum_energy_path
from memscape.landscape.saddles import certify_morse_index
from memscape.memorization.neighbors import nearest_neighbors
from memscape.protocol import ScoreOrDenoiser

__all__ = ["LandscapeAtlas", "landscape_atlas"]

DEDUPE_FRACTION = 1e-4  # minima closer than this × the patterns' spacing are one (as the census)
JOIN_FRACTION = (
    1e-2  # a descent from a saddle ending within this × the spacing reached that minimum
)
SIDE_STEP = 0.5  # descents from a saddle start this fraction of the way to its path neighbours


@dataclass
class LandscapeAtlas:
    """Minima, the saddles between neighbouring minima and their merge tree.

    Attributes:
        minima: ``(M, *event_shape)`` distinct minima.
        start_minimum: ``(S,)`` long, the minimum each start descended to.
        pairs: one row per joined pair: ``i``, ``j`` (minima), ``energy`` (the level at
            which they join: the highest saddle on a chain of verified saddles from ``i``
            to ``j``, else the path's highest image or end point), ``saddles`` (count on
            the path), ``certified`` (all of them certified index-1 saddles),
            ``verified`` (a chain of saddles that descend to known minima joins them),
            ``converged`` (the path).
        edges: the merge tree's input, one row per edge: ``i``, ``j``, ``energy``,
            ``verified`` (a saddle whose descents reach ``i`` and ``j``; else a pair's
            unverified path level).
        saddle_points: ``(len(pairs), *event_shape)`` the highest saddle of each path
            (NaN rows where none).
        graph: the :class:`~memscape.landscape.disconnectivity.DisconnectivityGraph`.
    """

    minima: torch.Tensor
    start_minimum: torch.Tensor
    pairs: pd.DataFrame
    edges: pd.DataFrame
    saddle_points: torch.Tensor
    graph: DisconnectivityGraph

    @property
    def barriers(self) -> pd.DataFrame:
        """One row per minimum: ``minimum``, ``energy``, ``label``, ``merge_energy``,
        ``barrier``, ``partner``, ``saddle`` (a row of :attr:`pairs`), ``morse_index``
        (certified from the two lowest Hessian eigenvalues: 0 for a true minimum)."""
        return self.graph.barriers

    def __repr__(self) -> str:
        return (
            f"LandscapeAtlas(minima={self.minima.shape[0]}, pairs={len(self.pairs)}, "
            f"certified={int(self.pairs.certified.sum())}, roots={len(self.graph.roots)})"
        )


def landscape_atlas(
    model: ScoreOrDenoiser,
    sigma: Any,
    starts: torch.Tensor,
    *,
    neighbors: int = 5,
    method: str = "string",
    images: int = 12,
    chunk: int = 64,
    dedupe_tol: float | None = None,
    max_steps: int = 2000,
    progress: Callable[[int, int], None] | None = None,
) -> LandscapeAtlas:
    """Minima from ``starts``, saddles to their nearest minima, and the merge tree (module doc).

    Args:
        model: an energy model following the protocol (the merge tree compares the
            energies of minima; for score-only models use the line-integral barriers
            of :func:`~memscape.landscape.paths.minimum_energy_path`).
        sigma: noise level (a float; ``None`` for models without one).
        starts: ``(S, *event_shape)`` start states, e.g. training points or samples.
        neighbors: nearest minima joined to each minimum.
        method: ``"string"`` (robust on rugged exact models, the default) or ``"neb"``.
        images: images per path.
        chunk: pairs relaxed per batch (memory ``chunk · images · d``).
        dedupe_tol: minima closer than this are one (default ``10⁻⁴`` × the patterns'
            median nearest-neighbour spacing, or the starts' without patterns).
        max_steps: descent steps per start.
        progress: called as ``progress(done, total)`` after each batch of pairs.

    Returns:
        :class:`LandscapeAtlas`.
    """
    check_model(model)
    check_sigma(model, sigma)
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1:
        raise ValueError("sigma must be one noise level (a float) for an atlas")
    field: ScoreOrDenoiser = model  # (has_energy narrows ``model`` to Energy below)
    if not has_energy(model):
        raise TypeError(
            f"landscape_atlas needs an energy model, got the score-only {type(model).__name__}"
        )
    starts = check_tensor(starts, "starts", min_ndim=2)
    if not starts.is_floating_point():
        raise TypeError(f"starts must be a floating-point tensor, got {starts.dtype}")
    neighbors = check_int(neighbors, "neighbors")
    check_choice(method, ("string", "neb"), "method")
    images = check_int(images, "images", minimum=3)
    chunk = check_int(chunk, "chunk")
    check_int(max_steps, "max_steps")
    if dedupe_tol is not None:
        check_positive(dedupe_tol, "dedupe_tol")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, got {type(progress).__name__}")
    shape = event_shape(model, starts)
    flat = starts.detach().reshape(starts.shape[0], -1)
    patterns = default_patterns(model)
    scale = median_nn_distance(flat if patterns is None else patterns)
    tol = DEDUPE_FRACTION * scale if dedupe_tol is None else float(dedupe_tol)

    ends, _ = descend_flat(field, flat, sigma, shape, max_steps=max_steps)
    reps, start_minimum = dedupe(ends, tol)
    minima = ends[reps]
    m, d = minima.shape
    energy = model.energy(minima.reshape(m, *shape), sigma).detach()
    index = torch.zeros(m, dtype=torch.long)
    labels = label_points(minima, index, d, patterns, default_tolerance(patterns))["label"]

    pairs: list[tuple[int, int]] = []
    if m > 1:
        _, nn = nearest_neighbors(minima, minima, min(neighbors, m - 1), exclude_self=True)
        pairs = sorted({(min(i, int(j)), max(i, int(j))) for i in range(m) for j in nn[i]})
    rows: list[dict[str, Any]] = []
    edges: list[tuple[int, int, float, bool]] = []  # the merge tree's (i, j, E, verified)
    tops = torch.full((len(pairs), d), float("nan"), dtype=minima.dtype, device=minima.device)
    for c in range(0, len(pairs), chunk):
        part = pairs[c : c + chunk]
        a = minima[[i for i, _ in part]].reshape(-1, *shape)
        b = minima[[j for _, j in part]].reshape(-1, *shape)
        res = minimum_energy_path(field, a, b, sigma, images=images, method=method)
        joins = _saddle_joins(field, res, minima, sigma, shape, JOIN_FRACTION * scale, max_steps)
        for p, (i, j) in enumerate(part):
            mine = (res.saddle_pair == p).nonzero()[:, 0].tolist()
            links = [(*joins[s], float(res.saddle_energy[s])) for s in mine if joins[s][0] >= 0]
            level = chain = _chain_level(links, i, j)
            if chain is None:  # no chain of connected saddles: the path's highest image
                level = max(float(res.energies[p].max()), float(energy[i]), float(energy[j]))
                edges.append((i, j, level, False))
            edges.extend((a, b, e, True) for a, b, e in links)
            if links:
                top = max(
                    mine,
                    key=lambda s: float(res.saddle_energy[s]) if joins[s][0] >= 0 else -math.inf,
                )
                tops[c + p] = res.saddles[top].reshape(-1)
            rows.append(
                {
                    "i": i,
                    "j": j,
                    "energy": level,
                    "saddles": len(mine),
                    "certified": bool(mine) and bool((res.saddle_index[mine] == 1).all()),
                    "verified": chain is not None,
                    "converged": bool(res.converged[p]),
                }
            )
        if progress is not None:
            progress(min(c + chunk, len(pairs)), len(pairs))
    columns = ["i", "j", "energy", "saddles", "certified", "verified", "converged"]
    table = pd.DataFrame(rows, columns=columns)
    edge_table = pd.DataFrame(edges, columns=["i", "j", "energy", "verified"])
    edge_table = edge_table.drop_duplicates(["i", "j", "energy"], ignore_index=True)
    graph = disconnectivity_graph(energy.cpu().numpy(), edge_table[["i", "j", "energy"]], labels)
    cert = certify_morse_index(field, minima.reshape(m, *shape), sigma, k=2)
    graph.barriers["morse_index"] = cert.morse_index.tolist()
    return LandscapeAtlas(
        minima=minima.reshape(m, *shape),
        start_minimum=start_minimum,
        pairs=table,
        edges=edge_table,
        saddle_points=tops.reshape(len(pairs), *shape),
        graph=graph,
    )


def _saddle_joins(
    model: ScoreOrDenoiser,
    res: Any,
    minima: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
    radius: float,
    max_steps: int,
) -> list[tuple[int, int]]:
    """The two minima each certified saddle of ``res`` connects, ``(−1, −1)`` if not two known.

    The connection test of transition-state databases (Wales 2003, §6.1): descend from
    the saddle a step toward the path images on either side of it (its unstable
    direction, on a converged path); the saddle joins minima ``a ≠ b`` when the two
    descents end within ``radius`` of them.
    """
    n = len(res.saddle_pair)
    out = [(-1, -1)] * n
    keep = [s for s in range(n) if int(res.saddle_index[s]) == 1]
    if not keep:
        return out
    flat = res.saddles[keep].reshape(len(keep), -1)
    path = res.path.reshape(*res.path.shape[:2], -1)
    k = res.saddle_image[keep]
    p = res.saddle_pair[keep]
    sides = [path[p, (k - 1).clamp_min(0)], path[p, (k + 1).clamp_max(path.shape[1] - 1)]]
    starts = torch.cat([flat + SIDE_STEP * (side - flat) for side in sides])
    ends, _ = descend_flat(model, starts, sigma, shape, max_steps=max_steps)
    dist, near = (t[:, 0] for t in nearest_neighbors(ends, minima.reshape(len(minima), -1), 1))
    near = torch.where(dist <= radius, near, -1).reshape(2, len(keep))
    for r, s in enumerate(keep):
        a, b = int(near[0, r]), int(near[1, r])
        if a >= 0 and b >= 0 and a != b:
            out[s] = (min(a, b), max(a, b))
    return out


def _chain_level(links: list[tuple[int, int, float]], i: int, j: int) -> float | None:
    """The highest saddle on the chain of ``links`` joining ``i`` to ``j`` (``None``: none)."""
    reach = {i: -math.inf}
    for _ in links:  # a chain is at most len(links) long
        for a, b, e in links:
            for u, v in ((a, b), (b, a)):
                if u in reach and (v not in reach or max(reach[u], e) < reach[v]):
                    reach[v] = max(reach[u], e)
    return reach.get(j)
