"""Input checks shared by every public entry point.

Each check raises a ``ValueError`` or ``TypeError`` that names the argument and
what was expected, before any work is done (the conventions of the package, ``DEVELOPING.md``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads on first use, so option checks run without it
    import torch

__all__ = [
    "as_sigma",
    "check_choice",
    "check_device",
    "check_dtype",
    "check_finite",
    "check_generator",
    "check_int",
    "check_output_path",
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

    # one reduction first (5× cheaper): a finite sum has no NaN/inf term; the elementwise
    # test decides only when the sum is not finite (NaN/inf, or an overflowing sum). The
    # sum is read as a Python float: torch.isfinite of a 0-d tensor costs 3× the sum itself
    if not x.is_floating_point() or math.isfinite(x.sum().item()):
        return
    if not bool(torch.isfinite(x).all()):
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


def check_device(device: Any, name: str = "device") -> torch.device:
    """Return ``device`` as a :class:`torch.device` after checking that torch can use it.

    Accepts a string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), a
    :class:`torch.device` or a CUDA ordinal (an ``int``, as torch does).

    Raises:
        TypeError: not a string, ``torch.device`` or ``int``.
        ValueError: not a device name (``"foo"``), or a device this machine does not
            have (``"device 'cuda' requested but torch.cuda.is_available() is False"``,
            an index beyond ``torch.cuda.device_count()``).
    """
    import torch

    ok_type = isinstance(device, (str, torch.device)) or (
        isinstance(device, numbers.Integral) and not isinstance(device, bool)
    )
    if not ok_type:
        raise TypeError(
            f"{name} must be a device name such as 'cpu' or 'cuda', a torch.device or an int, "
            f"got {type(device).__name__}"
        )
    try:
        dev = torch.device(int(device) if isinstance(device, numbers.Integral) else device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"{name} {device!r} is not a torch device; expected e.g. 'cpu', 'cuda', 'cuda:1', 'mps'"
        ) from None
    shown = repr(str(device) if isinstance(device, torch.device) else device)
    if dev.type in ("cpu", "meta"):
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(
                f"{name} {shown} requested but torch.backends.mps.is_available() is False"
            )
        return dev
    backend = getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if callable(available) and not available():
        raise ValueError(f"{name} {shown} requested but torch.{dev.type}.is_available() is False")
    count = getattr(backend, "device_count", None)
    if dev.index is not None and callable(count) and dev.index >= count():
        raise ValueError(
            f"{name} {shown} requested but torch.{dev.type}.device_count() is {count()}"
        )
    return dev


def check_generator(
    generator: Any, name: str = "generator", *, device: Any = None
) -> torch.Generator | None:
    """Return ``generator`` as a :class:`torch.Generator` (or ``None``).

    An integer ≥ 0 is taken as a seed: ``torch.Generator(device).manual_seed(seed)``.

    Raises:
        TypeError: anything else (a numpy ``RandomState``, a float, a string …).
        ValueError: a negative seed.
    """
    import torch

    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        seed = check_int(generator, f"{name} (a seed)", minimum=0)
        gen = torch.Generator(device=device) if device is not None else torch.Generator()
        return gen.manual_seed(seed)
    raise TypeError(
        f"{name} must be a torch.Generator or an int seed, got {type(generator).__name__}"
    )


def check_dtype(dtype: Any, name: str = "dtype", *, floating: bool = True) -> torch.dtype:
    """Return ``dtype`` if it is a :class:`torch.dtype` (floating point unless ``floating=False``)."""
    import torch

    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype, got {type(dtype).__name__}")
    if floating and not dtype.is_floating_point:
        raise ValueError(
            f"{name} must be a floating-point dtype such as torch.float64, got {dtype}"
        )
    return dtype


def check_output_path(path: Any, name: str, *, folder: bool = False) -> Path:
    """Check, without creating anything, that ``path`` can be written; return it as a ``Path``.

    A file output (``folder=False``) must not be an existing folder; a folder output
    must not be an existing file; the nearest existing ancestor must be a folder this
    process can write into (no ancestor may be a file).

    Raises:
        TypeError: ``path`` is not a string or path.
        ValueError: any of the above, naming ``name`` and the offending path.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(path).__name__}")
    p = Path(path)
    if str(path) == "":
        raise ValueError(f"{name} must not be empty")
    if p.exists():
        if folder and not p.is_dir():
            raise ValueError(f"{name} must be a folder, but {p} is a file")
        if not folder and p.is_dir():
            raise ValueError(f"{name} must be a file, but {p} is a folder")
        target = p if folder else p.parent
        if not os.access(target if str(target) else ".", os.W_OK | os.X_OK):
            raise ValueError(f"{name}: cannot write to {p} (permission denied)")
        return p
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    ancestor = ancestor if str(ancestor) else Path(".")
    if not ancestor.is_dir():
        raise ValueError(f"{name}: cannot create {p}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{name}: cannot create {p}: folder {ancestor} is not writable")
    return p
