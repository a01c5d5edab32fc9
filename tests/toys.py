"""Toy models shared by the tests, each with its critical points and folds in closed form."""

from __future__ import annotations

import torch

from memscape.protocol import EnergyModel


class TiltedWell(EnergyModel):
    """``E = (x² − 1)² + y²/2 − t x``: critical points on the x axis where 4x³ − 4x = t.

    Folds at ``t = ±8/(3√3)`` (where 12x² = 4); closed-form score and Hessian.
    """

    event_shape = (2,)

    def __init__(self, t: float) -> None:
        self.t = t

    def energy(self, x, sigma=None):
        return (x[:, 0] ** 2 - 1) ** 2 + 0.5 * x[:, 1] ** 2 - self.t * x[:, 0]

    def score(self, x, sigma=None):
        return -torch.stack([4 * x[:, 0] ** 3 - 4 * x[:, 0] - self.t, x[:, 1]], dim=1)

    def hessian(self, x, sigma=None):
        h = torch.zeros(x.shape[0], 2, 2, dtype=x.dtype)
        h[:, 0, 0] = 12 * x[:, 0] ** 2 - 4
        h[:, 1, 1] = 1.0
        return h
