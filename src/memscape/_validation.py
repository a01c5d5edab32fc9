"""Input checks shared by every public entry point.

Each check raises a ``ValueError`` or ``TypeError`` that names the argument and
what was expected, before any work is done (the conventions of the package, ``DEVELOPING.md``).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads on first use, so option checks run without it
    import torch

__all__ = [
    "as_sigma",
    "check_choice",
    "check_finite",
    "check_int",
    "check_positive",
    "check_tensor",
]


def check_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    nonempty: bool = True,
    finite: bool = True,
) -> torch.Tensor:
    """Return ``x`` as a tensor after checking its type, rank, size and values.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: wrong rank, empty, or containing NaN/inf.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(x.shape)}"
        )
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if finite:
        check_finite(x, name)
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or inf."""
    import torch

    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, but it contains NaN or inf")


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` (a number, numpy scalar or tensor) is finite and > 0 (or ≥ 0)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        import torch

        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if value.numel() == 0:
            raise ValueError(f"{name} must not be empty")
        bad = ~torch.isfinite(value) | ((value < 0) if allow_zero else (value <= 0))
        if bool(bad.any()):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be finite and {bound}, got {value.min().item():g}")
        return
    v = float(value)
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v in (float("inf"), float("-inf")):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ≥ ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(value: Any, options: Iterable[str], name: str) -> str:
    """Return ``value`` if it is one of ``options``, else raise ``ValueError``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(options)}")
    return value


def as_sigma(sigma: Any, x: torch.Tensor, name: str = "sigma") -> torch.Tensor:
    """Return σ as a ``(B,)`` tensor on ``x``'s device and dtype, after checking σ > 0.

    Args:
        sigma: a positive float or a ``(B,)`` / ``()`` tensor.
        x: the batch ``(B, ...)`` σ applies to.
        name: argument name used in error messages.
    """
    import torch

    if sigma is None:
        raise ValueError(f"{name} is required for a noise-conditioned model, got None")
    check_positive(sigma, name)
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must be a float or a ({x.shape[0]},) tensor, got {tuple(s.shape)}"
        )
    return s
