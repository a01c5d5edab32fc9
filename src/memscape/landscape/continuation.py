"""Pseudo-arclength continuation of critical points and detection of their bifurcations.

Critical points of a one-parameter family of energies are the zero set of

    G(x, p) = ∇ₓE(x, p) = −s(x, p),      G: ℝᵈ × ℝ → ℝᵈ,

a union of curves ("branches") in ``(x, p)`` space.  Each branch is followed by
pseudo-arclength continuation (Keller 1977; Allgower & Georg, *Introduction to
Numerical Continuation Methods*, ch. 2): with ``u = (x, q)`` (``q = p`` or
``q = log p``) and unit tangent ``t`` solving ``[∂ₓG  ∂_qG] t = 0``, a predictor
``u + h t`` is corrected by Newton on the augmented system

    G(x, q) = 0,      tᵀ(u − u_pred) = 0,

whose Jacobian ``[[∂ₓG, ∂_qG], [tᵀ]]`` stays regular at folds, where natural
stepping in ``p`` fails.  ``∂ₓG`` is the model's Hessian (closed form when it has
one), ``∂_qG`` a central finite difference.  The step ``h`` grows when the corrector
converges fast and shrinks when it struggles.

Bifurcations (Kuznetsov 2004, *Elements of Applied Bifurcation Theory*; Ambrogioni 2023 on Morse–Smale families):

- **fold** (saddle-node): the branch turns back in ``p`` while one Hessian eigenvalue
  passes through zero — a minimum and a saddle meet and annihilate;
- **pitchfork** (symmetric branch point): an eigenvalue crosses zero without a turn;
  new branches are switched onto along the null eigenvector;
- **saddle_connection**: the Morse–Smale graph changes between two parameter values
  with no fold or pitchfork between them (optional, expensive).

Each is located by Brent's method on the crossing eigenvalue (or on the ``p``
component of the tangent) along the arc, to near machine precision.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq

from memscape._validation import check_int, check_positive, check_tensor
from memscape.landscape._fields import flat_hessian, flat_score, has_energy, is_noise_conditioned
from memscape.landscape.critical import (
    MAX_TABLE_COORDS,
    CriticalPoints,
    critical_points,
    default_patterns,
)
from memscape.landscape.morse import hessian_eigenvalues, morse_index
from memscape.landscape.morse_smale import morse_smale_graph
from memscape.protocol import ScoreOrDenoiser, is_model

__all__ = ["BifurcationDiagram", "continuation"]

LOG_BY_DEFAULT = ("sigma", "beta")


# ---------------------------------------------------------------------------- the family
class _Family:
    """``p ↦ (model, σ)`` plus ``G``, ``∂ₓG``, ``∂_qG`` in scaled coordinates ``x = L·x̃``."""

    def __init__(self, build: Callable[[float], tuple[Any, Any]], log: bool, dtype, device):
        self.build, self.log, self.dtype, self.device = build, log, dtype, device
        self.scale = 1.0
        self._cache: dict[float, tuple[Any, Any]] = {}
        self.event_shape: tuple[int, ...] = ()

    def p(self, q: float) -> float:
        return math.exp(q) if self.log else q

    def q(self, p: float) -> float:
        return math.log(p) if self.log else p

    def at(self, q: float) -> tuple[Any, Any]:
        if q not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[q] = self.build(self.p(q))
        return self._cache[q]

    def grad(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """``G = ∇ₓE = −s`` at ``x = L·x̃``: ``(d,)``."""
        model, sig = self.at(q)
        return -flat_score(model, self.scale * xt[None], sig, self.event_shape)[0]

    def hess(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """Unscaled Hessian ``∂ₓG`` at ``x = L·x̃`` (closed form when there is one): ``(d, d)``."""
        model, sig = self.at(q)
        return flat_hessian(model, self.scale * xt[None], sig, self.event_shape)[0]

    def dgdq(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """``∂_qG`` by a central difference: ``(d,)``."""
        dq = 1e-5 * max(1.0, abs(q))
        return (self.grad(xt, q + dq) - self.grad(xt, q - dq)) / (2 * dq)

    def energy(self, xt: torch.Tensor, q: float) -> float:
        model, sig = self.at(q)
        if not has_energy(model):
            return math.nan
        x = (self.scale * xt).reshape(1, *self.event_shape)
        return float(model.energy(x, sig).reshape(()))

    def eigvals(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """Ascending Hessian eigenvalues (real parts for non-symmetric score Jacobians)."""
        return hessian_eigenvalues(self.hess(xt, q))


# ---------------------------------------------------------------------------- numerics
@dataclass
class _Cfg:
    h0: float
    h_max: float
    h_min: float
    tol: float
    max_points: int
    q_lo: float
    q_hi: float


@dataclass
class _Seg:
    """An arc piece: ``u(s) = correct(u0 + s·d, constraint n)``, ``0 ≤ s ≤ s1``."""

    u0: torch.Tensor
    d: torch.Tensor
    n: torch.Tensor
    s1: float


@dataclass
class _Path:
    u: list[torch.Tensor] = field(default_factory=list)
    tan: list[torch.Tensor] = field(default_factory=list)
    eig: list[torch.Tensor] = field(default_factory=list)
    segs: list[_Seg] = field(default_factory=list)
    mark: list[bool] = field(default_factory=list)  # bifurcation points (merged paths only)


def _jac(fam: _Family, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x, q = u[:-1], float(u[-1])
    a = torch.cat([fam.scale * fam.hess(x, q), fam.dgdq(x, q)[:, None]], dim=1)
    return fam.grad(x, q), a


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a⁻¹b``; the minimum-norm least-squares solution when ``a`` is singular."""
    try:
        return torch.linalg.solve(a, b)
    except RuntimeError:  # exactly singular (e.g. at a branch point): pseudo-inverse
        return torch.linalg.pinv(a) @ b


def _correct(
    fam: _Family, pred: torch.Tensor, n: torch.Tensor, tol: float, max_iter: int = 15
) -> tuple[torch.Tensor, bool, int]:
    """Newton on ``G(u) = 0, nᵀ(u − pred) = 0``; returns ``(u, converged, iterations)``."""
    u = pred.clone()
    for it in range(1, max_iter + 1):
        g, a = _jac(fam, u)
        f = torch.cat([g, (n @ (u - pred))[None]])
        j = torch.cat([a, n[None]], dim=0)
        if float(f.norm()) <= 1e-13 * float(j.norm()) * (1 + float(u.norm())):
            return (
                u,
                True,
                it,
            )  # residual at rounding level (Newton steps are noise near a branch point)
        du = _solve(j, -f)
        u = u + du
        if not bool(torch.isfinite(u).all()):
            return u, False, it
        if float(du.norm()) < tol:
            return u, True, it
    return u, False, max_iter


def _tangent(fam: _Family, u: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Unit null vector of ``[∂ₓG ∂_qG]`` at ``u``, oriented so that ``tᵀref > 0``."""
    _, a = _jac(fam, u)
    rhs = torch.zeros_like(u)
    rhs[-1] = 1.0
    t = _solve(torch.cat([a, ref[None]], dim=0), rhs)
    return t / t.norm()


def _follow(fam: _Family, u0: torch.Tensor, ref: torch.Tensor, cfg: _Cfg) -> _Path:
    """Follow one branch from ``u0`` in the direction of ``ref`` until it leaves the range."""
    path = _Path()
    u, t = u0, _tangent(fam, u0, ref)
    path.u.append(u)
    path.tan.append(t)
    path.eig.append(fam.eigvals(u[:-1], float(u[-1])))
    e_q = torch.zeros_like(u)
    e_q[-1] = 1.0
    h = cfg.h0
    while len(path.u) < cfg.max_points:
        new, ok, iters = _correct(fam, u + h * t, t, cfg.tol)
        if ok:
            t_new = _tangent(fam, new, t)
            ok = float(t_new @ t) > 0.9 and float((new - u).norm()) < 2 * h
        if not ok:
            h *= 0.5
            if h < cfg.h_min:
                warnings.warn(
                    f"continuation: a branch stopped at {fam.p(float(u[-1])):.6g}, before the "
                    "range end (the corrector failed even at the smallest step)",
                    RuntimeWarning,
                    stacklevel=4,
                )
                break
            continue
        q_new = float(new[-1])
        if not cfg.q_lo <= q_new <= cfg.q_hi:  # land exactly on the range end
            q_b = cfg.q_hi if q_new > cfg.q_hi else cfg.q_lo
            chord = new - u
            frac = (q_b - float(u[-1])) / float(chord[-1])
            end, ok, _ = _correct(fam, u + frac * chord, e_q, cfg.tol)
            if ok:
                length = float(chord.norm())
                seg = _Seg(u, chord / length, e_q, frac * length)
                path.segs.append(seg)
                path.u.append(end)
                path.tan.append(_tangent(fam, end, t))
                path.eig.append(fam.eigvals(end[:-1], q_b))
            break
        path.segs.append(_Seg(u, t, t, h))
        path.u.append(new)
        path.tan.append(t_new)
        path.eig.append(fam.eigvals(new[:-1], q_new))
        u, t = new, t_new
        h = min(1.5 * h, cfg.h_max) if iters <= 3 else (0.6 * h if iters > 6 else h)
        if len(path.u) > 10 and float((u - path.u[0]).norm()) < 0.5 * h:
            break  # closed loop (isola)
    else:
        warnings.warn(
            f"continuation: a branch reached max_points={cfg.max_points} at "
            f"{fam.p(float(u[-1])):.6g}, before the range end",
            RuntimeWarning,
            stacklevel=4,
        )
    return path


def _locate(
    fam: _Family, seg: _Seg, end: torch.Tensor, fun: Callable[[torch.Tensor], float], cfg: _Cfg
) -> torch.Tensor:
    """Root of ``fun(u(s))`` on the arc piece (ending at ``end``) by Brent's method: ``u*``."""

    def point(s: float) -> torch.Tensor:
        u, ok, _ = _correct(fam, seg.u0 + s * seg.d, seg.n, cfg.tol)
        if not ok:
            raise ArithmeticError("corrector failed while locating a bifurcation")
        return u

    try:
        s = brentq(lambda s: fun(point(s)), 0.0, seg.s1, xtol=1e-14 * seg.s1 + 1e-300)
        return point(float(s))
    except (ValueError, ArithmeticError):  # no bracket or corrector failure: secant estimate
        f0, f1 = fun(seg.u0), fun(end)
        w = min(max(f0 / (f0 - f1), 0.0), 1.0) if f0 != f1 else 0.5
        return seg.u0 + w * (end - seg.u0)


@dataclass
class _Event:
    kind: str
    u: torch.Tensor
    branch: int
    index_before: int
    index_after: int
    children: list[int] = field(default_factory=list)
    seg: int = -1  # arc piece of the followed half-branch it lies on


def _eigenvalue(fam: _Family, j: int, u: torch.Tensor) -> float:
    return float(fam.eigvals(u[:-1], float(u[-1]))[j])


def _tangent_q(fam: _Family, ref: torch.Tensor, u: torch.Tensor) -> float:
    return float(_tangent(fam, u, ref)[-1])


def _scan(fam: _Family, path: _Path, branch: int, cfg: _Cfg) -> list[_Event]:
    """Folds and branch points on the arc pieces of one followed path."""
    events = []
    for k, seg in enumerate(path.segs):
        m0, m1 = int(morse_index(path.eig[k])), int(morse_index(path.eig[k + 1]))
        turn = float(path.tan[k][-1]) * float(path.tan[k + 1][-1]) < 0
        if m0 == m1 and not turn:
            continue
        if m0 != m1:  # root of the eigenvalue that changes sign
            fun = partial(_eigenvalue, fam, min(m0, m1))
        else:  # turning point without a detected eigenvalue crossing: root of dq/ds
            fun = partial(_tangent_q, fam, seg.d)
        u_star = _locate(fam, seg, path.u[k + 1], fun, cfg)
        events.append(_Event("fold" if turn else "pitchfork", u_star, branch, m0, m1, seg=k))
    return events


def _switch(
    fam: _Family, u_star: torch.Tensor, cfg: _Cfg
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Points on the branches leaving a branch point along ±(null eigenvector, 0)."""
    h = fam.hess(u_star[:-1], float(u_star[-1]))
    vals, vecs = torch.linalg.eig(h)
    v = vecs[:, int(vals.abs().argmin())].real
    d = torch.cat([v / v.norm(), v.new_zeros(1)])
    out = []
    for sign in (1.0, -1.0):
        u, ok, _ = _correct(fam, u_star + sign * 0.5 * cfg.h0 * d, d, cfg.tol)
        gap = u - u_star
        if ok and cfg.q_lo <= float(u[-1]) <= cfg.q_hi and float(gap.norm()) > 0.25 * cfg.h0:
            out.append((u, gap / gap.norm()))
    return out


def _on_path(fam: _Family, u: torch.Tensor, path: _Path, cfg: _Cfg) -> bool:
    """Whether ``u`` lies on the followed branch (nearest chord, then an exact correction)."""
    pts = torch.stack(path.u)
    if pts.shape[0] == 1:
        return float((pts[0] - u).norm()) < 1e-6
    a, b = pts[:-1], pts[1:]
    ab = b - a
    tau = (((u - a) * ab).sum(1) / ab.pow(2).sum(1).clamp_min(1e-300)).clamp(0, 1)
    dist = (a + tau[:, None] * ab - u).norm(dim=1)
    k = int(dist.argmin())
    if float(dist[k]) < 1e-7:
        return True
    if float(dist[k]) > 4 * cfg.h_max:
        return False
    n = ab[k] / ab[k].norm()
    v, ok, _ = _correct(fam, a[k] + tau[k] * ab[k], n, cfg.tol)
    return ok and float((v - u).norm()) < 1e-5


@dataclass
class _Seed:
    """A point to follow in the directions ``refs``; ``parent``: the branch point it leaves."""

    u: torch.Tensor
    refs: tuple[torch.Tensor, ...]
    parent: _Event | None = None


def _trace(
    fam: _Family, queue: deque[_Seed], cfg: _Cfg, branch_switching: bool
) -> tuple[list[_Path], list[_Event]]:
    """Follow every seed not on a known branch; queue the branches leaving pitchforks first."""
    span = cfg.q_hi - cfg.q_lo
    paths: list[_Path] = []
    events: list[_Event] = []
    while queue:
        seed = queue.popleft()
        if any(_on_path(fam, seed.u, p, cfg) for p in paths):
            continue
        halves = [_follow(fam, seed.u, ref, cfg) for ref in seed.refs]
        bid = len(paths)
        found = [_scan(fam, half, bid, cfg) for half in halves]
        merged = _Path()  # ordered from one end to the other, bifurcation points included
        if seed.parent is not None:  # a switched branch starts at its branch point
            seed.parent.children.append(bid)
            merged.u.append(seed.parent.u)
            merged.eig.append(fam.eigvals(seed.parent.u[:-1], float(seed.parent.u[-1])))
            merged.mark.append(True)
        for i, (half, evs) in enumerate(zip(halves, found, strict=True)):
            u, eig, mark = list(half.u), list(half.eig), [False] * len(half.u)
            for ev in sorted(evs, key=lambda e: -e.seg):
                u.insert(ev.seg + 1, ev.u)
                eig.insert(ev.seg + 1, fam.eigvals(ev.u[:-1], float(ev.u[-1])))
                mark.insert(ev.seg + 1, True)
            keep = slice(None, None, -1) if len(halves) == 2 and i == 0 else slice(i, None)
            merged.u += u[keep]
            merged.eig += eig[keep]
            merged.mark += mark[keep]
        paths.append(merged)
        for evs in found:
            for ev in evs:
                if any(
                    abs(float(ev.u[-1] - o.u[-1])) < 1e-6 * span
                    and float((ev.u - o.u).norm()) < 1e-4
                    for o in events
                ):
                    continue
                events.append(ev)
                if ev.kind == "pitchfork" and branch_switching:
                    for un, ref in _switch(fam, ev.u, cfg):
                        queue.appendleft(_Seed(un, (ref,), ev))
    return paths, events


# ---------------------------------------------------------------------------- saddle connections
def _crossings(fam: _Family, paths: list[_Path], q: float, cfg: _Cfg):
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
                u, ok, _ = _correct(fam, pred, e_q, cfg.tol)
                if ok:
                    keys.append((bid, n))
                    xs.append(fam.scale * u[:-1])
                n += 1
    return keys, torch.stack(xs) if xs else None


def _edges(fam: _Family, paths: list[_Path], q: float, cfg: _Cfg):
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


def _saddle_connections(
    fam: _Family, paths: list[_Path], events: list[_Event], cfg: _Cfg, n_graph: int
) -> list[_Event]:
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
        found.append(_Event("saddle_connection", u, saddle[0], 1, 1, ends))
    return found


# ---------------------------------------------------------------------------- resolution of inputs
def _factory_caller(factory: Callable, parameter: str) -> Callable[[float], Any]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return factory
    params = sig.parameters
    named = params.get(parameter)
    if named is not None and named.kind is not inspect.Parameter.POSITIONAL_ONLY:
        return lambda v: factory(**{parameter: v})
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return lambda v: factory(**{parameter: v})
    only = list(params.values())
    if len(only) == 1 and only[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    ):
        return factory  # a one-argument factory such as ``lambda b: ...``
    raise ValueError(
        f"factory does not accept a parameter named {parameter!r}; its signature is "
        f"{sig} (name one of its arguments, or pass a factory of exactly one argument)"
    )


def _builder(model: Any, parameter: str, sigma: Any) -> Callable[[float], tuple[Any, Any]]:
    """Turn ``(model or factory, parameter)`` into ``p ↦ (model, σ)``."""
    if is_model(model) and not isinstance(model, type):  # a class is a factory
        if parameter != "sigma":
            raise ValueError(
                f"parameter {parameter!r} of a model instance cannot be varied: pass a factory "
                "f(value) -> model, or use 'sigma' with a noise-conditioned model"
            )
        if not is_noise_conditioned(model):
            raise ValueError(
                f"parameter 'sigma': {type(model).__name__} is not noise-conditioned, so its "
                "landscape does not depend on sigma; pass a factory f(value) -> model instead"
            )
        return lambda p: (model, p)
    if not callable(model):
        raise TypeError(
            "model must follow the memscape protocol (energy/score/denoise) or be a factory "
            f"f(value) -> model, got {type(model).__name__}"
        )
    make = _factory_caller(model, parameter)

    def build(p: float) -> tuple[Any, Any]:
        try:
            m = make(p)
        except TypeError as err:
            raise TypeError(f"factory failed when called with {parameter}={p:g}: {err}") from err
        if not is_model(m):
            raise TypeError(
                f"factory({parameter}={p:g}) returned {type(m).__name__}, which does not "
                "follow the memscape protocol (energy/score/denoise)"
            )
        if parameter == "sigma" and is_noise_conditioned(m):
            return m, p
        return m, sigma

    return build


def _census(
    fam: _Family, q: float, generator: Any, census_kwargs: Mapping[str, Any]
) -> torch.Tensor:
    """Critical points at ``p(q)`` from the landscape census: ``(N, d)``."""
    model, sig = fam.at(q)
    kw = {"dtype": fam.dtype, "device": fam.device, **census_kwargs}
    cps = critical_points(model, sigma=sig, generator=generator, **kw)
    pts = cps.points[cps.converged.to(cps.points.device)]
    return pts.flatten(1).to(fam.dtype)  # (0, d) when nothing converged


# ---------------------------------------------------------------------------- result
@dataclass
class BifurcationDiagram:
    """Branches of critical points over a parameter range, and their bifurcations.

    Attributes:
        parameter: name of the continued parameter.
        log: whether continuation ran in ``log p``.
        branches: tidy table, one row per continuation point: ``branch``, ``point``
            (order along the branch), ``parameter``, ``x0..x{d-1}`` (one array column
            ``x`` when d > 32, as in the census table), ``energy``
            (NaN for score-only models), ``bifurcation`` (the row is a located
            bifurcation point), ``morse_index``, ``stable`` (index 0),
            ``lambda0..`` (the smallest Hessian eigenvalues, ascending).
        bifurcations: tidy table, one row per bifurcation: ``parameter``, ``kind``
            (``fold``, ``pitchfork``, ``saddle_connection``), ``branch`` (where found),
            ``branches`` (tuple: that branch and the branches leaving it),
            ``index_before``, ``index_after``, ``x0..``, ``energy``.
    """

    parameter: str
    log: bool
    branches: pd.DataFrame
    bifurcations: pd.DataFrame

    @property
    def coordinates(self) -> list[str]:
        """Names of the coordinate columns ``x0..x{d-1}``."""
        return [c for c in self.branches.columns if c[0] == "x" and c[1:].isdigit()]

    def at(self, value: float) -> pd.DataFrame:
        """Critical points at parameter ``value``, one row per branch crossing.

        Coordinates and energy are linearly interpolated between the two continuation
        points that bracket ``value``; ``morse_index`` is the nearer one's, or the
        other one's when the nearer is a bifurcation point (so it is exact on each
        side of a located bifurcation).
        """
        if self.log:
            check_positive(value, "value")
        cols = [*self.coordinates, *(["x"] if "x" in self.branches else []), "energy"]
        rows = []
        for bid, br in self.branches.groupby("branch", sort=True):
            p = br["parameter"].to_numpy()
            lo, hi = np.minimum(p[:-1], p[1:]), np.maximum(p[:-1], p[1:])
            for k in np.flatnonzero((lo <= value) & (value <= hi) & (lo < hi)):
                if p[k + 1] == value and k + 2 < len(p):
                    continue  # the next piece starts at this very point
                w = (value - p[k]) / (p[k + 1] - p[k])
                a, b = br.iloc[k], br.iloc[k + 1]
                row = {"branch": bid, "parameter": value}
                for c in cols:
                    row[c] = (1 - w) * a[c] + w * b[c]
                near = b if a["bifurcation"] else a if b["bifurcation"] or w < 0.5 else b
                row["morse_index"] = int(near["morse_index"])
                row["stable"] = row["morse_index"] == 0
                rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Bifurcation diagram; see :func:`memscape.landscape.plot.plot_bifurcation`."""
        from memscape.landscape.plot import plot_bifurcation

        return plot_bifurcation(self, ax=ax, **kwargs)


def _coordinates(x: np.ndarray) -> dict[str, Any]:
    """Columns ``x0..x{d-1}`` up to ``MAX_TABLE_COORDS`` coordinates, else one ``x`` array."""
    if x.shape[0] <= MAX_TABLE_COORDS:
        return {f"x{i}": float(v) for i, v in enumerate(x)}
    return {"x": x}


def _tables(fam: _Family, paths: list[_Path], events: list[_Event]):
    d = int(np.prod(fam.event_shape)) if fam.event_shape else 1
    n_eig = min(d, 4)
    rows = []
    for bid, path in enumerate(paths):
        for k, (u, eig, mark) in enumerate(zip(path.u, path.eig, path.mark, strict=True)):
            q = float(u[-1])
            x = (fam.scale * u[:-1]).cpu().numpy()
            row: dict[str, Any] = {"branch": bid, "point": k, "parameter": fam.p(q)}
            row["bifurcation"] = mark
            row.update(_coordinates(x))
            row["energy"] = fam.energy(u[:-1], q)
            row["morse_index"] = int(morse_index(eig))
            row["stable"] = row["morse_index"] == 0
            row.update({f"lambda{i}": float(eig[i]) for i in range(n_eig)})
            rows.append(row)
    brows = []
    for ev in sorted(events, key=lambda e: fam.p(float(e.u[-1]))):
        q = float(ev.u[-1])
        row = {
            "parameter": fam.p(q),
            "kind": ev.kind,
            "branch": ev.branch,
            "branches": (ev.branch, *ev.children),
            "index_before": ev.index_before,
            "index_after": ev.index_after,
        }
        row.update(_coordinates((fam.scale * ev.u[:-1]).cpu().numpy()))
        row["energy"] = fam.energy(ev.u[:-1], q)
        brows.append(row)
    cols = ["parameter", "kind", "branch", "branches", "index_before", "index_after"]
    cols += [*_coordinates(np.zeros(d)), "energy"]
    return pd.DataFrame(rows), pd.DataFrame(brows, columns=cols)


# ---------------------------------------------------------------------------- entry point
def continuation(
    model: ScoreOrDenoiser | Callable[..., ScoreOrDenoiser],
    parameter: str,
    *,
    start: float,
    stop: float,
    starts: torch.Tensor | Mapping[float, torch.Tensor] | None = None,
    reseed: int = 3,
    log: bool | None = None,
    sigma: Any = None,
    steps: int = 40,
    max_points: int = 2000,
    tol: float = 1e-9,
    scale: float | None = None,
    branch_switching: bool = True,
    saddle_connections: bool = False,
    n_graph: int = 16,
    census_kwargs: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> BifurcationDiagram:
    """Follow every branch of critical points of ``E(x, p)`` for ``p`` from ``start`` to ``stop``.

    Pseudo-arclength predictor–corrector on ``G(x, p) = ∇ₓE = −score`` (Keller 1977;
    see the module docstring), with folds, pitchforks and their locations.

    Args:
        model: a model following the protocol, when ``parameter == "sigma"`` (σ is
            passed as the model's noise level); or a factory ``f(value) -> model``
            for any scalar parameter (called as ``f(**{parameter: value})`` when it has
            an argument of that name, else positionally when it takes exactly one).
        parameter: name of the continued parameter.
        start: the parameter range; continuation runs from ``start`` toward
            ``stop`` and stops at either end.
        stop: the parameter range; continuation runs from ``start`` toward
            ``stop`` and stops at either end.
        starts: critical points at ``start`` as ``(N, *event_shape)`` (refined here by
            Newton), or a mapping ``{value: points}`` of seeds at several parameter
            values.  ``None``: found by :func:`memscape.landscape.critical.critical_points`.
        reseed: number of interior parameter values (evenly spaced in ``q``) where
            the census is run again, so that branches born at folds inside the range
            are caught; ``0`` to disable.
        log: continue in ``q = log p`` (default: on for ``sigma`` and ``beta``).
        sigma: fixed noise level for noise-conditioned models when ``parameter`` is
            not ``"sigma"``.
        steps: initial step is ``|q_stop − q_start| / steps`` (arclength, scaled
            units); steps adapt between ``1e-7`` and ``2.5`` times that.
        max_points: cap on points per followed half-branch.
        tol: corrector tolerance on the Newton step (scaled units).
        scale: length unit ``L`` for the coordinates in the arclength metric
            (default: the spread of the seed points, or 1).
        branch_switching: follow the branches leaving each pitchfork.
        saddle_connections: also detect saddle connections: the Morse–Smale graph
            (:func:`memscape.landscape.morse_smale.morse_smale_graph`) of the branch
            points at ``n_graph`` parameter values is compared, and each change with no
            fold or pitchfork in between is located by bisection (expensive: one graph,
            i.e. one descent per saddle side, per evaluation).
        n_graph: parameter values (evenly spaced in ``q``) where the graph is built.
        census_kwargs: extra keyword arguments of the census (``n_starts``, ...).
        generator: randomness of the census.
        dtype: of the computation (float64 by default).
        device: of the computation.

    Returns:
        :class:`BifurcationDiagram` with ``branches`` and ``bifurcations`` tables.
    """
    if not isinstance(parameter, str) or not parameter:
        raise TypeError(f"parameter must be a non-empty string, got {parameter!r}")
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if start == stop:
        raise ValueError(f"start and stop must differ, got start = stop = {start!r}")
    log = parameter in LOG_BY_DEFAULT if log is None else bool(log)
    if parameter == "sigma" or log:
        what = "sigma" if parameter == "sigma" else f"{parameter} (log scale)"
        if start <= 0 or stop <= 0:
            raise ValueError(
                f"the range of {what} must be positive, got start={start!r}, stop={stop!r}"
            )
    check_int(reseed, "reseed", minimum=0)
    check_int(steps, "steps")
    check_int(max_points, "max_points", minimum=2)
    check_positive(tol, "tol")
    check_int(n_graph, "n_graph", minimum=2)
    if scale is not None:
        check_positive(scale, "scale")
    fam = _Family(_builder(model, parameter, sigma), log, dtype, device)
    q0, q1 = fam.q(float(start)), fam.q(float(stop))
    first, _ = fam.at(q0)
    if device is None:  # follow the seeds, else the model's patterns, else the CPU
        anchor = next(iter(starts.values())) if isinstance(starts, Mapping) else starts
        if not isinstance(anchor, torch.Tensor):
            anchor = default_patterns(first)
        device = anchor.device if isinstance(anchor, torch.Tensor) else torch.device("cpu")
    fam.event_shape = tuple(getattr(first, "event_shape", ()) or ())

    seeds_by_q: dict[float, torch.Tensor] = {}
    given = {} if starts is None else (starts if isinstance(starts, Mapping) else {start: starts})
    for value, pts in given.items():
        pts = check_tensor(pts, "starts", min_ndim=1)
        qv = fam.q(float(value))
        if not min(q0, q1) <= qv <= max(q0, q1):
            raise ValueError(f"starts: seed value {value!r} is outside [{start}, {stop}]")
        seeds_by_q[qv] = pts.reshape(pts.shape[0], -1).to(dtype=dtype, device=device)
    if not fam.event_shape:
        fam.event_shape = (next(iter(seeds_by_q.values())).shape[1],) if seeds_by_q else (1,)
    dim = int(np.prod(fam.event_shape))
    for pts in seeds_by_q.values():
        if pts.shape[1] != dim:
            raise ValueError(
                f"starts must have shape (N, {', '.join(map(str, fam.event_shape))}), "
                f"got points of {pts.shape[1]} coordinates"
            )
    kw = census_kwargs or {}
    interior = [float(v) for v in np.linspace(q0, q1, reseed + 2)[1:-1]]
    for qv in [q0, *interior] if starts is None else interior:
        seeds_by_q[float(qv)] = _census(fam, float(qv), generator, kw).to(device)
    allpts = torch.cat(list(seeds_by_q.values()))
    if scale is None:
        spread = float((allpts - allpts.mean(0)).norm(dim=1).max())
        scale = spread if spread > 0 else max(float(allpts.norm(dim=1).max()), 1.0)
    fam.scale = float(scale)

    span = abs(q1 - q0)
    cfg = _Cfg(span / steps, 2.5 * span / steps, 1e-7 * span / steps, tol, max_points,
               min(q0, q1), max(q0, q1))  # fmt: skip
    forward = torch.zeros(allpts.shape[1] + 1, dtype=dtype, device=device)
    forward[-1] = 1.0 if q1 > q0 else -1.0

    forward = torch.zeros(allpts.shape[1] + 1, dtype=dtype, device=device)
    forward[-1] = 1.0 if q1 > q0 else -1.0
    queue: deque[_Seed] = deque()
    for qv, pts in sorted(seeds_by_q.items(), key=lambda kv: abs(kv[0] - q0)):
        refs = (forward,) if qv == q0 else (-forward, forward)
        for x in pts:
            u = torch.cat([x / fam.scale, x.new_tensor([qv])])
            u, ok, _ = _correct(fam, u, forward.abs(), cfg.tol)  # refine at fixed p
            if ok:
                queue.append(_Seed(u, refs))
    paths, events = _trace(fam, queue, cfg, branch_switching)
    if saddle_connections and paths:
        events += _saddle_connections(fam, paths, events, cfg, n_graph)
    branches, bifurcations = _tables(fam, paths, events)
    return BifurcationDiagram(parameter, log, branches, bifurcations)
