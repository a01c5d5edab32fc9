"""The continued family ``p ↦ (model, σ)`` and ``G = ∇ₓE``, ``∂ₓG``, ``∂_qG`` on it.

Coordinates are scaled, ``x = L·x̃`` (``L``: :attr:`Family.scale`), and the parameter is
``q = p`` or ``q = log p``, so that the arclength metric weighs both alike (Allgower &
Georg, *Introduction to Numerical Continuation Methods*, §2).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from memscape.landscape._fields import flat_hessian, flat_score, has_energy, is_noise_conditioned
from memscape.landscape.continuation.options import FD_STEP
from memscape.landscape.critical import critical_points
from memscape.landscape.morse import hessian_eigenvalues
from memscape.protocol import is_model

__all__ = ["Family", "builder", "census"]


class Family:
    """``p ↦ (model, σ)`` plus ``G``, ``∂ₓG``, ``∂_qG`` in scaled coordinates ``x = L·x̃``."""

    def __init__(self, build: Callable[[float], tuple[Any, Any]], log: bool, dtype, device):
        self.build, self.log, self.dtype, self.device = build, log, dtype, device
        self.scale = 1.0
        self._cache: dict[float, tuple[Any, Any]] = {}
        self.event_shape: tuple[int, ...] = ()

    def p(self, q: float) -> float:
        """The parameter at ``q``."""
        return math.exp(q) if self.log else q

    def q(self, p: float) -> float:
        """The continuation coordinate ``q`` (``p`` or ``log p``) of ``p``."""
        return math.log(p) if self.log else p

    def at(self, q: float) -> tuple[Any, Any]:
        """``(model, σ)`` at ``q`` (the last few are cached)."""
        if q not in self._cache:
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[q] = self.build(self.p(q))
        return self._cache[q]

    def grads(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """``G = ∇ₓE = −s`` at a batch ``x = L·x̃`` ``(n, d)``: ``(n, d)``."""
        model, sig = self.at(q)
        return -flat_score(model, self.scale * xt, sig, self.event_shape)

    def hessians(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """Unscaled Hessians ``∂ₓG`` at a batch ``x = L·x̃`` ``(n, d)``: ``(n, d, d)``."""
        model, sig = self.at(q)
        return flat_hessian(model, self.scale * xt, sig, self.event_shape)

    def grad(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """``G = ∇ₓE = −s`` at ``x = L·x̃``: ``(d,)``."""
        return self.grads(xt[None], q)[0]

    def hess(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """Unscaled Hessian ``∂ₓG`` at ``x = L·x̃`` (closed form when there is one): ``(d, d)``."""
        return self.hessians(xt[None], q)[0]

    def dgdq(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """``∂_qG`` by a central difference: ``(d,)``."""
        dq = FD_STEP * max(1.0, abs(q))
        return (self.grad(xt, q + dq) - self.grad(xt, q - dq)) / (2 * dq)

    def energy(self, xt: torch.Tensor, q: float) -> float:
        """``E`` at ``x = L·x̃`` (NaN for score-only models)."""
        model, sig = self.at(q)
        if not has_energy(model):
            return math.nan
        x = (self.scale * xt).reshape(1, *self.event_shape)
        return float(model.energy(x, sig).reshape(()))

    def eigvals(self, xt: torch.Tensor, q: float) -> torch.Tensor:
        """Ascending Hessian eigenvalues (real parts for non-symmetric score Jacobians)."""
        return hessian_eigenvalues(self.hess(xt, q))


# ---------------------------------------------------------------------------- resolution of inputs
def _factory_caller(factory: Callable, parameter: str) -> Callable[[float], Any]:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return factory
    params = sig.parameters
    named = params.get(parameter)
    if named is not None and named.kind is not inspect.Parameter.POSITIONAL_ONLY:
        return lambda v: factory(**{parameter: v})
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return lambda v: factory(**{parameter: v})
    only = list(params.values())
    if len(only) == 1 and only[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    ):
        return factory  # a one-argument factory such as ``lambda b: ...``
    raise ValueError(
        f"factory does not accept a parameter named {parameter!r}; its signature is "
        f"{sig} (name one of its arguments, or pass a factory of exactly one argument)"
    )


def builder(model: Any, parameter: str, sigma: Any) -> Callable[[float], tuple[Any, Any]]:
    """Turn ``(model or factory, parameter)`` into ``p ↦ (model, σ)``."""
    if is_model(model) and not isinstance(model, type):  # a class is a factory
        if parameter != "sigma":
            raise ValueError(
                f"parameter {parameter!r} of a model instance cannot be varied: pass a factory "
                "f(value) -> model, or use 'sigma' with a noise-conditioned model"
            )
        if not is_noise_conditioned(model):
            raise ValueError(
                f"parameter 'sigma': {type(model).__name__} is not noise-conditioned, so its "
                "landscape does not depend on sigma; pass a factory f(value) -> model instead"
            )
        return lambda p: (model, p)
    if not callable(model):
        raise TypeError(
            "model must follow the memscape protocol (energy/score/denoise) or be a factory "
            f"f(value) -> model, got {type(model).__name__}"
        )
    make = _factory_caller(model, parameter)

    def build(p: float) -> tuple[Any, Any]:
        try:
            m = make(p)
        except TypeError as err:
            raise TypeError(f"factory failed when called with {parameter}={p:g}: {err}") from err
        if not is_model(m):
            raise TypeError(
                f"factory({parameter}={p:g}) returned {type(m).__name__}, which does not "
                "follow the memscape protocol (energy/score/denoise)"
            )
        if parameter == "sigma" and is_noise_conditioned(m):
            return m, p
        return m, sigma

    return build


def census(fam: Family, q: float, generator: Any, census_kwargs: Mapping[str, Any]) -> torch.Tensor:
    """Critical points at ``p(q)`` from the landscape census: ``(N, d)``."""
    model, sig = fam.at(q)
    kw = {"dtype": fam.dtype, "device": fam.device, **census_kwargs}
    cps = critical_points(model, sigma=sig, generator=generator, **kw)
    pts = cps.points[cps.converged.to(cps.points.device)]
    return pts.flatten(1).to(fam.dtype)  # (0, d) when nothing converged
