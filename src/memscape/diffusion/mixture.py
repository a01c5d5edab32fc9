"""The exact diffusion model of an isotropic Gaussian mixture.

Data ``p₀ = Σ_k w_k N(m_k, vI)`` stay a mixture under noise: ``p_σ = Σ_k w_k N(m_k, s²I)``
with ``s² = v + σ²`` (Biroli, Bonnaire, de Bortoli & Mézard 2024, §3, Gaussian mixtures), so

    −log p_σ(x) = ‖x‖²/2s² − lse_k ℓ_k(x) + (d/2) log 2πs²,   ℓ_k = (xᵀm_k − ‖m_k‖²/2)/s² + log w_k
    score       = (Σ_k π_k m_k − x)/s²,   π = softmax_k ℓ   (posterior over components)
    D(x, σ)     = x + σ² score,   ∇²(−log p_σ) = (I − Cov_π(m)/s²)/s².

As v → 0 this is :class:`~memscape.diffusion.empirical.EmpiricalDiffusion` of the means
(with weights). For the symmetric pair ``½N(m, vI) + ½N(−m, vI)`` the score is
``(m tanh(mᵀx/s²) − x)/s²`` (:meth:`GaussianMixtureDiffusion.symmetric_pair`). The number
of components K is small, so the posterior is one direct ``(B, K)`` softmax.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape._validation import as_sigma, check_int, check_positive, check_tensor
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

    @classmethod
    def symmetric_pair(cls, mean: torch.Tensor, variance: float = 1.0) -> GaussianMixtureDiffusion:
        """``½ N(m, vI) + ½ N(−m, vI)`` from ``mean`` ``(d,)`` (Biroli et al. 2024, §2)."""
        mean = check_tensor(mean, "mean", ndim=1)
        return cls(torch.stack([mean, -mean]), variance)

    def _repr_fields(self) -> dict[str, Any]:
        return {"K": len(self), "d": self.dim, "variance": self.variance, "dtype": self.means.dtype}

    def __len__(self) -> int:
        return self.means.shape[0]

    def _logits(self, x: torch.Tensor, sigma: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ℓ (B, K), s² (B, 1))``."""
        x = self._check_x(x)
        s2 = (self.variance + as_sigma(sigma, x) ** 2)[:, None]
        m = self.means.to(x)
        logits = (x @ m.T - 0.5 * m.pow(2).sum(1)) / s2 + self.weights.to(x).log()
        return logits, s2

    def posterior(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Posterior ``π_k(x) = p(component k | x_σ = x)``: ``(B, d) -> (B, K)``."""
        return torch.softmax(self._logits(x, sigma)[0], dim=1)

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``−log p_σ(x)`` including its normalizing constant: ``(B, d) -> (B,)``."""
        logits, s2 = self._logits(x, sigma)
        quad = 0.5 * x.pow(2).sum(1, keepdim=True) / s2
        return (quad - logits.logsumexp(1, keepdim=True) + 0.5 * self.dim * torch.log(
            2 * math.pi * s2))[:, 0]  # fmt: skip

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form score ``(Σ_k π_k m_k − x)/s²``: ``(B, d)``."""
        logits, s2 = self._logits(x, sigma)
        return (torch.softmax(logits, 1) @ self.means.to(x) - x) / s2

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Tweedie denoiser ``D(x, σ) = x + σ² score``: ``(B, d)``."""
        s = as_sigma(sigma, x)[:, None]
        return x + s**2 * self.score(x, sigma)

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian of ``−log p_σ``: ``(I − Cov_π(m)/s²)/s²``, ``(B, d, d)``."""
        logits, s2 = self._logits(x, sigma)
        p, m = torch.softmax(logits, 1), self.means.to(x)
        mean = p @ m
        cov = torch.einsum("bk,ki,kj->bij", p, m, m) - mean[:, :, None] * mean[:, None, :]
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return (eye - cov / s2[:, :, None]) / s2[:, :, None]

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
