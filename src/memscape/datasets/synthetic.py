"""Synthetic data sets: unit circle, 2-D Gaussian mixtures, low-dimensional manifolds.

Each loader draws a fixed pool of ``size`` points from ``data_seed``; :func:`memscape.datasets.load`
then takes nested seeded subsets of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.datasets._core import Dataset, register

__all__ = ["circle", "gmm", "manifold"]


def _gen(data_seed: int) -> torch.Generator:
    check_int(data_seed, "data_seed", minimum=0)
    return torch.Generator().manual_seed(data_seed)


@register("circle")
def circle(size: int = 10_000, data_seed: int = 0, radius: float = 1.0) -> Dataset:
    """Points ``r(cos θ, sin θ)``, θ ~ U[0, 2π) (Pham et al. 2025 toy): ``(size, 2)``."""
    check_int(size, "size")
    check_positive(radius, "radius")
    theta = 2 * math.pi * torch.rand(size, generator=_gen(data_seed), dtype=torch.float64)
    x = radius * torch.stack([theta.cos(), theta.sin()], 1)
    meta = {"size": size, "data_seed": data_seed, "radius": radius}
    return Dataset(x.float(), "circle", (-radius, radius), meta=meta)


@register("gmm")
@register("mixture")
def gmm(
    size: int = 10_000,
    data_seed: int = 0,
    centres: Sequence[Sequence[float]] | None = None,
    weights: Sequence[float] | None = None,
    std: float = 0.1,
) -> Dataset:
    """Isotropic Gaussian mixture ``Σ_k w_k N(c_k, std² I)``; default 8 centres on the unit circle.

    Labels hold the component of each point; ``meta`` holds centres, weights and std.
    """
    check_int(size, "size")
    check_positive(std, "std")
    if centres is None:
        a = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
        c = torch.stack([a.cos(), a.sin()], 1)
    else:
        c = torch.as_tensor(centres, dtype=torch.float64)
        if c.ndim != 2 or c.shape[0] == 0:
            raise ValueError(f"centres must be a (k, d) array, got shape {tuple(c.shape)}")
    w = torch.full((c.shape[0],), 1.0 / c.shape[0], dtype=torch.float64)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (c.shape[0],) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"weights must be {c.shape[0]} non-negative numbers, got {weights}")
        w = w / w.sum()
    g = _gen(data_seed)
    comp = torch.multinomial(w, size, replacement=True, generator=g)
    x = c[comp] + std * torch.randn(size, c.shape[1], generator=g, dtype=torch.float64)
    meta = {
        "size": size,
        "data_seed": data_seed,
        "centres": c.tolist(),
        "weights": w.tolist(),
        "std": std,
    }
    return Dataset(x.float(), "gmm", None, labels=comp, meta=meta)


@register("manifold")
def manifold(
    size: int = 10_000,
    data_seed: int = 0,
    latent_dim: int = 2,
    dim: int = 16,
    kind: str = "linear",
    noise: float = 0.0,
) -> Dataset:
    """Latents ``z ~ U[−1, 1]^m`` embedded in ``R^D``: ``x = Az`` (``A`` random orthonormal
    columns, ``kind="linear"``) or ``x = A sin(πWz)/√m`` with a random ``W`` (``"nonlinear"``),
    plus optional isotropic ``noise``.
    """
    check_int(size, "size")
    check_int(latent_dim, "latent_dim")
    check_int(dim, "dim")
    check_choice(kind, ("linear", "nonlinear"), "kind")
    check_positive(noise, "noise", allow_zero=True)
    if latent_dim > dim:
        raise ValueError(f"latent_dim ({latent_dim}) must not exceed dim ({dim})")
    g = _gen(data_seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    z = 2 * torch.rand(size, latent_dim, generator=g, dtype=torch.float64) - 1
    if kind == "linear":
        x = z @ basis[:, :latent_dim].T
    else:
        w = torch.randn(latent_dim, dim, generator=g, dtype=torch.float64)
        x = torch.sin(math.pi * z @ w) @ basis.T / math.sqrt(latent_dim)
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
    meta = {
        "size": size,
        "data_seed": data_seed,
        "latent_dim": latent_dim,
        "kind": kind,
        "noise": noise,
    }
    return Dataset(x.float(), f"manifold-{kind}", None, meta=meta)
