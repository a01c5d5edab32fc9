"""The landscape of a noise process in x-space: the density ``p_t`` and the reverse-drift potential.

A forward process ``x_t = s(t)(x₀ + σ(t) z)`` (:mod:`memscape.diffusion.processes`) has
density ``p_t(x) = s^{−d} p_σ(x/s)``, so the energy of a σ-space model ``E_σ = −log p_σ``
becomes, in x-space,

    −log p_t(x) = E_σ(x/s) + d log s,    ∇ = ∇E_σ(x/s)/s,    ∇² = ∇²E_σ(x/s)/s².

The generative force is the drift of the reverse SDE ``−f x + g² ∇log p_t`` (Song et al.
2021; Karras et al. 2022, eq. 4, ``f = ṡ/s``, ``g² = 2s²σσ̇``). It is the negative gradient of

    U(x, t) = g(t)² (−log p_t(x)) + ½ f(t) ‖x‖²

(Raya & Ambrogioni 2023, "Spontaneous symmetry breaking in generative diffusion models").
For VP and OU ``f < 0``: the drift ``−f x`` pushes outward and ``U`` loses its central
minimum earlier in generation than ``p_t`` (:func:`memscape.theory.drift_potential_breaking_time`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape._validation import check_choice, check_positive
from memscape.diffusion.processes import NoiseProcess, get_process
from memscape.protocol import EnergyModel

__all__ = ["ProcessLandscape"]

KINDS = ("density", "drift")


class ProcessLandscape(EnergyModel):
    """A noise-conditioned model's landscape in x-space at forward time ``t`` of a process.

    ``kind = "density"``: ``E(x) = −log p_t(x) = E_σ(x/s) + d log s`` with σ = σ(t),
    s = s(t) and ``E_σ`` the model's energy (``−log p_σ`` for
    :class:`~memscape.diffusion.empirical.EmpiricalDiffusion`). ``kind = "drift"``: the
    reverse-SDE drift potential ``U(x) = g² E(x) + ½ f ‖x‖²``, whose negative gradient is
    the generative drift ``−f x + g² ∇log p_t`` (module docstring). Score and Hessian
    from the model's: ``∇E = ∇E_σ(x/s)/s``, ``∇²E = ∇²E_σ(x/s)/s²``. The landscape is
    not noise-conditioned itself: its ``sigma`` arguments are ignored.

    Args:
        model: a noise-conditioned model with ``energy``, ``score`` and ``hessian``
            (states ``(B, *event_shape)``).
        process: ``"ve"``, ``"vp"``, ``"ou"``, ``"edm"`` or a :class:`NoiseProcess`.
        t: forward time > 0.
        kind: ``"density"`` or ``"drift"``.

    Attributes:
        s, sigma, rate, g2: ``s(t)``, ``σ(t)``, ``f(t) = ṡ/s`` and ``g(t)²`` (floats).
        patterns: ``s · model.data`` (the centres of ``p_t``'s modes) when the model has data.
    """

    def __init__(
        self, model: Any, process: str | NoiseProcess, t: float, kind: str = "density"
    ) -> None:
        if not getattr(model, "noise_conditioned", False):
            raise TypeError(f"model must be noise-conditioned, got {type(model).__name__}")
        self.kind = check_choice(kind, KINDS, "kind")
        self.process = get_process(process)
        check_positive(t, "t")
        self.t = float(t)
        c = self.process.sde(self.t)
        self.s, self.sigma, self.rate, self.g2 = (float(v) for v in c)
        self.model = model
        self.event_shape = tuple(model.event_shape)
        data = getattr(model, "data", None)
        self.patterns = None if data is None else self.s * data

    def _repr_fields(self) -> dict[str, Any]:
        return {"model": type(self.model).__name__, "process": self.process.name,
                "t": self.t, "kind": self.kind}  # fmt: skip

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        return self._check_x(x) / self.s

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Density energy ``−log p_t(x)`` or drift potential ``U(x, t)``: ``(B, *E) -> (B,)``."""
        e = self.model.energy(self._z(x), self.sigma) + self.dim * math.log(self.s)
        if self.kind == "density":
            return e
        return self.g2 * e + 0.5 * self.rate * x.reshape(x.shape[0], -1).pow(2).sum(1)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``−∇E``: the density's score or the generative drift ``−f x + g²∇log p_t``; shape of x."""
        sc = self.model.score(self._z(x), self.sigma) / self.s
        return sc if self.kind == "density" else self.g2 * sc - self.rate * x

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``∇²E`` in x-space: ``(B, d, d)``."""
        h = self.model.hessian(self._z(x), self.sigma) / self.s**2
        if self.kind == "density":
            return h
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return self.g2 * h + self.rate * eye
