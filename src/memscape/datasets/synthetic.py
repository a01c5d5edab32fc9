"""Synthetic data sets: unit circle, 2-D Gaussian mixtures, low-dimensional manifolds,
small 2-D point sets for landscape studies, and the memories of associative-memory
experiments (``binary_patterns``, ``equiseparated``, ``gaussian``).

Each loader draws a fixed pool of ``size`` points from ``data_seed``; :func:`memscape.datasets.load`
then takes nested seeded subsets of it.

Two kinds of "circle": ``circle`` is ``size`` points *uniformly at random* on the unit
circle (the Pham et al. 2025 training distribution), ``polygon`` the ``size`` vertices of
a *regular* polygon on it (equispaced stored patterns, exact symmetries). Likewise
``gmm``/``mixture`` samples a many-point Gaussian mixture, while ``bimodal`` is a handful
of points split evenly between two blobs (a small landscape to analyse). The point sets
``polygon``, ``lattice``, ``bimodal``, ``four_centroids`` and ``three_patterns`` are float64
(analysis precision), and so are ``binary_patterns``, ``equiseparated`` and ``gaussian``;
the deterministic ones accept ``data_seed`` and ignore it, so every set loads with the
same call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.datasets._core import Dataset, register

__all__ = [
    "FOUR_CENTROIDS",
    "bimodal",
    "binary_patterns",
    "circle",
    "equiseparated",
    "four_centroids",
    "gaussian",
    "gmm",
    "lattice",
    "manifold",
    "polygon",
    "three_patterns",
]


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


# ----------------------------------------------------------------- small 2-D point sets
#: Four generic (asymmetric) points: no two pairwise distances are equal, so a generic
#: one-parameter family of their landscapes bifurcates at folds only (Ambrogioni 2023).
FOUR_CENTROIDS = ((-1.0, -0.55), (1.05, -0.75), (0.8, 0.9), (-0.65, 1.05))


@register("polygon")
def polygon(size: int = 3, data_seed: int = 0, radius: float = 1.0) -> Dataset:
    """The vertices of a regular ``size``-gon on the circle of ``radius``: ``(size, 2)`` float64.

    Vertex ``j`` is at angle ``π/2 + 2πj/size`` (``size = 3``: the equilateral triangle with
    a vertex on top). Equispaced, unlike ``circle`` (uniform random angles). ``data_seed``
    is ignored (the set is deterministic).
    """
    check_int(size, "size")
    check_int(data_seed, "data_seed", minimum=0)
    check_positive(radius, "radius")
    ang = 2 * math.pi * torch.arange(size, dtype=torch.float64) / size + math.pi / 2
    x = radius * torch.stack([ang.cos(), ang.sin()], 1)
    return Dataset(x, "polygon", (-radius, radius), meta={"size": size, "radius": radius})


@register("lattice")
def lattice(size: int = 4, data_seed: int = 0, spacing: float = 1.0) -> Dataset:
    """An ``m × m`` square grid, ``m = √size``, of ``spacing``, centred on 0: ``(size, 2)`` float64.

    Row-major from the lower left (``x0`` fastest). ``size`` must be a perfect square;
    ``data_seed`` is ignored (the set is deterministic).
    """
    check_int(size, "size")
    check_int(data_seed, "data_seed", minimum=0)
    check_positive(spacing, "spacing")
    m = math.isqrt(size)
    if m * m != size:
        raise ValueError(f"size must be a perfect square for lattice, got {size}")
    c = spacing * (torch.arange(m, dtype=torch.float64) - (m - 1) / 2)
    gy, gx = torch.meshgrid(c, c, indexing="ij")
    x = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    return Dataset(x, "lattice", None, meta={"size": size, "spacing": spacing})


@register("bimodal")
def bimodal(size: int = 4, data_seed: int = 0, std: float = 0.25) -> Dataset:
    """``size`` points split evenly between ``N((1, 0), std² I)`` and ``N((−1, 0), std² I)``.

    Point ``j`` belongs to the blob at ``(+1, 0)`` for even ``j`` and at ``(−1, 0)`` for odd
    ``j`` (``labels`` holds ``j mod 2``): a balanced two-cluster landscape, unlike ``gmm``
    whose components are drawn at random. ``(size, 2)`` float64.
    """
    check_int(size, "size")
    check_positive(std, "std")
    centre = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    side = torch.arange(size) % 2
    noise = torch.randn(size, 2, generator=_gen(data_seed), dtype=torch.float64)
    meta = {"size": size, "data_seed": data_seed, "std": std}
    return Dataset(centre[side] + std * noise, "bimodal", None, labels=side, meta=meta)


@register("four_centroids")
def four_centroids(size: int = 4, data_seed: int = 0) -> Dataset:
    """:data:`FOUR_CENTROIDS`, four generic points of the plane: ``(4, 2)`` float64.

    ``size`` must be 4 and ``data_seed`` is ignored (the set is fixed).
    """
    if size != len(FOUR_CENTROIDS):
        raise ValueError(f"size must be {len(FOUR_CENTROIDS)} for four_centroids, got {size}")
    check_int(data_seed, "data_seed", minimum=0)
    x = torch.tensor(FOUR_CENTROIDS, dtype=torch.float64)
    return Dataset(x, "four_centroids", None, meta={"size": size})


@register("three_patterns")
def three_patterns(size: int = 3, data_seed: int = 0, height: float = 1.5) -> Dataset:
    """Patterns ``(−1, 0), (1, 0.15), (0, height)``: ``(3, 2)`` float64.

    A one-parameter family of 3-pattern memories: as ``height`` decreases the third
    pattern moves toward the midpoint of the other two (generic, thanks to the 0.15
    offset). ``size`` must be 3 and ``data_seed`` is ignored (the set is fixed).
    """
    if size != 3:
        raise ValueError(f"size must be 3 for three_patterns, got {size}")
    check_int(data_seed, "data_seed", minimum=0)
    if not math.isfinite(height):
        raise ValueError(f"height must be finite, got {height}")
    x = torch.tensor([[-1.0, 0.0], [1.0, 0.15], [0.0, float(height)]], dtype=torch.float64)
    return Dataset(x, "three_patterns", None, meta={"size": size, "height": float(height)})


@register("binary_patterns")
def binary_patterns(size: int = 100, data_seed: int = 0, dim: int = 100) -> Dataset:
    """Independent uniform ±1 patterns ``(size, dim)``, float64: the random memories of
    Hopfield 1982, Amit, Gutfreund & Sompolinsky 1985 and Krotov & Hopfield 2016.
    """
    check_int(size, "size")
    check_int(dim, "dim")
    bits = torch.randint(0, 2, (size, dim), generator=_gen(data_seed), dtype=torch.int64)
    x = (2 * bits - 1).double()
    meta = {"size": size, "dim": dim, "data_seed": data_seed}
    return Dataset(x, "binary_patterns", (-1.0, 1.0), meta=meta)


@register("equiseparated")
def equiseparated(size: int = 16, data_seed: int = 0, dim: int = 32, delta: float = 0.5) -> Dataset:
    """``(size, dim)`` unit-norm memories with ``x_μᵀx_ν = 1 − Δ`` for μ ≠ ν, float64.

    ``x_μ = √Δ e_μ + √(1 − Δ) e_K`` (e the standard basis, K = ``size``): the
    separation ``Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j`` of Ramsauer et al. 2020, Def. 1,
    equals Δ for every i, and M = max ‖x_μ‖ = 1.

    Args:
        size: number of memories K ≥ 2.
        data_seed: ignored (the set is deterministic).
        dim: dimension > K.
        delta: separation Δ in (0, 1].
    """
    check_int(size, "size", minimum=2)
    check_int(data_seed, "data_seed", minimum=0)
    check_int(dim, "dim", minimum=size + 1)
    check_positive(delta, "delta")
    if delta > 1:
        raise ValueError(f"delta must be in (0, 1], got {delta!r}")
    x = torch.zeros(size, dim, dtype=torch.float64)
    x[:, :size] = math.sqrt(delta) * torch.eye(size, dtype=torch.float64)
    x[:, size] = math.sqrt(1 - delta)
    meta = {"size": size, "dim": dim, "delta": delta}
    return Dataset(x, "equiseparated", None, meta=meta)


@register("gaussian")
def gaussian(
    size: int = 24, data_seed: int = 0, std: Sequence[float] = (1.0, 0.6), centred: bool = True
) -> Dataset:
    """``(size, len(std))`` points with independent coordinates ``N(0, std_i²)``, float64.

    With ``centred`` the sample mean is subtracted, so the points' mean is exactly 0
    and ξ = 0 is a fixed point of the modern Hopfield network on them, losing
    stability at ``β_c = 1/λ_max(Cov)`` (Ramsauer et al. 2020;
    :func:`memscape.theory.critical_beta`). The default is anisotropic 2-D data.
    """
    check_int(size, "size", minimum=2)
    s = torch.as_tensor(std, dtype=torch.float64)
    if s.ndim != 1 or s.numel() == 0 or bool((s <= 0).any()):
        raise ValueError(f"std must be a non-empty sequence of positive numbers, got {std!r}")
    x = torch.randn(size, s.numel(), generator=_gen(data_seed), dtype=torch.float64) * s
    if centred:
        x = x - x.mean(0)
    meta = {"size": size, "data_seed": data_seed, "std": s.tolist(), "centred": centred}
    return Dataset(x, "gaussian", None, meta=meta)
