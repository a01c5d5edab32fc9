"""Storage-capacity measurements on binary associative memories.

A stored pattern counts as stored when it is an exact fixed point of the
dynamics (Hopfield 1982; Amit, Gutfreund & Sompolinsky 1985; Krotov & Hopfield
2016, §2). :func:`fixed_points` tests that for a batch of states,
:func:`fixed_point_fraction` averages it, and :func:`capacity_bisection` finds the
largest number of patterns K at which a measured fraction (e.g. of fixed points
over nested pattern sets) still reaches a level. The closed-form estimates they
are compared with live in :mod:`memscape.theory` (``fixed_point_probability``,
``dense_bit_error``, ``dense_capacity``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from memscape._validation import check_int, check_positive, check_tensor

__all__ = ["CapacityBisection", "capacity_bisection", "fixed_point_fraction", "fixed_points"]


def fixed_points(
    memory: Any,
    states: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 64,
    **update: Any,
) -> torch.Tensor:
    """Which ±1 ``states`` are exact fixed points of ``memory.update``: ``(B, N) -> (B,)`` bool.

    One update of a binary memory (:class:`~memscape.memories.ClassicalHopfield`,
    :class:`~memscape.memories.DenseAM`) leaves a state unchanged iff every unit is
    stable: a synchronous update flips every unstable unit, and an asynchronous
    sweep flips at least the first unstable unit in its visiting order (which still
    sees the original state). So "unchanged by one update" is the exact
    fixed-point test, whatever the visiting order.

    Args:
        memory: a model with ``update(x, generator=..., **update) -> (B, N)``.
        states: ``(B, N)`` ±1 states (usually the stored patterns); never modified.
        generator: draws the asynchronous visiting orders.
        chunk: states per call of ``update`` (bounds memory; large batches also
            thrash the allocator of the sequential sweeps).
        **update: further arguments of ``memory.update`` (e.g. ``mode="sync"``).
    """
    states = check_tensor(states, "states", ndim=2)
    check_int(chunk, "chunk")
    if not callable(getattr(memory, "update", None)):
        raise TypeError(f"memory must have an update method, got {type(memory).__name__}")
    out = [
        (memory.update(c, generator=generator, **update) == c).all(1) for c in states.split(chunk)
    ]
    return torch.cat(out)


def fixed_point_fraction(
    memory: Any,
    states: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 64,
    **update: Any,
) -> float:
    """Fraction of the ``(B, N)`` ``states`` that are fixed points (mean of :func:`fixed_points`).

    For the stored patterns of a Hebbian network its expectation is estimated by
    :func:`memscape.theory.fixed_point_probability`, ``exp(−N Φ(−1/√α))``, and for
    ``F(x) = xⁿ`` by ``exp(−N · dense_bit_error(N, n, K))`` (Krotov & Hopfield 2016, §2).
    """
    fixed = fixed_points(memory, states, generator=generator, chunk=chunk, **update)
    return float(fixed.double().mean())


class CapacityBisection(NamedTuple):
    """Result of :func:`capacity_bisection`."""

    K: int  #: largest K found whose fraction reaches the level
    K_upper: int  #: smallest K found whose fraction is below it (K < K_upper)
    evaluations: list[tuple[int, float]]  #: every ``(K, fraction)`` measured, in order


def capacity_bisection(
    fraction_at: Callable[[int], float],
    level: float,
    guess: float,
    *,
    resolution: float = 0.02,
    max_patterns: int = 10**7,
) -> CapacityBisection:
    """The capacity ``K_f``: largest K with ``fraction_at(K) ≥ level``, by doubling and bisection.

    Starting from ``hi = max(2, round(guess))`` (e.g. the signal-to-noise estimate
    ``memscape.theory.dense_capacity(N, n, error=−ln(level)/N)``), ``hi`` doubles
    while ``fraction_at(hi) ≥ level``; then the bracket ``[lo, hi)`` is bisected until
    ``hi − lo ≤ max(1, resolution · lo)``. K = 1 is taken to reach the level (a single
    stored pattern is a fixed point of these memories). ``fraction_at`` should
    decrease with K — use nested pattern sets (the first K of fixed pools) so that it
    does, up to noise.

    Args:
        fraction_at: measured fraction (e.g. :func:`fixed_point_fraction` pooled over
            trials) of the memory storing K patterns.
        level: the fraction that defines "stored", in ``(0, 1]``.
        guess: a first estimate of ``K_f`` (> 0).
        resolution: relative width of the final bracket (> 0).
        max_patterns: stop doubling past this K (raises ``ValueError``).

    Returns:
        :class:`CapacityBisection` ``(K, K_upper, evaluations)``.
    """
    check_positive(level, "level")
    if level > 1:
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    check_positive(guess, "guess")
    check_positive(resolution, "resolution")
    check_int(max_patterns, "max_patterns", minimum=2)
    evaluations: list[tuple[int, float]] = []

    def reaches(k: int) -> bool:
        f = float(fraction_at(k))
        evaluations.append((k, f))
        return f >= level

    lo, hi = 1, max(2, round(guess))
    while reaches(hi):
        if hi > max_patterns:
            raise ValueError(f"the fraction is still >= level at K = {hi} > max_patterns")
        lo, hi = hi, 2 * hi
    while hi - lo > max(1.0, resolution * lo):
        mid = (lo + hi) // 2
        if reaches(mid):
            lo = mid
        else:
            hi = mid
    return CapacityBisection(lo, hi, evaluations)
