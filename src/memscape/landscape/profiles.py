"""Radial energy profiles of 2-D landscapes and the radius of their ring of minima.

For data on the unit circle the exact diffusion energy is radially symmetric in the
large-K limit, ``E(R) = R² + 1 − 2σ² log I₀(R/σ²)`` in units of ``2σ²`` (Pham, Raya,
Negri, Zaki, Ambrogioni & Krotov 2025, circle toy; :func:`memscape.theory.circle_energy`),
with a ring of minima at ``R = I₁(R/σ²)/I₀(R/σ²)`` (:func:`memscape.theory.circle_radius`).
:func:`radial_profile` measures both on any 2-D model: the energy along equally spaced
rays from a centre, averaged over the rays, and the minimizing radius of each ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memscape._validation import check_int, check_tensor
from memscape.landscape._fields import check_sigma

__all__ = ["RadialProfile", "radial_profile"]


@dataclass(frozen=True)
class RadialProfile:
    """Result of :func:`radial_profile`.

    Attributes:
        radii: ``(R,)`` radii, ascending.
        angles: ``(A,)`` angles of the rays (radians).
        energies: ``(R, A)`` energy ``E(c + r(cos θ, sin θ), σ)`` on each ray.
        energy: ``(R,)`` mean of ``energies`` over the rays (the angle-averaged profile).
        minimizers: ``(A,)`` minimizing radius of each ray (the grid minimum refined by
            the parabola through it and its two neighbours).
        ring_radius: mean of ``minimizers``: the radius of the ring of minima.
    """

    radii: np.ndarray
    angles: np.ndarray
    energies: np.ndarray
    energy: np.ndarray
    minimizers: np.ndarray
    ring_radius: float


def _as_float64(value: Any, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be numbers or a tensor, got {type(value).__name__}") from None


def _parabola_minimum(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Minimizing radius of each column of ``e`` ``(R, A)`` on the grid ``r`` ``(R,)``.

    The vertex of the parabola through the grid minimum and its neighbours (kept at the
    grid point where the three are not convex), clipped to the neighbours' interval.
    """
    i = np.clip(e.argmin(0), 1, len(r) - 2)
    cols = np.arange(e.shape[1])
    x0, x1, x2 = r[i - 1], r[i], r[i + 1]
    y0, y1, y2 = e[i - 1, cols], e[i, cols], e[i + 1, cols]
    a, b = (x1 - x0) * (y1 - y2), (x1 - x2) * (y1 - y0)
    # second divided difference > 0  ⇔  convex  ⇔  a − b < 0 (x0 < x1 < x2)
    convex = (a - b) < 0
    den = np.where(convex, a - b, 1.0)
    vertex = x1 - 0.5 * ((x1 - x0) * a - (x1 - x2) * b) / den
    return np.where(convex, np.clip(vertex, x0, x2), x1)


def radial_profile(
    model: Any,
    sigma: Any,
    radii: Any,
    angles: int | Any = 64,
    *,
    centre: tuple[float, float] = (0.0, 0.0),
    chunk: int = 8192,
    device: Any = None,
) -> RadialProfile:
    """Energy along rays of a 2-D model, its angle average and the ring of minima.

    Evaluates ``model.energy`` (without gradients, in float64 inputs) at
    ``c + r (cos θ, sin θ)`` for every radius ``r`` and ray angle ``θ``. For a radially
    symmetric energy ``E(‖x − c‖)`` the profile is ``E(r)`` and ``ring_radius`` its
    minimizer: e.g. the exact model of points equispaced on the unit circle gives
    ``2σ² E = R² + 1 − 2σ² log I₀(R/σ²) + const`` and the ring radius
    ``R = I₁(R/σ²)/I₀(R/σ²)`` (Pham et al. 2025 circle toy; :func:`memscape.theory.circle_energy`,
    :func:`memscape.theory.circle_radius`).

    Args:
        model: a 2-D model with ``energy(x, σ)``: ``(B, 2) -> (B,)``.
        sigma: its noise level (``None`` when not noise-conditioned).
        radii: ``(R,)`` strictly increasing radii ``≥ 0``, ``R ≥ 3``.
        angles: number ``A ≥ 1`` of equally spaced rays from θ = 0, or ``(A,)`` angles.
        centre: the centre ``c`` of the rays.
        chunk: points per ``energy`` call.
        device: where the points are evaluated (default CPU; the model's device).

    Returns:
        :class:`RadialProfile` (energies ``(R, A)``, profile ``(R,)``, minimizers ``(A,)``).

    Raises:
        TypeError: ``model`` has no energy.
        ValueError: bad ``sigma``, ``radii``, ``angles``, ``centre`` or ``chunk``.
    """
    if not callable(getattr(model, "energy", None)) or not getattr(model, "has_energy", True):
        raise TypeError(f"model must define energy(x, sigma), got {type(model).__name__}")
    check_sigma(model, sigma)
    r = check_tensor(_as_float64(radii, "radii"), "radii", ndim=1)
    if r.numel() < 3 or bool((r < 0).any()) or not bool((r.diff() > 0).all()):
        raise ValueError(f"radii must be >= 3 values >= 0, strictly increasing; got {radii!r}")
    if isinstance(angles, int) and not isinstance(angles, bool):
        check_int(angles, "angles")
        theta = torch.arange(angles, dtype=torch.float64) * (2 * math.pi / angles)
    else:
        theta = check_tensor(_as_float64(angles, "angles"), "angles", ndim=1)
    c = check_tensor(_as_float64(centre, "centre"), "centre", ndim=1)
    if c.shape != (2,):
        raise ValueError(f"centre must be 2 numbers, got {centre!r}")
    check_int(chunk, "chunk")

    pts = c + r[:, None, None] * torch.stack([theta.cos(), theta.sin()], -1)  # (R, A, 2)
    flat = pts.reshape(-1, 2).to(device or "cpu")
    with torch.no_grad():
        en = torch.cat(
            [
                model.energy(flat[i : i + chunk], sigma).detach().to("cpu", torch.float64)
                for i in range(0, flat.shape[0], chunk)
            ]
        )
    e = en.reshape(r.numel(), theta.numel()).numpy()
    rn = r.numpy()
    mins = _parabola_minimum(rn, e)
    return RadialProfile(rn, theta.numpy(), e, e.mean(1), mins, float(mins.mean()))
