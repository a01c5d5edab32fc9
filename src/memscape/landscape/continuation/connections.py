"""Saddle connections: changes of the Morse–Smale graph with no fold or pitchfork between.

Ambrogioni 2023: along a generic family the gradient flow is Morse–Smale except at
isolated values; a saddle connection (the unstable manifold of one saddle running into
another saddle) changes the graph's edges while the critical points stay the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from memscape.landscape.continuation.corrector import Config, Path, correct
from memscape.landscape.continuation.events import Event
from memscape.landscape.continuation.family import Family
from memscape.landscape.critical import CriticalPoints
from memscape.landscape.morse_smale import morse_smale_graph

__all__ = ["saddle_connections"]


def _crossings(fam: Family, paths: list[Path], q: float, cfg: Config):
    """The branches' points at ``q``, keyed ``(branch, k-th crossing)``: keys, ``(N, d)``."""
    e_q = paths[0].u[0].new_zeros(paths[0].u[0].shape)
    e_q[-1] = 1.0
    keys, xs = [], []
    for bid, path in enumerate(paths):
        qs = [float(u[-1]) for u in path.u]
        n = 0
        for k in range(len(qs) - 1):
            if min(qs[k], qs[k + 1]) <= q < max(qs[k], qs[k + 1]):
                w = (q - qs[k]) / (qs[k + 1] - qs[k])
                pred = path.u[k] + w * (path.u[k + 1] - path.u[k])
                u, ok, _ = correct(fam, pred, e_q, cfg.tol)
                if ok:
                    keys.append((bid, n))
                    xs.append(fam.scale * u[:-1])
                n += 1
    return keys, torch.stack(xs) if xs else None


def _edges(fam: Family, paths: list[Path], q: float, cfg: Config):
    """Morse–Smale edges ``(saddle key, end key)`` at ``q`` (end ``(-1, -1)``: unresolved)."""
    keys, xs = _crossings(fam, paths, q, cfg)
    if xs is None:
        return frozenset(), (), {}
    model, sig = fam.at(q)
    cps = CriticalPoints.from_points(model, xs.reshape(-1, *fam.event_shape), sig)
    graph = morse_smale_graph(model, cps, sig)

    def key(node: Any) -> tuple[int, int]:
        return keys[node] if isinstance(node, int) else (-1, -1)

    edges = tuple(sorted((key(a), key(b)) for a, b in graph.edges()))
    return frozenset(keys), edges, dict(zip(keys, xs, strict=True))


def saddle_connections(
    fam: Family, paths: list[Path], events: list[Event], cfg: Config, n_graph: int
) -> list[Event]:
    """Changes of the Morse–Smale graph between grid values with no fold/pitchfork between.

    Between two such values the branches (hence the nodes) are the same, so a
    changed edge set means a saddle's unstable manifold crossed another saddle's
    stable manifold: a saddle connection, located by bisection on ``q``.
    """
    grid = [float(v) for v in np.linspace(cfg.q_lo, cfg.q_hi, n_graph + 2)[1:-1]]
    graphs = [_edges(fam, paths, q, cfg) for q in grid]
    found = []
    for i in range(len(grid) - 1):
        (qa, ga), (qb, gb) = (grid[i], graphs[i]), (grid[i + 1], graphs[i + 1])
        if ga[0] != gb[0] or ga[1] == gb[1]:
            continue
        if any(qa <= float(e.u[-1]) <= qb for e in events):
            continue
        lo, hi = qa, qb
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            gm = _edges(fam, paths, mid, cfg)
            if gm[0] != ga[0]:
                break
            lo, hi = (mid, hi) if gm[1] == ga[1] else (lo, mid)
            if hi - lo < 1e-5 * (cfg.q_hi - cfg.q_lo):
                break
        changed = sorted(set(ga[1]) ^ set(gb[1]))
        saddle = changed[0][0]
        q_star = 0.5 * (lo + hi)
        x = _edges(fam, paths, q_star, cfg)[2].get(saddle, ga[2][saddle])
        u = torch.cat([x / fam.scale, x.new_tensor([q_star])])
        ends = sorted({b[0] for _, b in changed if b[0] >= 0} - {saddle[0]})
        found.append(Event("saddle_connection", u, 0.0, 1, 1, math.nan, math.nan, saddle[0], ends))
    return found
