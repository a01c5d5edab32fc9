"""The exact ("optimal") diffusion model of a finite training set.

For training points ``y_1..y_K`` the noised density is the Gaussian mixture

    p_σ(x) = (1/K) Σ_k N(x; y_k, σ² I),

whose energy, score, denoiser and Hessian are closed forms (Ambrogioni 2023; Hoover et al. 2023):

    −log p_σ(x) = −lse_k(−‖x − y_k‖²/2σ²) + log K + (d/2) log 2πσ²
                = ‖x‖²/2σ² − lse_k((xᵀy_k − ‖y_k‖²/2)/σ²) + log K + (d/2) log 2πσ²
    D(x, σ)     = Σ_k w_k(x) y_k,   w = softmax_k(−‖x − y_k‖²/2σ²)
    ∇²(−log p)  = (I − Cov_w(y)/σ²)/σ².

The expanded second line is what a matmul evaluates; it loses digits in proportion to
‖x‖²/σ², so the model evaluates the first (see :class:`EmpiricalDiffusion`, Numerics).

``σ²(−log p_σ − (d/2) log 2πσ²)`` is the modern Hopfield energy at β = 1/σ² with
per-memory bias ``−‖y_k‖²/2``, and one exact denoising step is one CCCP update.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape._validation import check_choice, check_tensor
from memscape.curvature import Operator, posterior_hessian, posterior_hessian_operator
from memscape.kernels import (
    DEFAULT_CHUNK,
    METHODS,
    DistanceStats,
    MemoryCache,
    _col,
    _compute_dtype,
    _inverse_variance,
    _log,
    distance_weights,
    streamed_distance_softmax,
)
from memscape.protocol import EnergyModel

__all__ = ["EmpiricalDiffusion"]


class EmpiricalDiffusion(EnergyModel):
    """Exact diffusion model (energy ``−log p_σ``) of a finite data set.

    Numerics (translation-stable): data and queries are centred on the data mean when
    the data lie away from the origin, and the energy re-evaluates each query's leading
    terms as ``‖x − y_k‖²/2σ²`` directly (:func:`memscape.kernels.streamed_distance_softmax`),
    so its error scales with the energy, not with ``‖x‖²/σ²``. Queries in float16 or
    bfloat16 are computed, and returned, in float32; integer queries are cast to the
    data's dtype. A σ whose σ² or 1/σ² the dtype cannot hold raises ``ValueError``.

    Args:
        data: training points ``(K, *event_shape)``; flattened internally to ``(K, d)``.
        chunk_size: training points per chunk of the streamed log-sum-exp, or 0 (the
            default) to choose it from B, K, d and the dtype
            (:func:`memscape.kernels.chunk_size_for`); memory is ``O(B · chunk_size)`` so
            K = 10⁶ never builds a ``B×K`` matrix (except :meth:`posterior` and
            :meth:`hessian_operator`, which keep the ``(B, K)`` weights).
        method: how the denoiser's mean is formed: ``"auto"`` (one
            ``scaled_dot_product_attention`` on CUDA in float32, the streamed kernel
            elsewhere), ``"streamed"`` or ``"sdpa"``
            (:func:`memscape.kernels.streamed_distance_softmax`); energies and dense
            Hessians always stream.
    """

    noise_conditioned = True

    def __init__(
        self, data: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK, method: str = "auto"
    ) -> None:
        data = check_tensor(data, "data", min_ndim=2)
        if not data.is_floating_point():
            data = data.to(torch.get_default_dtype())
        self.data = data
        self.event_shape = tuple(data.shape[1:])
        self.chunk_size = chunk_size
        self.method = check_choice(method, METHODS, "method")
        self._cache = MemoryCache()

    def _repr_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"K": len(self), "d": self.dim}
        if len(self.event_shape) > 1:
            fields["event_shape"] = self.event_shape
        return {**fields, "dtype": self.data.dtype}

    def __len__(self) -> int:
        return self.data.shape[0]

    def _prepare(self, x: Any, sigma: Any) -> tuple[torch.Tensor, Any, Any]:
        """Checked, flattened states ``(B, d)`` in the compute dtype, σ and β = 1/σ²
        (floats for a float σ, else ``(B,)``)."""
        x = self._check_x(x)
        x = x.to(_compute_dtype(x, self.data.dtype))
        s, beta = _inverse_variance(x, sigma)
        return x.reshape(x.shape[0], -1), s, beta

    def _stats(
        self, x: torch.Tensor, beta: Any, *, covariance: bool = False, exact: bool = False
    ) -> DistanceStats:
        mem = self._cache.get(self.data, x.dtype, x.device)
        return streamed_distance_softmax(
            x, mem, beta, chunk_size=self.chunk_size, covariance=covariance,
            exact_lse=exact, need_lse=exact, method=self.method, name="sigma",
        )  # fmt: skip

    def _normalizer(self, x: torch.Tensor, s: Any) -> Any:
        return math.log(len(self)) + 0.5 * self.dim * (math.log(2 * math.pi) + 2 * _log(s))

    def log_normalizer(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """The constant ``log K + (d/2) log(2πσ²)`` in ``−log p_σ``: ``(B,)``."""
        xf, s, _ = self._prepare(x, sigma)
        return torch.as_tensor(self._normalizer(xf, s), dtype=xf.dtype, device=xf.device).expand(
            xf.shape[0]
        )

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Exact energy ``−log p_σ(x) = −lse_k(−‖x − y_k‖²/2σ²) + log K + (d/2) log 2πσ²``: ``(B,)``."""
        xf, s, beta = self._prepare(x, sigma)
        lse = self._stats(xf, beta, exact=True).lse
        assert lse is not None
        return self._normalizer(xf, s) - lse

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Exact denoiser ``E[y | x] = Σ_k softmax_k(−‖x−y_k‖²/2σ²) y_k``, shape of ``x``."""
        xf, _, beta = self._prepare(x, sigma)
        return self._stats(xf, beta).mean.reshape(x.shape)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Exact score ``(D(x,σ) − x)/σ²`` (the difference formed in centred coordinates)."""
        xf, _, beta = self._prepare(x, sigma)
        return (self._stats(xf, beta).drift * _col(beta)).reshape(x.shape)

    def update(self, x: torch.Tensor, sigma: Any = None, *, generator: Any = None) -> torch.Tensor:
        """One denoising step ``x ← D(x, σ)`` (a CCCP step on the energy): shape of ``x``."""
        return self.denoise(x, sigma)

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian of ``−log p_σ``: ``(I − Cov_w(y)/σ²)/σ²``, ``(B, d, d)``."""
        xf, _, beta = self._prepare(x, sigma)
        cov = self._stats(xf, beta, covariance=True).cov
        assert cov is not None
        return posterior_hessian(cov, beta)

    def hessian_operator(self, x: torch.Tensor, sigma: Any = None) -> Operator:
        """The Hessian at ``x`` as an operator ``v ↦ ∇²E(x) v`` on flat ``(B, d)`` vectors.

        ``β(v − β Cov_w(y) v)`` with ``β = 1/σ²`` from the posterior weights at ``x``,
        computed once here (:func:`memscape.curvature.posterior_hessian_operator`): each
        product costs two ``K·d`` contractions per state (``t·d`` where the posterior is
        peaked), with no ``(d, d)`` matrix and no autograd graph.
        """
        xf, _, beta = self._prepare(x, sigma)
        mem = self._cache.get(self.data, xf.dtype, xf.device)
        p = distance_weights(xf, mem, beta, name="sigma")
        return posterior_hessian_operator(p, mem.points, beta)

    def posterior(
        self, x: torch.Tensor, sigma: Any, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Posterior weights ``w_k(x) = p(y_k | x) = softmax_k(−‖x − y_k‖²/2σ²)``.

        Args:
            x: states ``(B, *event_shape)``.
            sigma: noise level (float or ``(B,)``).
            index: optional ``(B,)`` long: return only ``w_{index_b}(x_b)``, as
                ``exp(ℓ_b − lse_b)`` with ``ℓ_b = −‖x_b − y_{index_b}‖²/2σ²`` direct and the
                exact ``lse`` of the streamed kernel (no ``B×K``).

        Returns:
            ``(B, K)`` weights (materialized), or ``(B,)`` when ``index`` is given.
        """
        xf, _, beta = self._prepare(x, sigma)
        if index is not None:
            index = check_tensor(index, "index", ndim=1)
            if index.is_floating_point() or index.dtype == torch.bool:
                raise TypeError(f"index must be an integer tensor, got {index.dtype}")
            if index.shape[0] != x.shape[0] or bool(((index < 0) | (index >= len(self))).any()):
                raise ValueError(f"index must be ({x.shape[0]},) with entries in [0, {len(self)})")
            idx = index.to(xf.device)
            lse = self._stats(xf, beta, exact=True).lse
            assert lse is not None
            mem = self._cache.get(self.data, xf.dtype, xf.device)
            sq = (mem.shift(xf) - mem.points[idx]).pow(2).sum(1)  # ‖x − y_index‖² directly
            return torch.exp(-0.5 * beta * sq - lse)
        mem = self._cache.get(self.data, xf.dtype, xf.device)
        return distance_weights(xf, mem, beta, name="sigma")
