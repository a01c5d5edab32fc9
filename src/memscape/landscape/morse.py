"""Hessian spectra at critical points: Morse index, hyperbolicity, asymmetry.

At a critical point ``x*`` of ``E`` the Morse index is the number of negative
eigenvalues of ``∇²E(x*)`` (Milnor, *Morse Theory*, §2); the point is
non-degenerate (hyperbolic) when no eigenvalue is zero. For score-only models the
"Hessian" is ``−∂s/∂x``, which need not be symmetric; its index is then the
number of eigenvalues with negative real part (the unstable directions of the
flow ``ẋ = s``) and its asymmetry ``‖H − Hᵀ‖_F / ‖H‖_F`` is reported.

The three rules every landscape tool uses live here, each in one function:

- :func:`morse_index`: λ counts as negative when ``λ < −MORSE_RTOL · max|λ|``;
- :func:`is_hyperbolic`: non-degenerate when ``min|λ| > HYPERBOLIC_RTOL · max|λ|``;
- :func:`is_symmetric` / :func:`asymmetry`: ``H`` is treated as symmetric when
  ``‖H − Hᵀ‖_F ≤ SYMMETRY_RTOL · ‖H‖_F``.

Small ``d`` (≤ ``dense_max_dim``): dense eigen-decomposition of the closed-form or
autograd Hessian. Large ``d``: the lowest ``k`` eigenvalues by Lanczos
(``scipy.sparse.linalg.eigsh``) on Hessian-vector products, never forming ``H``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memscape._validation import check_int, check_tensor
from memscape.landscape._fields import (
    batch_chunks,
    check_model,
    check_sigma,
    event_shape,
    flat_hessian,
    hvp_of,
    slice_sigma,
)
from memscape.numeric import serial
from memscape.protocol import ScoreOrDenoiser

__all__ = [
    "HYPERBOLIC_RTOL",
    "MORSE_RTOL",
    "SYMMETRY_RTOL",
    "HessianSpectrum",
    "asymmetry",
    "hessian_eigenvalues",
    "hessian_spectrum",
    "is_hyperbolic",
    "is_symmetric",
    "morse_index",
]

DENSE_MAX_DIM = 256

#: λ < −MORSE_RTOL·max|λ| is negative: float64 eigen-solvers leave ~d·1e-16·max|λ| of
#: round-off on a zero eigenvalue, so 1e-9 ignores that noise yet counts any real curvature.
MORSE_RTOL = 1e-9

#: min|λ| ≤ HYPERBOLIC_RTOL·max|λ| is degenerate: 1e-6 ≫ MORSE_RTOL, so a point whose index
#: could flip under round-off (near a fold or pitchfork) is flagged before its index is trusted.
HYPERBOLIC_RTOL = 1e-6

#: ‖H − Hᵀ‖_F ≤ SYMMETRY_RTOL·‖H‖_F is symmetric: autograd Hessians of an energy are
#: symmetric to ~1e-15; 1e-10 keeps a wide margin and still catches non-conservative scores.
SYMMETRY_RTOL = 1e-10


def _spectrum_scale(eigenvalues: torch.Tensor) -> torch.Tensor:
    """``max|λ|`` over the last dimension, kept as ``(..., 1)`` (tiny instead of 0)."""
    return (
        eigenvalues.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(eigenvalues.dtype).tiny)
    )


def morse_index(eigenvalues: torch.Tensor, *, rtol: float = MORSE_RTOL) -> torch.Tensor:
    """Number of negative eigenvalues, relative to the spectrum's scale: ``(...,)`` long.

    Milnor, *Morse Theory*, §2: the index of a critical point is the number of
    negative eigenvalues of ``∇²E``. An eigenvalue counts when ``λ < −rtol · max|λ|``
    (max over the last dimension), so round-off around a zero eigenvalue (a flat
    direction, a bifurcation) is not counted. For score-only models pass the real
    parts of the eigenvalues of ``−∂s/∂x``.

    Args:
        eigenvalues: ``(..., k)`` real eigenvalues (any order).
        rtol: relative threshold (default :data:`MORSE_RTOL`).
    """
    eigenvalues = eigenvalues if eigenvalues.is_floating_point() else eigenvalues.double()
    tol = rtol * _spectrum_scale(eigenvalues)
    return (eigenvalues < -tol).sum(dim=-1)


def is_hyperbolic(eigenvalues: torch.Tensor, *, rtol: float = HYPERBOLIC_RTOL) -> torch.Tensor:
    """Non-degenerate (Morse) critical points: ``min|λ| > rtol · max|λ|``, ``(...,)`` bool.

    A critical point is hyperbolic when no Hessian eigenvalue is zero (Milnor,
    *Morse Theory*, §2); here "zero" is relative to the largest ``|λ|``.

    Args:
        eigenvalues: ``(..., k)`` real eigenvalues.
        rtol: relative threshold (default :data:`HYPERBOLIC_RTOL`).
    """
    eigenvalues = eigenvalues if eigenvalues.is_floating_point() else eigenvalues.double()
    return eigenvalues.abs().amin(dim=-1) > rtol * _spectrum_scale(eigenvalues).squeeze(-1)


def asymmetry(h: torch.Tensor) -> torch.Tensor:
    """Relative asymmetry ``‖H − Hᵀ‖_F / ‖H‖_F`` of square matrices ``(..., d, d)``: ``(...,)``.

    0 for a symmetric matrix (and for the zero matrix).
    """
    skew = (h - h.transpose(-1, -2)).flatten(-2).norm(dim=-1)
    return skew / h.flatten(-2).norm(dim=-1).clamp_min(torch.finfo(h.dtype).tiny)


def is_symmetric(h: torch.Tensor, *, rtol: float = SYMMETRY_RTOL) -> torch.Tensor:
    """``asymmetry(h) ≤ rtol`` for square matrices ``(..., d, d)``: ``(...,)`` bool.

    The one test deciding whether a Hessian goes to the symmetric eigen-solver
    (``eigh``) or the general one (real parts of ``eig``).
    """
    return asymmetry(h) <= rtol


def _general_where_asymmetric(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``w`` with the rows of non-symmetric ``h`` replaced by the sorted real parts of ``eig``.

    A NaN Hessian (asymmetry NaN) keeps its ``eigh`` values (NaN).
    """
    a = asymmetry(h)
    general = ~is_symmetric(h) & torch.isfinite(a)
    if bool(general.any()):
        w = w.clone()
        w[general] = torch.linalg.eigvals(h[general]).real.sort(dim=-1).values.to(w.dtype)
    return w


def hessian_eigenvalues(h: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of Hessians ``(..., d, d)``: ``(..., d)``.

    Those of the symmetric part (``eigvalsh``) when :func:`is_symmetric`, else the
    real parts of the eigenvalues of ``h`` (a score-only model's ``−∂s/∂x``: its
    unstable directions are the eigenvalues with negative real part).
    """
    return _general_where_asymmetric(h, torch.linalg.eigvalsh(0.5 * (h + h.transpose(-1, -2))))


@dataclass
class HessianSpectrum:
    """Eigen-information of the Hessian at a batch of points.

    Attributes:
        eigenvalues: ``(B, k)`` ascending (real parts for non-symmetric ``H``); ``k = d``
            for dense, the ``k`` lowest for Lanczos.
        eigenvectors: ``(B, d, k)`` matching eigenvectors (of the symmetric part of ``H``).
        asymmetry: ``(B,)`` relative asymmetry ``‖H − Hᵀ‖_F / ‖H‖_F`` (NaN for Lanczos).
        complete: ``True`` when all ``d`` eigenvalues were computed.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    asymmetry: torch.Tensor
    complete: bool

    def morse_index(self) -> torch.Tensor:
        """:func:`morse_index` of each point ``(B,)`` (a lower bound if all ``k`` are < 0)."""
        return morse_index(self.eigenvalues)

    def hyperbolicity(self) -> torch.Tensor:
        """Smallest ``|eigenvalue|`` ``(B,)``: distance from degeneracy (0 = not Morse)."""
        return self.eigenvalues.abs().amin(dim=1)

    def is_hyperbolic(self) -> torch.Tensor:
        """:func:`is_hyperbolic` of each point ``(B,)`` bool."""
        return is_hyperbolic(self.eigenvalues)


def hessian_spectrum(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any = None,
    *,
    k: int | None = None,
    method: str = "auto",
) -> HessianSpectrum:
    """Eigenvalues and eigenvectors of ``∇²E(x, σ)`` at each point of ``x``.

    Args:
        model: any object following the protocol.
        x: points ``(B, *event_shape)`` (float64 recommended).
        sigma: noise level for noise-conditioned models.
        k: number of lowest eigenvalues for the Lanczos path (default 6).
        method: ``"dense"``, ``"lanczos"`` or ``"auto"`` (dense when ``d ≤ 256``).

    Returns:
        :class:`HessianSpectrum`.
    """
    check_model(model)
    x = check_tensor(x, "x", min_ndim=1)
    check_sigma(model, sigma)
    if method not in ("auto", "dense", "lanczos"):
        raise ValueError(f"unknown method {method!r}; expected one of auto, dense, lanczos")
    shape = event_shape(model, x)
    b = x.shape[0]
    flat = x.detach().reshape(b, -1)
    d = flat.shape[1]
    if method == "auto":
        method = "dense" if d <= DENSE_MAX_DIM else "lanczos"
    if method == "dense":
        return _dense(model, flat, sigma, shape)
    k = 6 if k is None else check_int(k, "k")
    return _lanczos(model, flat, sigma, shape, min(k, d - 1) if d > 1 else 1)


def _dense(
    model: ScoreOrDenoiser, flat: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> HessianSpectrum:
    b, d = flat.shape
    vals, vecs, asym = [], [], []
    for sl in batch_chunks(b, d):
        rows = torch.arange(b, device=flat.device)[sl]
        h = flat_hessian(model, flat[sl], slice_sigma(sigma, rows), shape)
        w, v = torch.linalg.eigh(0.5 * (h + h.transpose(1, 2)))
        vals.append(_general_where_asymmetric(h, w))
        vecs.append(v)
        asym.append(asymmetry(h))
    return HessianSpectrum(torch.cat(vals), torch.cat(vecs), torch.cat(asym), True)


def _lanczos(
    model: ScoreOrDenoiser, flat: torch.Tensor, sigma: Any, shape: tuple[int, ...], k: int
) -> HessianSpectrum:
    """Lowest ``k`` eigenpairs of the symmetric part by Lanczos on Hessian-vector products
    (ARPACK's implicitly restarted Lanczos, Lehoucq, Sorensen & Yang 1998, via ``eigsh``)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    b, d = flat.shape
    vals = torch.empty(b, k, dtype=flat.dtype)
    vecs = torch.empty(b, d, k, dtype=flat.dtype)
    with serial(flat.device):  # one state at a time: small ops, ARPACK between them
        for i in range(b):  # the symmetric part ½(H + Hᵀ); H itself for energy models
            hvp = hvp_of(model, flat[i : i + 1], slice_sigma(sigma, torch.tensor([i])), shape)

            def matvec(v: np.ndarray, hvp: Any = hvp) -> np.ndarray:
                vt = torch.as_tensor(np.asarray(v).reshape(1, d), dtype=flat.dtype,
                                     device=flat.device)  # fmt: skip
                return hvp(vt).cpu().numpy().reshape(d)

            op = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
            w, v = eigsh(op, k=k, which="SA")
            order = np.argsort(w)
            vals[i] = torch.as_tensor(w[order])
            vecs[i] = torch.as_tensor(v[:, order])
    nan = torch.full((b,), float("nan"), dtype=flat.dtype)
    return HessianSpectrum(vals.to(flat.device), vecs.to(flat.device), nan, False)
