"""Forward noise processes in σ-space (Karras et al. 2022, "Elucidating…", Table 1).

Every process is written ``x_t = s(t) (x₀ + σ(t) z)``, ``z ~ N(0, I)``, so the
density of ``x_t`` is ``p_t(x) = s(t)^{-d} p_σ(x / s(t))`` with ``p_σ`` the data
density convolved with ``N(0, σ²I)`` — the object the exact model computes.

As an SDE (Karras et al. 2022, eq. 4) the process is ``dx = f(t) x dt + g(t) dW`` with
``f = ṡ/s`` and ``g² = 2 s² σ σ̇`` (:meth:`NoiseProcess.sde`): VP ``f = −½β(t)``,
``g² = β(t)``; OU ``f = −1``, ``g² = 2``; VE ``f = 0``, ``g² = 2t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from memscape._validation import check_choice

__all__ = ["EDM", "OU", "VE", "VP", "NoiseProcess", "SDECoefficients", "get_process"]


@dataclass(frozen=True)
class NoiseProcess:
    """A forward process given by its scale ``s(t)`` and noise level ``σ(t)``."""

    name: str = "ve"

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """Noise level σ(t)."""
        raise NotImplementedError

    def scale(self, t: torch.Tensor | float) -> torch.Tensor:
        """Signal scale s(t)."""
        raise NotImplementedError

    def t_of_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """Inverse of σ(t)."""
        raise NotImplementedError

    def perturb(self, x0: torch.Tensor, t: float, generator: torch.Generator | None = None):
        """Draw ``x_t = s(t)(x₀ + σ(t) z)``: ``(B, ...) -> (B, ...)``."""
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
        return self.scale(t).to(x0) * (x0 + self.sigma(t).to(x0) * z)

    def sde(self, t: torch.Tensor | float) -> SDECoefficients:
        """Coefficients of the forward SDE ``dx = f(t) x dt + g(t) dW`` at ``t``.

        Karras et al. 2022, eq. 4: ``f = ṡ/s``, ``g² = 2 s² σ σ̇``, with the derivatives
        taken by autograd through :meth:`scale` and :meth:`sigma` (so every subclass
        gets them). ``t``: a float or a tensor of times (each entry independently).

        Returns:
            :class:`SDECoefficients` ``(scale, sigma, drift, g2)``, float64 tensors of
            the shape of ``t``.
        """
        tt = _t(t).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            s, sig = self.scale(tt), self.sigma(tt)
            ds, dsig = (
                torch.autograd.grad(v.sum(), tt)[0] if v.requires_grad else torch.zeros_like(tt)
                for v in (s, sig)
            )
        s, sig = s.detach(), sig.detach()
        return SDECoefficients(s, sig, ds / s, 2 * s**2 * sig * dsig)

    def drift(self, t: torch.Tensor | float) -> torch.Tensor:
        """Drift coefficient ``f(t) = ṡ/s`` of the forward SDE (Karras et al. 2022, eq. 4)."""
        return self.sde(t).drift

    def diffusion(self, t: torch.Tensor | float) -> torch.Tensor:
        """Diffusion coefficient ``g(t) = s √(2σσ̇)`` of the forward SDE (Karras et al. 2022, eq. 4)."""
        return self.sde(t).g2.sqrt()


class SDECoefficients(NamedTuple):
    """Forward SDE ``dx = f(t) x dt + g(t) dW`` of ``x_t = s(t)(x₀ + σ(t)z)`` at some times."""

    scale: torch.Tensor  #: s(t)
    sigma: torch.Tensor  #: σ(t)
    drift: torch.Tensor  #: f(t) = ṡ/s
    g2: torch.Tensor  #: g(t)² = 2 s² σ σ̇


def _t(t: torch.Tensor | float) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


@dataclass(frozen=True)
class VE(NoiseProcess):
    """Variance exploding (Song et al. 2021): ``s = 1``, ``σ(t) = t`` (σ-space directly)."""

    name: str = "ve"

    def sigma(self, t):
        """σ(t) = t."""
        return _t(t)

    def scale(self, t):
        """s(t) = 1."""
        return torch.ones_like(_t(t))

    def t_of_sigma(self, sigma):
        """t(σ) = σ."""
        return _t(sigma)


@dataclass(frozen=True)
class EDM(VE):
    """EDM (Karras et al. 2022): ``s = 1``, ``σ(t) = t``; differs from VE only in its schedule."""

    name: str = "edm"


@dataclass(frozen=True)
class VP(NoiseProcess):
    """Variance preserving (Song et al. 2021; EDM Table 1), β(t) = β_min + β_d t.

    ``σ(t) = √(exp(½β_d t² + β_min t) − 1)``, ``s(t) = 1/√(1 + σ(t)²)``.
    """

    name: str = "vp"
    beta_min: float = 0.1
    beta_d: float = 19.9

    def sigma(self, t):
        """σ(t) = √(exp(½β_d t² + β_min t) − 1)."""
        t = _t(t)
        return torch.sqrt(torch.expm1(0.5 * self.beta_d * t**2 + self.beta_min * t))

    def scale(self, t):
        """s(t) = 1/√(1 + σ(t)²)."""
        return 1.0 / torch.sqrt(1.0 + self.sigma(t) ** 2)

    def t_of_sigma(self, sigma):
        """t(σ) = (√(β_min² + 2β_d ln(1 + σ²)) − β_min)/β_d."""
        s = _t(sigma)
        c = torch.log1p(s**2)
        return (torch.sqrt(self.beta_min**2 + 2 * self.beta_d * c) - self.beta_min) / self.beta_d


@dataclass(frozen=True)
class OU(NoiseProcess):
    """Ornstein–Uhlenbeck: ``x_t = e^{−t} x₀ + √(1 − e^{−2t}) z`` (Biroli et al. 2024).

    In σ-space ``s(t) = e^{−t}``, ``σ(t) = √(e^{2t} − 1)``.
    """

    name: str = "ou"

    def sigma(self, t):
        """σ(t) = √(e^{2t} − 1)."""
        return torch.sqrt(torch.expm1(2 * _t(t)))

    def scale(self, t):
        """s(t) = e^{−t}."""
        return torch.exp(-_t(t))

    def t_of_sigma(self, sigma):
        """t(σ) = ½ ln(1 + σ²)."""
        return 0.5 * torch.log1p(_t(sigma) ** 2)


_PROCESSES = {"ve": VE, "vp": VP, "ou": OU, "edm": EDM}


def get_process(name: str | NoiseProcess) -> NoiseProcess:
    """Return a process by name (``"ve"``, ``"vp"``, ``"ou"``, ``"edm"``) or pass one through."""
    if isinstance(name, NoiseProcess):
        return name
    return _PROCESSES[check_choice(name, _PROCESSES, "process")]()
