"""Index-1 saddles without dense Hessians: eigenvector-following on Hessian-vector products.

A transition state is a critical point with one negative Hessian eigenvalue. From a
start near one (the climbing image of a nudged elastic band, the highest image of a
string), :func:`refine_saddles` iterates, per state:

1. the two lowest eigenpairs ``(λ₁, v₁), (λ₂, v₂)`` of ``H = ∇²E`` by Lanczos
   (``scipy.sparse.linalg.eigsh`` on a :class:`~scipy.sparse.linalg.LinearOperator`
   whose products ``Hv`` come from :func:`memscape.landscape._fields.hvp_of` (the model's
   closed-form operator where it has one, else one backward pass through the score),
   warm-started from the last ``v₁``: minimum-mode following, the role the dimer's
   rotation plays in Henkelman & Jónsson 1999, J. Chem. Phys. 111, 7010, with exact
   products);
2. where ``λ₁ < 0 < λ₂`` (the quadratic region of an index-1 saddle): the Newton step
   ``H δ = −∇E`` by MINRES (Paige & Saunders 1975), quadratically convergent;
3. elsewhere, eigenvector-following (Cerjan & Miller 1981; Baker 1986, J. Comput.
   Chem. 7, 385, the partitioned rational-function step): uphill along ``v₁`` by
   ``δ₁ = −(g·v₁)/(λ₁ − μ) v₁`` with ``μ = ½(λ₁ + √(λ₁² + 4(g·v₁)²)) > λ₁``, and
   downhill in ``v₁⊥`` by the shifted Newton step ``P(H + c)P δ⊥ = −P g`` by
   conjugate gradients, ``c ≥ 0`` keeping ``P(H + c)P`` positive on ``v₁⊥``.

Steps are capped by a trust radius that halves when ``‖∇E‖`` more than doubles (the
step is then rejected). A state converges when ``‖∇E‖ ≤ tol``. For ``d ≤ 64`` the
same steps use the dense Hessian (:func:`~memscape.landscape.morse.hessian_spectrum`'s
closed form or autograd), which is cheaper there.

:func:`certify_morse_index` certifies the index from the ``k`` lowest eigenvalues and
the largest one (its scale): the count of :func:`~memscape.landscape.morse.morse_index`
is exact when it is below ``k`` (the ``k``-th eigenvalue, and so every higher one, is
non-negative), and the point is hyperbolic (:func:`~memscape.landscape.morse.is_hyperbolic`)
when the smallest ``|λ|`` among them clears the relative threshold.

Score-only models: every product is with the symmetric part ``½(H + Hᵀ)`` of
``H = −∂s/∂x`` (the iteration still stops only where ``s = 0``; it converges linearly,
at a rate set by the asymmetry), and the asymmetry ``‖H − Hᵀ‖_F / ‖H‖_F`` is reported
(exact for ``d ≤ 64``, else a Hutchinson estimate from Gaussian probes,
``‖A‖²_F = E‖Az‖²``; Hutchinson 1989). The index is then that of the symmetric part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from memscape._validation import check_int, check_positive, check_tensor
from memscape.landscape import _fields
from memscape.landscape._fields import check_model, check_sigma, event_shape, has_energy
from memscape.landscape.morse import asymmetry, is_hyperbolic, morse_index
from memscape.landscape.newton import default_tol
from memscape.numeric import serial
from memscape.protocol import ScoreOrDenoiser

__all__ = ["MorseCertificate", "SaddleResult", "certify_morse_index", "refine_saddles"]

DENSE_MAX_DIM = 64  # up to this d the Hessian is formed (d columns are cheaper than Lanczos)
LANCZOS_TOL = 1e-10  # eigsh relative accuracy of the certified eigenvalues
KRYLOV_RTOL = 1e-12  # relative residual of the MINRES / CG steps
KRYLOV_MAXITER = 1000
N_PROBES = 8  # Gaussian probes of the Hutchinson asymmetry estimate


@dataclass
class MorseCertificate:
    """The Morse index of a batch of points from the ends of their Hessian spectra.

    Attributes:
        eigenvalues: ``(B, k)`` lowest eigenvalues, ascending (of the symmetric part
            for score-only models).
        lambda_max: ``(B,)`` largest eigenvalue (the scale of the relative rules).
        morse_index: ``(B,)`` long, :func:`~memscape.landscape.morse.morse_index` of
            ``eigenvalues`` and ``lambda_max`` together.
        exact: ``(B,)`` bool, the count is the index (fewer than ``k`` negatives, or
            the whole spectrum was computed).
        hyperbolic: ``(B,)`` bool, no eigenvalue is (relatively) zero.
        asymmetry: ``(B,)`` ``‖H − Hᵀ‖_F / ‖H‖_F`` (0 for energy models; an estimate
            for score-only models with ``d > 64``).
    """

    eigenvalues: torch.Tensor
    lambda_max: torch.Tensor
    morse_index: torch.Tensor
    exact: torch.Tensor
    hyperbolic: torch.Tensor
    asymmetry: torch.Tensor

    @property
    def certified(self) -> torch.Tensor:
        """``(B,)`` bool: the index is exact and the point non-degenerate."""
        return self.exact & self.hyperbolic


@dataclass
class SaddleResult:
    """Outcome of :func:`refine_saddles`.

    Attributes:
        x: refined states ``(B, *event_shape)``.
        energy: ``(B,)`` ``E(x, σ)`` (NaN for score-only models).
        converged: ``(B,)`` bool, ``‖∇E‖ ≤ tol``.
        grad_norm: ``(B,)`` final ``‖∇E‖``.
        iterations: ``(B,)`` long.
        mode: ``(B, *event_shape)`` unit eigenvector of the lowest eigenvalue (the
            unstable direction of an index-1 saddle).
        certificate: :class:`MorseCertificate` at the refined states.
    """

    x: torch.Tensor
    energy: torch.Tensor
    converged: torch.Tensor
    grad_norm: torch.Tensor
    iterations: torch.Tensor
    mode: torch.Tensor
    certificate: MorseCertificate

    @property
    def morse_index(self) -> torch.Tensor:
        """``(B,)`` long: the certified index where converged, −1 elsewhere."""
        idx = self.certificate.morse_index.clone()
        idx[~self.converged] = -1
        return idx

    @property
    def certified(self) -> torch.Tensor:
        """``(B,)`` bool: converged, index exactly 1, non-degenerate."""
        c = self.certificate
        return self.converged & c.certified & (c.morse_index == 1)


class _Local:
    """Gradient and Hessian operator of one state of a model, in flat numpy float64."""

    def __init__(self, model: ScoreOrDenoiser, sigma: Any, shape: tuple[int, ...], like: Any):
        self.model, self.sigma, self.shape, self.like = model, sigma, shape, like
        self.d = math.prod(shape)
        self.dense = self.d <= DENSE_MAX_DIM
        self.h: np.ndarray | None = None
        self.op: Any = None

    def torch(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, device=self.like.device).to(self.like.dtype).reshape(1, -1)

    def grad(self, x: np.ndarray) -> np.ndarray:
        g = -_fields.flat_score(self.model, self.torch(x), self.sigma, self.shape)
        return g.double().cpu().numpy().reshape(-1)

    def at(self, x: np.ndarray) -> None:
        """Set the Hessian (dense) or its product operator (Lanczos) at ``x``."""
        xt = self.torch(x)
        if self.dense:
            h = (
                _fields.flat_hessian(self.model, xt, self.sigma, self.shape)[0]
                .double()
                .cpu()
                .numpy()
            )
            self.h_full = h
            self.h = 0.5 * (h + h.T)
            return
        from scipy.sparse.linalg import LinearOperator

        hvp = _fields.hvp_of(self.model, xt, self.sigma, self.shape)

        def matvec(v: np.ndarray) -> np.ndarray:
            hv = hvp(self.torch(np.asarray(v, dtype=np.float64).reshape(-1)))
            return hv.double().cpu().numpy().reshape(-1)

        self.op = LinearOperator((self.d, self.d), matvec=matvec, dtype=np.float64)

    def lowest(self, k: int, v0: np.ndarray | None, tol: float) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` lowest eigenpairs ``(k,), (d, k)`` ascending."""
        if self.h is not None:
            w, v = np.linalg.eigh(self.h)
            return w[:k], v[:, :k]
        from scipy.sparse.linalg import eigsh

        w, v = eigsh(self.op, k=k, which="SA", v0=v0, tol=tol)
        order = np.argsort(w)
        return w[order], v[:, order]

    def largest(self) -> float:
        if self.h is not None:
            return float(np.linalg.eigvalsh(self.h)[-1])
        from scipy.sparse.linalg import eigsh

        top = eigsh(self.op, k=1, which="LA", tol=1e-3, ncv=8, return_eigenvectors=False)
        return float(top[0])

    def newton(self, g: np.ndarray) -> np.ndarray:
        """``δ = −H⁻¹ g`` (MINRES: ``H`` is symmetric and indefinite)."""
        if self.h is not None:
            return -np.linalg.solve(self.h, g)
        from scipy.sparse.linalg import minres

        delta, _ = minres(self.op, -g, rtol=KRYLOV_RTOL, maxiter=KRYLOV_MAXITER)
        return delta

    def shifted(self, rhs: np.ndarray, v1: np.ndarray, shift: float) -> np.ndarray:
        """Solve ``(P(H + shift)P + v₁v₁ᵀ) u = rhs`` for ``rhs ⊥ v₁`` (CG; SPD by the shift)."""
        if self.h is not None:
            p = np.eye(self.d) - np.outer(v1, v1)
            a = p @ (self.h + shift * np.eye(self.d)) @ p + np.outer(v1, v1)
            return np.linalg.solve(a, rhs)
        from scipy.sparse.linalg import LinearOperator, cg

        op = self.op

        def matvec(u: np.ndarray) -> np.ndarray:
            u = np.asarray(u).reshape(-1)
            pu = u - (v1 @ u) * v1
            hu = op.matvec(pu) + shift * pu
            return hu - (v1 @ hu) * v1 + (v1 @ u) * v1

        a = LinearOperator((self.d, self.d), matvec=matvec, dtype=np.float64)
        u, _ = cg(a, rhs, rtol=KRYLOV_RTOL, maxiter=KRYLOV_MAXITER)
        return u


def _ef_step(loc: _Local, g: np.ndarray, w: np.ndarray, v: np.ndarray, trust: float) -> np.ndarray:
    """One eigenvector-following step from the two lowest eigenpairs ``w, v`` (see module doc)."""
    l1, l2, v1 = float(w[0]), float(w[1]), v[:, 0]
    if l1 < 0 < l2:
        return loc.newton(g)
    g1 = float(g @ v1)
    mu = 0.5 * (l1 + math.sqrt(l1 * l1 + 4 * g1 * g1))
    if mu - l1 > 0:
        d1 = -g1 / (l1 - mu) * v1
    else:  # g ⊥ v₁ on a convex region: push along the mode by the trust radius
        d1 = (trust if math.isfinite(trust) else 1.0) * v1
    scale = max(abs(l1), abs(l2), 1e-300)
    shift = 0.0 if l2 > 0 else -l2 + 0.5 * scale
    gp = g - g1 * v1
    return d1 - loc.shifted(gp, v1, shift)


def _refine_one(
    loc: _Local, x: np.ndarray, tol: float, max_iter: int, max_step: float
) -> tuple[np.ndarray, float, int, np.ndarray | None]:
    g = loc.grad(x)
    gn = float(np.linalg.norm(g))
    trust, v1, its = max_step, None, 0
    while its < max_iter and gn > tol:
        its += 1
        loc.at(x)
        w, v = loc.lowest(2, v1, 1e-8)
        v1 = v[:, 0]
        delta = _ef_step(loc, g, w, v, trust)
        norm = float(np.linalg.norm(delta))
        if not math.isfinite(norm):
            break
        if norm > trust:
            delta *= trust / norm
        g_new = loc.grad(x + delta)
        gn_new = float(np.linalg.norm(g_new))
        if not math.isfinite(gn_new) or gn_new > 2 * gn:
            trust = 0.5 * min(norm, trust)
            continue
        x, g = x + delta, g_new
        if gn_new < gn:
            trust = min(2 * trust, max_step)
        gn = gn_new
    return x, gn, its, v1


def _check_points(model: Any, x: Any, sigma: Any) -> tuple[torch.Tensor, tuple[int, ...]]:
    check_model(model)
    x = check_tensor(x, "x", min_ndim=1)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    check_sigma(model, sigma)
    return x, event_shape(model, x)


def refine_saddles(
    model: ScoreOrDenoiser,
    x: torch.Tensor,
    sigma: Any = None,
    *,
    k: int = 6,
    tol: float | None = None,
    max_iter: int = 100,
    max_step: float | torch.Tensor | None = None,
) -> SaddleResult:
    """Refine states to index-1 saddles of ``E(·, σ)`` by eigenvector-following (module doc).

    Works on Hessian-vector products only for ``d > 64`` (tested at d = 3072), so
    memory is ``O(d)`` per state; states are refined one after the other.

    Args:
        model: any object following the protocol (double-backward products through
            ``energy``, or through ``score``/``denoise`` for score-only models).
        x: start states ``(B, *event_shape)`` near saddles (float64 recommended).
        sigma: noise level (float or ``(B,)``), required for noise-conditioned models.
        tol: converged when ``‖∇E‖ ≤ tol`` (default 1e-8 in float64, 1e-4 otherwise).
        max_iter: iterations per state (each costs one Lanczos and one Krylov solve).
        max_step: trust radius of one step, a float or ``(B,)`` (default unbounded);
            pass the spacing of the path the start came from to stay near it.
        k: lowest eigenvalues of the certificate (:func:`certify_morse_index`).

    Returns:
        :class:`SaddleResult` (failures are flagged, never dropped).
    """
    x, shape = _check_points(model, x, sigma)
    check_int(max_iter, "max_iter")
    check_int(k, "k", minimum=2)
    tol = default_tol(x.dtype) if tol is None else tol
    check_positive(tol, "tol")
    if max_step is not None:
        check_positive(max_step, "max_step")
    b = x.shape[0]
    flat = x.detach().reshape(b, -1)
    out = flat.clone()
    gn = torch.empty(b, dtype=torch.float64)
    its = torch.zeros(b, dtype=torch.long)
    modes = torch.zeros_like(flat)
    with serial(flat.device):  # one state at a time: small ops, scipy's solvers between
        for i in range(b):
            loc = _Local(model, _fields.slice_sigma(sigma, torch.tensor([i])), shape, flat)
            xi, gn_i, it_i, v1 = _refine_one(
                loc, flat[i].double().cpu().numpy(), tol, max_iter, _item(max_step, i)
            )
            out[i] = torch.as_tensor(xi).to(flat)
            gn[i], its[i] = gn_i, it_i
            if v1 is not None:
                modes[i] = torch.as_tensor(v1).to(flat)
    cert = certify_morse_index(model, out.reshape(x.shape), sigma, k=k)
    unset = modes.abs().sum(1) == 0  # converged at the start: take the certificate's mode
    if bool(unset.any()):
        rows = unset.nonzero()[:, 0]
        modes[unset] = _lowest_modes(model, out[unset], _fields.slice_sigma(sigma, rows), shape)
    energy = torch.full((b,), float("nan"), dtype=flat.dtype, device=flat.device)
    if has_energy(model):
        energy = model.energy(out.reshape(x.shape), sigma).detach()
    return SaddleResult(
        x=out.reshape(x.shape),
        energy=energy,
        converged=gn <= tol,
        grad_norm=gn.to(flat.dtype),
        iterations=its,
        mode=modes.reshape(x.shape),
        certificate=cert,
    )


def _item(max_step: float | torch.Tensor | None, i: int) -> float:
    if max_step is None:
        return math.inf
    if isinstance(max_step, torch.Tensor) and max_step.ndim >= 1:
        return float(max_step[i])
    return float(max_step)


def _lowest_modes(
    model: Any, flat: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> torch.Tensor:
    """Lowest eigenvector of each flat state ``(n, d)``: ``(n, d)``."""
    rows = []
    with serial(flat.device):
        for i in range(flat.shape[0]):
            loc = _Local(model, _fields.slice_sigma(sigma, torch.tensor([i])), shape, flat)
            loc.at(flat[i].double().cpu().numpy())
            rows.append(torch.as_tensor(loc.lowest(1, None, 1e-8)[1][:, 0]))
    return torch.stack(rows).to(flat)


def certify_morse_index(
    model: ScoreOrDenoiser, x: torch.Tensor, sigma: Any = None, *, k: int = 6
) -> MorseCertificate:
    """Morse index of each point from its ``k`` lowest Hessian eigenvalues and the largest.

    Lanczos (``eigsh``, relative accuracy 1e-10) on Hessian-vector products for
    ``d > 64``, the dense Hessian otherwise. The counting and degeneracy rules are
    :func:`~memscape.landscape.morse.morse_index` and
    :func:`~memscape.landscape.morse.is_hyperbolic` (relative to ``max|λ|``).

    Args:
        model: any object following the protocol.
        x: points ``(B, *event_shape)``, e.g. refined saddles.
        sigma: noise level (float or ``(B,)``).
        k: lowest eigenvalues computed (the index is certified when it is below ``k``).

    Returns:
        :class:`MorseCertificate`.
    """
    x, shape = _check_points(model, x, sigma)
    check_int(k, "k", minimum=1)
    b = x.shape[0]
    flat = x.detach().reshape(b, -1)
    d = flat.shape[1]
    k = min(k, d - 1) if d > DENSE_MAX_DIM else min(k, d)
    vals = torch.empty(b, k, dtype=torch.float64)
    top = torch.empty(b, dtype=torch.float64)
    asym = torch.zeros(b, dtype=torch.float64)
    with serial(flat.device):  # one state at a time (see refine_saddles)
        for i in range(b):
            sig = _fields.slice_sigma(sigma, torch.tensor([i]))
            loc = _Local(model, sig, shape, flat)
            loc.at(flat[i].double().cpu().numpy())
            vals[i] = torch.as_tensor(loc.lowest(k, None, LANCZOS_TOL)[0])
            top[i] = loc.largest()
            if not has_energy(model):
                if loc.dense:
                    asym[i] = asymmetry(torch.as_tensor(loc.h_full))
                else:
                    asym[i] = _hutchinson_asymmetry(model, flat[i : i + 1], sig, shape)
    spectrum = torch.cat([vals, top[:, None]], dim=1)
    index = morse_index(spectrum)
    exact = (index < k) | torch.tensor(d <= DENSE_MAX_DIM and k == d)
    return MorseCertificate(vals, top, index, exact, is_hyperbolic(spectrum), asym)


def _hutchinson_asymmetry(
    model: Any, x1: torch.Tensor, sigma: Any, shape: tuple[int, ...]
) -> float:
    """``‖J − Jᵀ‖_F / ‖J‖_F`` of the score Jacobian at one flat state, from Gaussian probes.

    ``Jz`` by the double-backward trick and ``Jᵀz`` by one backward pass, for
    :data:`N_PROBES` probes at once (a fixed seed: the estimate is reproducible).
    """
    m, d = N_PROBES, x1.shape[1]
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(m, d, generator=gen, dtype=torch.float64).to(x1)
    sig = sigma
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1:
        sig = sigma.expand(m)
    with torch.enable_grad():
        xg = x1.detach().expand(m, d).clone().requires_grad_(True)
        s = _fields.score_with_graph(model, xg.reshape(m, *shape), sig).reshape(m, d)
        (jt_z,) = torch.autograd.grad(s, xg, grad_outputs=z, retain_graph=True)
        u = torch.zeros_like(z, requires_grad=True)
        (jt_u,) = torch.autograd.grad(s, xg, grad_outputs=u, create_graph=True)
        (j_z,) = torch.autograd.grad(jt_u, u, grad_outputs=z)
    skew = (j_z - jt_z).pow(2).sum()
    return float((skew / j_z.pow(2).sum().clamp_min(1e-300)).sqrt())
