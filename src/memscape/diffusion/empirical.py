"""The exact ("optimal") diffusion model of a finite training set.

For training points ``y_1..y_K`` the noised density is the Gaussian mixture

    p_σ(x) = (1/K) Σ_k N(x; y_k, σ² I),

whose energy, score, denoiser and Hessian are closed forms (Ambrogioni 2023; Hoover et al. 2023):

    −log p_σ(x) = ‖x‖²/2σ² − lse_k((xᵀy_k − ‖y_k‖²/2)/σ²) + log K + (d/2) log 2πσ²
    D(x, σ)     = Σ_k w_k(x) y_k,   w = softmax_k(−‖x − y_k‖²/2σ²)
    ∇²(−log p)  = (I − Cov_w(y)/σ²)/σ².

``σ²(−log p_σ − (d/2) log 2πσ²)`` is the modern Hopfield energy at β = 1/σ² with
per-memory bias ``−‖y_k‖²/2``, and one exact denoising step is one CCCP update.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape._validation import as_sigma, check_tensor
from memscape.kernels import DEFAULT_CHUNK, SoftmaxStats, streamed_softmax
from memscape.protocol import EnergyModel

__all__ = ["EmpiricalDiffusion"]


class EmpiricalDiffusion(EnergyModel):
    """Exact diffusion model (energy ``−log p_σ``) of a finite data set.

    Args:
        data: training points ``(K, *event_shape)``; flattened internally to ``(K, d)``.
        chunk_size: training points per chunk of the streamed log-sum-exp; memory is
            ``O(B · chunk_size)`` so K = 10⁶ never builds a ``B×K`` matrix.
    """

    noise_conditioned = True

    def __init__(self, data: torch.Tensor, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        data = check_tensor(data, "data", min_ndim=2)
        if not data.is_floating_point():
            data = data.to(torch.get_default_dtype())
        self.data = data
        self.event_shape = tuple(data.shape[1:])
        self._flat = data.reshape(data.shape[0], -1)
        self._half_sq_norms = 0.5 * self._flat.pow(2).sum(1)
        self.chunk_size = chunk_size

    def _repr_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"K": len(self), "d": self.dim}
        if len(self.event_shape) > 1:
            fields["event_shape"] = self.event_shape
        return {**fields, "dtype": self.data.dtype}

    def __len__(self) -> int:
        return self._flat.shape[0]

    def _stats(self, x: torch.Tensor, sigma: Any, covariance: bool = False) -> SoftmaxStats:
        x = self._check_x(x)
        s = as_sigma(sigma, x)
        flat = self._flat.to(x)
        return streamed_softmax(
            x.reshape(x.shape[0], -1),
            flat,
            1.0 / s**2,
            -self._half_sq_norms.to(x),
            chunk_size=self.chunk_size,
            covariance=covariance,
        )

    def log_normalizer(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """The constant ``log K + (d/2) log(2πσ²)`` in ``−log p_σ``: ``(B,)``."""
        s = as_sigma(sigma, x)
        return math.log(len(self)) + 0.5 * self.dim * torch.log(2 * math.pi * s**2)

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Exact energy ``−log p_σ(x)`` including its normalizing constant: ``(B,)``."""
        st = self._stats(x, sigma)
        s2 = as_sigma(sigma, x) ** 2
        sq = x.reshape(x.shape[0], -1).pow(2).sum(1)
        return 0.5 * sq / s2 - st.lse + self.log_normalizer(x, sigma)

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Exact denoiser ``E[y | x] = Σ_k softmax_k(−‖x−y_k‖²/2σ²) y_k``, shape of ``x``."""
        return self._stats(x, sigma).mean.reshape(x.shape)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Exact score ``(D(x,σ) − x)/σ²``, shape of ``x``."""
        s2 = as_sigma(sigma, x).reshape(-1, *([1] * (x.ndim - 1))) ** 2
        return (self.denoise(x, sigma) - x) / s2

    def update(self, x: torch.Tensor, sigma: Any = None, *, generator: Any = None) -> torch.Tensor:
        """One denoising step ``x ← D(x, σ)`` (a CCCP step on the energy): shape of ``x``."""
        return self.denoise(x, sigma)

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian of ``−log p_σ``: ``(I − Cov_w(y)/σ²)/σ²``, ``(B, d, d)``."""
        cov = self._stats(x, sigma, covariance=True).cov
        assert cov is not None
        s2 = as_sigma(sigma, x).reshape(-1, 1, 1) ** 2
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return (eye - cov / s2) / s2

    def posterior(
        self, x: torch.Tensor, sigma: Any, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Posterior weights ``w_k(x) = p(y_k | x) = softmax_k((xᵀy_k − ‖y_k‖²/2)/σ²)``.

        Args:
            x: states ``(B, *event_shape)``.
            sigma: noise level (float or ``(B,)``).
            index: optional ``(B,)`` long: return only ``w_{index_b}(x_b)``, as
                ``exp(ℓ_b − lse_b)`` with ``lse`` from the streamed kernel (no ``B×K``).

        Returns:
            ``(B, K)`` weights (materialized), or ``(B,)`` when ``index`` is given.
        """
        x = self._check_x(x)
        s2 = as_sigma(sigma, x).reshape(-1, 1) ** 2
        flat = self._flat.to(x)
        xf = x.reshape(x.shape[0], -1)
        if index is not None:
            index = check_tensor(index, "index", ndim=1)
            if index.is_floating_point() or index.dtype == torch.bool:
                raise TypeError(f"index must be an integer tensor, got {index.dtype}")
            if index.shape[0] != x.shape[0] or bool(((index < 0) | (index >= len(self))).any()):
                raise ValueError(f"index must be ({x.shape[0]},) with entries in [0, {len(self)})")
            idx = index.to(x.device)
            logit = ((xf * flat[idx]).sum(1) - self._half_sq_norms.to(x)[idx]) / s2[:, 0]
            return torch.exp(logit - self._stats(x, sigma).lse)
        logits = (xf @ flat.T - self._half_sq_norms.to(x)) / s2
        return torch.softmax(logits, dim=1)
