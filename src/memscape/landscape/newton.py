"""Damped Newton (Levenberg–Marquardt) refinement of critical points, ``∇E(x, σ) = 0``.

A critical point of any Morse index is a zero of the gradient ``g(x) = −s(x, σ)``.
Newton's method on ``g = 0`` uses the Hessian ``H = ∂g/∂x`` as the Jacobian; the
Levenberg–Marquardt step (Nocedal & Wright, *Numerical Optimization*, §10.3)

    (HᵀH + λ I) δ = −Hᵀ g

interpolates between the Newton step (λ → 0) and a short gradient step on
``½‖g‖²`` (λ large). λ adapts per sample: a step is accepted when it lowers
``‖g‖`` (λ ÷ 5) and rejected otherwise (λ × 10). ``‖g‖²`` can have local minima
that are *not* critical points (Nocedal & Wright 2006, §11.2), so a point counts as
converged only when ``‖g‖ ≤ tol``; the others are returned and flagged. A state
also stops when ``‖g‖`` fell by less than half over the last 8 iterations (Newton
near a root, even a degenerate one, at least halves it every step).
Works for score-only models too (then ``H`` may be non-symmetric).

The step is formed from dense Hessians (``hessian="dense"``: one ``(B, d, d)`` matrix
and one eigen-decomposition per state and iteration, memory ``B·d²``) or matrix-free
(``hessian="hvp"``: the damped step over a Krylov subspace of Hessian-vector products,
damped MINRES for an energy model's symmetric ``H`` and damped LSQR for a score-only
model's ``−∂s/∂x``; an inexact Newton method with the Eisenstat–Walker forcing term;
:mod:`memscape.landscape.krylov`), the default for ``d > 256``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor
from memscape.landscape._fields import (
    batch_chunks,
    check_model,
    check_sigma,
    event_shape,
    flat_hessian,
    flat_score,
    has_energy,
    hvp_of,
    row_chunks,
    slice_sigma,
)
from memscape.landscape.krylov import (
    KRYLOV_MAX_DIM,
    bidiagonal_factor,
    forcing_term,
    jacobian_products_of,
    krylov_factor,
    krylov_step,
)
from memscape.landscape.morse import DENSE_MAX_DIM
from memscape.protocol import ScoreOrDenoiser

__all__ = ["HESSIAN_MODES", "NewtonResult", "newton_refine"]

#: how a Newton step uses the Hessian: ``"auto"`` (``"hvp"`` when ``d > DENSE_MAX_DIM``, as
#: :func:`memscape.landscape.morse.hessian_spectrum` switches to Lanczos; ``"dense"``
#: otherwise), ``"dense"`` (matrices) or ``"hvp"`` (matrix–vector products).
HESSIAN_MODES = ("auto", "dense", "hvp")


def resolve_hessian(hessian: str, d: int) -> str:
    """``"dense"`` or ``"hvp"`` at dimension ``d``.

    ``"auto"`` is ``"hvp"`` when ``d > DENSE_MAX_DIM``. Raises ``ValueError`` naming
    ``hessian`` for an unknown mode.
    """
    mode = check_choice(hessian, HESSIAN_MODES, "hessian")
    if mode == "auto":
        return "hvp" if d > DENSE_MAX_DIM else "dense"
    return mode


STALL_WINDOW = 8  # a state stops when ‖g‖ fell by less than
STALL_RATIO = 0.5  # this factor over the last STALL_WINDOW iterations


@dataclass
class NewtonResult:
    """Outcome of :func:`newton_refine`.

    Attributes:
        x: refined states ``(B, *event_shape)``.
        converged: ``(B,)`` bool, ``‖∇E‖ ≤ tol`` at the end.
        grad_norm: ``(B,)`` final ``‖∇E(x, σ)‖``.
        iterations: ``(B,)`` long, LM iterations used.
    """

    x: torch.Tensor
    converged: torch.Tensor
    grad_norm: torch.Tensor
    iterations: torch.Tensor


#: ``‖∇E‖`` tolerance in float64, absolute: its round-off floor (~1e-16 × the gradient scale) lies
#: orders of magnitude below for any landscape of moderate curvature.
FLOAT64_TOL = 1e-8

#: ``‖∇E‖`` tolerance in float32, relative to the gradient scale: ~1000 ulp (ε₃₂ = 1.2e-7) of a
#: gradient computed in float32; lower precisions scale it by ``√(ε/ε₃₂)``.
FLOAT32_RTOL = 1e-4

#: directions (seeded, so the scale is deterministic) over which :func:`gradient_scale` takes
#: its median.
SCALE_SAMPLES = 16


def default_tol(dtype: torch.dtype, scale: float | None = None) -> float:
    """Default gradient tolerance for a gradient computed in ``dtype``.

    :data:`FLOAT64_TOL` in float64; otherwise ``FLOAT32_RTOL · √(ε/ε₃₂) · scale`` with
    ``scale`` the gradient scale (:func:`gradient_scale`; 1 when not given).
    """
    if dtype == torch.float64:
        return FLOAT64_TOL
    eps32 = torch.finfo(torch.float32).eps
    return (
        FLOAT32_RTOL * math.sqrt(torch.finfo(dtype).eps / eps32) * (1.0 if scale is None else scale)
    )


def compute_dtype(model: object, dtype: torch.dtype) -> torch.dtype:
    """The precision a gradient of ``model`` has when analysed in ``dtype``.

    The lower of ``dtype`` and the floating dtype of the model's parameters or buffers
    when it is (or wraps, as ``fn`` / ``network`` / ``net``) a :class:`torch.nn.Module`:
    a float32 network analysed in float64 still computes its score in float32.
    """
    found = [dtype]
    for obj in (model, *(getattr(model, a, None) for a in ("fn", "network", "net"))):
        if isinstance(obj, torch.nn.Module):
            tensors = itertools.chain(obj.parameters(), obj.buffers())
            found += [t.dtype for t in tensors if t.is_floating_point()][:1]
    return max(found, key=lambda t: torch.finfo(t).eps)


def gradient_scale(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...], length: float
) -> float:
    """The gradient a displacement of ``length`` produces: ``median ‖∇E(x + ℓu) − ∇E(x)‖``.

    Over up to :data:`SCALE_SAMPLES` of the flat states ``x`` ``(B, d)`` with unit
    directions ``u`` from a generator seeded 0 (deterministic); ``ℓ = length`` (the
    census' spacing of the patterns). It sets the float32 tolerance by the curvature
    of the landscape, not by how close the states already are to critical points.
    Falls back to 1 when it is not positive and finite.
    """
    n = min(SCALE_SAMPLES, x.shape[0])
    if n == 0:
        return 1.0
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(n, x.shape[1], generator=gen, dtype=x.dtype).to(x.device)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    sig = slice_sigma(sigma, torch.arange(n, device=x.device))
    dg = flat_score(model, x[:n] + length * u, sig, shape) - flat_score(model, x[:n], sig, shape)
    scale = float(dg.norm(dim=1).median())
    return scale if math.isfinite(scale) and scale > 0 else 1.0


def model_tol(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...], length: float
) -> float:
    """The census' default ``‖∇E‖`` tolerance for ``model`` analysed in ``x.dtype``.

    :func:`default_tol` of :func:`compute_dtype`: :data:`FLOAT64_TOL` when the gradient
    is computed in float64; otherwise relative to :func:`gradient_scale` at the flat
    states ``x`` ``(B, d)`` with displacement ``length``.
    """
    precision = compute_dtype(model, x.dtype)
    if precision == torch.float64:
        return default_tol(precision)
    return default_tol(precision, gradient_scale(model, x, sigma, shape, length))


def newton_refine(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any = None,
    *,
    tol: float | None = None,
    max_iter: int = 50,
    max_step: float | None = None,
    damping: float = 1e-6,
    hessian: str = "auto",
) -> NewtonResult:
    """Refine states to critical points of ``E(·, σ)`` by damped Newton (Levenberg–Marquardt).

    All states are solved at once (batched linear solves); memory is bounded by
    processing the batch in chunks whose Hessians (``"dense"``) or Krylov bases
    (``"hvp"``) hold ≤ 2²⁴ entries.

    Args:
        model: any object following the protocol (``score`` or ``denoise``; closed-form
            ``hessian`` used when present, autograd Jacobian of the score otherwise).
        x: start states ``(B, *event_shape)``; dtype and device are kept (use float64).
        sigma: noise level (float or ``(B,)``), required for noise-conditioned models.
        tol: converged when ``‖∇E‖ ≤ tol`` (absolute, in the model's energy units);
            default 1e-8 for float64, 1e-4 otherwise.
        max_iter: iteration cap per state.
        max_step: optional trust radius: every step is shortened to ``‖δ‖ ≤ max_step``
            (keeps a corrector on its branch during continuation).
        damping: initial λ relative to the mean diagonal of ``HᵀH``.
        hessian: how the step uses the Hessian (:data:`HESSIAN_MODES`): ``"dense"``
            (closed-form or autograd ``(B, d, d)`` matrices, one eigen-decomposition per
            iteration), ``"hvp"`` (matrix-free: the LM step minimized over a Krylov
            subspace of Hessian-vector products, damped MINRES for energy models and
            damped LSQR on ``Jv`` / ``Jᵀu`` for score-only ones, with the
            Eisenstat–Walker forcing term; :mod:`memscape.landscape.krylov`) or
            ``"auto"`` (``"hvp"`` when ``d > 256``).

    Returns:
        :class:`NewtonResult` (states keep the input's shape; failures are flagged,
        never dropped).
    """
    check_model(model)
    x = check_tensor(x, "x", min_ndim=1)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    check_sigma(model, sigma)
    check_int(max_iter, "max_iter")
    check_positive(damping, "damping")
    if max_step is not None:
        check_positive(max_step, "max_step")
    tol = default_tol(x.dtype) if tol is None else tol
    check_positive(tol, "tol")
    shape = event_shape(model, x)
    b = x.shape[0]
    flat = x.detach().reshape(b, -1).clone()
    d = flat.shape[1]
    mode = resolve_hessian(hessian, d)
    out_g = torch.empty(b, dtype=x.dtype, device=x.device)
    out_it = torch.zeros(b, dtype=torch.long, device=x.device)
    chunks = batch_chunks(b, d) if mode == "dense" else row_chunks(b, (KRYLOV_MAX_DIM + 1) * d)
    for sl in chunks:
        rows = torch.arange(b, device=x.device)[sl]
        sig = slice_sigma(sigma, rows)
        flat[sl], out_g[sl], out_it[sl] = _lm(
            model, flat[sl], sig, shape, tol, max_iter, max_step, damping, mode
        )
    return NewtonResult(
        x=flat.reshape(x.shape),
        converged=out_g <= tol,
        grad_norm=out_g,
        iterations=out_it,
    )


def _lm(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
    tol: float,
    max_iter: int,
    max_step: float | None,
    damping: float,
    mode: str = "dense",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Levenberg–Marquardt on ``g(x) = −s(x) = 0`` for one chunk of flat states ``(n, d)``.

    Energy models have a symmetric ``H = QΛQᵀ``: one ``eigh`` per iteration gives
    every damped step ``δ(λ) = −Q diag(Λ/(Λ² + λ)) Qᵀ g`` (rejections cost no
    solve). Score-only models solve ``(HᵀH + λI) δ = −Hᵀg`` per trial. ``mode="hvp"``:
    one Lanczos factorization per iteration (:func:`memscape.landscape.krylov.krylov_factor`;
    Golub–Kahan, :func:`~memscape.landscape.krylov.bidiagonal_factor`, for score-only
    models) gives every damped step in its Krylov subspace, with no matrix formed.
    """
    n = x.shape[0]
    symmetric = has_energy(model)
    g = -flat_score(model, x, sigma, shape)
    gn = g.norm(dim=1)
    its = torch.zeros(n, dtype=torch.long, device=x.device)
    lam = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    active = torch.isfinite(gn) & (gn > tol)
    history = []  # ‖g‖ per outer iteration, to stop stalled states
    for it in range(max_iter):
        history.append(gn.clone())
        if it >= STALL_WINDOW:
            active &= gn < STALL_RATIO * history[it - STALL_WINDOW]
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        sig = slice_sigma(sigma, idx)
        eta = forcing_term(gn[idx], history[it - 1][idx] if it > 0 else None, tol)
        fac = lm_factor(model, x[idx], sig, shape, g[idx], mode, eta)
        scale = fac[-1]
        lam_i = torch.where(torch.isnan(lam[idx]), damping * scale, lam[idx])
        while True:  # retry rejected steps with larger λ, reusing the factorization
            delta = lm_step(fac, lam_i, mode, symmetric)
            if max_step is not None:
                norm = delta.norm(dim=1, keepdim=True)
                delta = delta * torch.clamp(max_step / norm.clamp_min(1e-300), max=1.0)
            x_new = x[idx] + delta
            g_new = -flat_score(model, x_new, sig, shape)
            gn_new = g_new.norm(dim=1)
            ok = torch.isfinite(gn_new) & (gn_new < gn[idx])
            its[idx] += 1
            acc = idx[ok]
            x[acc], g[acc], gn[acc] = x_new[ok], g_new[ok], gn_new[ok]
            lam[acc] = lam_i[ok] / 5
            lam_i = lam_i * 10
            stalled = lam_i > 1e16 * fac[-1]
            rej = ~ok & ~stalled & (its[idx] < max_iter)
            if not bool(rej.any()):
                lam[idx[~ok]] = lam_i[~ok]
                active[idx[~ok & stalled]] = False
                break
            keep = rej.nonzero().squeeze(1)
            idx, lam_i, sig = idx[keep], lam_i[keep], slice_sigma(sig, keep)
            fac = tuple(t[keep] for t in fac)
        active &= (gn > tol) & (its < max_iter)
    return x, gn, its


def lm_factor(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...],
    g: torch.Tensor, mode: str, eta: torch.Tensor,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """One iteration's factorization at flat states ``x`` ``(n, d)`` with gradients ``g``:
    dense (:func:`factor_hessian`) or, ``mode="hvp"``, Krylov with forcing terms ``eta``
    (:func:`memscape.landscape.krylov.krylov_factor` for energies,
    :func:`~memscape.landscape.krylov.bidiagonal_factor` for score-only models). The last
    entry is the λ scale; :func:`lm_step` gives the damped step for any λ."""
    symmetric = has_energy(model)  # a bool, not a type guard: model stays a ScoreOrDenoiser
    if mode != "hvp":
        return factor_hessian(flat_hessian(model, x, sigma, shape), g, symmetric)
    if symmetric:
        return krylov_factor(hvp_of(model, x, sigma, shape), g, eta)
    h_v, ht_u = jacobian_products_of(model, x, sigma, shape)
    return bidiagonal_factor(h_v, ht_u, g, eta)


def lm_step(fac: tuple[torch.Tensor, ...], lam: torch.Tensor, mode: str,
            symmetric: bool) -> torch.Tensor:  # fmt: skip
    """The damped step ``δ(λ)`` ``(n, d)`` of an :func:`lm_factor` factorization."""
    return krylov_step(fac, lam) if mode == "hvp" else damped_step(fac, lam, symmetric)


def factor_hessian(h: torch.Tensor, g: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, ...]:
    """Per-iteration factorization; the last entry is the λ scale (mean of diag HᵀH)."""
    tiny = torch.finfo(h.dtype).tiny
    if symmetric:
        w, q = torch.linalg.eigh(0.5 * (h + h.transpose(1, 2)))
        gq = (q.transpose(1, 2) @ g.unsqueeze(2)).squeeze(2)
        return q, w, gq, (w * w).mean(1).clamp_min(tiny)
    ht = h.transpose(1, 2)
    hth = ht @ h
    rhs = -(ht @ g.unsqueeze(2)).squeeze(2)
    return hth, rhs, hth.diagonal(dim1=1, dim2=2).mean(1).clamp_min(tiny)


def damped_step(fac: tuple[torch.Tensor, ...], lam: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """The damped step ``δ(λ)`` ``(n, d)`` from :func:`factor_hessian`."""
    if symmetric:
        q, w, gq, _ = fac
        return -(q @ (w / (w * w + lam[:, None]) * gq).unsqueeze(2)).squeeze(2)
    hth, rhs, _ = fac
    eye = torch.eye(hth.shape[1], dtype=hth.dtype, device=hth.device)
    return torch.linalg.solve(hth + lam.reshape(-1, 1, 1) * eye, rhs.unsqueeze(2)).squeeze(2)
