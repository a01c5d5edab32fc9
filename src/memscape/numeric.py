"""Small numerical helpers: reducing measured curves, sizing batches to free memory.

:func:`level_crossing` finds where a sampled, decreasing curve falls through a
level — the load at which half the stored patterns stop being fixed points, the
β at which a Hessian eigenvalue changes sign, the time at which a probability
drops below a threshold.

:func:`batch_size_for` turns the bytes one batch item needs into a batch that fits a
share of the device's free memory (:func:`free_memory`: ``torch.cuda.mem_get_info`` on
CUDA, the available physical pages on the CPU). torch is imported only for CUDA.

:func:`flush_denormals` flushes subnormal floats to zero on the calling thread for the
duration of a block (the streamed softmax kernels, whose exponentials of far logits
would otherwise be subnormal and make the softmax 1.35× slower), restoring the caller's
setting after.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from memscape._validation import check_int, check_positive

__all__ = [
    "FALLBACK_FREE_BYTES",
    "batch_size_for",
    "flush_denormals",
    "flushing_denormals",
    "free_memory",
    "level_crossing",
]

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


# the smallest subnormal double, from its bits (no floating-point operation that the
# flags under test could flush)
_SUBNORMAL = struct.unpack("<d", (1).to_bytes(8, "little"))[0]


def flushing_denormals() -> bool:
    """Whether the calling thread flushes subnormal floats to zero (x86 FTZ/DAZ, ARM FZ).

    Probed, not remembered: ``subnormal × 1`` is 0 exactly when the thread's
    floating-point control register flushes subnormal inputs or results (Python's float
    arithmetic runs under the same register as torch's CPU kernels on the calling thread).
    """
    one = float(len("x"))  # a run-time 1.0: the product is not folded at compile time
    return _SUBNORMAL * one == 0.0


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush subnormal floats to zero on the calling thread inside the block.

    ``exp`` of a logit more than ~87 (float32) or ~708 (float64) below a row's largest is
    subnormal; x86 cores compute and consume subnormals through slow microcode
    assists, which makes the streamed kernels' softmax 1.35× slower at d = 64, K = 10³,
    σ = 1, where 6 % of the B×K weights are subnormal (``benchmarks/bench_denoiser.py``).
    A flushed weight is below ``2⁻¹²⁶`` (float64: ``2⁻¹⁰²²``) times the largest one, so
    every mean, covariance and log-sum-exp is unchanged at float32/float64 rounding.
    Subnormal inputs read as 0 inside the block as well (data of magnitude below
    ~1e-38 in float32, which the dtype cannot hold to its precision anyway). TensorFlow and XLA flush
    denormals the same way around their CPU kernels (``ScopedFlushDenormal``).

    The setting is per thread (the calling thread's control register; torch's intra-op
    worker threads keep theirs) and the caller's is restored on exit, also when it
    already flushed. Yields whether flushing is on inside the block (``False`` where
    the CPU cannot, or with ``enabled=False``).
    """
    if not enabled or flushing_denormals():
        yield flushing_denormals()
        return
    import torch

    on = bool(torch.set_flush_denormal(True))
    try:
        yield on
    finally:
        if on:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def serial(device: Any) -> Iterator[None]:
    """Run a loop of small sequential CPU tensor ops on one intra-op thread.

    Where a loop issues thousands of small ops (an asynchronous Hopfield sweep on
    ``(B, L)`` tensors; the per-state Lanczos and Newton steps of saddle refinement,
    between which scipy's single-threaded solvers run), intra-op parallelism only adds
    thread wake-ups and synchronization: measured 5–20× slower per op with 2 OpenMP
    threads on a 2-core machine, and a landscape atlas 1.2× slower in all. Restores the
    thread count; nothing changes off the CPU (``device``: a ``torch.device``).
    """
    if getattr(device, "type", device) != "cpu":
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
