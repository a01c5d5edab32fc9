"""Descent shared by the census, basins and Morse–Smale graph (via :func:`memscape.descend`)."""

from __future__ import annotations

from typing import Any

import torch

from memscape.dynamics import descend
from memscape.landscape._fields import flat_score
from memscape.landscape.morse import hessian_spectrum
from memscape.protocol import ScoreOrDenoiser


class ClippedGradientStep:
    """Update map ``x ← x + clip(η s(x, σ), r)`` for models without an update of their own.

    ``η = 0.5/L`` with ``L`` the 90th percentile of the Hessian's spectral radius at
    (up to 64) sample states; ``r`` bounds the length of one step.
    """

    def __init__(
        self, model: ScoreOrDenoiser, shape: tuple[int, ...], eta: float, radius: float
    ) -> None:
        self.model, self.shape, self.eta, self.radius = model, shape, eta, radius

    def update(self, x: torch.Tensor, sigma: Any = None, *, generator: Any = None) -> torch.Tensor:
        step = self.eta * flat_score(self.model, x, sigma, self.shape)
        norm = step.norm(dim=1, keepdim=True)
        return x + step * torch.clamp(self.radius / norm.clamp_min(1e-300), max=1.0)


def descend_flat(
    model: ScoreOrDenoiser,
    x0: torch.Tensor,
    sigma: Any,
    shape: tuple[int, ...],
    *,
    max_steps: int = 2000,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Descend flat states ``(B, d)``: the model's update map, else a clipped gradient flow.

    Returns:
        ``(x, converged)``: flat endpoints ``(B, d)`` and ``(B,)`` bool.
    """
    if callable(getattr(model, "update", None)):
        res = descend(model, x0.reshape(-1, *shape), sigma, method="update", max_steps=max_steps)
        return res.x.reshape(x0.shape[0], -1), res.converged
    sample = x0[: min(64, x0.shape[0])]
    spec = hessian_spectrum(model, sample.reshape(-1, *shape), sigma)
    lip = float(spec.eigenvalues.abs().amax(1).quantile(0.9))
    stepper = ClippedGradientStep(model, shape, 0.5 / max(lip, 1e-12), 0.1 * scale)
    res = descend(stepper, x0, sigma, method="update", tol=1e-7 * scale, max_steps=max_steps)
    return res.x, res.converged
