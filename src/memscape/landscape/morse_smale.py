"""Morse–Smale graph: which minima each index-1 saddle connects.

From every index-1 saddle ``x_s`` step ``±ε`` along the unstable eigenvector
(the eigenvector of the single negative Hessian eigenvalue) and descend; the two
end points are the saddle's edges (Milnor 1963; Ambrogioni 2023). A descent
that ends at another saddle instead of a minimum is a saddle-to-saddle
connection: the unstable manifold of one saddle meets the stable manifold of
another, so the flow is not Morse–Smale (non-transversal; Ambrogioni 2023).
Edges from higher-index points are not traced.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import torch

from memscape._validation import check_int, check_positive
from memscape.landscape._descent import descend_flat
from memscape.landscape._fields import check_model, check_sigma
from memscape.landscape.critical import CriticalPoints
from memscape.landscape.labels import default_tolerance
from memscape.landscape.morse import hessian_spectrum
from memscape.protocol import ScoreOrDenoiser

__all__ = ["morse_smale_graph"]


def morse_smale_graph(
    model: ScoreOrDenoiser,
    cps: CriticalPoints,
    sigma: Any = None,
    *,
    eps: float | None = None,
    tol: float | None = None,
    max_steps: int = 5000,
) -> nx.DiGraph:
    """Directed graph saddle → minimum of the gradient flow of ``E(·, σ)``.

    Args:
        model: the model of the census.
        cps: its :class:`CriticalPoints` (converged points become nodes).
        sigma: noise level (default ``cps.sigma``).
        eps: step off the saddle along ``±v`` (default 5 % of the census' label
            tolerance, i.e. ≈ 1.7 % of the patterns' nearest-neighbour distance).
        tol: an end point is matched to the nearest census point within ``tol``
            (default the census' label tolerance).
        max_steps: descent step cap.

    Returns:
        :class:`networkx.DiGraph`. Nodes are the rows of ``cps.table`` (converged
        points) with attributes ``index``, ``energy``, ``label``, ``kind``, ``x``
        (tuple); unmatched end points become nodes ``"unresolved-<saddle>-<±>"``.
        Edges ``saddle → end`` carry ``direction`` (±1), ``saddle_connection``
        (end is another saddle) and ``barrier`` (``E(saddle) − E(end)``). Graph
        attributes: ``saddle_connections`` (list of edges), ``unresolved`` (count),
        ``is_morse_smale`` (no saddle connection and nothing unresolved).
    """
    check_model(model)
    if not isinstance(cps, CriticalPoints):
        raise TypeError(f"cps must be a CriticalPoints, got {type(cps).__name__}")
    if cps.discrete:
        raise ValueError("morse_smale_graph needs a continuous census (cps.discrete is True)")
    sigma = cps.sigma if sigma is None else sigma
    check_sigma(model, sigma)
    check_int(max_steps, "max_steps")
    label_tol = float(cps.info.get("label_tol", default_tolerance(None)))
    eps = 0.05 * label_tol if eps is None else eps
    tol = label_tol if tol is None else tol
    check_positive(eps, "eps")
    check_positive(tol, "tol")
    tb = cps.table
    conv = cps.converged
    index = cps.morse_index
    flat = cps.points.reshape(len(cps), -1)
    shape = tuple(cps.points.shape[1:])
    graph = nx.DiGraph(sigma=sigma)
    for i in torch.nonzero(conv).squeeze(1).tolist():
        graph.add_node(
            i,
            index=int(index[i]),
            energy=float(tb["energy"].iloc[i]),
            label=str(tb["label"].iloc[i]),
            kind=str(tb["kind"].iloc[i]),
            x=tuple(flat[i].tolist()),
        )
    saddles = torch.nonzero(conv & (index == 1)).squeeze(1)
    connections: list[tuple[Any, Any]] = []
    unresolved = 0
    if saddles.numel():
        spec = hessian_spectrum(model, cps.points[saddles], sigma, k=1)
        v = spec.eigenvectors[:, :, 0].to(flat)
        xs = flat[saddles]
        starts = torch.cat([xs + eps * v, xs - eps * v])
        ends, _ = descend_flat(model, starts, sigma, shape, max_steps=max_steps, scale=label_tol)
        nodes = torch.nonzero(conv).squeeze(1)
        dist = torch.cdist(ends, flat[nodes])
        near = dist.argmin(1)
        hit = dist.gather(1, near[:, None]).squeeze(1) <= tol
        n_s = saddles.numel()
        for j in range(2 * n_s):
            s = int(saddles[j % n_s])
            sign = 1 if j < n_s else -1
            if bool(hit[j]):
                end: Any = int(nodes[near[j]])
            else:
                end = f"unresolved-{s}-{'+' if sign > 0 else '-'}"
                graph.add_node(end, index=-1, label="unresolved", x=tuple(ends[j].tolist()))
                unresolved += 1
            is_conn = end != s and graph.nodes[end].get("index", -1) >= 1
            if is_conn:
                connections.append((s, end))
            e_end = graph.nodes[end].get("energy", float("nan"))
            graph.add_edge(
                s,
                end,
                direction=sign,
                saddle_connection=is_conn,
                barrier=graph.nodes[s]["energy"] - e_end,
            )
    graph.graph["saddle_connections"] = connections
    graph.graph["unresolved"] = unresolved
    graph.graph["is_morse_smale"] = not connections and unresolved == 0
    return graph
