"""The exact diffusion model of an isotropic Gaussian mixture.

Data ``p₀ = Σ_k w_k N(m_k, vI)`` stay a mixture under noise: ``p_σ = Σ_k w_k N(m_k, s²I)``
with ``s² = v + σ²`` (Biroli, Bonnaire, de Bortoli & Mézard 2024, §3, Gaussian mixtures), so

    −log p_σ(x) = ‖x‖²/2s² − lse_k ℓ_k(x) + (d/2) log 2πs²,   ℓ_k = (xᵀm_k − ‖m_k‖²/2)/s² + log w_k
    score       = (Σ_k π_k m_k − x)/s²,   π = softmax_k ℓ   (posterior over components)
    D(x, σ)     = x + σ² score,   ∇²(−log p_σ) = (I − Cov_π(m)/s²)/s².

As v → 0 this is :class:`~memscape.diffusion.empirical.EmpiricalDiffusion` of the means
(with weights). For the symmetric pair ``½N(m, vI) + ½N(−m, vI)`` the score is
``(m tanh(mᵀx/s²) − x)/s²`` (:meth:`GaussianMixtureDiffusion.symmetric_pair`). The number
of components K is small, so the posterior is one direct pass of the streamed distance
kernel (:func:`memscape.kernels.streamed_distance_softmax`): means and states are centred
on the means' average and the energy evaluates ``‖x − m_k‖²`` directly, so energies keep
their digits far from the origin. Half-precision states are computed (and returned) in
float32; a σ with ``v + σ²`` outside the dtype's normal range raises ``ValueError``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape import kernels
from memscape._validation import check_int, check_positive, check_tensor
from memscape.curvature import Operator, posterior_hessian, posterior_hessian_operator
from memscape.kernels import DistanceStats, MemoryCache
from memscape.protocol import EnergyModel

__all__ = ["GaussianMixtureDiffusion"]


class GaussianMixtureDiffusion(EnergyModel):
    """Exact diffusion model (energy ``−log p_σ``) of ``Σ_k w_k N(m_k, vI)`` in σ-space.

    Args:
        means: component means ``m_k``, ``(K, d)``.
        variance: per-coordinate variance v > 0 of every component.
        weights: mixture weights ``(K,)``, positive (normalized to sum 1); default uniform.
    """

    noise_conditioned = True

    def __init__(
        self, means: torch.Tensor, variance: float = 1.0, weights: torch.Tensor | None = None
    ) -> None:
        means = check_tensor(means, "means", ndim=2)
        check_positive(variance, "variance")
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        if weights is None:
            weights = torch.full((means.shape[0],), 1.0 / means.shape[0], dtype=means.dtype)
        else:
            weights = check_tensor(weights, "weights", ndim=1).to(means.dtype)
            if weights.shape[0] != means.shape[0]:
                raise ValueError(
                    f"weights must have shape ({means.shape[0]},) like means, "
                    f"got {tuple(weights.shape)}"
                )
            check_positive(weights, "weights")
            weights = weights / weights.sum()
        self.means = means
        self.weights = weights
        self.variance = float(variance)
        self.event_shape = (means.shape[1],)
        self._cache = MemoryCache()

    @classmethod
    def symmetric_pair(cls, mean: torch.Tensor, variance: float = 1.0) -> GaussianMixtureDiffusion:
        """``½ N(m, vI) + ½ N(−m, vI)`` from ``mean`` ``(d,)`` (Biroli et al. 2024, §2)."""
        mean = check_tensor(mean, "mean", ndim=1)
        return cls(torch.stack([mean, -mean]), variance)

    def _repr_fields(self) -> dict[str, Any]:
        return {"K": len(self), "d": self.dim, "variance": self.variance, "dtype": self.means.dtype}

    def __len__(self) -> int:
        return self.means.shape[0]

    def _prepare(self, x: Any, sigma: Any) -> tuple[torch.Tensor, Any, Any]:
        """States ``(B, d)`` in the compute dtype, σ and ``β = 1/s² = 1/(v + σ²)`` (floats
        for a float σ, else ``(B,)``)."""
        x = self._check_x(x)
        x = x.to(kernels._compute_dtype(x, self.means.dtype))
        s, beta = kernels._inverse_variance(x, sigma, variance=self.variance)
        return x, s, beta

    def _stats(
        self, x: torch.Tensor, beta: Any, *, covariance: bool = False, exact: bool = False
    ) -> DistanceStats:
        """Posterior statistics of the logits ``ℓ_k = log w_k − ‖x − m_k‖²/2s²`` (K small: one pass)."""
        mem = self._cache.get(self.means, x.dtype, x.device, self.weights)
        log_w = self._cache.extra("log_w", lambda: self.weights.to(x).log())
        return kernels.streamed_distance_softmax(
            x, mem, beta, log_w, chunk_size=max(len(self), 1), covariance=covariance,
            exact_lse=exact, need_lse=exact, name="sigma",
        )  # fmt: skip

    def posterior(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Posterior ``π_k(x) = p(component k | x_σ = x)``: ``(B, d) -> (B, K)``."""
        x, _, beta = self._prepare(x, sigma)
        return self._posterior(x, beta)

    def _posterior(self, x: torch.Tensor, beta: Any) -> torch.Tensor:
        mem = self._cache.get(self.means, x.dtype, x.device, self.weights)
        log_w = self._cache.extra("log_w", lambda: self.weights.to(x).log())
        return kernels.distance_weights(x, mem, beta, log_w, name="sigma")

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``−log p_σ(x) = −lse_k(log w_k − ‖x − m_k‖²/2s²) + (d/2) log 2πs²``: ``(B, d) -> (B,)``."""
        x, _, beta = self._prepare(x, sigma)
        lse = self._stats(x, beta, exact=True).lse
        assert lse is not None
        return 0.5 * self.dim * (math.log(2 * math.pi) - kernels._log(beta)) - lse

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form score ``(Σ_k π_k m_k − x)/s²``: ``(B, d)``."""
        x, _, beta = self._prepare(x, sigma)
        return self._stats(x, beta).drift * kernels._col(beta)

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Tweedie denoiser ``D(x, σ) = x + σ² score``: ``(B, d)``."""
        x, s, beta = self._prepare(x, sigma)
        return x + kernels._col(s * s * beta) * self._stats(x, beta).drift

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian of ``−log p_σ``: ``(I − Cov_π(m)/s²)/s²``, ``(B, d, d)``."""
        x, _, beta = self._prepare(x, sigma)
        cov = self._stats(x, beta, covariance=True).cov
        assert cov is not None
        return posterior_hessian(cov, beta)

    def hessian_operator(self, x: torch.Tensor, sigma: Any = None) -> Operator:
        """The Hessian at ``x`` as an operator ``v ↦ ∇²E(x) v`` on flat ``(B, d)`` vectors:
        ``β(v − β Cov_π(m) v)``, ``β = 1/s²`` (:func:`memscape.curvature.posterior_hessian_operator`)."""
        x, _, beta = self._prepare(x, sigma)
        mem = self._cache.get(self.means, x.dtype, x.device, self.weights)
        return posterior_hessian_operator(self._posterior(x, beta), mem.points, beta)

    def covariance(self) -> torch.Tensor:
        """Covariance of the data ``vI + Σ_k w_k (m_k − m̄)(m_k − m̄)ᵀ``: ``(d, d)``."""
        c = self.means - self.weights @ self.means
        eye = torch.eye(self.dim, dtype=c.dtype, device=c.device)
        return self.variance * eye + (c.T * self.weights) @ c

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws from the data (σ = 0), on the CPU generator ``generator``.

        Returns:
            ``(x, k)``: the points ``(n, d)`` and the component of each ``(n,)``.
        """
        check_int(n, "n")
        k = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        k = k.to(self.means.device)
        return self.means[k] + math.sqrt(self.variance) * z.to(self.means.device), k
