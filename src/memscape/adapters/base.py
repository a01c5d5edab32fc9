"""Any denoiser or score function as a memscape model (the k-diffusion / EDM convention).

memscape's diffusion models live in VE σ-space (Karras et al. 2022, "Elucidating the
design space…", EDM, eq. 1–3): a state is ``x = y + σ n`` with ``y`` data and
``n ~ N(0, I)``; the denoiser is ``D(x, σ) ≈ E[y | x]`` and the score

    s(x, σ) = (D(x, σ) − x) / σ²                            (Tweedie's formula; EDM eq. 3)

k-diffusion's models and wrappers and EDM's preconditioned networks
(``EDMPrecond(x, sigma)``) follow this convention, so one call makes them memscape
models that every sampler and analysis takes::

    model = from_denoiser(net, event_shape=(3, 32, 32), sigma_data=0.5)
    model.score(x, 0.5)            # (D − x)/σ², shape of x
    model.hessian(x, 0.5)          # −∂s/∂x by autograd (score-only model)

Conditioning (class labels, text embeddings …) passes through ``denoise(x, sigma, **kw)``
to the network, or is bound once with :meth:`AdaptedModel.with_conditioning`. A tensor
with a leading dimension of 1 (or none) is broadcast over the batch.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import torch
from torch import nn

from memscape._validation import as_sigma, check_positive
from memscape.protocol import EnergyModel, jacobian_of

__all__ = ["AdaptedModel", "DenoiserModel", "ScoreFunctionModel", "from_denoiser", "from_score"]

_Model = TypeVar("_Model", bound="AdaptedModel")

# a tolerance on the valid σ range: a grid computed in float32 still lies inside it
_RANGE_RTOL = 1e-6


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def _check_event_shape(event_shape: Any) -> tuple[int, ...]:
    if isinstance(event_shape, numbers.Integral) and not isinstance(event_shape, bool):
        event_shape = (event_shape,)
    try:
        shape = tuple(event_shape)
    except TypeError:
        raise TypeError(
            f"event_shape must be a tuple of positive integers such as (2,) or (1, 28, 28), "
            f"got {type(event_shape).__name__}"
        ) from None
    if not shape or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and int(s) > 0 for s in shape
    ):
        raise ValueError(
            f"event_shape must be a non-empty tuple of positive integers, got {event_shape!r}"
        )
    return tuple(int(s) for s in shape)


def _batched(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim > 0


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


class AdaptedModel(EnergyModel):
    """Base class of the adapters: a noise-conditioned, score-only memscape model.

    Subclasses implement ``_denoise(x, sigma, conditioning)`` (``sigma`` a checked ``(B,)``
    tensor, ``conditioning`` a dict already broadcast over the batch) or ``_score``.

    Attributes:
        event_shape: the shape of one state.
        sigma_min: the smallest σ the model is valid at (``None``: no bound).
        sigma_max: the largest σ (``None``: no bound). A σ outside ``[sigma_min, sigma_max]``
            raises a ``ValueError`` before the network runs.
        sigma_data: the data standard deviation σ_d when known (metadata; ``None`` otherwise).
        name: what the model is called in its ``repr`` and in error messages.
        conditioning: keyword arguments bound by :meth:`with_conditioning`.
    """

    has_energy = False
    noise_conditioned = True

    def __init__(
        self,
        event_shape: Any,
        *,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        sigma_data: float | None = None,
        name: str | None = None,
    ) -> None:
        self.event_shape = _check_event_shape(event_shape)
        for value, arg in ((sigma_min, "sigma_min"), (sigma_max, "sigma_max")):
            if value is not None:
                check_positive(value, arg)
        if sigma_min is not None and sigma_max is not None and sigma_max <= sigma_min:
            raise ValueError(f"sigma_max ({sigma_max}) must exceed sigma_min ({sigma_min})")
        if sigma_data is not None:
            check_positive(sigma_data, "sigma_data")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.sigma_min = None if sigma_min is None else float(sigma_min)
        self.sigma_max = None if sigma_max is None else float(sigma_max)
        self.sigma_data = None if sigma_data is None else float(sigma_data)
        self.name = name or type(self).__name__
        self.conditioning: dict[str, Any] = {}

    # ------------------------------------------------------------------ protocol
    def denoise(self, x: torch.Tensor, sigma: Any, **conditioning: Any) -> torch.Tensor:
        """Denoiser ``D(x, σ)``: ``(B, *event_shape) -> (B, *event_shape)``.

        Args:
            x: states ``(B, *event_shape)`` in VE σ-space.
            sigma: a float or a ``(B,)`` tensor inside ``[sigma_min, sigma_max]``.
            **conditioning: passed to the network (merged over :attr:`conditioning`).
        """
        x, s, kw = self._inputs(x, sigma, conditioning)
        return self._run(lambda: self._denoise(x, s, kw), x)

    def score(self, x: torch.Tensor, sigma: Any = None, **conditioning: Any) -> torch.Tensor:
        """Score ``s(x, σ) = (D(x, σ) − x)/σ²`` (EDM eq. 3): shape of ``x``."""
        x, s, kw = self._inputs(x, sigma, conditioning)
        return self._run(lambda: self._score(x, s, kw), x)

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
        return x + _bcast(sigma, x) ** 2 * self._score(x, sigma, kw)

    def _score(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
        return (self._denoise(x, sigma, kw) - x) / _bcast(sigma, x) ** 2

    def _run(self, fn: Callable[[], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Run ``fn``; keep an autograd graph only when ``x`` requires grad (Hessians, JVPs)."""
        return fn() if x.requires_grad else fn().detach()

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``−∂s/∂x`` by autograd, one state at a time: ``(B, d, d)``, ``d = prod(event_shape)``.

        The score-only Hessian of :meth:`memscape.EnergyModel.hessian`, but each state
        gets its own batched reverse-mode pass over the ``d`` basis vectors: that vmap
        does not go through every network with a batch of several states (diffusers'
        attention blocks fail in it). Bound conditioning is sliced with the state.
        """
        x, s, kw = self._inputs(x, sigma, {})
        d = x[0].numel()
        rows = [x.new_zeros(0, d, d)]
        for i in range(x.shape[0]):
            one = {k: v[i : i + 1] if _batched(v) else v for k, v in kw.items()}
            rows.append(-jacobian_of(partial(self._score_of_one, s[i : i + 1], one), x[i : i + 1]))
        return torch.cat(rows)

    def _score_of_one(
        self, sigma: torch.Tensor, kw: dict[str, Any], z: torch.Tensor
    ) -> torch.Tensor:
        return self.score(z, sigma, **kw)

    # ------------------------------------------------------------------ conditioning
    def with_conditioning(self: _Model, **conditioning: Any) -> _Model:
        """A copy that passes ``conditioning`` to every network call (e.g. ``class_labels=3``).

        The copy shares the network; later keyword arguments to :meth:`denoise` override
        these.
        """
        other = copy.copy(self)
        other.conditioning = {**self.conditioning, **conditioning}
        return other

    def _broadcast(self, conditioning: dict[str, Any], batch: int) -> dict[str, Any]:
        out = {}
        for key, value in {**self.conditioning, **conditioning}.items():
            if key == "class_labels" and isinstance(value, numbers.Integral):
                value = torch.full((batch,), int(value), dtype=torch.long)
            if isinstance(value, torch.Tensor):
                if value.ndim == 0:
                    value = value.expand(batch)
                elif value.shape[0] == 1 and batch != 1:
                    value = value.expand(batch, *value.shape[1:])
                elif value.shape[0] != batch:
                    raise ValueError(
                        f"conditioning {key!r} has batch size {value.shape[0]}, but x has {batch} "
                        "states: pass one value per state, or one value for all"
                    )
            out[key] = value
        return out

    # ------------------------------------------------------------------ checks
    def _inputs(
        self, x: Any, sigma: Any, conditioning: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        x = self._check_x(x)
        return x, self._check_sigma(sigma, x), self._broadcast(conditioning, x.shape[0])

    def _check_sigma(self, sigma: Any, x: torch.Tensor) -> torch.Tensor:
        """σ as a ``(B,)`` tensor after checking it lies in ``[sigma_min, sigma_max]``."""
        s = as_sigma(sigma, x)
        lo = 0.0 if self.sigma_min is None else self.sigma_min * (1 - _RANGE_RTOL)
        hi = math.inf if self.sigma_max is None else self.sigma_max * (1 + _RANGE_RTOL)
        bad = (s < lo) | (s > hi)
        if bool(bad.any()):
            value = float(s[bad][0])
            raise ValueError(
                f"sigma {value:.6g} is outside the valid range [sigma_min, sigma_max] = "
                f"[{self.sigma_min or 0:.6g}, {self.sigma_max or math.inf:.6g}] of {self.name}: "
                "the network was not trained there (see model.sigma_min, model.sigma_max)"
            )
        return s

    def _check_output(self, out: Any, x: torch.Tensor, what: str) -> torch.Tensor:
        """The network's output after checking its type, shape and values (no NaN/inf)."""
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"{self.name} must return a torch.Tensor, got {type(out).__name__}")
        if out.shape != x.shape:
            raise ValueError(
                f"{self.name} returned a {what} of shape {tuple(out.shape)} for x of shape "
                f"{tuple(x.shape)}: it must return the shape of x"
            )
        if out.is_floating_point() and not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"{self.name} returned a {what} holding NaN or inf: the model's weights or its "
                "input are broken (check the weights for NaN, and that sigma is in range)"
            )
        return out.to(x.dtype)

    # ------------------------------------------------------------------ display
    def _repr_fields(self) -> dict[str, Any]:
        """Name, event shape, σ range and σ_data (the fields that are set)."""
        fields: dict[str, Any] = {"name": self.name, "event_shape": self.event_shape}
        for key in ("sigma_min", "sigma_max", "sigma_data"):
            value = getattr(self, key)
            if value is not None:
                fields[key] = float(f"{value:.6g}")
        if self.conditioning:
            fields["conditioning"] = tuple(sorted(self.conditioning))
        return fields


def _module_dtype(fn: Any) -> torch.dtype | None:
    """The floating dtype of a module's first parameter (``None`` for other callables)."""
    if isinstance(fn, nn.Module):
        for p in fn.parameters():
            if p.is_floating_point():
                return p.dtype
    return None


class _CallableModel(AdaptedModel):
    """Shared part of the function adapters: ``fn(x, sigma, **kw)`` run in its own dtype."""

    def __init__(self, fn: Callable[..., torch.Tensor], event_shape: Any, **kw: Any) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(x, sigma), got {type(fn).__name__}")
        kw["name"] = kw.get("name") or _describe(fn)
        super().__init__(event_shape, **kw)
        self.fn = fn

    def _call(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any], what: str):
        dtype = _module_dtype(self.fn) or x.dtype
        out = self.fn(x.to(dtype), sigma.to(dtype), **kw)
        return self._check_output(out, x, what)


class DenoiserModel(_CallableModel):
    """A callable ``fn(x, sigma, **kw) -> D(x, σ)`` as a memscape model (:func:`from_denoiser`).

    ``fn`` gets ``x`` ``(B, *event_shape)`` and σ as a ``(B,)`` tensor (the k-diffusion and
    EDM calling convention). An ``nn.Module`` runs in its parameters' dtype (inputs of
    another dtype, e.g. float64 for analysis, are cast for the call and the result cast
    back) and without an autograd graph unless ``x`` requires grad.
    """

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
        return self._call(x, sigma, kw, "denoised x")

    def _run(self, fn: Callable[[], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad and isinstance(self.fn, nn.Module):
            with torch.no_grad():
                return fn()
        return super()._run(fn, x)


class ScoreFunctionModel(_CallableModel):
    """A callable ``fn(x, sigma, **kw) -> s(x, σ)`` as a memscape model (:func:`from_score`).

    The denoiser is ``D(x, σ) = x + σ² s(x, σ)`` (Tweedie; EDM eq. 3). ``fn`` runs as given
    (it may use autograd inside, e.g. ``−∇E`` of an energy network).
    """

    def _score(self, x: torch.Tensor, sigma: torch.Tensor, kw: dict[str, Any]) -> torch.Tensor:
        return self._call(x, sigma, kw, "score")


def from_denoiser(
    fn: Callable[..., torch.Tensor],
    *,
    event_shape: Any,
    sigma_data: float | None = None,
    name: str | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> DenoiserModel:
    """Any denoiser ``fn(x, sigma) -> D(x, σ)`` in VE σ-space as a memscape model.

    The convention of k-diffusion's models and wrappers and of EDM's preconditioned
    networks (Karras et al. 2022, eq. 7: ``D = c_skip x + c_out F(c_in x, c_noise)``).
    The model is noise-conditioned and score-only (``has_energy = False``), with
    ``score = (D − x)/σ²`` (EDM eq. 3).

    Args:
        fn: called as ``fn(x, sigma, **conditioning)`` with ``x`` ``(B, *event_shape)``
            and ``sigma`` ``(B,)``; returns the denoised ``x``, shape of ``x``.
        event_shape: the shape of one state, e.g. ``(2,)`` or ``(3, 32, 32)``.
        sigma_data: the data standard deviation σ_d, when known (metadata).
        name: the name shown in ``repr`` and errors (default: ``fn``'s qualified name).
        sigma_min: the smallest σ ``fn`` is valid at (default: no bound).
        sigma_max: the largest σ ``fn`` is valid at (default: no bound).

    Returns:
        a :class:`DenoiserModel`.

    Example::

        net = EDMPrecond(...)          # EDM's network: net(x, sigma) -> D
        model = ms.adapters.from_denoiser(net, event_shape=(3, 32, 32), sigma_data=0.5)
    """
    return DenoiserModel(
        fn,
        event_shape,
        sigma_data=sigma_data,
        name=name,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
    )


def from_score(
    fn: Callable[..., torch.Tensor],
    *,
    event_shape: Any,
    name: str | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
) -> ScoreFunctionModel:
    """A score function ``fn(x, sigma) -> s(x, σ) ≈ ∇ₓ log p_σ(x)`` as a memscape model.

    The denoiser is ``D = x + σ² s`` (Tweedie; Karras et al. 2022, eq. 3), in VE σ-space
    (``p_σ`` = data convolved with ``N(0, σ² I)``).

    Args:
        fn: called as ``fn(x, sigma, **conditioning)`` with ``x`` ``(B, *event_shape)``
            and ``sigma`` ``(B,)``; returns the score, shape of ``x``.
        event_shape: the shape of one state.
        name: the name shown in ``repr`` and errors (default: ``fn``'s qualified name).
        sigma_min: the smallest σ ``fn`` is valid at (default: no bound).
        sigma_max: the largest σ ``fn`` is valid at (default: no bound).

    Returns:
        a :class:`ScoreFunctionModel`.
    """
    return ScoreFunctionModel(fn, event_shape, name=name, sigma_min=sigma_min, sigma_max=sigma_max)
