"""Shared plumbing of the landscape tools: validation and flat views of score / Hessian.

Every landscape routine works on flattened states ``(B, d)`` and reshapes to the
model's ``event_shape`` only when it calls the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeGuard

import torch

from memscape._validation import check_positive
from memscape.protocol import (
    Energy,
    EnergyModel,
    ScoreOrDenoiser,
    is_model,
    jacobian_of,
    score_of,
)


def check_model(model: object, name: str = "model") -> None:
    """Raise ``TypeError`` unless ``model`` offers ``energy``, ``score`` or ``denoise``."""
    if not is_model(model):
        raise TypeError(
            f"{name} must follow the memscape protocol (define energy(), score() or "
            f"denoise()), got {type(model).__name__}"
        )


def is_noise_conditioned(model: object) -> bool:
    """``model.noise_conditioned`` or, for user objects, 'has a denoiser but no score'."""
    flag = getattr(model, "noise_conditioned", None)
    if flag is not None:
        return bool(flag)
    return callable(getattr(model, "denoise", None)) and not callable(getattr(model, "score", None))


def has_energy(model: object) -> TypeGuard[Energy]:
    """``True`` when the model defines a usable ``energy`` (``has_energy`` flag respected)."""
    return bool(getattr(model, "has_energy", True)) and callable(getattr(model, "energy", None))


def check_sigma(model: object, sigma: Any) -> None:
    """σ is required (> 0) for noise-conditioned models and optional (> 0 if given) otherwise."""
    if sigma is None:
        if is_noise_conditioned(model):
            raise ValueError(
                f"sigma is required for the noise-conditioned model {type(model).__name__}"
            )
        return
    check_positive(sigma, "sigma")


def event_shape(model: object, x: torch.Tensor | None = None) -> tuple[int, ...]:
    """The model's ``event_shape``, or ``x.shape[1:]`` for user objects without one."""
    shape = tuple(getattr(model, "event_shape", ()) or ())
    if not shape:
        if x is None:
            raise ValueError(
                f"{type(model).__name__} has no event_shape; pass states of shape (B, ...)"
            )
        shape = tuple(x.shape[1:])
    return shape


def slice_sigma(sigma: Any, idx: torch.Tensor) -> Any:
    """Restrict a per-sample σ tensor ``(B,)`` to the rows ``idx``; floats pass through."""
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1:
        return sigma[idx.to(sigma.device)]
    return sigma


def flat_score(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> torch.Tensor:
    """Score ``s(x, σ) = −∇E`` of flat states ``(B, d) -> (B, d)``."""
    b = x.shape[0]
    return score_of(model, x.reshape(b, *shape), sigma).reshape(b, -1).detach()


def flat_hessian(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> torch.Tensor:
    """Hessian ``∇²E`` (or ``−∂s/∂x`` for score-only models) of flat states: ``(B, d, d)``.

    Uses a closed-form ``hessian`` when the model overrides the base class's;
    otherwise the batched autograd Jacobian (:func:`memscape.jacobian_of`) of
    ``∇E`` (energy models, double backward) or of the score (score-only models).
    """
    b, d = x.shape
    xs = x.reshape(b, *shape)
    if _has_hessian(model):
        h = model.hessian(xs, sigma)
    elif has_energy(model):
        h = jacobian_of(lambda z: _grad_with_graph(model, z, sigma), xs)
    else:
        h = -jacobian_of(lambda z: score_of(model, z, sigma), xs)
    return h.reshape(b, d, d).detach()


def _overrides(model: object, name: str) -> bool:
    """``model.<name>`` is callable and not the autograd default of :class:`EnergyModel`."""
    if not callable(getattr(model, name, None)):
        return False
    if isinstance(model, EnergyModel):
        return getattr(type(model), name, None) is not getattr(EnergyModel, name, None)
    return True


class _Hessian(Protocol):
    def hessian(self, x: torch.Tensor, sigma: Any) -> torch.Tensor: ...


def _has_hessian(model: object) -> TypeGuard[_Hessian]:
    """``model`` has a closed-form ``hessian`` (not the autograd default of the base class)."""
    return _overrides(model, "hessian")


def _grad_with_graph(model: Energy, z: torch.Tensor, sigma: Any) -> torch.Tensor:
    """``∇E(z)`` keeping the graph, so it can be differentiated again."""
    (g,) = torch.autograd.grad(model.energy(z, sigma).sum(), z, create_graph=True)
    return g


def score_with_graph(model: ScoreOrDenoiser, z: torch.Tensor, sigma: Any) -> torch.Tensor:
    """Score at ``z`` (requiring grad) that stays differentiable in ``z``.

    The base :meth:`EnergyModel.score` detaches its input, so models relying on it
    are differentiated through their energy instead.
    """
    if not _overrides(model, "score") and has_energy(model):
        return -_grad_with_graph(model, z, sigma)
    return score_of(model, z, sigma)


def batch_chunks(b: int, d: int, max_elements: int = 1 << 24) -> list[slice]:
    """Split ``b`` rows so that each chunk's ``(n, d, d)`` Hessian has ≤ ``max_elements``."""
    return row_chunks(b, d * d, max_elements)


def hvp_of(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Batched ``v ↦ ½(H + Hᵀ) v`` at flat states ``x`` ``(B, d)``; ``v`` ``(B, d) → (B, d)``.

    The one Hessian-vector product of the landscape code. A model with a closed-form
    ``hessian_operator(x, σ)`` (the exact model, Gaussian mixtures, modern Hopfield:
    :mod:`memscape.curvature`) supplies it, with no autograd graph. Otherwise the
    score's graph is built once here and each product is one backward pass through it
    (``retain_graph``): for an energy model ``H v = −(∂s/∂x)ᵀ v`` (``∂s/∂x = −∇²E`` is
    symmetric; a closed-form score is differentiated as is, else ``−∇E`` kept
    differentiable); for a score-only model ``−(Jᵀv + Jv)/2`` with ``Jv`` by the
    double-backward trick on the same graph. The rows are independent (each state's
    score depends on that state only), so one backward of ``Σ_b ⟨s(x_b), v_b⟩`` gives
    every row's product.
    """
    b = x.shape[0]
    if _overrides(model, "hessian_operator"):
        op = model.hessian_operator(x.detach().reshape(b, *shape), sigma)  # type: ignore[union-attr]
        return lambda v: op(v).detach().to(x.dtype)
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        s = score_with_graph(model, xg.reshape(b, *shape), sigma).reshape(b, -1)
        if has_energy(model):

            def hvp(v: torch.Tensor) -> torch.Tensor:
                with torch.enable_grad():
                    (jt_v,) = torch.autograd.grad(s, xg, grad_outputs=v, retain_graph=True)
                return -jt_v.detach()

            return hvp
        u = torch.zeros_like(s, requires_grad=True)
        (jt_u,) = torch.autograd.grad(s, xg, grad_outputs=u, create_graph=True)

    def hvp_sym(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            (jt_v,) = torch.autograd.grad(s, xg, grad_outputs=v, retain_graph=True)
            (j_v,) = torch.autograd.grad(jt_u, u, grad_outputs=v, retain_graph=True)
        return (-(jt_v + j_v) / 2).detach()

    return hvp_sym


def row_chunks(b: int, row_elements: int, max_elements: int = 1 << 24) -> list[slice]:
    """Split ``b`` rows so that each chunk holds ≤ ``max_elements`` (``row_elements`` per row)."""
    n = max(1, max_elements // max(1, row_elements))
    return [slice(i, min(i + n, b)) for i in range(0, b, n)]
