"""Is a learned score field a gradient? Asymmetry, line integrals, path dependence.

A score network ``s_θ(x, σ)`` need not be the gradient of any energy. It is one
(locally) iff its Jacobian ``J = ∂s/∂x`` is symmetric; the relative asymmetry
``‖J − Jᵀ‖_F / ‖J‖_F`` measures the violation. The energy difference implied by
the field along a path γ from ``a`` to ``b`` is the line integral

    ΔE_γ = E(b) − E(a) = −∫_γ s(x, σ) · dx,

computed with Gauss–Legendre quadrature on each straight segment of a polyline;
for a gradient field it is path-independent. ``relative_energy`` is the
straight-path integral used by Raya & Ambrogioni 2023 ("Spontaneous symmetry
breaking in generative diffusion models") to read an energy landscape off a
score-only model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from memscape._validation import check_generator, check_int, check_positive, check_tensor
from memscape.landscape._fields import check_model, check_sigma, event_shape, score_with_graph
from memscape.landscape.morse import asymmetry
from memscape.protocol import ScoreOrDenoiser, jacobian_of, score_of

__all__ = [
    "is_conservative",
    "line_integral",
    "path_dependence",
    "relative_energy",
    "score_asymmetry",
]


#: Above this many coordinates the asymmetry is estimated with probes (the dense
#: Jacobian takes d backward passes and B·d² memory).
DENSE_JACOBIAN_MAX = 256
#: Random probes of the estimate (its relative standard error is about 1/√probes).
DEFAULT_PROBES = 64


def score_asymmetry(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any = None,
    *,
    probes: int | None = None,
    generator: torch.Generator | int | None = None,
) -> torch.Tensor:
    """Relative asymmetry ``‖J − Jᵀ‖_F / ‖J‖_F`` of the score Jacobian at each point: ``(B,)``.

    ``J`` is always the autograd Jacobian of the score (never a closed-form Hessian),
    so the check tests the field itself; 0 for a gradient field (up to round-off).

    Exact (:func:`memscape.landscape.morse.asymmetry` of the dense ``J``) when
    ``probes`` is ``None`` and ``d ≤ DENSE_JACOBIAN_MAX``. Otherwise estimated without
    forming ``J``: for Gaussian probes ``v ~ N(0, I)``, ``E‖(J − Jᵀ)v‖² = ‖J − Jᵀ‖_F²``
    and ``E‖Jv‖² = ‖J‖_F²`` (Hutchinson 1989), with ``Jᵀv`` one vector-Jacobian product
    and ``Jv`` the derivative of ``w ↦ (Jᵀw)·v`` (a second one); the ratio of the two
    means over ``probes`` draws (``DEFAULT_PROBES`` by default) has a relative standard
    error of about ``1/√probes``, and is exactly 0 for a gradient field.

    Args:
        model: any model following the protocol (energy, score or denoiser).
        x: ``(B, *event_shape)`` points.
        sigma: noise level (float or ``(B,)``; ``None`` for models without one).
        probes: random probes; ``None``: exact up to ``DENSE_JACOBIAN_MAX`` coordinates.
        generator: ``torch.Generator`` or seed of the probes.
    """
    check_model(model)
    x = check_tensor(x, "x", min_ndim=1)
    check_sigma(model, sigma)
    if probes is not None:
        check_int(probes, "probes")
    generator = check_generator(generator)
    d = x[0].numel() if x.ndim > 1 else 1
    if probes is None and d <= DENSE_JACOBIAN_MAX:
        j = jacobian_of(lambda z: score_with_graph(model, z, sigma), x)
        return asymmetry(j).detach()
    skew = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    full = torch.zeros_like(skew)
    for _ in range(probes or DEFAULT_PROBES):
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        z = x.detach().requires_grad_(True)
        w = torch.zeros_like(x, requires_grad=True)
        s = score_with_graph(model, z, sigma)
        (jt_w,) = torch.autograd.grad(s, z, w, create_graph=True)  # Jᵀw, linear in w
        (jt_v,) = torch.autograd.grad(s, z, v, retain_graph=True)  # Jᵀv
        (j_v,) = torch.autograd.grad(jt_w, w, v)  # ∂/∂w (Jᵀw)·v = Jv
        skew += (j_v - jt_v).detach().flatten(1).pow(2).sum(1)
        full += j_v.detach().flatten(1).pow(2).sum(1)
    return (skew / full.clamp_min(torch.finfo(x.dtype).tiny)).sqrt()


def is_conservative(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any = None, *, rtol: float = 1e-6
) -> bool:
    """``True`` when :func:`score_asymmetry` ≤ ``rtol`` at every point of ``x``."""
    check_positive(rtol, "rtol")
    return bool((score_asymmetry(model, x, sigma) <= rtol).all())


def _as_batch(v: Any, name: str, shape: tuple[int, ...] | None) -> torch.Tensor:
    v = check_tensor(v, name)
    if shape is not None and tuple(v.shape) == shape:
        v = v.unsqueeze(0)
    return v


def line_integral(
    model: ScoreOrDenoiser,
    a: torch.Tensor,
    b: torch.Tensor,
    sigma: Any = None,
    *,
    path: torch.Tensor | None = None,
    n_nodes: int = 32,
) -> torch.Tensor:
    """Energy difference ``E(b) − E(a) = −∫ s · dx`` along a polyline: ``(B,)``.

    Args:
        model: any object following the protocol (``score`` or ``denoise``).
        a: end points ``(B, *event_shape)`` (or one point ``event_shape``).
        b: end points ``(B, *event_shape)`` (or one point ``event_shape``).
        sigma: noise level for noise-conditioned models.
        path: optional intermediate waypoints ``(M, *event_shape)`` shared by the
            batch, or ``(B, M, *event_shape)``; ``None`` is the straight segment.
        n_nodes: Gauss–Legendre nodes per segment (exact for polynomial fields of
            degree ``2·n_nodes − 1`` along the segment).
    """
    check_model(model)
    check_sigma(model, sigma)
    check_int(n_nodes, "n_nodes")
    shape0 = tuple(getattr(model, "event_shape", ()) or ()) or None
    a = _as_batch(a, "a", shape0)
    b = _as_batch(b, "b", shape0)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    shape = event_shape(model, a)
    n = a.shape[0]
    fa, fb = a.reshape(n, 1, -1), b.reshape(n, 1, -1)
    d = fa.shape[2]
    if path is None:
        way = fa[:, :0]
    else:
        path = check_tensor(path, "path", min_ndim=1).to(fa)
        way = path.reshape(1, -1, d).expand(n, -1, d) if path.ndim == len(shape) + 1 else path
        way = way.reshape(n, -1, d)
    verts = torch.cat([fa, way, fb], dim=1)  # (B, S+1, d)
    seg = verts[:, 1:] - verts[:, :-1]  # (B, S, d)
    t_np, w_np = np.polynomial.legendre.leggauss(n_nodes)
    t = torch.as_tensor((t_np + 1) / 2, dtype=fa.dtype, device=fa.device)
    w = torch.as_tensor(w_np / 2, dtype=fa.dtype, device=fa.device)
    pts = verts[:, :-1, None, :] + t[None, None, :, None] * seg[:, :, None, :]  # (B,S,Q,d)
    sig = sigma
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1:
        sig = sigma.repeat_interleave(pts.shape[1] * pts.shape[2])
    s = score_of(model, pts.reshape(-1, *shape), sig).reshape(pts.shape)
    return -((s * seg[:, :, None, :]).sum(-1) * w).sum((1, 2)).detach()


def relative_energy(
    model: ScoreOrDenoiser, a: Tensor, b: Tensor, sigma: Any = None, *, n_nodes: int = 32
) -> Tensor:
    """``E(b) − E(a)`` of a (possibly score-only) model by the straight-path integral: ``(B,)``.

    Raya & Ambrogioni 2023 recover the potential of a diffusion model's learned score
    as ``−∫ s · dx``; exact when the field is conservative. At small σ the exact
    score is stiff (Lipschitz ~ 1/σ²): raise ``n_nodes`` (or split the path).
    """
    return line_integral(model, a, b, sigma, n_nodes=n_nodes)


def path_dependence(
    model: ScoreOrDenoiser,
    a: torch.Tensor,
    b: torch.Tensor,
    sigma: Any = None,
    *,
    via: torch.Tensor | None = None,
    n_nodes: int = 32,
) -> torch.Tensor:
    """Straight-path minus detour line integral from ``a`` to ``b``: ``(B,)`` (0 for gradients).

    Args:
        model: any object following the protocol (``score`` or ``denoise``).
        a: start points ``(B, *event_shape)`` (or one point ``event_shape``).
        b: end points, same shape as ``a``.
        sigma: noise level for noise-conditioned models.
        via: detour waypoint(s) as in :func:`line_integral`'s ``path``; default one
            waypoint at the midpoint shifted by ``‖b − a‖/2`` along the coordinate
            axis least aligned with ``b − a`` (made orthogonal to it). Needs d ≥ 2.
        n_nodes: Gauss–Legendre nodes per segment (as in :func:`line_integral`).
    """
    check_model(model)
    shape0 = tuple(getattr(model, "event_shape", ()) or ()) or None
    a = _as_batch(a, "a", shape0)
    b = _as_batch(b, "b", shape0)
    if via is None:
        n = a.shape[0]
        fa, fb = a.reshape(n, -1), b.reshape(n, -1)
        if fa.shape[1] < 2:
            raise ValueError("path_dependence needs d >= 2 for the default detour; pass via=")
        u = fb - fa
        axis = u.abs().argmin(dim=1)
        e = torch.nn.functional.one_hot(axis, fa.shape[1]).to(fa)
        un = u / u.norm(dim=1, keepdim=True).clamp_min(1e-300)
        e = e - (e * un).sum(1, keepdim=True) * un
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-300)
        via = ((fa + fb) / 2 + 0.5 * u.norm(dim=1, keepdim=True) * e).reshape(n, 1, *a.shape[1:])
    straight = line_integral(model, a, b, sigma, n_nodes=n_nodes)
    return straight - line_integral(model, a, b, sigma, path=via, n_nodes=n_nodes)
