"""The local structure of a branch point: the critical points that merge there, on each side.

At a branch point ``u* = (x*, q*)`` of ``G = ∇ₓE`` with ``m`` Hessian eigenvalues at zero,
every branch through ``u*`` is tangent to the span of the Hessian's null vectors and the
through branch's tangent (Lyapunov–Schmidt reduction: Golubitsky & Schaeffer 1985,
*Singularities and Groups in Bifurcation Theory* I, ch. I §3; Kuznetsov 2004, §10.2). So
the critical points near ``x*`` at ``q* ± δ`` are found by Newton at fixed ``q`` from
starts spread over that null space. Those that merge at ``u*`` approach ``x*`` as
``δ → 0`` (like ``δ`` on a branch crossing transversally, like ``δ^{1/2}`` on a turning
branch), so the census is taken at two ``δ`` and trusted only when both agree in number
and the points move closer.

The counts name the kind (Kuznetsov 2004, §3.4 and §10.2; Golubitsky, Stewart & Schaeffer
1988, *Singularities and Groups in Bifurcation Theory* II, the ``D_n`` case study):

- ``3`` points on one side and ``1`` on the other: a **pitchfork** (the through branch and
  the two halves of the branch turning there);
- as many points on both sides, at least two: a **transcritical** bifurcation, where every
  branch passes through ``u*`` exchanging indices with the others: two branches
  generically (``m = 1``); with ``D₃`` symmetry the central branch and the three branches
  of isotropy ``Z₂`` (``m = 2``: the normal form ``λz + a z̄²`` has a quadratic term, so
  these branches cross the central one transcritically; all three are saddles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import (
    LOCAL_DIRECTIONS,
    LOCAL_ITERS,
    LOCAL_RADIUS,
    LOCAL_SHRINK,
    LOCAL_STEP,
    SAME_POINT_TOL,
)
from memscape.landscape.morse import morse_index

__all__ = ["Unfolding", "unfold"]


@dataclass
class Unfolding:
    """Critical points ``(x̃, q)`` merging at a branch point, on the start and stop sides.

    ``resolved``: the census agreed at both ``δ``; ``before`` / ``after`` are empty when
    not. ``indices_*``: their Morse indices.
    """

    resolved: bool
    before: list[torch.Tensor] = field(default_factory=list)
    after: list[torch.Tensor] = field(default_factory=list)
    indices_before: list[int] = field(default_factory=list)
    indices_after: list[int] = field(default_factory=list)

    def kind(self) -> str:
        """``pitchfork``, ``transcritical`` or ``branch_point`` from the counts."""
        nb, na = len(self.before), len(self.after)
        if not self.resolved:
            return "branch_point"
        if {nb, na} == {1, 3}:
            return "pitchfork"
        if nb == na >= 2:
            return "transcritical"
        return "branch_point"


def _directions(null: torch.Tensor) -> torch.Tensor:
    """Unit start directions ``(k, d)`` over the null space spanned by the columns of ``null``."""
    m = null.shape[1]
    if m == 2:
        th = torch.arange(LOCAL_DIRECTIONS, dtype=null.dtype, device=null.device)
        th = th * (2 * math.pi / LOCAL_DIRECTIONS)
        return torch.cos(th)[:, None] * null[:, 0] + torch.sin(th)[:, None] * null[:, 1]
    dirs = [null[:, i] for i in range(m)]
    dirs += [(null[:, i] + s * null[:, j]) / math.sqrt(2) for i in range(m)
             for j in range(i + 1, m) for s in (1.0, -1.0)]  # fmt: skip
    out = torch.stack(dirs)
    return torch.cat([out, -out])


def _newton(
    fam: Family, x: torch.Tensor, q: float, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton on ``∇ₓE(·, q) = 0`` from a batch of scaled starts: ``(points, converged)``."""
    ok = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(LOCAL_ITERS):
        g = fam.grads(x, q)
        step = -(torch.linalg.pinv(fam.scale * fam.hessians(x, q)) @ g[..., None])[..., 0]
        x = x + step
        ok = torch.isfinite(x).all(dim=1) & (step.norm(dim=1) < tol)
        if bool(ok.all()):
            break
    return x, ok


def _near(fam: Family, x_star: torch.Tensor, q: float, dirs: torch.Tensor, delta: float,
          tol: float) -> list[torch.Tensor]:  # fmt: skip
    """The distinct critical points at ``q`` within ``LOCAL_RADIUS·δ^{1/2}`` of ``x*``."""
    radius = LOCAL_RADIUS * math.sqrt(delta)
    radii = torch.logspace(math.log10(delta / 4), math.log10(radius), 5, dtype=x_star.dtype)
    starts = x_star + (radii.to(x_star.device)[:, None, None] * dirs[None]).reshape(-1, len(x_star))
    x, ok = _newton(fam, torch.cat([x_star[None], starts]), q, tol)
    out: list[torch.Tensor] = []
    for p in x[ok & ((x - x_star).norm(dim=1) <= radius)]:
        if all(float((p - o).norm()) > SAME_POINT_TOL * (1 + float(o.norm())) for o in out):
            out.append(p)
    return out


def unfold(fam: Family, u: torch.Tensor, mult: int, h0: float, forward: float,
           q_range: tuple[float, float], tol: float) -> Unfolding:  # fmt: skip
    """The critical points merging at the branch point ``u`` (``mult`` zero eigenvalues).

    Args:
        fam: the family.
        u: the located branch point ``(x̃*, q*)``.
        mult: how many Hessian eigenvalues vanish there.
        h0: the initial continuation step (``δ = LOCAL_STEP·h0``).
        forward: ``+1`` when ``q`` runs up from start to stop, else ``−1``.
        q_range: ``(q_lo, q_hi)``: a side outside it is unresolved.
        tol: Newton tolerance on the step (scaled units).
    """
    x_star, q = u[:-1], float(u[-1])
    h = fam.hess(x_star, q)
    w, vecs = torch.linalg.eigh(0.5 * (h + h.T))
    dirs = _directions(vecs[:, w.abs().argsort()[: max(mult, 1)]])
    found = []
    for delta in (LOCAL_STEP * h0, LOCAL_STEP * h0 / 4):
        sides = []
        for sign in (-forward, forward):  # start side first
            qs = q + sign * delta
            if not q_range[0] <= qs <= q_range[1]:
                return Unfolding(False)
            pts = _near(fam, x_star, qs, dirs, delta, tol)
            sides.append([torch.cat([p, p.new_tensor([qs])]) for p in pts])
        found.append(sides)
    (b0, a0), (b1, a1) = found
    if len(b0) != len(b1) or len(a0) != len(a1) or not b0 or not a0:
        return Unfolding(False)
    reach = [max(float((p[:-1] - x_star).norm()) for p in pts) for pts in (b0 + a0, b1 + a1)]
    if reach[1] > LOCAL_SHRINK * reach[0]:  # not merging at u: other critical points nearby
        return Unfolding(False)

    def indices(pts: list[torch.Tensor]) -> list[int]:
        return [int(morse_index(fam.eigvals(p[:-1], float(p[-1])))) for p in pts]

    return Unfolding(True, b0, a0, indices(b0), indices(a0))
