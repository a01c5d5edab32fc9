"""Streamed softmax over memories: the one kernel behind modern Hopfield and exact diffusion.

For queries ``x_b`` and memories ``y_k`` with logits
``ℓ_bk = β_b (x_bᵀ y_k + c_k)`` it returns, without ever holding a ``B×K`` matrix,

    lse_b  = log Σ_k exp ℓ_bk                         (B,)
    mean_b = Σ_k softmax_k(ℓ_b·) y_k                  (B, d)
    cov_b  = Σ_k softmax_k(ℓ_b·) y_k y_kᵀ − mean mean (B, d, d)   (optional)

by an online log-sum-exp over chunks of memories with the running maximum taken
per query (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax").
With ``β = 1/σ²`` and ``c_k = −‖y_k‖²/2`` this is the exact diffusion denoiser;
with ``c_k = 0`` it is the modern Hopfield update (Ramsauer et al. 2020, eq. 3).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SoftmaxStats", "streamed_softmax"]

DEFAULT_CHUNK = 2048

# exp() of shifted logits is floored here: below it float32/float64 exp produces
# subnormals, which run ~10x slower on x86. A floored term is < e^-80 (float32) or
# < e^-700 (float64) times the largest one, far below the rounding of the sums.
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}


class SoftmaxStats(NamedTuple):
    """Result of :func:`streamed_softmax`."""

    lse: torch.Tensor  #: (B,) log Σ_k exp ℓ_bk
    mean: torch.Tensor  #: (B, d) softmax-weighted mean of the memories
    cov: torch.Tensor | None  #: (B, d, d) softmax-weighted covariance, if asked for


_OUTER_BYTES = 1 << 26  # chunk outer products y yᵀ up to 64 MiB go through one matmul


def _second_moment(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Σ_k p_bk y_k y_kᵀ``: ``(B, d, d)``.

    One ``(B, K) @ (K, d²)`` matmul over the chunk's outer products when they are
    small (several times faster than the batched contraction), else ``einsum``.
    """
    k, d = y.shape
    if k * d * d * y.element_size() <= _OUTER_BYTES:
        outer = (y[:, :, None] * y[:, None, :]).reshape(k, d * d)
        return (p @ outer).reshape(p.shape[0], d, d)
    return torch.einsum("bk,ki,kj->bij", p, y, y)


def streamed_softmax(
    x: torch.Tensor,
    memories: torch.Tensor,
    beta: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    covariance: bool = False,
) -> SoftmaxStats:
    """Softmax statistics of ``ℓ_bk = β_b (x_bᵀy_k + c_k)`` streamed over memory chunks.

    Args:
        x: queries ``(B, d)``.
        memories: ``(K, d)``, same dtype and device as ``x``.
        beta: inverse temperature per query ``(B,)`` (positive).
        bias: per-memory offset ``c_k`` of shape ``(K,)`` or ``None`` for zero.
        chunk_size: memories per chunk; memory use is ``O(B·chunk_size)`` (the
            default keeps a float32 chunk of logits in cache for B ≈ 256).
        covariance: also return the weighted covariance ``(B, d, d)``.

    Returns:
        :class:`SoftmaxStats` ``(lse, mean, cov)``.
    """
    b, d = x.shape
    k = memories.shape[0]
    beta = beta.reshape(b, 1)
    # one shared β (the common case) is folded into the matmul: ℓ = (βx)yᵀ + βc
    shared = bool((beta == beta[0]).all())
    if shared:
        x = x * beta[0]
        bias = None if bias is None else bias * beta[0]
    # in-place elementwise work on the (B, chunk) logits unless autograd needs the graph
    inplace = not (
        torch.is_grad_enabled()
        and any(t is not None and t.requires_grad for t in (x, memories, beta, bias))
    )
    floor = _EXP_FLOOR[x.dtype] if x.dtype in _EXP_FLOOR else -torch.inf
    m = torch.full((b, 1), -torch.inf, dtype=x.dtype, device=x.device)
    z = torch.zeros((b, 1), dtype=x.dtype, device=x.device)
    acc = torch.zeros((b, d), dtype=x.dtype, device=x.device)
    acc2 = torch.zeros((b, d, d), dtype=x.dtype, device=x.device) if covariance else None
    for start in range(0, k, chunk_size):
        y = memories[start : start + chunk_size]
        if bias is None:
            logits = x @ y.T
        else:
            logits = torch.addmm(bias[start : start + chunk_size], x, y.T)
        if not shared:
            logits = logits.mul_(beta) if inplace else logits * beta
        m_new = torch.maximum(m, logits.amax(dim=1, keepdim=True))
        rescale = torch.exp(m - m_new)
        if inplace:
            p = logits.sub_(m_new).clamp_(min=floor).exp_()
        else:
            p = (logits - m_new).clamp(min=floor).exp()
        z = z * rescale + p.sum(dim=1, keepdim=True)
        acc = torch.addmm(acc * rescale, p, y)
        if acc2 is not None:
            acc2 = acc2 * rescale[:, :, None] + _second_moment(p, y)
        m = m_new
    mean = acc / z
    cov = None
    if acc2 is not None:
        cov = acc2 / z[:, :, None] - mean[:, :, None] * mean[:, None, :]
    return SoftmaxStats((m + torch.log(z)).squeeze(1), mean, cov)
