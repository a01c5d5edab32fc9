"""Hessian spectra at critical points: Morse index, hyperbolicity, asymmetry.

At a critical point ``x*`` of ``E`` the Morse index is the number of negative
eigenvalues of ``∇²E(x*)`` (Milnor, *Morse Theory*, §2); the point is
non-degenerate (hyperbolic) when no eigenvalue is zero. For score-only models the
"Hessian" is ``−∂s/∂x``, which need not be symmetric; its index is then the
number of eigenvalues with negative real part (the unstable directions of the
flow ``ẋ = s``) and its asymmetry ``‖H − Hᵀ‖_F / ‖H‖_F`` is reported.

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
    hvp_operator,
    slice_sigma,
)

__all__ = ["HessianSpectrum", "hessian_spectrum"]

DENSE_MAX_DIM = 256


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
        """Number of negative eigenvalues ``(B,)`` (a lower bound if all ``k`` are < 0)."""
        return (self.eigenvalues < 0).sum(dim=1)

    def hyperbolicity(self) -> torch.Tensor:
        """Smallest ``|eigenvalue|`` ``(B,)``: distance from degeneracy (0 = not Morse)."""
        return self.eigenvalues.abs().amin(dim=1)


def hessian_spectrum(
    model: Any,
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


def _dense(model: Any, flat: torch.Tensor, sigma: Any, shape: tuple[int, ...]) -> HessianSpectrum:
    b, d = flat.shape
    vals, vecs, asym = [], [], []
    for sl in batch_chunks(b, d):
        rows = torch.arange(b, device=flat.device)[sl]
        h = flat_hessian(model, flat[sl], slice_sigma(sigma, rows), shape)
        sym = 0.5 * (h + h.transpose(1, 2))
        skew = h - h.transpose(1, 2)
        a = skew.flatten(1).norm(dim=1) / h.flatten(1).norm(dim=1).clamp_min(1e-300)
        w, v = torch.linalg.eigh(sym)
        nonsym = a > 1e-10
        if bool(nonsym.any()):
            ev = torch.linalg.eigvals(h[nonsym]).real.sort(dim=1).values
            w[nonsym] = ev.to(w.dtype)
        vals.append(w)
        vecs.append(v)
        asym.append(a)
    return HessianSpectrum(torch.cat(vals), torch.cat(vecs), torch.cat(asym), True)


def _lanczos(
    model: Any, flat: torch.Tensor, sigma: Any, shape: tuple[int, ...], k: int
) -> HessianSpectrum:
    """Lowest ``k`` eigenpairs of the symmetric part by Lanczos on Hessian-vector products."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    b, d = flat.shape
    vals = torch.empty(b, k, dtype=flat.dtype)
    vecs = torch.empty(b, d, k, dtype=flat.dtype)
    for i in range(b):
        hvp = hvp_operator(model, flat[i : i + 1], slice_sigma(sigma, torch.tensor([i])), shape)

        def matvec(v: np.ndarray, hvp: Any = hvp) -> np.ndarray:
            vt = torch.as_tensor(np.asarray(v).reshape(1, d), dtype=flat.dtype, device=flat.device)
            return hvp(vt).cpu().numpy().reshape(d)

        op = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
        w, v = eigsh(op, k=k, which="SA")
        order = np.argsort(w)
        vals[i] = torch.as_tensor(w[order])
        vecs[i] = torch.as_tensor(v[:, order])
    nan = torch.full((b,), float("nan"), dtype=flat.dtype)
    return HessianSpectrum(vals.to(flat.device), vecs.to(flat.device), nan, False)
