"""Modern Hopfield network (Ramsauer et al. 2020, "Hopfield Networks is All You Need")."""

from __future__ import annotations

import math
from typing import Any

import torch

from memscape._validation import check_generator, check_int, check_positive, check_tensor
from memscape.curvature import Operator, covariance_operator
from memscape.dynamics.descent import check_mask, descend
from memscape.kernels import (
    DEFAULT_CHUNK,
    DistanceStats,
    MemoryCache,
    _compute_dtype,
    distance_weights,
    streamed_distance_softmax,
)
from memscape.memories.base import AssociativeMemory, Mask, Seed
from memscape.theory import hopfield_retrieval_bound

__all__ = ["ModernHopfield", "critical_beta_by_descent"]


class ModernHopfield(AssociativeMemory):
    """Continuous modern Hopfield network with inverse temperature β.

    Energy (Ramsauer et al. 2020, eq. 2), for memories ``X = (x_1..x_K)`` and
    state ``ξ``, with optional per-memory bias ``c_μ`` (zero in the paper)::

        E(ξ) = −β⁻¹ log Σ_μ exp(β (x_μᵀξ + c_μ)) + ½ ξᵀξ + β⁻¹ log K + ½ M²,
        M = max_μ ‖x_μ‖.

    Update (eq. 3, the CCCP step; never increases E): ``ξ ← X softmax(β(Xᵀξ + c))``.

    Numerics: the logits are evaluated in the distance form
    ``β(c_μ + ½‖x_μ‖² − ½M²) − β‖ξ − x_μ‖²/2`` (equal to ``β(x_μᵀξ + c_μ) − β(½‖ξ‖² + ½M²)``)
    with memories and states centred on the memories' mean, so the energy keeps its
    digits far from the origin and at large β. Half-precision states are computed (and
    returned) in float32, integer states in the memories' dtype; a β the dtype cannot
    hold raises ``ValueError``.

    Args:
        memories: stored patterns ``(K, d)``, floating point.
        beta: inverse temperature β > 0.
        bias: optional ``(K,)`` per-memory offsets ``c_μ``.  With
            ``c_μ = −‖x_μ‖²/2`` and ``β = 1/σ²`` the energy is the exact diffusion
            energy of the memories (see :class:`memscape.EmpiricalDiffusion`).
        chunk_size: memories per chunk of the streamed softmax.
    """

    default_tol = 1e-6  # max-abs change of one CCCP update at a fixed point

    def __init__(
        self,
        memories: torch.Tensor,
        beta: float = 1.0,
        *,
        bias: torch.Tensor | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        memories = check_tensor(memories, "memories", ndim=2)
        if not memories.is_floating_point():
            memories = memories.to(torch.get_default_dtype())
        check_positive(beta, "beta")
        if bias is not None:
            bias = check_tensor(bias, "bias", ndim=1).to(memories)
            if bias.shape[0] != memories.shape[0]:
                raise ValueError(
                    f"bias must have shape ({memories.shape[0]},), got {tuple(bias.shape)}"
                )
        self.memories = memories
        self.beta = float(beta)
        self.bias = bias
        self.chunk_size = chunk_size
        self.event_shape = (memories.shape[1],)
        self._cache = MemoryCache()

    def _repr_fields(self) -> dict[str, Any]:
        k, d = self.memories.shape
        fields: dict[str, Any] = {"K": k, "d": d, "beta": self.beta}
        if self.bias is not None:
            fields["bias"] = self.bias
        return {**fields, "dtype": self.memories.dtype}

    # ------------------------------------------------------------ internals
    def _prepare(self, x: Any, name: str = "x") -> tuple[torch.Tensor, float]:
        """States in the compute dtype and β, after checking β fits that dtype."""
        x = self._check_x(x, name)
        x = x.to(_compute_dtype(x, self.memories.dtype))
        fi = torch.finfo(x.dtype)
        if not fi.tiny <= self.beta <= 1.0 / fi.tiny:
            raise ValueError(
                f"beta = {self.beta:g} is outside what {str(x.dtype).removeprefix('torch.')} "
                f"represents: beta and 1/beta must be normal numbers, in "
                f"[{fi.tiny:.3g}, {1 / fi.tiny:.3g}]; use float64 or another beta"
            )
        return x, self.beta

    def _stats(
        self, x: torch.Tensor, beta: float, *, covariance: bool = False, exact: bool = False
    ) -> DistanceStats:
        """Softmax statistics of ``ℓ_μ = β(x_μᵀξ + c_μ − ½‖ξ‖² − ½M²) = a_μ − β‖ξ − x_μ‖²/2``.

        ``a_μ = β(c_μ + ½‖x_μ‖² − ½M²)`` (≤ 0 for c = 0): the distance form of eq. 2, whose
        log-sum-exp is the energy with its ``½‖ξ‖² + ½M²`` already inside.
        """
        mem = self._cache.get(self.memories, x.dtype, x.device, self.bias)
        offset = self._cache.extra("offset", lambda: self._offset(x.dtype, x.device))
        return streamed_distance_softmax(
            x, mem, beta, self.beta * offset, chunk_size=self.chunk_size,
            covariance=covariance, exact_lse=exact, need_lse=exact, name="beta",
        )  # fmt: skip

    def _offset(self, dtype: torch.dtype, device: Any) -> torch.Tensor:
        """``c_μ + ½‖x_μ‖² − ½M²`` ``(K,)``, from the memories in their own precision.

        ``½(‖x_μ‖² − ‖x_m‖²)`` is formed as ``½(x_μ − x_m)ᵀ(x_μ + x_m)`` with ``x_m`` the
        longest memory, so it keeps its digits when the memories lie far from the origin.
        """
        mem = self.memories.to(device)
        longest = mem[mem.pow(2).sum(1).argmax()]
        off = 0.5 * ((mem - longest) * (mem + longest)).sum(1)
        if self.bias is not None:
            off = off + self.bias.to(off)
        return off.to(dtype)

    # ------------------------------------------------------------ protocol
    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Ramsauer et al. eq. 2 energy: ``(B, d) -> (B,)``.

        Evaluated as ``−β⁻¹ lse_μ(a_μ − β‖ξ − x_μ‖²/2) + β⁻¹ log K`` with the leading
        terms' distances direct, so the error scales with the energy, not with ``‖ξ‖²``.
        """
        x, beta = self._prepare(x)
        lse = self._stats(x, beta, exact=True).lse
        assert lse is not None
        return (math.log(self.memories.shape[0]) - lse) / self.beta

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form score ``−∇E = X softmax(β(Xᵀξ + c)) − ξ``: ``(B, d) -> (B, d)``."""
        x, beta = self._prepare(x)
        return self._stats(x, beta).drift

    def update(
        self, x: torch.Tensor, *, mask: Mask = None, generator: Seed = None, sigma: Any = None
    ) -> torch.Tensor:
        """One CCCP update ``ξ ← X softmax(β(Xᵀξ + c))`` (eq. 3): ``(B, d) -> (B, d)``.

        Args:
            x: states ``(B, d)``.
            mask: bool ``(d,)`` or ``(B, d)``; ``True`` entries are held fixed at ``x``.
            generator: ignored (the update is deterministic); shared calling convention.
            sigma: ignored; accepted because :func:`memscape.descend` passes every
                update map its noise level, and this network has none (β plays its role:
                the exact diffusion model at σ is this network at β = 1/σ²).
        """
        x, beta = self._prepare(x)
        mean = self._stats(x, beta).mean
        if mask is None:
            return mean
        held = check_mask(mask, x)
        assert held is not None
        return torch.where(held, x, mean)

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian ``I − β Cov_p(X)`` with ``p`` the softmax weights: ``(B, d, d)``."""
        x, beta = self._prepare(x)
        cov = self._stats(x, beta, covariance=True).cov
        assert cov is not None
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        return eye - self.beta * cov

    def hessian_operator(self, x: torch.Tensor, sigma: Any = None) -> Operator:
        """The Hessian at ``x`` as an operator ``v ↦ (I − β Cov_p(X)) v`` on ``(B, d)``
        vectors, the weights computed once here (:func:`memscape.curvature.covariance_operator`):
        two ``K·d`` contractions per product and state, no ``(d, d)`` matrix."""
        x, beta = self._prepare(x)
        cov = covariance_operator(self._weights(x), self._cache.get(
            self.memories, x.dtype, x.device, self.bias).points)  # fmt: skip
        return lambda v: v - beta * cov(v)

    # ------------------------------------------------------------ diagnostics
    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights ``softmax(β(Xᵀξ + c))`` over memories: ``(B, K)`` (materialized)."""
        x, _ = self._prepare(x)
        return self._weights(x)

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        mem = self._cache.get(self.memories, x.dtype, x.device, self.bias)
        offset = self._cache.extra("offset", lambda: self._offset(x.dtype, x.device))
        return distance_weights(x, mem, self.beta, self.beta * offset)

    def separation(self) -> torch.Tensor:
        """Separation ``Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j`` (Ramsauer et al. Def. 1): ``(K,)``."""
        g = self.memories @ self.memories.T
        diag = g.diagonal().clone()
        g.fill_diagonal_(-torch.inf)
        if g.shape[0] == 1:
            return torch.full_like(diag, torch.inf)
        return diag - g.max(dim=1).values

    def metastable_size(self, x: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
        """Number of softmax weights above ``threshold`` at each state: ``(B,)`` long.

        1 means a single retrieved memory; K means the global average (Ramsauer et
        al. §2, metastable states).
        """
        check_positive(threshold, "threshold")
        return (self.weights(x) > threshold).sum(dim=1)

    def retrieval_error_bound(self, xi: torch.Tensor, index: torch.Tensor | int) -> torch.Tensor:
        """Theorem 5 bound on the one-step retrieval error ``‖f(ξ) − x_i‖``: ``(B,)``.

        Ramsauer et al. 2020, Theorem 5 (N patterns there = K here)::

            ‖f(ξ) − x_i‖ ≤ 2 (K − 1) exp(−β (Δ_i − 2 ‖ξ − x_i‖ M)) M,   M = max_j ‖x_j‖,

        where the paper's ``max{‖ξ − x_i‖, ‖x_i* − x_i‖}`` is taken as ``‖ξ − x_i‖``
        (the fixed point ``x_i*`` lies exponentially close to ``x_i``).

        Args:
            xi: queries ``(B, d)``.
            index: the memory each query belongs to, int or ``(B,)`` long.
        """
        xi = self._check_x(xi, "xi")
        k = self.memories.shape[0]
        idx = torch.as_tensor(index, device=xi.device).expand(xi.shape[0])
        mem = self.memories.to(xi)
        big_m = mem.norm(dim=1).max()
        delta = self.separation().to(xi)[idx]
        dist = (xi - mem[idx]).norm(dim=1)
        return hopfield_retrieval_bound(self.beta, delta, k, big_m, dist)


def critical_beta_by_descent(
    memories: torch.Tensor,
    *,
    steps: int = 5000,
    bisections: int = 14,
    perturbations: int = 8,
    generator: torch.Generator | int | None = None,
) -> list[dict[str, Any]]:
    """β at which the mean of the memories stops attracting the update, by dynamics alone.

    The mean ``x̄`` of centred memories is a fixed point of the CCCP update; it loses
    stability at ``β_c = 1/λ_max(Cov)`` (the Hessian there is ``I − β Cov``;
    :func:`memscape.theory.critical_beta`). This measures ``β_c`` without a Hessian or the
    formula: from ``perturbations`` random displacements of norm 10⁻⁶ of ``x̄``, ``steps``
    updates at β; the mean is stable when none grows. β is bisected in
    ``[0.9/tr Cov, 1.1·d/tr Cov]`` (``1/λ_max`` lies in ``[1/tr Cov, d/tr Cov]``).

    Args:
        memories: ``(K, d)`` stored patterns.
        steps: updates per stability test.
        bisections: bisection steps of β.
        perturbations: random starts per test.
        generator: ``torch.Generator`` or seed of the perturbations.

    Returns:
        One dict per bisection step: ``beta``, ``grew`` and the bracket ``low``, ``high``
        after it (``β_c ∈ [low, high]``).
    """
    x = check_tensor(memories, "memories", ndim=2)
    for value, name in (
        (steps, "steps"),
        (bisections, "bisections"),
        (perturbations, "perturbations"),
    ):
        check_int(value, name)
    generator = check_generator(generator)
    mean = x.mean(0)
    u = torch.randn(perturbations, x.shape[1], generator=generator, dtype=x.dtype)
    start = mean + 1e-6 * u / u.norm(dim=1, keepdim=True)
    trace = float(((x - mean) ** 2).sum(1).mean())
    lo, hi, rows = 0.9 / trace, 1.1 * x.shape[1] / trace, []
    for _ in range(bisections):
        beta = 0.5 * (lo + hi)
        end = descend(ModernHopfield(x, beta=beta), start.clone(), method="update", tol=1e-300,
                      max_steps=steps).x  # fmt: skip
        grew = bool(((end - mean).norm(dim=1) > (start - mean).norm(dim=1)).any())
        lo, hi = (lo, beta) if grew else (beta, hi)
        rows.append({"beta": beta, "grew": grew, "low": lo, "high": hi})
    return rows
