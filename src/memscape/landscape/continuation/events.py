"""Bifurcations on an arc piece: detection, location by Brent, verification, classification.

Kuznetsov 2004, *Elements of Applied Bifurcation Theory*, §3–4 and §10 (one-parameter
bifurcations of equilibria; for a gradient field ``G = ∇ₓE`` the Jacobian is the Hessian):

- **fold** (saddle-node): the branch turns back in ``q`` while one Hessian eigenvalue
  crosses zero, so branches of index ``k`` and ``k + 1`` meet and annihilate; the
  bordered matrix ``[∂ₓG ∂_qG]`` keeps full rank;
- **pitchfork** (symmetric branch point): ``[∂ₓG ∂_qG]`` loses rank; a branch goes
  through with its index changing by one while a second branch turns there, two of
  its halves of index ``k`` meeting the through branch of index ``k ± 1``;
- **transcritical**: ``[∂ₓG ∂_qG]`` loses rank and every branch through the point passes
  through it, as many critical points merging there on both sides: two branches
  exchanging indices generically; with ``D₃`` symmetry (three equal data points on an
  equilateral triangle) a double eigenvalue crosses zero on the central branch while the
  three branches of isotropy ``Z₂`` cross it (Golubitsky, Stewart & Schaeffer 1988, vol. II,
  the ``D_n`` case study with ``n = 3``), found by :mod:`.unfolding`;
- **branch_point**: any other rank-deficient point, or one whose structure is not resolved.

A candidate is a change of the Morse index along the piece (the crossing eigenvalue
``λ_j`` is located by Brent's method) or a turn of ``q`` (the root of the tangent's ``q``
component).  It is reported only when verified: the located point is a critical point
(``‖∇E‖`` small), one eigenvalue is zero there, and the local structure is that of the
kind.  A candidate that fails is a branch jump of the corrector; the caller halves the
step and follows the piece again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy.optimize import brentq

from memscape.landscape.continuation.corrector import Config, Piece, correct, jacobian, tangent
from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import (
    BRANCH_POINT_RTOL,
    LOCATE_XTOL,
    SWITCH_STEP,
    TURN_TOL,
    VERIFY_EIG_RTOL,
    VERIFY_GRAD_RTOL,
)
from memscape.landscape.continuation.unfolding import unfold
from memscape.landscape.morse import morse_index

__all__ = ["Event", "examine"]


@dataclass
class Event:
    """A verified bifurcation at ``u = (x̃, q)``, arc parameter ``s`` on its piece.

    ``index_before`` / ``index_after``: for a fold, the indices of the branch arriving at
    and leaving the turning point along the traced direction; for a branch point, the
    through branch's index on the side of ``start`` and on the side of ``stop``.
    ``multiplicity``: the Hessian eigenvalues through zero; ``points_before`` /
    ``points_after``: the critical points merging at the event on the side of ``start``
    and of ``stop`` (−1: not resolved). ``switched``: points ``(u, outward direction)`` on
    the branches leaving a branch point; ``nearby``: the merging points found around it
    (followed both ways: a branch crossing the point is one branch). ``stalled``: a fold
    where branches stopped, solved for directly (:mod:`.stall`).
    """

    kind: str
    u: torch.Tensor
    s: float
    index_before: int
    index_after: int
    grad_norm: float
    eigenvalue: float
    branch: int = -1
    children: list[int] = field(default_factory=list)
    switched: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    multiplicity: int = 1
    points_before: int = -1
    points_after: int = -1
    nearby: list[torch.Tensor] = field(default_factory=list)
    stalled: bool = False


def _locate(piece: Piece, fun: Callable[[float], float], f0: float, f1: float) -> float | None:
    """Root of ``fun(s)`` on ``[0, s1]`` by Brent (``f0, f1``: its end values), or None."""
    if f0 == 0.0 or f1 == 0.0:
        return 0.0 if f0 == 0.0 else piece.s1
    if f0 * f1 > 0:
        return None
    try:
        return float(brentq(fun, 0.0, piece.s1, xtol=LOCATE_XTOL * piece.s1 + 1e-300))
    except ArithmeticError:  # the corrector failed inside the piece: a jump
        return None


def _jacobian_scale(fam: Family, piece: Piece) -> float:
    """Largest ``‖[L·∂ₓG ∂_qG]‖₂`` at the piece's ends: the scale of ``G``'s derivatives."""
    return max(float(torch.linalg.matrix_norm(jacobian(fam, v)[1], ord=2)) for v in
               (piece.u0, piece.u1))  # fmt: skip


def _rank_deficient(fam: Family, u: torch.Tensor, ref: float) -> bool:
    """``[∂ₓG ∂_qG]`` at ``u`` has rank < d: smallest singular value ≤ rtol · ``ref``."""
    _, a = jacobian(fam, u)
    return float(torch.linalg.svdvals(a)[-1]) <= BRANCH_POINT_RTOL * max(ref, 1e-300)


def _branch_point(
    fam: Family, u: torch.Tensor, piece: Piece, cfg: Config, forward: float, mult: int = 1
):
    """Kind and indices at a rank-deficient point, and the points on the branches leaving it.

    With ``mult`` Hessian eigenvalues at zero, the null space of ``[∂ₓG ∂_qG]`` holds the
    ``(v_i, 0)`` (``v_i`` the Hessian's null eigenvectors: the tangents of turning branches,
    one for a pitchfork) and one direction orthogonal to them (the through branch). Each
    is followed ``SWITCH_STEP`` initial steps both ways. A pitchfork needs ``mult == 1``, a
    through branch whose index changes by one and a turning branch whose two halves lie on
    one side, with the through branch's index of the other side.
    """
    x, q = u[:-1], float(u[-1])
    w, vecs = torch.linalg.eigh(0.5 * (fam.hess(x, q) + fam.hess(x, q).T))
    turns = [torch.cat([vecs[:, i], vecs.new_zeros(1)]) for i in w.abs().argsort()[:mult]]
    _, a = jacobian(fam, u)
    null = torch.linalg.svd(a, full_matrices=True).Vh[-(mult + 1) :]  # (mult + 1, d + 1)
    for t in turns:
        null = null - (null @ t)[:, None] * t[None]
    through = null[int(null.norm(dim=1).argmax())]
    through = through / through.norm()
    delta = SWITCH_STEP * cfg.h0
    out: dict[str, list[tuple[torch.Tensor, torch.Tensor, int]]] = {"turn": [], "through": []}
    for name, dvec in [("turn", t) for t in turns] + [("through", through)]:
        for sign in (1.0, -1.0):
            d = sign * dvec
            p, ok, _ = correct(fam, u + delta * d, d, cfg.tol)
            gap = float((p - u).norm())
            if ok and cfg.q_lo <= float(p[-1]) <= cfg.q_hi and 0.5 * delta < gap < 2 * delta:
                idx = int(morse_index(fam.eigvals(p[:-1], float(p[-1]))))
                out[name].append((p, (p - u) / gap, idx))
    thr = sorted(out["through"], key=lambda e: forward * (float(e[0][-1]) - q))
    kind, before, after = "branch_point", -1, -1
    extra: dict[str, Any] = {"multiplicity": mult}
    if len(thr) == 2:
        before, after = thr[0][2], thr[1][2]
        turning = {e[2] for e in out["turn"]}
        sides = {1.0 if float(e[0][-1]) > q else -1.0 for e in out["turn"]}
        if mult == 1 and abs(before - after) == 1 and len(turning) == 1 and len(sides) == 1:
            k = turning.pop()
            turn_after = forward * sides.pop() > 0
            same_side = thr[1] if turn_after else thr[0]  # through, turning side
            other = thr[0] if same_side is thr[1] else thr[1]
            if same_side[2] != k and other[2] == k:
                kind = "pitchfork"
                extra.update(
                    points_before=1 if turn_after else 3, points_after=3 if turn_after else 1
                )
    switched = [(p, d) for p, d, _ in out["turn"] + out["through"]]
    if kind == "branch_point":  # count what merges there (a transcritical, a D₃ crossing, ...)
        unf = unfold(fam, u, mult, cfg.h0, forward, (cfg.q_lo, cfg.q_hi), cfg.tol)
        kind = unf.kind()
        if unf.resolved:
            extra.update(points_before=len(unf.before), points_after=len(unf.after))
        extra["nearby"] = unf.before + unf.after
    return kind, before, after, switched, extra


def _vertex(
    fam: Family, cfg: Config, forward: float, piece: Piece, index: int, turn_sign: float
) -> list[Event] | None:
    """A turn of ``q`` without an index change: the vertex of a pitchfork's turning branch.

    Every corrector is singular at a branch point, so the vertex is not located on the
    turning branch itself: a third branch (the through branch, index ``index ± 1``) must
    cross the middle ``q`` of the piece between its ends, and its crossing eigenvalue is
    located by Brent in ``q`` (natural parameter: the through branch is transversal to
    ``q``) beyond that, on the side the piece turned at (``turn_sign``). ``None`` unless
    that point verifies as a branch point within the piece's reach (a jump otherwise).
    """
    e_q = torch.zeros_like(piece.u0)
    e_q[-1] = 1.0
    mid = 0.5 * (piece.u0 + piece.u1)
    span = float((piece.u1 - piece.u0).norm())
    w, ok, _ = correct(fam, mid, e_q, cfg.tol)
    if not ok or float((w - mid).norm()) > span:
        return None
    if min(float((w - piece.u0).norm()), float((w - piece.u1).norm())) < 0.1 * span:
        return None
    eig_w = fam.eigvals(w[:-1], float(w[-1]))
    if abs(int(morse_index(eig_w)) - index) != 1:
        return None
    j = min(index, int(morse_index(eig_w)))

    def at(q: float) -> torch.Tensor:
        u, ok, _ = correct(fam, torch.cat([w[:-1], w.new_tensor([q])]), e_q, cfg.tol)
        if not ok:
            raise ArithmeticError("corrector failed on the through branch")
        u[-1] = q
        return u

    qa, qb = float(w[-1]), float(w[-1]) + turn_sign * span
    try:
        fa, fb = float(eig_w[j]), float(fam.eigvals(at(qb)[:-1], qb)[j])
    except ArithmeticError:
        return None
    if fa * fb > 0:
        return None

    def crossing(q: float) -> float:
        try:
            u = at(q)
        except ArithmeticError:  # past the end of a branch (a fold at round-off distance)
            return fb
        return float(fam.eigvals(u[:-1], q)[j])

    q = float(brentq(crossing, min(qa, qb), max(qa, qb), xtol=LOCATE_XTOL * span + 1e-300))
    try:
        u = at(q)
    except ArithmeticError:
        return None
    if float((u - mid).norm()) > span:
        return None
    x = u[:-1]
    eig = fam.eigvals(x, q)
    lam, lam_scale = float(eig[j]), max(float(eig.abs().max()), abs(fa), abs(fb))
    jac_scale = _jacobian_scale(fam, piece)
    grad = float(fam.grad(x, q).norm())
    if grad > VERIFY_GRAD_RTOL * jac_scale or abs(lam) > VERIFY_EIG_RTOL * lam_scale:
        return None
    if not _rank_deficient(fam, u, jac_scale):
        return None
    kind, before, after, switched, extra = _branch_point(fam, u, piece, cfg, forward)
    return [Event(kind, u, 0.5 * piece.s1, before, after, grad, lam, switched=switched, **extra)]


def examine(
    fam: Family,
    cfg: Config,
    forward: float,
    piece: Piece,
    start: tuple[torch.Tensor, torch.Tensor],
    end: tuple[torch.Tensor, torch.Tensor],
) -> list[Event] | None:
    """The verified events on ``piece``; ``None`` when a candidate fails (a branch jump).

    Args:
        fam: the family.
        cfg: step configuration.
        forward: ``+1`` when ``q`` runs up from ``start`` to ``stop``, else ``−1``.
        piece: the arc piece just followed.
        start: ``(unit tangent, ascending eigenvalues)`` at ``piece.u0``.
        end: the same at ``piece.u1``.
    """
    (t0, eig0), (t1, eig1) = start, end
    m0, m1 = int(morse_index(eig0)), int(morse_index(eig1))
    turned = float(t0[-1]) * float(t1[-1]) < 0
    if m0 == m1 and not turned:
        return []
    mult = abs(m0 - m1)  # > 1: a multiple eigenvalue (symmetry) or two crossings in one step

    def point(s: float) -> torch.Tensor:
        return piece.point(fam, s, cfg.tol)

    if m0 != m1:  # an eigenvalue crosses zero: Brent on it
        j = min(m0, m1)

        def crossing(s: float) -> float:
            u = point(s)
            return float(fam.eigvals(u[:-1], float(u[-1]))[j])

        s = _locate(piece, crossing, float(eig0[j]), float(eig1[j]))
    else:  # a turn without an index change: Brent on the tangent's q component
        j = -1
        s = _locate(piece, lambda s: float(tangent(fam, point(s), piece.d)[-1]),
                    float(t0[-1]), float(t1[-1]))  # fmt: skip
    if s is None:
        return _vertex(fam, cfg, forward, piece, m0, float(t0[-1])) if m0 == m1 else None
    u = point(s)
    x, q = u[:-1], float(u[-1])
    eig = fam.eigvals(x, q)
    j = j if j >= 0 else int(eig.abs().argmin())
    lam = float(eig[j])
    # scales: the spectrum at u and the crossing eigenvalue's change over the piece (in 1-D
    # the spectrum is that eigenvalue alone); the Jacobian's norm for the gradient
    lam_scale = max(float(eig.abs().max()), abs(float(eig0[j])), abs(float(eig1[j])))
    jac_scale = _jacobian_scale(fam, piece)
    grad = float(fam.grad(x, q).norm())
    if mult > 1 and float(eig[j : j + mult].abs().max()) > VERIFY_EIG_RTOL * lam_scale:
        return None  # separate crossings: follow the piece in smaller steps
    if grad > VERIFY_GRAD_RTOL * jac_scale or abs(lam) > VERIFY_EIG_RTOL * lam_scale:
        # not a degenerate critical point: a jump between branches, or the vertex of a turning
        # branch (where every corrector is singular)
        return _vertex(fam, cfg, forward, piece, m0, float(t0[-1])) if m0 == m1 else None
    branch = _rank_deficient(fam, u, jac_scale)
    if not branch:  # a fold: an index change of one at a turn of q
        tq = abs(float(tangent(fam, u, piece.d)[-1]))
        if mult != 1 or not turned or tq > TURN_TOL:
            return None
        after_side = forward * (float(piece.u0[-1]) + float(piece.u1[-1]) - 2 * q) > 0
        pts = (0, 2) if after_side else (2, 0)  # the two branches lie on the side of the turn
        return [Event("fold", u, s, m0, m1, grad, lam, points_before=pts[0], points_after=pts[1])]
    if m0 == m1:  # the turning branch: its through branch is located and verified there
        return _vertex(fam, cfg, forward, piece, m0, float(t0[-1]))
    kind, before, after, switched, extra = _branch_point(fam, u, piece, cfg, forward, mult)
    if before < 0:  # through branch not resolved: its indices from the traced piece
        before, after = (m0, m1) if forward * float(piece.d[-1]) >= 0 else (m1, m0)
    return [Event(kind, u, s, before, after, grad, lam, switched=switched, **extra)]
