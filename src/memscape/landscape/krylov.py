"""Matrix-free Levenberg–Marquardt steps: Lanczos on Hessian-vector products, damped MINRES.

For an energy model the Hessian ``H = ∇²E`` is symmetric (possibly indefinite at a
saddle). The Levenberg–Marquardt step of :mod:`memscape.landscape.newton` minimizes

    ‖H δ + g‖² + λ ‖δ‖²,   i.e.  (H² + λ I) δ = −H g.

Here it is minimized over the Krylov subspace ``𝒦_m(H, g)`` instead of ℝᵈ. The
Lanczos process (Paige & Saunders 1975, *SIAM J. Numer. Anal.* 12:617) started at
``v₁ = −g/‖g‖`` gives an orthonormal basis ``V_m`` with ``H V_m = V_{m+1} T̄_m``
(``T̄_m`` tridiagonal, ``(m+1) × m``), so for ``δ = V_m y``

    ‖H δ + g‖² + λ‖δ‖² = ‖T̄_m y − ‖g‖ e₁‖² + λ ‖y‖²,

a small damped least-squares problem. One SVD ``T̄_m = U S Wᵀ`` per Newton iteration
gives the step for *every* λ, ``y(λ) = W diag(S/(S² + λ)) Uᵀ ‖g‖e₁``, so a rejected
trial (λ × 10) costs no Hessian-vector product, as the eigen-decomposition does for
the dense step. At λ = 0 the step is the MINRES iterate (Paige & Saunders 1975),
which handles the indefinite ``H`` of a saddle where conjugate gradients on ``H δ = −g``
may break down. The basis is fully re-orthogonalized (two Gram–Schmidt passes), so
the small problem stays exact to round-off in floating point.

**Inexact Newton** (Nocedal & Wright 2006, *Numerical Optimization*, §7.1): the
subspace grows until the MINRES residual ``‖H δ₀ + g‖ ≤ η ‖g‖`` (tracked per sample by
the Givens recurrence of MINRES), with the forcing term
``η`` of Eisenstat & Walker 1996 (*SIAM J. Sci. Comput.* 17:16, Choice 2, γ = 0.9,
α = 2; :func:`forcing_term`), up to ``KRYLOV_MAX_DIM`` vectors. A
Lanczos run ends early for a sample whose subspace became invariant (``β_{m+1} ≈ 0``:
its step is exact); e.g. the exact diffusion model with ``K`` points has
``H = (I − Cov_w/σ²)/σ²`` with ``rank Cov_w < K``: at most ``K`` distinct eigenvalues,
so at most ``K`` vectors.

Each Hessian-vector product comes from :func:`memscape.landscape._fields.hvp_of`: the
model's closed-form operator where it has one (the exact model, Gaussian mixtures and
modern Hopfield: two ``K·d`` contractions, :mod:`memscape.curvature`), else one
vector–Jacobian product of the score (for an energy model ``∂s/∂x = −H`` is symmetric,
so ``H v = −(∂s/∂x)ᵀ v``: one backward pass through the closed-form score, or a double
backward through ``E`` when the model's score is the autograd one), batched over the
states because each state's energy depends on that state only.

Score-only models (a trained score network): ``H = −∂s/∂x`` need not be symmetric, and
the same damped problem is solved over the Krylov subspace of ``HᵀH`` by Golub–Kahan
bidiagonalization, i.e. damped LSQR (Paige & Saunders 1982, *ACM TOMS* 8:43;
:func:`bidiagonal_factor`), with ``Hᵀu`` one backward pass through the score and
``Hv`` the double-backward trick (:func:`jacobian_products_of`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from memscape.landscape._fields import score_with_graph
from memscape.protocol import ScoreOrDenoiser

__all__ = [
    "KRYLOV_MAX_DIM",
    "bidiagonal_factor",
    "forcing_term",
    "jacobian_products_of",
    "krylov_factor",
    "krylov_step",
]

#: most Lanczos vectors per Newton iteration (the subspace of the damped MINRES step).
KRYLOV_MAX_DIM = 64

#: Eisenstat–Walker 1996, Choice 2: η_k = γ (‖g_k‖/‖g_{k−1}‖)^α, with their γ and α.
EW_GAMMA = 0.9
EW_ALPHA = 2.0

#: forcing term of the first iteration and its cap (η_max of Eisenstat & Walker 1996,
#: commonly 0.9). Tighter here: with a loose η the MINRES residual can fall below η‖g‖
#: before the subspace resolves a saddle's few unstable directions, so the early steps
#: miss them (measured: the index-1 saddles of an exact diffusion model, d = 784, K = 20,
#: took 11–13 iterations at η_max = 0.5, 4–5 at 0.1, as many as the dense step's).
ETA_MAX = 0.1

#: Kelley 1995 (*Iterative Methods for Linear and Nonlinear Equations*, ch. 6): η ≥
#: ETA_TOL_FACTOR · tol/‖g‖, so the last iteration does not oversolve below the tolerance.
ETA_TOL_FACTOR = 0.5


def forcing_term(gn: torch.Tensor, gn_prev: torch.Tensor | None, tol: float) -> torch.Tensor:
    """Eisenstat–Walker forcing term ``η_k`` per state ``(n,)``.

    ``η_k = γ (‖g_k‖/‖g_{k−1}‖)^α`` (Eisenstat & Walker 1996, Choice 2, γ = 0.9, α = 2:
    locally quadratic convergence), capped at :data:`ETA_MAX`, and at least
    ``½ tol/‖g_k‖`` (Kelley 1995, ch. 6: no oversolving below the tolerance); ``η₀ =``
    :data:`ETA_MAX`. Their safeguard (raise ``η_k`` to ``γ η_{k−1}^α`` when that exceeds
    0.1) never acts under ``η ≤ 0.1`` and is left out.

    Args:
        gn: ``‖g_k‖`` ``(n,)``.
        gn_prev: ``‖g_{k−1}‖`` ``(n,)``, ``None`` at the first iteration.
        tol: the Newton iteration's gradient tolerance.
    """
    tiny = torch.finfo(gn.dtype).tiny
    if gn_prev is None:
        eta = torch.full_like(gn, ETA_MAX)
    else:
        eta = (EW_GAMMA * (gn / gn_prev.clamp_min(tiny)).pow(EW_ALPHA)).clamp(max=ETA_MAX)
    floor = (ETA_TOL_FACTOR * tol / gn.clamp_min(tiny)).clamp(max=ETA_MAX)
    return torch.maximum(eta, floor)


def krylov_factor(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    g: torch.Tensor,
    eta: torch.Tensor,
    max_dim: int = KRYLOV_MAX_DIM,
) -> tuple[torch.Tensor, ...]:
    """Lanczos factorization for the damped steps of :func:`krylov_step`.

    Args:
        hvp: batched ``v ↦ H v`` ``(n, d) → (n, d)`` (:func:`memscape.landscape._fields.hvp_of`), ``H`` symmetric.
        g: gradients ``∇E`` ``(n, d)``, none zero.
        eta: forcing terms ``(n,)``: a state's subspace stops growing once its MINRES
            residual is ``≤ η‖g‖``.
        max_dim: most Lanczos vectors (capped at ``d``).

    Returns:
        ``(R, S, c, m, scale)``: the basis rotated by ``W`` ``(n, M, d)`` (rows
        ``Σ_j W_{ji} v_j``; ``M`` the largest subspace dimension of the batch), singular
        values ``S`` of ``T̄`` ``(n, M)``, ``c = ‖g‖ Uᵀe₁`` ``(n, M)``, each state's subspace dimension ``m`` ``(n,)``
        long and the λ scale ``‖T̄_m‖²_F / m`` ``(n,)`` (the mean of ``diag HᵀH`` in the
        Krylov basis, as the dense step's mean of ``diag HᵀH``). A state whose
        subspace closed early is padded by a block that contributes no step.
    """
    n, d = g.shape
    m_max = max(1, min(max_dim, d))
    beta1 = g.norm(dim=1)
    tiny = torch.finfo(g.dtype).tiny
    eps = torch.finfo(g.dtype).eps
    basis = g.new_zeros(n, m_max + 1, d)
    basis[:, 0] = -g / beta1.clamp_min(tiny)[:, None]
    # T̄ column k: diag[k] at row k, sub[k] at row k + 1, sup[k] at row k − 1 (zero for a
    # column computed after its state's subspace closed)
    diag, sub, sup = g.new_zeros(n, m_max), g.new_zeros(n, m_max), g.new_zeros(n, m_max)
    # MINRES residual by Givens rotations (Paige & Saunders 1975): φ_k = φ_{k−1}|s_k|
    c_prev, s_prev = -torch.ones_like(beta1), torch.zeros_like(beta1)
    delta1, phi = torch.zeros_like(beta1), beta1.clone()
    open_ = beta1 > 0
    used = torch.zeros(n, m_max, dtype=torch.bool, device=g.device)
    m = 0
    for k in range(m_max):
        m = k + 1
        used[:, k] = open_
        w = hvp(basis[:, k])
        a = (w * basis[:, k]).sum(1)
        w = w - a[:, None] * basis[:, k]
        if k > 0:
            w = w - sub[:, k - 1, None] * basis[:, k - 1]
        w = _orthogonalize(w, basis[:, : k + 1])
        b = w.norm(dim=1)
        a, b = torch.where(open_, a, 0), torch.where(open_, b, 0)
        diag[:, k], sub[:, k] = a, b
        if k > 0:
            sup[:, k] = torch.where(open_, sub[:, k - 1], 0)
        gamma1 = s_prev * delta1 - c_prev * a
        gamma2 = torch.sqrt(gamma1 * gamma1 + b * b).clamp_min(tiny)
        delta1 = -c_prev * b
        c_prev, s_prev = gamma1 / gamma2, b / gamma2
        phi = phi * s_prev.abs()
        invariant = b <= 8 * eps * (a.abs() + sup[:, k] + b)
        open_ = open_ & ~invariant & (phi > eta * beta1)
        basis[:, k + 1] = torch.where(open_[:, None], w / b.clamp_min(tiny)[:, None], 0)
        if not bool(open_.any()):
            break
    return _damped_factor(diag, sub, sup, used, basis[:, :m], beta1)


def jacobian_products_of(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """``(v ↦ H v, u ↦ Hᵀ u)`` with ``H = −∂s/∂x`` at flat states ``x`` ``(n, d)``, batched.

    For score-only models, whose ``H`` need not be symmetric. ``Hᵀu`` is one backward
    pass through the score's graph; ``H v`` is the derivative of the linear map
    ``w ↦ Jᵀw`` in the direction ``v`` (the double-backward trick: one backward pass
    through the graph of ``Jᵀw``); both graphs are built once here.
    """
    n = x.shape[0]
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        s = score_with_graph(model, xg.reshape(n, *shape), sigma).reshape(n, -1)
        w = torch.zeros_like(s, requires_grad=True)
        (jt_w,) = torch.autograd.grad(s, xg, grad_outputs=w, create_graph=True)

    def h_v(v: torch.Tensor) -> torch.Tensor:
        (j_v,) = torch.autograd.grad(jt_w, w, grad_outputs=v, retain_graph=True)
        return -j_v.detach()

    def ht_u(u: torch.Tensor) -> torch.Tensor:
        (jt_u,) = torch.autograd.grad(s, xg, grad_outputs=u, retain_graph=True)
        return -jt_u.detach()

    return h_v, ht_u


def bidiagonal_factor(
    h_v: Callable[[torch.Tensor], torch.Tensor],
    ht_u: Callable[[torch.Tensor], torch.Tensor],
    g: torch.Tensor,
    eta: torch.Tensor,
    max_dim: int = KRYLOV_MAX_DIM,
) -> tuple[torch.Tensor, ...]:
    """:func:`krylov_factor` for a non-symmetric ``H``: Golub–Kahan bidiagonalization.

    LSQR's process (Paige & Saunders 1982, *ACM TOMS* 8:43, §3): ``β₁u₁ = −g``,
    ``α₁v₁ = Hᵀu₁``, then ``β_{k+1}u_{k+1} = Hv_k − α_k u_k`` and
    ``α_{k+1}v_{k+1} = Hᵀu_{k+1} − β_{k+1}v_k`` give ``H V_m = U_{m+1} B_m`` with ``B_m``
    lower bidiagonal ``(m + 1) × m``, so ``‖Hδ + g‖² + λ‖δ‖²`` over ``δ = V_m y`` is the
    same small damped problem as for Lanczos (``T̄ = B``; damped LSQR). Both bases are
    fully re-orthogonalized; a state's subspace stops growing once the LSQR residual
    ``φ̄_{m+1}`` (their §4.1) is ``≤ η‖g‖``, or when ``α`` or ``β`` vanishes.
    Two products per vector (``Hv`` and ``Hᵀu``). Returns the tuple of
    :func:`krylov_factor`.
    """
    n, d = g.shape
    m_max = max(1, min(max_dim, d))
    tiny, eps = torch.finfo(g.dtype).tiny, torch.finfo(g.dtype).eps
    beta1 = g.norm(dim=1)
    left, right = g.new_zeros(n, m_max + 1, d), g.new_zeros(n, m_max + 1, d)
    left[:, 0] = -g / beta1.clamp_min(tiny)[:, None]
    q = ht_u(left[:, 0])
    alpha = q.norm(dim=1)
    right[:, 0] = q / alpha.clamp_min(tiny)[:, None]
    diag, sub = g.new_zeros(n, m_max), g.new_zeros(n, m_max)
    rho_bar, phi_bar = alpha.clone(), beta1.clone()
    open_ = (beta1 > 0) & (alpha > 0)
    used = torch.zeros(n, m_max, dtype=torch.bool, device=g.device)
    m = 0
    for k in range(m_max):
        m = k + 1
        used[:, k] = open_
        diag[:, k] = torch.where(open_, alpha, 0)
        p = _orthogonalize(h_v(right[:, k]) - alpha[:, None] * left[:, k], left[:, : k + 1])
        b = torch.where(open_, p.norm(dim=1), 0)
        sub[:, k] = b
        left[:, k + 1] = torch.where(open_[:, None], p / b.clamp_min(tiny)[:, None], 0)
        rho = torch.sqrt(rho_bar * rho_bar + b * b).clamp_min(tiny)
        phi_bar = phi_bar * (b / rho)  # φ̄_{k+1} = s_k φ̄_k, the residual norm
        open_ = open_ & (b > 8 * eps * (alpha + b)) & (phi_bar > eta * beta1)
        if k + 1 == m_max or not bool(open_.any()):
            break
        q = ht_u(left[:, k + 1]) - b[:, None] * right[:, k]
        q = _orthogonalize(q, right[:, : k + 1])
        a_next = q.norm(dim=1)
        rho_bar = -(rho_bar / rho) * a_next  # ρ̄_{k+1} = −c_k α_{k+1}
        open_ = open_ & (a_next > 8 * eps * (a_next + b))
        right[:, k + 1] = torch.where(open_[:, None], q / a_next.clamp_min(tiny)[:, None], 0)
        alpha = a_next
    return _damped_factor(diag, sub, torch.zeros_like(sub), used, right[:, :m], beta1)


def _orthogonalize(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``w`` ``(n, d)`` minus its projection on the orthonormal rows of ``basis`` ``(n, j, d)``.

    Two classical Gram–Schmidt passes ("twice is enough": Giraud et al. 2005, *Numer.
    Math.* 101:87), which keeps a Krylov basis orthonormal to round-off.
    """
    for _ in range(2):
        w = w - torch.einsum("nj,njd->nd", torch.einsum("njd,nd->nj", basis, w), basis)
    return w


def _damped_factor(
    diag: torch.Tensor, sub: torch.Tensor, sup: torch.Tensor, used: torch.Tensor,
    basis: torch.Tensor, beta1: torch.Tensor,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """The factorization :func:`krylov_step` reads (see :func:`krylov_factor`).

    From the diagonal, sub- and super-diagonal of ``T̄`` ``(n, m_max)`` (entry ``j``
    in column ``j``), the columns computed while each state's subspace was open
    ``(n, m_max)`` bool, the basis ``(n, m, d)`` and ``‖g‖`` ``(n,)``.
    """
    m = basis.shape[1]
    tiny = torch.finfo(basis.dtype).tiny
    idx = torch.arange(m, device=basis.device)
    tbar = basis.new_zeros(basis.shape[0], m + 1, m)
    tbar[:, idx, idx] = diag[:, :m]
    # a state's columns after its subspace closed: 1 on the subdiagonal (rows past its
    # own), a block of T̄ with U ⟂ e₁ and zero basis vectors, so it adds nothing to δ
    tbar[:, idx + 1, idx] = torch.where(used[:, :m], sub[:, :m], 1)
    tbar[:, idx[:-1], idx[1:]] = sup[:, 1:m]
    u, sv, wh = torch.linalg.svd(tbar, full_matrices=False)
    dims = used.sum(1)
    frob = ((diag.pow(2) + sub.pow(2) + sup.pow(2)) * used).sum(1)
    scale = (frob / dims.clamp_min(1)).clamp_min(tiny)
    return wh @ basis, sv, beta1[:, None] * u[:, 0, :], dims, scale


def krylov_step(fac: tuple[torch.Tensor, ...], lam: torch.Tensor) -> torch.Tensor:
    """The damped step ``δ(λ) = V_m W diag(S/(S² + λ)) Uᵀ‖g‖e₁`` ``(n, d)``.

    ``fac`` from :func:`krylov_factor`; ``lam`` ``(n,)`` > 0. Minimizes
    ``‖Hδ + g‖² + λ‖δ‖²`` over the Krylov subspace.
    """
    rotated, sv, coef, _, _ = fac
    filt = torch.where(sv > 0, sv / (sv * sv + lam[:, None]), 0)
    return torch.einsum("nm,nmd->nd", filt * coef, rotated)
