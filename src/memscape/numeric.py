"""Small numerical helpers: reducing measured curves, sizing batches to free memory.

:func:`level_crossing` finds where a sampled, decreasing curve falls through a
level — the load at which half the stored patterns stop being fixed points, the
β at which a Hessian eigenvalue changes sign, the time at which a probability
drops below a threshold.

:func:`batch_size_for` turns the bytes one batch item needs into a batch that fits a
share of the device's free memory (:func:`free_memory`: ``torch.cuda.mem_get_info`` on
CUDA, the available physical pages on the CPU). torch is imported only for CUDA.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from memscape._validation import check_int, check_positive

__all__ = ["FALLBACK_FREE_BYTES", "batch_size_for", "free_memory", "level_crossing"]

#: Free memory assumed where the device's cannot be read (1 GiB): a conservative guess.
FALLBACK_FREE_BYTES = 1 << 30


def level_crossing(x: Any, y: Any, level: float) -> float:
    """First ``x`` where the piecewise-linear curve ``y(x)`` falls below ``level``.

    With ``i`` the first index where ``y[i] < level``, returns the linear
    interpolation between ``(x[i−1], y[i−1])`` and ``(x[i], y[i])``::

        x* = x[i−1] + (y[i−1] − level)(x[i] − x[i−1]) / (y[i−1] − y[i]).

    Args:
        x: ``(M,)`` ascending sample positions.
        y: ``(M,)`` values at ``x``.
        level: the level crossed downwards.

    Returns:
        ``x*``, or NaN when ``y`` never falls below ``level`` or starts below it
        (no bracketing pair of samples).

    Raises:
        ValueError: ``x`` and ``y`` are not 1-D arrays of one length, or ``x`` is
            not ascending.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ValueError(
            f"x and y must be 1-D arrays of one length, got shapes {xs.shape} and {ys.shape}"
        )
    if np.any(np.diff(xs) < 0):
        raise ValueError("x must be ascending")
    below = np.flatnonzero(ys < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x0 + (y0 - level) * (x1 - x0) / (y0 - y1))


def free_memory(device: Any) -> int:
    """Free bytes on ``device`` now.

    CUDA: the free memory of ``torch.cuda.mem_get_info(device)``. CPU: the available
    physical memory ``sysconf(SC_AVPHYS_PAGES) · sysconf(SC_PAGE_SIZE)`` (POSIX).
    Elsewhere, or when the reading fails: :data:`FALLBACK_FREE_BYTES`.

    Args:
        device: a ``torch.device`` or its name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, …).
    """
    kind = str(device).split(":")[0]
    try:
        if kind == "cuda":
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        if kind == "cpu":
            return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError, RuntimeError):
        pass  # no sysconf (Windows), no such name (macOS), no CUDA driver: the fallback
    return FALLBACK_FREE_BYTES


def batch_size_for(
    bytes_per_item: float, device: Any, *, fraction: float = 0.25, maximum: int | None = None
) -> int:
    """The largest batch whose items fit in ``fraction`` of ``device``'s free memory.

    ``max(1, min(maximum, ⌊fraction · free_memory(device) / bytes_per_item⌋))``: at least
    one item (a batch of one that does not fit fails where it runs, not here).

    Args:
        bytes_per_item: bytes one item of the batch needs (> 0), e.g. its activations.
        device: where the batch runs (:func:`free_memory`).
        fraction: share of the free memory to fill, in (0, 1].
        maximum: largest batch to return (e.g. the number of items), ``None``: no cap.

    Raises:
        TypeError: ``bytes_per_item`` or ``fraction`` is no number, ``maximum`` no integer.
        ValueError: ``bytes_per_item`` is not finite and > 0, ``fraction`` not in (0, 1],
            or ``maximum`` < 1.
    """
    check_positive(bytes_per_item, "bytes_per_item")
    check_positive(fraction, "fraction")
    if fraction > 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if maximum is not None:
        maximum = check_int(maximum, "maximum")
    batch = int(fraction * free_memory(device) // bytes_per_item)
    return max(1, batch if maximum is None else min(maximum, batch))
