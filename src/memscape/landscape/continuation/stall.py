"""A branch that stops next to a degenerate critical point: the fold located directly.

Where two branches come closer than the corrector can separate (an imperfect pitchfork
whose imperfection is at round-off: data far from all others make a symmetric pair up
to ``e^{−30}``, so the fold lies within ``~10⁻⁹`` in σ of the symmetric point) no step
verifies and the branch stops. The fold that the branch was turning at is then solved
for from the last point by Newton on the extended system of Moore & Spence 1980
(*SIAM J. Numer. Anal.* 17, 567; Seydel, *Practical Bifurcation and Stability Analysis*,
§5.4): ``G(x, q) = 0``, ``∂ₓG(x, q)·v = 0``, ``v₀ᵀv = 1``, regular at a fold, and
reported only when it verifies like any other event.
"""

from __future__ import annotations

import torch

from memscape.landscape.continuation.corrector import Config
from memscape.landscape.continuation.events import Event
from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import (
    MAX_CORRECTOR_ITER,
    STALL_FD_STEP,
    STALL_MAX_DIM,
    VERIFY_EIG_RTOL,
    VERIFY_GRAD_RTOL,
)
from memscape.landscape.morse import morse_index

__all__ = ["fold_at_stall"]


def _residual(fam: Family, z: torch.Tensor, v0: torch.Tensor, d: int) -> torch.Tensor:
    x, q, v = z[:d], float(z[d]), z[d + 1 :]
    return torch.cat([fam.grad(x, q), fam.scale * fam.hess(x, q) @ v, (v0 @ v - 1)[None]])


def fold_at_stall(fam: Family, u: torch.Tensor, cfg: Config, lam_scale: float) -> Event | None:
    """The verified fold next to the last point ``u`` of a stopped branch, or ``None``.

    Next to a pitchfork the extended system is itself nearly singular (``∂ₓ(∂ₓG·v)`` is
    ``E‴ ≈ 0``), so Newton wanders at round-off distance from the fold: the iterate of
    smallest residual is kept, and reported when it verifies.

    Args:
        fam: the family.
        u: the last point ``(x̃, q)`` the branch reached.
        cfg: step configuration.
        lam_scale: the largest ``|λ|`` of the Hessian along the branch (the scale of
            its eigenvalues and, times ``L``, of the Jacobian).
    """
    d = u.shape[0] - 1
    if d > STALL_MAX_DIM:  # the Jacobian below costs 2d + 1 Hessians per iteration
        return None
    x, q = u[:-1], float(u[-1])
    w, vecs = torch.linalg.eigh(0.5 * (fam.hess(x, q) + fam.hess(x, q).T))
    j = int(w.abs().argmin())
    v0 = vecs[:, j]
    z = torch.cat([u, v0])
    best, best_res = z, float(_residual(fam, z, v0, d).norm())
    for _ in range(MAX_CORRECTOR_ITER):
        f = _residual(fam, z, v0, d)
        jac = torch.empty(len(z), len(z), dtype=z.dtype, device=z.device)
        for i in range(len(z)):  # forward differences
            e = torch.zeros_like(z)
            e[i] = STALL_FD_STEP * max(1.0, abs(float(z[i])))
            jac[:, i] = (_residual(fam, z + e, v0, d) - f) / e[i]
        step = torch.linalg.lstsq(jac.cpu(), -f.cpu()[:, None]).solution[:, 0].to(z.device)
        z = z + step
        if not bool(torch.isfinite(z).all()) or float((z[: d + 1] - u).norm()) > cfg.h0:
            break  # wandered off: never evaluate the family out there
        res = float(_residual(fam, z, v0, d).norm())
        if res < best_res:
            best, best_res = z, res
        if float(step.norm()) < cfg.tol:
            break
    at = best[: d + 1]
    xf, qf = at[:-1], float(at[-1])
    if not cfg.q_lo <= qf <= cfg.q_hi or float((at - u).norm()) > cfg.h0:
        return None
    eig = fam.eigvals(xf, qf)
    grad = float(fam.grad(xf, qf).norm())
    lam = float(eig[int(eig.abs().argmin())])
    if grad > VERIFY_GRAD_RTOL * fam.scale * lam_scale or abs(lam) > VERIFY_EIG_RTOL * lam_scale:
        return None
    index_in = int(morse_index(w))
    index_out = index_in + 1 if float(w[j]) > 0 else index_in - 1
    return Event("fold", at, 0.0, index_in, index_out, grad, lam, stalled=True)
