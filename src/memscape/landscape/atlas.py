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

For large K the pair work of steps 2–3 runs as resumable sweep jobs
(:mod:`memscape.runs.sweep`: ``jobs_dir``, ``workers``, ``executor="ray"``), one per
chunk of pairs, giving the same tables as in-process.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from memscape._validation import (
    check_choice,
    check_int,
    check_output_path,
    check_positive,
    check_tensor,
)
from memscape.landscape._cluster import dedupe
from memscape.landscape._descent import descend_flat
from memscape.landscape._fields import check_model, check_sigma, event_shape, has_energy
from memscape.landscape.critical import default_patterns
from memscape.landscape.disconnectivity import DisconnectivityGraph, disconnectivity_graph
from memscape.landscape.labels import default_tolerance, label_points, median_nn_distance
from memscape.landscape.paths import minimum_energy_path
from memscape.landscape.saddles import certify_morse_index
from memscape.memorization.neighbors import nearest_neighbors
from memscape.progress import report
from memscape.protocol import ScoreOrDenoiser

__all__ = ["LandscapeAtlas", "atlas_pairs_job", "landscape_atlas"]

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
    progress: bool | Callable[[int, int], None] | None = None,
    jobs_dir: str | Path | None = None,
    workers: int | None = None,
    executor: str = "local",
) -> LandscapeAtlas:
    """Minima from ``starts``, saddles to their nearest minima, and the merge tree (module doc).

    With ``jobs_dir`` the pair work (paths, saddle refinement and connection tests,
    ``chunk`` pairs per job) runs through the sweep engine
    (:func:`memscape.runs.sweep.run_sweep`): each finished chunk is kept in
    ``jobs_dir``, so an interrupted atlas resumes after it, and chunks run on local
    worker processes or Ray tasks. The tables are the same as in-process: each chunk
    is the same computation, assembled in the same order. The model travels to the
    workers rebuilt from its training points (:class:`~memscape.EmpiricalDiffusion`,
    written to ``jobs_dir`` as safetensors) or pickled (any other model, which must
    then be picklable).

    Args:
        model: an energy model following the protocol (the merge tree compares the
            energies of minima; for score-only models use the line-integral barriers
            of :func:`~memscape.landscape.paths.minimum_energy_path`).
        sigma: noise level (a float; ``None`` for models without one).
        starts: ``(S, *event_shape)`` start states, e.g. training points or samples.
        neighbors: nearest minima joined to each minimum.
        method: ``"string"`` (robust on rugged exact models, the default) or ``"neb"``.
        images: images per path.
        chunk: pairs relaxed per batch (memory ``chunk · images · d``), one job each.
        dedupe_tol: minima closer than this are one (default ``10⁻⁴`` × the patterns'
            median nearest-neighbour spacing, or the starts' without patterns).
        max_steps: descent steps per start.
        progress: a callable ``progress(done, total)`` (pairs), called after each chunk
            (with ``jobs_dir``: as the finished chunks are read back), or ``True``: with
            ``jobs_dir``, the sweep's progress bar (jobs and the stage of each).
        jobs_dir: folder of the resumable pair jobs (``None``: in-process).
        workers: parallel jobs with ``jobs_dir`` (``None``: one per core).
        executor: ``"local"`` (process pool) or ``"ray"``, with ``jobs_dir``.

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
    if progress is not None and not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress must be a bool or callable, got {type(progress).__name__}")
    if workers is not None:
        check_int(workers, "workers")
    check_choice(executor, ("local", "ray"), "executor")
    transport: dict[str, Any] = {}
    if jobs_dir is not None:
        jobs_dir = check_output_path(jobs_dir, "jobs_dir", folder=True)
        transport = _transport(model)
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
    opts = {"sigma": sigma, "method": method, "images": images,
            "radius": JOIN_FRACTION * scale, "max_steps": max_steps}  # fmt: skip
    parts = [pairs[c : c + chunk] for c in range(0, len(pairs), chunk)]
    tell = progress if callable(progress) and not isinstance(progress, bool) else None
    if jobs_dir is None:
        outputs = []
        for part in parts:
            outputs.append(_pair_chunk(field, minima, energy, shape, part, **opts))
            if tell is not None:
                tell(sum(len(p) for p in parts[: len(outputs)]), len(pairs))
    else:
        outputs = _run_chunks(Path(jobs_dir), transport, minima, energy, shape, parts, opts,
                              workers, executor, progress is True)  # fmt: skip
        for k in range(len(outputs)):
            if tell is not None:
                tell(sum(len(p) for p in parts[: k + 1]), len(pairs))
    table = _concat([o["pairs"] for o in outputs], PAIR_COLUMNS)
    edge_table = _concat([o["edges"] for o in outputs], EDGE_COLUMNS)
    edge_table = edge_table.drop_duplicates(["i", "j", "energy"], ignore_index=True)
    tops = torch.cat([o["saddle_points"] for o in outputs]) if outputs else minima[:0]
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


PAIR_COLUMNS = {"i": "int64", "j": "int64", "energy": "float64", "saddles": "int64",
                "certified": "bool", "verified": "bool", "converged": "bool"}  # fmt: skip
EDGE_COLUMNS = {"i": "int64", "j": "int64", "energy": "float64", "verified": "bool"}


def _concat(parts: list[pd.DataFrame], columns: dict[str, str]) -> pd.DataFrame:
    """The chunks' tables one after another, with the columns' dtypes (also when empty)."""
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    return pd.concat(parts, ignore_index=True).astype(columns)


def _pair_chunk(
    field: ScoreOrDenoiser,
    minima: torch.Tensor,
    energy: torch.Tensor,
    shape: tuple[int, ...],
    part: list[tuple[int, int]],
    *,
    sigma: Any,
    method: str,
    images: int,
    radius: float,
    max_steps: int,
) -> dict[str, Any]:
    """One chunk of pairs: paths, saddles, their connections; its rows, edges and top saddles."""
    report("paths", pairs=len(part))
    a = minima[[i for i, _ in part]].reshape(-1, *shape)
    b = minima[[j for _, j in part]].reshape(-1, *shape)
    res = minimum_energy_path(field, a, b, sigma, images=images, method=method)
    report("saddles", saddles=len(res.saddle_pair))
    joins = _saddle_joins(field, res, minima, sigma, shape, radius, max_steps)
    rows: list[dict[str, Any]] = []
    edges: list[tuple[int, int, float, bool]] = []  # the merge tree's (i, j, E, verified)
    tops = torch.full((len(part), minima.shape[1]), float("nan"), dtype=minima.dtype,
                      device=minima.device)  # fmt: skip
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
            tops[p] = res.saddles[top].reshape(-1)
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
    return {
        "pairs": _concat([pd.DataFrame(rows, columns=list(PAIR_COLUMNS))], PAIR_COLUMNS),
        "edges": _concat([pd.DataFrame(edges, columns=list(EDGE_COLUMNS))], EDGE_COLUMNS),
        "saddle_points": tops,
    }


# ------------------------------------------------------------------ the pair work as jobs
def _transport(model: Any) -> dict[str, Any]:
    """How the model reaches a job: rebuilt from its training points, else pickled."""
    from memscape.diffusion.empirical import EmpiricalDiffusion

    if type(model) is EmpiricalDiffusion:
        return {"exact": {"chunk_size": model.chunk_size, "method": model.method},
                "data": model.data}  # fmt: skip
    try:
        blob = pickle.dumps(model)
    except Exception as err:
        raise TypeError(
            f"model must be picklable to run the atlas as jobs (jobs_dir), got "
            f"{type(model).__name__}: {err}"
        ) from err
    return {"model": model, "pickled": hashlib.sha256(blob).hexdigest()}


def _run_chunks(
    folder: Path,
    transport: dict[str, Any],
    minima: torch.Tensor,
    energy: torch.Tensor,
    shape: tuple[int, ...],
    parts: list[list[tuple[int, int]]],
    opts: dict[str, Any],
    workers: int | None,
    executor: str,
    bar: bool,
) -> list[dict[str, Any]]:
    """Run the chunks as sweep jobs (their inputs in ``folder``); their outputs in order.

    The job keys carry a digest of the inputs (minima, their energies, the options, the
    model's training points), so a folder never hands back another atlas's chunks.
    """
    from memscape.io import save_tensors
    from memscape.runs.sweep import Job, run_sweep

    tensors = {"minima": minima, "energy": energy}
    if "data" in transport:
        tensors["data"] = transport["data"]
    what = [opts, list(shape), transport.get("exact"), transport.get("pickled")]
    digest = hashlib.sha256(json.dumps(what, default=str).encode())
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].detach().cpu().contiguous().numpy().tobytes())
    tag = digest.hexdigest()[:12]
    inputs = folder / f"atlas-{tag}.safetensors"
    if not inputs.exists():
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(inputs, tensors)
    spec = {"inputs": str(inputs), "device": str(minima.device), "shape": list(shape),
            "exact": transport.get("exact"), "model": transport.get("model"), **opts}  # fmt: skip
    jobs, first = [], 0
    for part in parts:
        key = f"atlas-{tag}_pairs={first}-{first + len(part) - 1}"
        jobs.append(Job(key, {**spec, "pairs": [list(p) for p in part]}))
        first += len(part)
    res = run_sweep(atlas_pairs_job, jobs, folder, workers=workers, executor=executor,
                    progress=bar, description="atlas pairs")  # fmt: skip
    for out in (outputs := [res[j.key] for j in jobs]):
        out["saddle_points"] = out["saddle_points"].to(minima.device)
    return outputs


def atlas_pairs_job(
    inputs: str,
    pairs: list[list[int]],
    shape: list[int],
    device: str,
    exact: dict[str, Any] | None,
    model: Any,
    **opts: Any,
) -> dict[str, Any]:
    """One chunk of an atlas's pairs as a sweep job (:func:`landscape_atlas` with ``jobs_dir``).

    ``inputs``: safetensors of the ``minima``, their ``energy`` and, for an exact model
    (``exact``: its options), its training points ``data``; else ``model`` itself.
    """
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.io import load_tensors

    t = {k: v.to(device) for k, v in load_tensors(inputs, "atlas inputs").items()}
    field = EmpiricalDiffusion(t["data"], **exact) if exact is not None else model
    part = [(int(i), int(j)) for i, j in pairs]
    out = _pair_chunk(field, t["minima"], t["energy"], tuple(shape), part, **opts)
    out["saddle_points"] = out["saddle_points"].cpu()
    return out


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
