"""Hessians of softmax energies: the posterior covariance, dense and as an operator.

The exact diffusion model, a Gaussian mixture and the modern Hopfield network share one
Hessian (Ambrogioni 2023; Ramsauer et al. 2021, Lemma A7): with posterior weights
``p_k(x) = softmax_k(a_k − β‖x − y_k‖²/2)`` over points ``y_k``,

    ∇²(−log Σ_k exp(a_k − β‖x − y_k‖²/2)) = β (I − β Cov_p(y)),
    Cov_p(y) = Σ_k p_k (y_k − μ)(y_k − μ)ᵀ,   μ = Σ_k p_k y_k.

:func:`posterior_hessian` forms the ``(B, d, d)`` matrix from a streamed covariance;
:func:`covariance_operator` applies ``Cov_p(y)`` to vectors without forming it, for
Lanczos and matrix-free Newton at large d (a Hessian-vector product is two ``(B, K, d)``
contractions, no autograd graph).

Numerics of the operator: ``Cov v = Σ_k p_k (y_k − μ) a_k`` with ``a_k = y_kᵀv − μᵀv``
centred before weighting, so the large common part ``μ μᵀ v`` never forms and cancels
(the error is of order ``u ‖y‖ Σ_k p_k |a_k|``, the same as a backward pass through the
softmax). A row whose weights ``≥ eps/K`` are few (small σ: a state near one memory or
between two, or among a few near-duplicates) is applied over its ``T`` largest weights
only, ``(y_top − μ)`` precomputed, so a product costs ``T·d`` instead of ``K·d``; the
dropped weights, each below eps/K, hold less than eps of the mass and change ``Cov v``
by at most eps relative to ``max_k ‖y_k − μ‖² ‖v‖``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from memscape.kernels import _col

__all__ = ["covariance_operator", "posterior_hessian", "posterior_hessian_operator"]

Operator = Callable[[torch.Tensor], torch.Tensor]

_SUPPORT_BYTES = 1 << 28  # most memory for the compact rows' (T, rows, d) centred points
# When the compact form (T points a row) beats two matmuls with the K points (measured, 1
# thread, d = 64 to 3072, float32 and float64): a loop over the T slots costs ~0.5–1.4 ns
# per stored (T, d) element while cache-resident and ~3.3 ns beyond, one bmm ~3.7 ns
# (but a single call: the choice for few rows, or many slots), against ~0.07–0.17 ns per
# K·d for the matmuls over many rows and ~0.5 ns for one row (a matrix-vector product,
# bound by reading the K points). So it pays from K ≈ 8T for a few rows or a
# cache-resident loop, from K ≈ 24T for a loop, and from K ≈ 64T for a bmm of many rows.
_CACHE_BYTES = 4 << 20
_PAYS_CACHED, _PAYS, _PAYS_ALWAYS = 8, 24, 64
_BMM_ROWS = 4  # up to this many compact rows one bmm (less overhead), else a loop ...
_LOOP_SLOTS = 16  # ... over the T slots while T is at most this


def posterior_hessian(cov: torch.Tensor, beta: Any) -> torch.Tensor:
    """Hessian of ``−log p`` for a Gaussian-smoothed density: ``β(I − β Cov_post)``, ``(B, d, d)``.

    ``Cov_post`` is the posterior covariance of the centres and ``β`` the inverse noise
    variance (1/σ² for the exact model, 1/(v + σ²) for an isotropic mixture).
    """
    b = _col(beta, 3)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return (eye - cov * b) * b


def covariance_operator(p: torch.Tensor, y: torch.Tensor) -> Operator:
    """``v ↦ Cov_p(y) v = Σ_k p_bk (y_k − μ_b)(y_k − μ_b)ᵀ v_b``: ``(B, d) → (B, d)``.

    Args:
        p: weights ``(B, K)``, each row summing to 1 (a softmax), detached.
        y: points ``(K, d)`` in the coordinates of the vectors' origin (any shift of
            ``y`` leaves ``Cov`` unchanged; centred points keep the most digits).

    A row's support is its weights ``≥ eps/K`` (the rest hold less than eps of the mass).
    Rows whose support has at most ``T`` points are applied over their ``T`` largest
    weights only (module doc), ``T`` the batch's largest such support, where that pays
    (on the CPU; the constants above: ``K ≥ 8T`` for a few rows or a cache-resident
    loop, ``K ≥ 24T`` for a loop, ``K ≥ 64T`` else; the ``(T, rows, d)`` block up to
    ``_SUPPORT_BYTES``); the
    other rows (and every row elsewhere) by two matmuls with ``y``. Memory: the ``(B, K)``
    weights, kept, plus ``(B, K)`` per product (no ``(B, d, d)``).
    """
    p = p.detach()
    (b, k), d = p.shape, y.shape[1]
    compact = rows = None  # the compact rows' and the other rows' indices (None: all rows)
    z = w = None
    if p.device.type == "cpu" and k >= _PAYS_CACHED:
        support = (p >= torch.finfo(p.dtype).eps / k).sum(1)
        ok, t = _compact_rows(support, k, d * y.element_size())
        n_ok = int(ok.sum()) if t else 0
        if n_ok:
            val, idx = p.topk(t, dim=1) if n_ok == b else p[ok].topk(t, dim=1)
            if n_ok < b:
                compact, rows = ok.nonzero().squeeze(1), (~ok).nonzero().squeeze(1)
            w = (val / val.sum(1, keepdim=True)).T.contiguous()  # (T, n)
            pts = y[idx.T]  # (T, n, d): slot-major, each slot's rows contiguous
            z = pts.sub_(torch.einsum("tn,tnd->nd", w, pts))  # y_top − μ, in place
    p_rest = mu_rest = None  # the dense rows' weights and means, where there are such rows
    if z is None or rows is not None:
        p_rest = p if rows is None else p[rows]
        mu_rest = p_rest @ y

    def dense(v: torch.Tensor) -> torch.Tensor:
        assert p_rest is not None and mu_rest is not None
        a = v @ y.T - (v * mu_rest).sum(1, keepdim=True)  # (n, K): y_kᵀv − μᵀv
        pa = p_rest * a
        return pa @ y - mu_rest * pa.sum(1, keepdim=True)

    def sparse(v: torch.Tensor) -> torch.Tensor:
        assert z is not None and w is not None
        if v.shape[0] <= _BMM_ROWS or z.shape[0] > _LOOP_SLOTS:  # (n, T, d) @ (n, d, 1)
            zb = z.transpose(0, 1)
            a = torch.bmm(zb, v[:, :, None]) * w.T[:, :, None]  # p_k (y_k − μ)ᵀv
            return torch.bmm(zb.transpose(1, 2), a).squeeze(2)
        a = torch.linalg.vecdot(z, v) * w  # (T, n)
        out = z[0] * a[0, :, None]
        for j in range(1, z.shape[0]):
            out.addcmul_(z[j], a[j, :, None])
        return out

    def apply(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().to(y.dtype)
        if z is None:
            return dense(v)
        if compact is None or rows is None:
            return sparse(v)
        out = torch.empty_like(v)
        out[compact] = sparse(v[compact])
        out[rows] = dense(v[rows])
        return out

    return apply


def _compact_rows(support: torch.Tensor, k: int, row_bytes: int) -> tuple[torch.Tensor, int]:
    """Which rows take the compact form, and its ``T`` (0: none), by the rule above: from
    the loosest payback (``K ≥ 8T``: a few rows, or a cache-resident loop) to the
    strictest (``K ≥ 64T``: any rows, any T)."""
    for factor in (_PAYS_CACHED, _PAYS, _PAYS_ALWAYS):
        ok = support <= k // factor
        n = int(ok.sum())
        if n == 0:
            continue
        t = max(1, int(support[ok].max()))
        size = n * t * row_bytes
        few, loop = n <= _BMM_ROWS, t <= _LOOP_SLOTS
        fits = {_PAYS_CACHED: few or (loop and size <= _CACHE_BYTES), _PAYS: loop}
        if size <= _SUPPORT_BYTES and fits.get(factor, True):
            return ok, t
    return support < 0, 0


def posterior_hessian_operator(p: torch.Tensor, y: torch.Tensor, beta: Any) -> Operator:
    """``v ↦ β(v − β Cov_p(y) v)``, the operator of :func:`posterior_hessian`: ``(B, d) → (B, d)``.

    ``beta``: a float or ``(B,)``; ``p``, ``y`` as in :func:`covariance_operator`.
    """
    cov = covariance_operator(p, y)
    b = _col(beta)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return (v - cov(v) * b) * b

    return apply
