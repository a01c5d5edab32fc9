"""Landscapes as tidy tables: one census with its basins and Morse–Smale graph, and
snapshots of a one-parameter family between its bifurcations.

:func:`landscape_census` is the whole analysis of one landscape (critical points with
Morse indices, Monte-Carlo basin fractions, the Morse–Smale graph saddle → minima;
Milnor, *Morse Theory*; Ambrogioni 2023). :func:`continuation_snapshots` follows a family
by pseudo-arclength continuation (:func:`memscape.landscape.continuation`) and takes one
such census between each pair of consecutive events (Ambrogioni 2023: the flow is
Morse–Smale between isolated bifurcation values, so one census represents each interval).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import networkx as nx
import pandas as pd
import torch

from memscape._validation import check_int
from memscape.landscape.basins import basin_fractions
from memscape.landscape.continuation import continuation
from memscape.landscape.critical import CriticalPoints, critical_points
from memscape.landscape.morse_smale import morse_smale_graph

__all__ = [
    "EVENTS",
    "census_table",
    "continuation_snapshots",
    "edge_table",
    "landscape_census",
    "match_events",
    "snapshot_values",
]

#: Bifurcations that change the number of critical points (by 2): where snapshots are cut.
EVENTS = ("fold", "pitchfork")


def census_table(cps: CriticalPoints) -> pd.DataFrame:
    """``cps.table`` without the eigenvalue arrays, with its row number as column ``point``."""
    return cps.table.drop(columns=["eigenvalues"]).reset_index(names="point")


def edge_table(graph: nx.DiGraph) -> pd.DataFrame:
    """One row per edge of a :func:`morse_smale_graph`: ``saddle``, ``end`` (a census row
    number as a string, or ``unresolved-…``), ``direction``, ``saddle_connection``, ``barrier``."""
    return pd.DataFrame(
        [{"saddle": s, "end": str(e), **a} for s, e, a in graph.edges(data=True)],
        columns=["saddle", "end", "direction", "saddle_connection", "barrier"],
    )


def landscape_census(
    model: Any,
    sigma: Any,
    patterns: torch.Tensor,
    *,
    n_starts: int,
    basin_samples: int,
    generator: torch.Generator | None = None,
) -> dict[str, pd.DataFrame]:
    """Census, basins and Morse–Smale edges of one 2-D landscape ``E(·, σ)``, as tables.

    Args:
        model: a model following the protocol with 2 coordinates.
        sigma: its noise level (``None`` when not noise-conditioned).
        patterns: ``(K, 2)`` stored / training points (census seeds and labels).
        n_starts: random starts of the census (:func:`critical_points`).
        basin_samples: uniform starts of :func:`basin_fractions`, drawn in the box.
        generator: randomness of the census and of the basin starts.

    Returns:
        ``critical_points`` (:func:`census_table` plus ``euler_characteristic``
        ``Σ(−1)^index`` — 1 for a complete census of a coercive Morse function on ℝ²,
        Milnor Thm 5.2 — and ``is_morse_smale``), ``basins`` (:func:`basin_fractions`),
        ``edges`` (:func:`edge_table`) and ``box`` (rows ``x0``, ``x1``: ``low``, ``high``
        of the basin starts; the converged points and patterns padded by 35 % of their
        range plus σ/2 + 0.1).
    """
    cps = critical_points(model, sigma, n_starts=n_starts, patterns=patterns, generator=generator)
    conv = cps.points[cps.converged]
    lo = torch.minimum(patterns.amin(0), conv.amin(0)).numpy()
    hi = torch.maximum(patterns.amax(0), conv.amax(0)).numpy()
    pad = 0.35 * float((hi - lo).max()) + 0.5 * (sigma or 0.0) + 0.1
    box = (torch.tensor(lo - pad), torch.tensor(hi + pad))
    basins = basin_fractions(model, cps, sigma, n=basin_samples, box=box, generator=generator)
    graph = morse_smale_graph(model, cps, sigma)
    points = census_table(cps)
    points["euler_characteristic"] = cps.euler_characteristic()
    points["is_morse_smale"] = bool(graph.graph["is_morse_smale"])
    box_table = pd.DataFrame({"axis": ["x0", "x1"], "low": lo - pad, "high": hi + pad})
    return {"critical_points": points, "basins": basins, "edges": edge_table(graph),
            "box": box_table}  # fmt: skip


def snapshot_values(start: float, stop: float, events: Iterable[float], log: bool) -> list[float]:
    """Parameter values between consecutive events: one midpoint per interval.

    The events inside ``(start, stop)`` cut the range into intervals; each gets its
    midpoint (geometric when ``log``, e.g. for σ), ordered from ``start`` to ``stop``.

    Args:
        start: one end of the continued range.
        stop: the other end.
        events: parameter values of the events (those outside the range are ignored).
        log: take geometric midpoints.
    """
    ev = sorted(float(e) for e in events)
    lo, hi = sorted((start, stop))
    cuts = [lo, *[e for e in ev if lo < e < hi], hi]
    mids = [math.sqrt(a * b) if log else 0.5 * (a + b) for a, b in itertools.pairwise(cuts)]
    return sorted(mids, reverse=start > stop)


def continuation_snapshots(
    family: Any,
    build: Callable[[float], tuple[Any, Any]],
    parameter: str,
    start: float,
    stop: float,
    patterns: torch.Tensor,
    *,
    steps: int,
    n_starts: int,
    events: Sequence[str] = EVENTS,
    generator: torch.Generator | None = None,
) -> dict[str, pd.DataFrame]:
    """Continue ``family`` in ``parameter``; a census and Morse–Smale graph between events.

    Ambrogioni 2023: along a generic family the gradient flow is Morse–Smale except at
    isolated values (folds, pitchforks, saddle connections); each event of ``events``
    changes the number ``N`` of critical points by 2, so the snapshots must satisfy
    ``#events = Σ|ΔN|/2`` and, on ℝ², ``Σ(−1)^index = 1`` each.

    Args:
        family: what :func:`continuation` takes (a model when ``parameter == "sigma"``,
            else a factory ``value -> model``).
        build: ``build(value) -> (model, σ)``, the landscape at one value.
        parameter: the continued parameter (``"sigma"``: geometric midpoints).
        start: first value of the range.
        stop: last value of the range.
        patterns: ``(K, d)`` points seeding each census.
        steps: initial continuation steps over the range.
        n_starts: random starts of each census.
        events: bifurcation kinds that cut the range.
        generator: randomness of the censuses.

    Returns:
        Tables ``branches``, ``bifurcations`` (of the :class:`BifurcationDiagram`;
        ``branches`` column as a string), ``census`` (:func:`census_table` per snapshot,
        with ``snapshot``, ``value``), ``edges`` (:func:`edge_table` per snapshot),
        ``snapshots`` (one row each: ``n_points``, ``n_minima``, ``n_saddles``,
        ``n_maxima``, ``euler_characteristic``, ``n_edges``, ``is_morse_smale``) and
        ``patterns``; every table carries ``parameter_name``.
    """
    check_int(n_starts, "n_starts")
    bd = continuation(family, parameter, start=start, stop=stop, steps=steps,
                      census_kwargs={"n_starts": n_starts, "patterns": patterns},
                      generator=generator)  # fmt: skip
    cut = bd.bifurcations[bd.bifurcations["kind"].isin(events)]["parameter"]
    census, edges, summary = [], [], []
    for j, v in enumerate(snapshot_values(start, stop, cut, parameter == "sigma")):
        model, sig = build(v)
        cps = critical_points(model, sig, n_starts=n_starts, patterns=patterns, generator=generator)
        graph = morse_smale_graph(model, cps, sig)
        census.append(census_table(cps).assign(snapshot=j, value=v))
        edges.append(edge_table(graph).assign(snapshot=j, value=v))
        idx = cps.morse_index[cps.converged]
        summary.append({"snapshot": j, "value": v, "n_points": int(idx.numel()),
                        "n_minima": int((idx == 0).sum()), "n_saddles": int((idx == 1).sum()),
                        "n_maxima": int((idx == 2).sum()),
                        "euler_characteristic": cps.euler_characteristic(),
                        "n_edges": graph.number_of_edges(),
                        "is_morse_smale": bool(graph.graph["is_morse_smale"])})  # fmt: skip
    bif = bd.bifurcations.assign(branches=bd.bifurcations["branches"].map(str))
    pats = pd.DataFrame(patterns.reshape(len(patterns), -1).numpy()).add_prefix("x")
    tables = {"branches": bd.branches, "bifurcations": bif,
              "census": pd.concat(census, ignore_index=True),
              "edges": pd.concat(edges, ignore_index=True),
              "snapshots": pd.DataFrame(summary), "patterns": pats}  # fmt: skip
    return {name: t.assign(parameter_name=parameter) for name, t in tables.items()}


def match_events(a: pd.DataFrame, b: pd.DataFrame, *, coordinates: Sequence[str] = ("x0", "x1"),
                 log: bool = True) -> pd.DataFrame:  # fmt: skip
    """Pair the bifurcations of two families (e.g. a trained model against the exact one).

    Events of the kinds in :data:`EVENTS` are matched one to one by the assignment of
    least total distance (Kuhn 1955; :func:`scipy.optimize.linear_sum_assignment`) with
    the distance ``√(‖x_a − x_b‖² + Δ²)`` of their locations, ``Δ`` the difference of
    their parameters (of ``log p`` when ``log``): where the two landscapes change and in
    which order. The unmatched events of the larger table are kept with NaN partners.

    Args:
        a: a bifurcation table (:attr:`BifurcationDiagram.bifurcations`): ``parameter``,
            ``kind``, the ``coordinates`` columns.
        b: the other family's table, alike.
        coordinates: the location columns.
        log: compare parameters on a log scale (σ, β).

    Returns:
        One row per event: ``order_a``, ``order_b`` (rank along the parameter, from its
        largest value: generation order in σ), ``parameter_a``, ``parameter_b``,
        ``kind_a``, ``kind_b``, ``distance`` (location only) and ``cost`` (the matched
        distance above); rows sorted by ``order_a``.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    def events(t: pd.DataFrame) -> pd.DataFrame:
        e = t[t["kind"].isin(EVENTS)].sort_values("parameter", ascending=False)
        return e.reset_index(drop=True).assign(order=lambda f: np.arange(len(f)))

    ea, eb = events(a), events(b)
    cols = list(coordinates)
    pa, pb = (np.log(e["parameter"].to_numpy(float)) if log else e["parameter"].to_numpy(float)
              for e in (ea, eb))  # fmt: skip
    xa, xb = ea[cols].to_numpy(float), eb[cols].to_numpy(float)
    place = np.linalg.norm(xa[:, None] - xb[None], axis=-1)
    cost = np.sqrt(place**2 + (pa[:, None] - pb[None]) ** 2)
    ra, rb = linear_sum_assignment(cost) if cost.size else (np.array([], int), np.array([], int))
    rows = [{"order_a": i, "order_b": j, "parameter_a": ea["parameter"][i],
             "parameter_b": eb["parameter"][j], "kind_a": ea["kind"][i], "kind_b": eb["kind"][j],
             "distance": place[i, j], "cost": cost[i, j]} for i, j in zip(ra, rb, strict=True)]  # fmt: skip
    nan = float("nan")
    rows += [{"order_a": i, "order_b": nan, "parameter_a": ea["parameter"][i], "kind_a": ea["kind"][i]}
             for i in sorted(set(range(len(ea))) - set(ra.tolist()))]  # fmt: skip
    rows += [{"order_a": nan, "order_b": j, "parameter_b": eb["parameter"][j], "kind_b": eb["kind"][j]}
             for j in sorted(set(range(len(eb))) - set(rb.tolist()))]  # fmt: skip
    columns = ["order_a", "order_b", "parameter_a", "parameter_b", "kind_a", "kind_b", "distance",
               "cost"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values("order_a", ignore_index=True)
