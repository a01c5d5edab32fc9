"""Small numerical helpers for reducing measured curves (numpy only, no torch).

:func:`level_crossing` finds where a sampled, decreasing curve falls through a
level — the load at which half the stored patterns stop being fixed points, the
β at which a Hessian eigenvalue changes sign, the time at which a probability
drops below a threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["level_crossing"]


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
