"""Pseudo-arclength predictor–corrector along one branch (Keller 1977; Allgower & Georg ch. 2).

With ``u = (x̃, q)`` and unit tangent ``t`` solving ``[∂ₓG ∂_qG] t = 0``, the predictor
``u + h t`` is corrected by Newton on ``G(u) = 0, tᵀ(u − u_pred) = 0``, whose Jacobian
``[[∂ₓG, ∂_qG], [tᵀ]]`` stays regular at folds.  A step is accepted when the corrector
converges, moves less than ``MAX_CORRECTION·h`` (distance criterion) and turns the tangent
by less than ``arccos MIN_TANGENT_COS`` (angle criterion), and when the events on the new
arc piece verify (:func:`memscape.landscape.continuation.events.examine`); otherwise the
step is halved and the piece followed again, so the corrector never jumps to a
neighbouring branch unnoticed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import (
    FAST_ITERS,
    GROW,
    MAX_CORRECTION,
    MAX_CORRECTOR_ITER,
    MAX_CORRECTOR_TRAVEL,
    MIN_TANGENT_COS,
    SHRINK,
    SLOW_ITERS,
)

__all__ = ["Config", "Path", "Piece", "correct", "follow", "jacobian", "tangent"]


@dataclass
class Config:
    """Step bounds (scaled units), corrector tolerance and the ``q`` range."""

    h0: float
    h_max: float
    h_min: float
    tol: float
    max_points: int
    q_lo: float
    q_hi: float


@dataclass
class Piece:
    """An arc piece ``u(s) = correct(u0 + s·d, normal n)``, ``0 ≤ s ≤ s1``, ending at ``u1``."""

    u0: torch.Tensor
    d: torch.Tensor
    n: torch.Tensor
    s1: float
    u1: torch.Tensor

    def point(self, fam: Family, s: float, tol: float) -> torch.Tensor:
        """The corrected point at ``s`` (``ArithmeticError`` when the corrector fails)."""
        if s <= 0.0:
            return self.u0
        if s >= self.s1:
            return self.u1
        u, ok, _ = correct(fam, self.u0 + s * self.d, self.n, tol)
        if not ok:
            raise ArithmeticError("corrector failed on an arc piece")
        return u


def chord(u0: torch.Tensor, u1: torch.Tensor) -> Piece:
    """The arc piece from ``u0`` to ``u1`` parameterized along their chord."""
    c = u1 - u0
    length = float(c.norm())
    return Piece(u0, c / length, c / length, length, u1)


@dataclass
class Path:
    """One followed half-branch: points, unit tangents, ascending eigenvalues, arc pieces.

    ``pieces[k]`` joins ``u[k]`` to ``u[k + 1]``; ``mark[k]``: ``u[k]`` is a located event;
    ``stalled``: it stopped before the range end, no step verifying, even the smallest.
    """

    u: list[torch.Tensor] = field(default_factory=list)
    tan: list[torch.Tensor] = field(default_factory=list)
    eig: list[torch.Tensor] = field(default_factory=list)
    mark: list[bool] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    stalled: bool = False

    def add(self, u: torch.Tensor, t: torch.Tensor, eig: torch.Tensor, mark: bool) -> None:
        """Append a point (its piece from the previous point is appended by the caller)."""
        self.u.append(u)
        self.tan.append(t)
        self.eig.append(eig)
        self.mark.append(mark)


def jacobian(fam: Family, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``G(u)`` ``(d,)`` and ``[L·∂ₓG, ∂_qG]`` ``(d, d + 1)`` at ``u = (x̃, q)``."""
    x, q = u[:-1], float(u[-1])
    a = torch.cat([fam.scale * fam.hess(x, q), fam.dgdq(x, q)[:, None]], dim=1)
    return fam.grad(x, q), a


def _solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a⁻¹b``; the minimum-norm least-squares solution when ``a`` is singular."""
    try:
        return torch.linalg.solve(a, b)
    except RuntimeError:  # exactly singular (e.g. at a branch point): pseudo-inverse
        return torch.linalg.pinv(a) @ b


def correct(
    fam: Family, pred: torch.Tensor, n: torch.Tensor, tol: float
) -> tuple[torch.Tensor, bool, int]:
    """Newton on ``G(u) = 0, nᵀ(u − pred) = 0``: ``(u, converged, iterations)``."""
    u = pred.clone()
    for it in range(1, MAX_CORRECTOR_ITER + 1):
        g, a = jacobian(fam, u)
        f = torch.cat([g, (n @ (u - pred))[None]])
        j = torch.cat([a, n[None]], dim=0)
        if float(f.norm()) <= 1e-13 * float(j.norm()) * (1 + float(u.norm())):
            return u, True, it  # residual at rounding level (steps are noise at a branch point)
        du = _solve(j, -f)
        u = u + du
        if not bool(torch.isfinite(u).all()) or float((u - pred).norm()) > MAX_CORRECTOR_TRAVEL:
            return u, False, it  # diverged: never evaluate the family out there (σ → 0, ∞)
        if float(du.norm()) < tol:
            return u, True, it
    return u, False, MAX_CORRECTOR_ITER


def tangent(fam: Family, u: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Unit null vector of ``[∂ₓG ∂_qG]`` at ``u``, oriented so that ``tᵀref > 0``."""
    _, a = jacobian(fam, u)
    rhs = torch.zeros_like(u)
    rhs[-1] = 1.0
    t = _solve(torch.cat([a, ref[None]], dim=0), rhs)
    return t / t.norm()


#: ``examine(piece, (t0, eig0), (t1, eig1))``: the verified events on a piece (with their
#: arc parameters), or ``None`` when a candidate fails verification (a branch jump).
Examine = Callable[..., "list | None"]


def _step(fam: Family, u: torch.Tensor, t: torch.Tensor, h: float, cfg: Config):
    """One predictor–corrector step: ``(piece, tangent at its end, iterations, at range end)``.

    ``None`` when the corrector fails or breaks the distance or angle criterion.
    """
    pred = u + h * t
    new, ok, iters = correct(fam, pred, t, cfg.tol)
    if not ok or float((new - pred).norm()) > MAX_CORRECTION * h:
        return None
    t_new = tangent(fam, new, t)
    if float(t_new @ t) < MIN_TANGENT_COS:
        return None
    q_new = float(new[-1])
    if cfg.q_lo <= q_new <= cfg.q_hi:
        return Piece(u, t, t, h, new), t_new, iters, False
    q_b = cfg.q_hi if q_new > cfg.q_hi else cfg.q_lo  # land exactly on the range end
    c = new - u
    frac = (q_b - float(u[-1])) / float(c[-1])
    e_q = torch.zeros_like(u)
    e_q[-1] = 1.0
    end, ok, _ = correct(fam, u + frac * c, e_q, cfg.tol)
    if not ok:
        return None
    end[-1] = q_b
    length = float(c.norm())
    return Piece(u, c / length, e_q, frac * length, end), tangent(fam, end, t), iters, True


def follow(fam: Family, u0: torch.Tensor, ref: torch.Tensor, cfg: Config, examine: Examine):
    """Follow one branch from ``u0`` along ``ref`` to the end of the range: ``(Path, events)``.

    Events located on a piece are inserted into the path as marked points, which split
    the piece in two, so every piece of the returned path is free of events.
    """
    path, events = Path(), []
    t = tangent(fam, u0, ref)
    path.add(u0, t, fam.eigvals(u0[:-1], float(u0[-1])), False)
    u, h = u0, cfg.h0
    while len(path.u) < cfg.max_points:
        step = _step(fam, u, t, h, cfg)
        found = None
        if step is not None:
            piece, t_new, iters, at_end = step
            eig_new = fam.eigvals(piece.u1[:-1], float(piece.u1[-1]))
            found = examine(piece, (t, path.eig[-1]), (t_new, eig_new))
        if step is None or found is None:
            h *= 0.5
            if h < cfg.h_min:  # the caller warns (and looks for a fold there)
                path.stalled = True
                break
            continue
        start = piece.u0
        for ev in sorted(found, key=lambda e: e.s):
            path.pieces.append(chord(start, ev.u))
            path.add(ev.u, t_new, fam.eigvals(ev.u[:-1], float(ev.u[-1])), True)
            events.append(ev)
            start = ev.u
        path.pieces.append(piece if start is piece.u0 else chord(start, piece.u1))
        path.add(piece.u1, t_new, eig_new, False)
        u, t = piece.u1, t_new
        if at_end:
            break
        h = min(GROW * h, cfg.h_max) if iters <= FAST_ITERS else (
            SHRINK * h if iters > SLOW_ITERS else h)  # fmt: skip
        if len(path.u) > 10 and float((u - path.u[0]).norm()) < 0.5 * h:
            break  # closed loop (isola)
    else:
        warnings.warn(
            f"continuation: a branch reached max_points={cfg.max_points} at "
            f"{fam.p(float(u[-1])):.6g}, before the range end",
            RuntimeWarning,
            stacklevel=4,
        )
    return path, events
