"""Float32 linear layers on the CPU through oneDNN, where PyTorch's default BLAS is slower.

PyTorch's x86 CPU builds compute float32 ``mm``/``linear`` with MKL, which on AMD
processors runs its AVX2 code path even where the CPU has AVX-512; oneDNN, in the same
builds (``torch.ops.mkldnn._linear_pointwise``, the kernel inductor uses for frozen
inference graphs), dispatches on the instruction set alone. Measured with torch 2.13 on
one thread:

* a 2-core AMD EPYC (AVX-512): a 256×256 by 256×256 product in 165 µs against MKL's
  352 µs (2.1×, 203 against 95 GFLOP/s), 2.2× at 256×256×512 and 1000×256×256, 1.5× at
  128³, but 0.44–0.84× below about 2²⁰ multiply-adds, where oneDNN's fixed cost of about
  15 µs per call dominates (256×2×256: 15 µs against 9);
* a 2-core Intel Xeon (AVX-512), where MKL takes its AVX-512 path: oneDNN is the slower,
  0.73× MKL at 256³, 0.44× at 256×64×256, 0.95× at 256×784×5000.

Hence two rules. :func:`preferred` — the machine: oneDNN is used only on an x86 CPU that
is AMD's, has AVX-512 and whose torch computes with MKL (the measured case; AMD CPUs
without AVX-512, where both libraries run AVX2, and other makers' CPUs are left to MKL,
unmeasured), or
where the environment variable ``MEMSCAPE_ONEDNN`` says ``1`` (``0``: never; unset or
``auto``: the rule). :func:`uses_onednn` — the call: CPU, float32, 2-D operands, no
autocast, and ``m·k·n ≥`` :data:`MIN_MULTIPLY_ADDS`. Both libraries give float32 sums
that differ only in rounding (their summation orders differ).

* :func:`linear` — ``F.linear(x, weight, bias)``, through oneDNN where the call's rule
  says so, with its own backward (:class:`_MmNT`: every product of the backward is again
  one of these, so double backward works too).
* :func:`onednn_linear` — a context in which every ``F.linear`` call (``nn.Linear`` layers
  included) goes through :func:`linear` (by default only where :func:`preferred`):
  :func:`memscape.train` runs its step in it, so a network stays a plain ``nn.Module``
  everywhere else.

Reverse mode only: ``torch.func`` transforms (``grad``, ``jvp``, ``vmap``) are not
supported inside the context, and under ``torch.compile`` the product is one opaque
custom operator (``memscape::mm_nt``) whose backward autograd takes from :class:`_MmNT`
(compiled graphs that take ``torch.func.grad`` of an ``autograd.Function`` got wrong
gradients in torch 2.13: the compiled training step therefore differentiates with
``torch.autograd.grad``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from memscape.io import cpu_vendor

__all__ = [
    "MIN_MULTIPLY_ADDS",
    "available",
    "linear",
    "onednn_linear",
    "preferred",
    "uses_onednn",
]

#: The smallest product ``m·k·n`` sent to oneDNN (2²⁰; see the module docstring).
MIN_MULTIPLY_ADDS = 1 << 20


def _pointwise() -> Any:
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return (
            getattr(ops, "_linear_pointwise", None)
            if torch.backends.mkldnn.is_available()
            else None
        )
    except (AttributeError, RuntimeError):  # a build without the kernel
        return None


_LINEAR_POINTWISE = _pointwise()


def available() -> bool:
    """Whether this torch build has oneDNN's linear kernel."""
    return _LINEAR_POINTWISE is not None


@functools.cache
def _machine_prefers() -> bool:
    """The machine half of :func:`preferred` (read once per process)."""
    return (
        available()
        and platform.machine().lower() in ("x86_64", "amd64")
        and torch.backends.mkl.is_available()
        and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
        and cpu_vendor() == "AuthenticAMD"
    )


def preferred() -> bool:
    """Whether float32 CPU linears go through oneDNN on this machine (the module's rule):
    ``MEMSCAPE_ONEDNN=1`` or ``0`` decides; unset or ``auto``, an x86 CPU made by AMD,
    with AVX-512, whose torch computes with MKL (and has oneDNN's kernel).

    Raises:
        ValueError: ``MEMSCAPE_ONEDNN`` is set to anything else.
    """
    value = os.environ.get("MEMSCAPE_ONEDNN", "auto").strip().lower()
    if value not in ("auto", "", "0", "1"):
        raise ValueError(
            f"the environment variable MEMSCAPE_ONEDNN must be 1, 0 or auto, got "
            f"{os.environ['MEMSCAPE_ONEDNN']!r}"
        )
    if value in ("0", "1"):
        return value == "1" and available()
    return _machine_prefers()


def _mm_nt_eager(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` by oneDNN: ``(m, k)``, ``(n, k)`` -> ``(m, n)`` (any strides)."""
    return _LINEAR_POINTWISE(a, b, None, "none", [], "")


@torch.library.custom_op("memscape::mm_nt", mutates_args=())
def _mm_nt_op(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` by oneDNN, one opaque operator for ``torch.compile``."""
    return _mm_nt_eager(a, b)


@_mm_nt_op.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty((a.shape[0], b.shape[0]))


def _mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # the custom operator costs ~7 µs more per call than the kernel: eager calls skip it
    return _mm_nt_op(a, b) if torch.compiler.is_compiling() else _mm_nt_eager(a, b)


class _MmNT(torch.autograd.Function):
    """``a @ b.T`` with the backward ``(g b, gᵀ a)``, each again an ``_MmNT``."""

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _mm_nt(a, b)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:  # type: ignore[override]
        a, b = ctx.saved_tensors
        ga = _MmNT.apply(g, b.t()) if ctx.needs_input_grad[0] else None
        gb = _MmNT.apply(g.t(), a.t()) if ctx.needs_input_grad[1] else None
        return ga, gb


def uses_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> bool:
    """Whether :func:`linear` sends ``x @ weightᵀ`` to oneDNN (the call's rule)."""
    return (
        _LINEAR_POINTWISE is not None
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and (bias is None or (bias.dtype == torch.float32 and bias.device.type == "cpu"))
        and x.ndim == 2
        and weight.ndim == 2
        and x.shape[0] * x.shape[1] * weight.shape[0] >= MIN_MULTIPLY_ADDS
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weightᵀ + bias`` (``F.linear``): ``(m, k)``, ``(n, k)``, ``(n,)`` -> ``(m, n)``.

    Through oneDNN where :func:`uses_onednn` says so, else ``F.linear`` itself (any shape).
    """
    if not uses_onednn(x, weight, bias):  # F.linear's own errors for mismatched operands
        return F.linear(x, weight, bias)
    out = _MmNT.apply(x, weight)
    return out if bias is None else out + bias


class _Mode(TorchFunctionMode):
    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.linear:  # F.linear(input, weight, bias=None), positional or by name
            bound = dict(zip(("input", "weight", "bias"), args, strict=False)) | kwargs
            return linear(bound["input"], bound["weight"], bound.get("bias"))
        return func(*args, **kwargs)


@contextlib.contextmanager
def onednn_linear(enabled: bool | None = None) -> Iterator[None]:
    """Within the block, ``F.linear`` (every ``nn.Linear``) is :func:`linear`; a no-op when
    ``enabled`` is false or the build lacks oneDNN. ``enabled=None`` (the default):
    :func:`preferred`."""
    if enabled is None:
        enabled = preferred()
    if not (enabled and available()):
        yield
        return
    with _Mode():
        yield
