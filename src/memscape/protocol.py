"""The one protocol every memscape model follows.

A model is a (possibly noise-conditioned) energy ``E(x, σ)`` with score
``s(x, σ) = −∇ₓE(x, σ)`` and, for noise-conditioned models, denoiser
``D(x, σ) = x + σ² s(x, σ)`` (Karras et al. 2022, EDM, eq. 3 and Tweedie's formula).

Subclasses implement :meth:`EnergyModel.energy` (or only :meth:`EnergyModel.score`
with ``has_energy = False``); the score and Hessian default to autograd and are
overridden by closed forms where those exist. A model with a closed-form Hessian may
also define ``hessian_operator(x, σ)``, returning ``v ↦ ∇²ₓE(x) v`` on flat ``(B, d)``
vectors (see :mod:`memscape.curvature`); the landscape tools then take their
Hessian-vector products from it instead of autograd. ``repr(model)`` is one line built from
:meth:`EnergyModel._repr_fields`, e.g. ``ModernHopfield(K=10, d=16, beta=8.0, dtype=float64)``.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias, runtime_checkable

import torch

from memscape._validation import as_sigma, check_tensor

__all__ = [
    "Denoiser",
    "Energy",
    "EnergyModel",
    "ScoreField",
    "ScoreOrDenoiser",
    "is_model",
    "jacobian_of",
    "score_of",
]


# ------------------------------------------------------------------ structural types
# What analysis and samplers require of a model, as typing.Protocols (PEP 544). Every
# EnergyModel satisfies ScoreField and Energy (and Denoiser when noise-conditioned); user
# objects need only the methods named. ``isinstance(obj, ScoreField)`` checks that the
# members exist (not their signatures).
@runtime_checkable
class Denoiser(Protocol):
    """Has ``denoise(x, σ)``: ``(B, *event_shape) -> (B, *event_shape)``, and ``event_shape``."""

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one state, e.g. ``(d,)`` or ``(1, 8, 8)``."""
        ...

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Denoiser ``D(x, σ) ≈ E[y | x]``, shape of ``x``."""
        ...


@runtime_checkable
class ScoreField(Protocol):
    """Has ``score(x, σ) = −∇ₓE`` (or a non-conservative field): ``(B, *E) -> (B, *E)``."""

    def score(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Score ``s(x, σ)``, shape of ``x``."""
        ...


@runtime_checkable
class Energy(Protocol):
    """Has ``energy(x, σ)``: ``(B, *event_shape) -> (B,)``."""

    def energy(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Energy ``E(x, σ)``: ``(B,)``."""
        ...


ScoreOrDenoiser: TypeAlias = ScoreField | Denoiser
"""What analysis accepts: a score field, or a denoiser (score ``(D − x)/σ²``, :func:`score_of`)."""


class EnergyModel:
    """Base class of every memscape model.

    Attributes:
        has_energy: ``True`` when :meth:`energy` is defined; score-only models set
            ``False`` and their "Hessian" is the negative Jacobian of the score,
            which need not be symmetric.
        noise_conditioned: ``True`` when the model takes a noise level σ (diffusion
            models); then :meth:`denoise` is defined.
        event_shape: the shape of one state, e.g. ``(d,)`` or ``(1, 8, 8)``.
    """

    has_energy: bool = True
    noise_conditioned: bool = False
    event_shape: tuple[int, ...] = ()

    # ------------------------------------------------------------------ protocol
    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Energy ``E(x, σ)``: ``(B, *event_shape) -> (B,)``."""
        raise NotImplementedError(f"{type(self).__name__} defines no energy (score-only model)")

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Score ``−∇ₓE(x, σ)``: ``(B, *event_shape) -> (B, *event_shape)``, by autograd."""
        if not self.has_energy:
            raise NotImplementedError(f"{type(self).__name__} must implement score()")
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xg, sigma).sum(), xg)
        return -g

    def denoise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Denoiser ``D(x, σ) = x + σ² s(x, σ)`` (Tweedie; EDM σ-space), shape of ``x``."""
        if not self.noise_conditioned:
            raise TypeError(f"{type(self).__name__} is not noise-conditioned: no denoise()")
        s = as_sigma(sigma, x)
        return x + s.reshape(-1, *([1] * (x.ndim - 1))) ** 2 * self.score(x, sigma)

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Hessian ``∇²ₓE`` (or ``−∂s/∂x`` for score-only models): ``(B, d, d)``, d = numel of one state.

        Computed by one batched reverse-mode pass per row block
        (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. ``torch.func.vmap``
        over the basis vectors). Subclasses override with closed forms.
        """
        if self.has_energy:
            return jacobian_of(lambda z: self._energy_gradient(z, sigma), x)
        return -jacobian_of(lambda z: self.score(z, sigma), x)

    def _energy_gradient(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """``∇ₓE`` kept differentiable (``create_graph``) so it can be differentiated again."""
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(xg, sigma).sum(), xg, create_graph=True)
        return g

    # ------------------------------------------------------------------ display
    def _repr_fields(self) -> dict[str, Any]:
        """The fields ``repr`` shows, in order; subclasses override (default: event shape)."""
        return {"event_shape": self.event_shape} if self.event_shape else {}

    def __repr__(self) -> str:
        """``ClassName(field=value, ...)`` from :meth:`_repr_fields`: sizes and settings, no tensors."""
        try:
            fields = self._repr_fields()
        except AttributeError:  # not fully constructed (e.g. inside __init__)
            return object.__repr__(self)
        body = ", ".join(f"{k}={format_field(v)}" for k, v in fields.items())
        return f"{type(self).__name__}({body})"

    # ------------------------------------------------------------------ helpers
    def _check_x(self, x: Any, name: str = "x") -> torch.Tensor:
        x = check_tensor(x, name, min_ndim=1)
        if self.event_shape and tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, self.event_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return x

    @property
    def dim(self) -> int:
        """Number of coordinates of one state, ``prod(event_shape)``."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n


class Verbatim(str):
    """A ``repr`` field value written as is (no quotes), e.g. a nested ``MLP(dim=2, ...)``."""

    def __repr__(self) -> str:
        return str(self)


def format_field(value: Any) -> str:
    """How a ``repr`` field is written: dtypes bare (``float64``), strings quoted, tensors by shape."""
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    return repr(value)


def jacobian_of(f: Any, x: torch.Tensor) -> torch.Tensor:
    """Batched Jacobian of a map ``f: (B, *E) -> (B, *E)`` acting per sample: ``(B, d, d)``.

    Row ``i`` is ``∂f_i/∂x`` for every sample at once, obtained by vmapping the
    vector-Jacobian product over the ``d`` basis vectors.
    """
    b = x.shape[0]
    d = x[0].numel()
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = f(xg).reshape(b, d)
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        basis = eye[:, None, :].expand(d, b, d)
        (rows,) = torch.autograd.grad(y, xg, grad_outputs=basis, is_grads_batched=True)
    return rows.reshape(d, b, d).transpose(0, 1).contiguous()


def score_of(model: Any, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
    """Score of any object following the protocol; falls back to ``(D(x,σ) − x)/σ²``.

    Lets analysis and samplers accept user objects that only define ``denoise``.
    """
    if hasattr(model, "score"):
        return model.score(x, sigma)
    if hasattr(model, "denoise"):
        s = as_sigma(sigma, x).reshape(-1, *([1] * (x.ndim - 1)))
        return (model.denoise(x, sigma) - x) / s**2
    raise TypeError(f"model must define score() or denoise(), got {type(model).__name__}")


def is_model(obj: Any) -> bool:
    """``True`` if ``obj`` offers at least one of ``energy``, ``score`` or ``denoise``."""
    return any(callable(getattr(obj, m, None)) for m in ("energy", "score", "denoise"))
