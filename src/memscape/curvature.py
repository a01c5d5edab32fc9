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
softmax). A peaked row (small σ: the ``t`` largest weights hold all but eps of the
mass) is applied over those ``t`` points only, ``(y_top − μ)`` precomputed, so a product
costs ``t·d`` instead of ``K·d``; the dropped weights change ``Cov v`` by at most eps
relative to ``max_k ‖y_k − μ‖² ‖v‖``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from memscape.kernels import _col

__all__ = ["covariance_operator", "posterior_hessian", "posterior_hessian_operator"]

Operator = Callable[[torch.Tensor], torch.Tensor]

_PEAKED_TOP = 8  # t: the leading weights a peaked row keeps
_PEAKED_BYTES = 1 << 28  # most memory for the peaked rows' (rows, t, d) centred points
# When the t-point form beats two matmuls with the K points (measured, 1 thread, d = 64 to
# 3072, float32 and float64): a product costs ~0.5–1.4 ns per stored (t, d) element while
# cache-resident and ~3.3 ns beyond, against ~0.07–0.17 ns per K·d for the matmuls, so
# it pays from K ≈ 8t with (rows, t, d) within _CACHE_BYTES and from K ≈ 24t beyond.
_CACHE_BYTES = 4 << 20
_PAYS_CACHED, _PAYS = 8, 24
_BMM_ROWS = 4  # up to this many peaked rows one bmm (less overhead), else a loop over t


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

    Rows whose ``t`` largest weights leave at most eps of the mass are applied over those
    points only (module doc) where that pays: on the CPU, ``K ≥ 8t`` while their
    ``(rows, t, d)`` block fits ``_CACHE_BYTES``, else ``K ≥ 24t`` up to ``_PEAKED_BYTES``;
    the other rows (and every row elsewhere) by two matmuls with ``y``. Memory: the
    ``(B, K)`` weights, kept, plus ``(B, K)`` per product (no ``(B, d, d)``).
    """
    p = p.detach()
    (b, k), t = p.shape, _PEAKED_TOP
    eps = torch.finfo(p.dtype).eps
    peaked = rows = None  # the peaked rows' and the other rows' indices (None: all rows)
    z = w = None
    size = b * t * y.shape[1] * y.element_size()
    pays = k >= (_PAYS_CACHED if size <= _CACHE_BYTES else _PAYS) * t and size <= _PEAKED_BYTES
    if pays and p.device.type == "cpu":
        val, idx = p.topk(t, dim=1)
        ok = 1 - val.sum(1) <= eps
        n_ok = int(ok.sum())
        if n_ok:
            if n_ok < b:
                peaked, rows = ok.nonzero().squeeze(1), (~ok).nonzero().squeeze(1)
                val, idx = val[peaked], idx[peaked]
            w = (val / val.sum(1, keepdim=True)).T.contiguous()  # (t, n)
            pts = y[idx.T]  # (t, n, d): slot-major, each slot's rows contiguous
            z = pts - (w[:, :, None] * pts).sum(0)  # y_top − μ
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
        if v.shape[0] <= _BMM_ROWS:  # (n, t, d) @ (n, d, 1): (y_k − μ)ᵀv, then back
            zb = z.transpose(0, 1)
            a = torch.bmm(zb, v[:, :, None]) * w.T[:, :, None]
            return torch.bmm(zb.transpose(1, 2), a).squeeze(2)
        a = torch.linalg.vecdot(z, v) * w  # (t, n)
        out = z[0] * a[0, :, None]
        for j in range(1, t):
            out.addcmul_(z[j], a[j, :, None])
        return out

    def apply(v: torch.Tensor) -> torch.Tensor:
        v = v.detach().to(y.dtype)
        if z is None:
            return dense(v)
        if peaked is None or rows is None:
            return sparse(v)
        out = torch.empty_like(v)
        out[peaked] = sparse(v[peaked])
        out[rows] = dense(v[rows])
        return out

    return apply


def posterior_hessian_operator(p: torch.Tensor, y: torch.Tensor, beta: Any) -> Operator:
    """``v ↦ β(v − β Cov_p(y) v)``, the operator of :func:`posterior_hessian`: ``(B, d) → (B, d)``.

    ``beta``: a float or ``(B,)``; ``p``, ``y`` as in :func:`covariance_operator`.
    """
    cov = covariance_operator(p, y)
    b = _col(beta)

    def apply(v: torch.Tensor) -> torch.Tensor:
        return (v - cov(v) * b) * b

    return apply
