"""Network preconditioning and denoising losses (Karras et al. 2022, "Elucidating…", Table 1).

A raw network ``F_θ`` becomes a denoiser

    D_θ(x, σ) = c_skip(σ) x + c_out(σ) F_θ(c_in(σ) x, c_noise(σ))          (EDM eq. 7)

and is trained with the weighted denoising loss

    L = E_{σ, y, n} [ λ(σ) ‖D_θ(y + n, σ) − y‖² ],  n ~ N(0, σ²I)          (EDM eq. 8)

with σ drawn from a training distribution ``p_train``. The three columns of Table 1
implemented here differ only in ``c_*``, ``p_train`` and ``λ``:

* ``edm``: c_skip = σ_d²/(σ²+σ_d²), c_out = σσ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²),
  c_noise = ¼ ln σ; ln σ ~ N(P_mean, P_std²); λ = (σ²+σ_d²)/(σσ_d)².
* ``vp``: c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1), c_noise = (M−1) t(σ);
  t ~ U(ε_t, 1), σ = σ(t); λ = 1/σ².
* ``ve``: c_skip = 1, c_out = σ, c_in = 1, c_noise = ln(½σ);
  ln σ ~ U(ln σ_min, ln σ_max); λ = 1/σ².
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from memscape._validation import check_choice
from memscape.diffusion.processes import VP as VPProcess

__all__ = [
    "EDMPrecond",
    "Preconditioning",
    "VEPrecond",
    "VPPrecond",
    "get_preconditioning",
    "measured_sigma_data",
]


@dataclass(frozen=True)
class Preconditioning:
    """Base class: coefficients ``(c_skip, c_out, c_in, c_noise)``, ``p_train`` and ``λ(σ)``.

    All methods take σ as a ``(B,)`` tensor and return ``(B,)`` tensors of its dtype/device.
    """

    name: str = ""

    def coefficients(
        self, sigma: torch.Tensor, sigma_data: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c_skip, c_out, c_in, c_noise)`` of EDM eq. 7, each ``(B,)``."""
        raise NotImplementedError

    def sample_sigma(
        self, n: int, *, generator: torch.Generator | None, device: Any, dtype: torch.dtype
    ) -> torch.Tensor:
        """Draw ``n`` training noise levels from ``p_train``: ``(n,)``."""
        raise NotImplementedError

    def loss_weight(self, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
        """Loss weight ``λ(σ)``: ``(B,)``."""
        return sigma**-2

    def config(self) -> dict[str, Any]:
        """JSON-serializable fields (``name`` plus hyperparameters)."""
        return asdict(self)


@dataclass(frozen=True)
class EDMPrecond(Preconditioning):
    """EDM preconditioning (Karras et al. 2022, Table 1 "Ours", §5).

    Args:
        p_mean: ``ln σ ~ N(P_mean, P_std²)`` during training.
        p_std: ``ln σ ~ N(P_mean, P_std²)`` during training.
    """

    name: str = "edm"
    p_mean: float = -1.2
    p_std: float = 1.2

    def coefficients(self, sigma, sigma_data):
        """EDM Table 1 coefficients.

        ``c_skip = σ_d²/(σ²+σ_d²)``, ``c_out = σσ_d/√(σ²+σ_d²)``, ``c_in = 1/√(σ²+σ_d²)``,
        ``c_noise = ¼ ln σ``.
        """
        s2, d2 = sigma**2, sigma_data**2
        c_skip = d2 / (s2 + d2)
        c_out = sigma * sigma_data / torch.sqrt(s2 + d2)
        c_in = 1.0 / torch.sqrt(s2 + d2)
        c_noise = 0.25 * torch.log(sigma)
        return c_skip, c_out, c_in, c_noise

    def sample_sigma(self, n, *, generator, device, dtype):
        """``ln σ ~ N(P_mean, P_std²)``."""
        z = torch.randn(n, generator=generator, device=device, dtype=dtype)
        return torch.exp(self.p_mean + self.p_std * z)

    def loss_weight(self, sigma, sigma_data):
        """``λ(σ) = (σ² + σ_d²)/(σσ_d)²``."""
        return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


@dataclass(frozen=True)
class VPPrecond(Preconditioning):
    """Variance-preserving preconditioning (Song et al. 2021; EDM Table 1 "VP").

    ``σ(t) = √(exp(½β_d t² + β_min t) − 1)`` is :class:`memscape.diffusion.VP`.
    """

    name: str = "vp"
    beta_d: float = 19.9
    beta_min: float = 0.1
    M: int = 1000
    epsilon_t: float = 1e-5

    def _process(self) -> VPProcess:
        return VPProcess(beta_min=self.beta_min, beta_d=self.beta_d)

    def coefficients(self, sigma, sigma_data):
        """EDM Table 1 (VP) coefficients.

        ``c_skip = 1``, ``c_out = −σ``, ``c_in = 1/√(σ²+1)``, ``c_noise = (M − 1) t(σ)``.
        """
        c_skip = torch.ones_like(sigma)
        c_out = -sigma
        c_in = 1.0 / torch.sqrt(sigma**2 + 1)
        c_noise = (self.M - 1) * self._process().t_of_sigma(sigma).to(sigma)
        return c_skip, c_out, c_in, c_noise

    def sample_sigma(self, n, *, generator, device, dtype):
        """``σ(t)`` with ``t ~ U(ε_t, 1)``."""
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        return self._process().sigma(1 + u * (self.epsilon_t - 1)).to(dtype)


@dataclass(frozen=True)
class VEPrecond(Preconditioning):
    """Variance-exploding preconditioning (Song et al. 2021; EDM Table 1 "VE")."""

    name: str = "ve"
    sigma_min: float = 0.02
    sigma_max: float = 100.0

    def coefficients(self, sigma, sigma_data):
        """EDM Table 1 (VE): ``c_skip = 1``, ``c_out = σ``, ``c_in = 1``, ``c_noise = ln(σ/2)``."""
        one = torch.ones_like(sigma)
        return one, sigma, one, torch.log(0.5 * sigma)

    def sample_sigma(self, n, *, generator, device, dtype):
        """``ln σ ~ U(ln σ_min, ln σ_max)``."""
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** u


_PRECONDS: dict[str, type[Preconditioning]] = {"edm": EDMPrecond, "vp": VPPrecond, "ve": VEPrecond}


def get_preconditioning(spec: str | dict[str, Any] | Preconditioning) -> Preconditioning:
    """Preconditioning from a name (``"edm"``, ``"vp"``, ``"ve"``), a config dict, or as is."""
    if isinstance(spec, Preconditioning):
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = check_choice(spec.pop("name", None), _PRECONDS, "precond")
        return _PRECONDS[name](**spec)
    if not isinstance(spec, str):
        raise TypeError(f"precond must be a name or Preconditioning, got {type(spec).__name__}")
    return _PRECONDS[check_choice(spec, _PRECONDS, "precond")]()


def measured_sigma_data(x: torch.Tensor) -> float:
    """σ_data: the standard deviation of all data coordinates (EDM §5 uses 0.5 for images)."""
    sd = float(x.double().std())
    if not math.isfinite(sd) or sd <= 0:
        raise ValueError(f"data must have a positive finite standard deviation, got {sd}")
    return sd
