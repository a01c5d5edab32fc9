"""Pseudo-arclength continuation of critical points and their verified bifurcations.

Critical points of a one-parameter family of energies are the zero set of
``G(x, p) = ∇ₓE(x, p) = −s(x, p)``, a union of curves ("branches") in ``(x, p)``
space, followed by pseudo-arclength continuation (Keller 1977; Allgower & Georg,
*Introduction to Numerical Continuation Methods*, ch. 2) in ``q = p`` or ``q = log p``.
Bifurcations (Kuznetsov 2004; Ambrogioni 2023 on Morse–Smale families) are located by
Brent's method and verified before they are reported.

Modules: :mod:`.options` (:class:`ContinuationOptions`, the named thresholds),
:mod:`.family` (the family and its derivatives), :mod:`.corrector` (predictor–corrector),
:mod:`.events` (detection, location, verification, kinds), :mod:`.unfolding` (what
merges at a branch point: pitchfork, transcritical, the D₃ crossing), :mod:`.stall` (the
fold where a branch stops, next to a round-off imperfect pitchfork), :mod:`.branches`
(every branch once, branch switching), :mod:`.connections` (saddle connections),
:mod:`.result` (:class:`BifurcationDiagram`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from memscape._validation import check_tensor
from memscape.landscape.continuation.branches import Seed, attach, on_path, trace
from memscape.landscape.continuation.connections import saddle_connections
from memscape.landscape.continuation.corrector import Config, correct
from memscape.landscape.continuation.family import Family, builder, census
from memscape.landscape.continuation.options import (
    H_MAX_FACTOR,
    H_MIN_FACTOR,
    ContinuationOptions,
)
from memscape.landscape.continuation.result import BifurcationDiagram, tables
from memscape.landscape.critical import default_patterns
from memscape.protocol import ScoreOrDenoiser

__all__ = ["BifurcationDiagram", "ContinuationOptions", "continuation"]

LOG_BY_DEFAULT = ("sigma", "beta")


def _check_range(parameter: Any, start: Any, stop: Any, log: bool) -> None:
    if not isinstance(parameter, str) or not parameter:
        raise TypeError(f"parameter must be a non-empty string, got {parameter!r}")
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if start == stop:
        raise ValueError(f"start and stop must differ, got start = stop = {start!r}")
    if (parameter == "sigma" or log) and (start <= 0 or stop <= 0):
        what = "sigma" if parameter == "sigma" else f"{parameter} (log scale)"
        raise ValueError(
            f"the range of {what} must be positive, got start={start!r}, stop={stop!r}"
        )


def _given(fam: Family, starts: Any, start: float, stop: float, dtype, device):
    """``{q: (N, d) points}`` of the given starts, checked."""
    given = {} if starts is None else (starts if isinstance(starts, Mapping) else {start: starts})
    q0, q1 = fam.q(float(start)), fam.q(float(stop))
    out: dict[float, torch.Tensor] = {}
    for value, pts in given.items():
        pts = check_tensor(pts, "starts", min_ndim=1)
        qv = fam.q(float(value))
        if not min(q0, q1) <= qv <= max(q0, q1):
            raise ValueError(f"starts: seed value {value!r} is outside [{start}, {stop}]")
        out[qv] = pts.reshape(pts.shape[0], -1).to(dtype=dtype, device=device)
    if not fam.event_shape:
        fam.event_shape = (next(iter(out.values())).shape[1],) if out else (1,)
    dim = int(np.prod(fam.event_shape))
    for pts in out.values():
        if pts.shape[1] != dim:
            raise ValueError(
                f"starts must have shape (N, {', '.join(map(str, fam.event_shape))}), "
                f"got points of {pts.shape[1]} coordinates"
            )
    return out


def _seeds(fam: Family, by_q: Mapping[float, torch.Tensor], cfg: Config, q0: float, q1: float):
    """Census points refined at fixed ``q``, followed toward the range's inside."""
    forward = torch.zeros(int(np.prod(fam.event_shape)) + 1, dtype=fam.dtype, device=fam.device)
    forward[-1] = 1.0 if q1 > q0 else -1.0
    e_q = forward.abs()
    out = []
    for qv, pts in sorted(by_q.items(), key=lambda kv: abs(kv[0] - q0)):
        refs = (forward,) if qv == q0 else (-forward,) if qv == q1 else (-forward, forward)
        for x in pts:
            u, ok, _ = correct(fam, torch.cat([x / fam.scale, x.new_tensor([qv])]), e_q, cfg.tol)
            if ok:
                u[-1] = qv
                out.append(Seed(u, refs))
    return out


def continuation(
    model: ScoreOrDenoiser | Callable[..., ScoreOrDenoiser],
    parameter: str,
    *,
    start: float,
    stop: float,
    starts: torch.Tensor | Mapping[float, torch.Tensor] | None = None,
    log: bool | None = None,
    sigma: Any = None,
    options: ContinuationOptions | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
    **overrides: Any,
) -> BifurcationDiagram:
    """Follow every branch of critical points of ``E(x, p)`` for ``p`` from ``start`` to ``stop``.

    Pseudo-arclength predictor–corrector on ``G(x, p) = ∇ₓE = −score`` (Keller 1977),
    with verified folds, pitchforks and transcritical bifurcations (see
    :mod:`memscape.landscape.continuation`).
    Without ``starts``, the census (:func:`memscape.landscape.critical.critical_points`)
    runs at both ends, at ``reseed`` interior values and in ``refine`` rounds of
    midpoints, and every branch through any of these points is traced once.

    Args:
        model: a model following the protocol, when ``parameter == "sigma"`` (σ is
            passed as the model's noise level); or a factory ``f(value) -> model``
            for any scalar parameter (called as ``f(**{parameter: value})`` when it has
            an argument of that name, else positionally when it takes exactly one).
        parameter: name of the continued parameter.
        start: first end of the range (continuation runs from it toward ``stop``).
        stop: the other end of the range.
        starts: critical points at ``start`` as ``(N, *event_shape)`` (refined here by
            Newton), or a mapping ``{value: points}`` of seeds at several parameter
            values; then the census runs only at the ``reseed`` interior values.
        log: continue in ``q = log p`` (default: on for ``sigma`` and ``beta``).
        sigma: fixed noise level for noise-conditioned models when ``parameter`` is
            not ``"sigma"``.
        options: a :class:`ContinuationOptions` (steps, tolerances, reseeding,
            branch switching, saddle connections, census options).
        generator: randomness of the census.
        dtype: of the computation (float64 by default).
        device: of the computation.
        **overrides: any field of :class:`ContinuationOptions` (``steps=``, ``reseed=``,
            ``tol=``, ``max_points=``, ``scale=``, ``refine=``, ``branch_switching=``,
            ``saddle_connections=``, ``n_graph=``, ``census_kwargs=``), replacing the
            one in ``options``.

    Returns:
        :class:`BifurcationDiagram` with ``branches`` and ``bifurcations`` tables.
    """
    opts = options if options is not None else ContinuationOptions()
    if not isinstance(opts, ContinuationOptions):
        raise TypeError(f"options must be a ContinuationOptions, got {type(opts).__name__}")
    unknown = set(overrides) - set(ContinuationOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"continuation() got unexpected keyword arguments {sorted(unknown)}")
    opts = replace(opts, **{k: ({} if k == "census_kwargs" and v is None else v)
                            for k, v in overrides.items()})  # fmt: skip
    log = parameter in LOG_BY_DEFAULT if log is None else bool(log)
    _check_range(parameter, start, stop, log)
    fam = Family(builder(model, parameter, sigma), log, dtype, device)
    q0, q1 = fam.q(float(start)), fam.q(float(stop))
    first, _ = fam.at(q0)
    if device is None:  # follow the seeds, else the model's patterns, else the CPU
        anchor = next(iter(starts.values())) if isinstance(starts, Mapping) else starts
        anchor = anchor if isinstance(anchor, torch.Tensor) else default_patterns(first)
        fam.device = anchor.device if isinstance(anchor, torch.Tensor) else torch.device("cpu")
    fam.event_shape = tuple(getattr(first, "event_shape", ()) or ())
    by_q = _given(fam, starts, start, stop, dtype, fam.device)

    def run_census(qs: list[float]) -> dict[float, torch.Tensor]:
        return {q: census(fam, q, generator, opts.census_kwargs).to(fam.device) for q in qs}

    census_qs = [float(v) for v in np.linspace(q0, q1, opts.reseed + 2)]
    by_q.update(run_census(census_qs[1:-1] if starts is not None else census_qs))
    allpts = torch.cat(list(by_q.values()))
    if opts.scale is not None:
        fam.scale = float(opts.scale)
    elif allpts.shape[0]:
        spread = float((allpts - allpts.mean(0)).norm(dim=1).max())
        fam.scale = spread if spread > 0 else max(float(allpts.norm(dim=1).max()), 1.0)
    h0 = abs(q1 - q0) / opts.steps
    cfg = Config(h0, H_MAX_FACTOR * h0, H_MIN_FACTOR * h0, opts.tol, opts.max_points,
                 min(q0, q1), max(q0, q1))  # fmt: skip
    forward = 1.0 if q1 > q0 else -1.0
    paths, events, _ = trace(fam, _seeds(fam, by_q, cfg, q0, q1), cfg, forward,
                             opts.branch_switching)  # fmt: skip
    for _ in range(opts.refine if starts is None else 0):  # complete: midpoints until nothing new
        census_qs = sorted(census_qs)
        mids = [0.5 * (a + b) for a, b in itertools.pairwise(census_qs)]
        fresh = [s for s in _seeds(fam, run_census(mids), cfg, q0, q1)
                 if not any(on_path(fam, s.u, p, cfg) for p in paths)]  # fmt: skip
        census_qs += mids
        if not fresh:
            break
        trace(fam, fresh, cfg, forward, opts.branch_switching, paths, events)
    attach(fam, events, paths, cfg)
    if opts.saddle_connections and paths:
        events += saddle_connections(fam, paths, events, cfg, opts.n_graph)
    return BifurcationDiagram(parameter, log, *tables(fam, paths, events))
