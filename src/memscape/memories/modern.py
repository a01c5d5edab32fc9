"""Modern Hopfield network (Ramsauer et al. 2020, "Hopfield Networks is All You Need")."""

from __future__ import annotations

from typing import Any

import torch

from memscape._validation import check_positive, check_tensor
from memscape.dynamics.descent import DescentResult, check_mask, descend
from memscape.kernels import DEFAULT_CHUNK, streamed_softmax
from memscape.protocol import EnergyModel
from memscape.theory import hopfield_retrieval_bound

__all__ = ["ModernHopfield"]


class ModernHopfield(EnergyModel):
    """Continuous modern Hopfield network with inverse temperature β.

    Energy (Ramsauer et al. 2020, eq. 2), for memories ``X = (x_1..x_K)`` and
    state ``ξ``, with optional per-memory bias ``c_μ`` (zero in the paper)::

        E(ξ) = −β⁻¹ log Σ_μ exp(β (x_μᵀξ + c_μ)) + ½ ξᵀξ + β⁻¹ log K + ½ M²,
        M = max_μ ‖x_μ‖.

    Update (eq. 3, the CCCP step; never increases E): ``ξ ← X softmax(β(Xᵀξ + c))``.

    Args:
        memories: stored patterns ``(K, d)``, floating point.
        beta: inverse temperature β > 0.
        bias: optional ``(K,)`` per-memory offsets ``c_μ``.  With
            ``c_μ = −‖x_μ‖²/2`` and ``β = 1/σ²`` the energy is the exact diffusion
            energy of the memories (see :class:`memscape.EmpiricalDiffusion`).
        chunk_size: memories per chunk of the streamed softmax.
    """

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

    def _repr_fields(self) -> dict[str, Any]:
        k, d = self.memories.shape
        fields: dict[str, Any] = {"K": k, "d": d, "beta": self.beta}
        if self.bias is not None:
            fields["bias"] = self.bias
        return {**fields, "dtype": self.memories.dtype}

    # ------------------------------------------------------------ internals
    def _stats(self, x: torch.Tensor, covariance: bool = False):
        x = self._check_x(x)
        mem = self.memories.to(x)
        beta = torch.full((x.shape[0],), self.beta, dtype=x.dtype, device=x.device)
        bias = None if self.bias is None else self.bias.to(x)
        return streamed_softmax(
            x, mem, beta, bias, chunk_size=self.chunk_size, covariance=covariance
        )

    # ------------------------------------------------------------ protocol
    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Ramsauer et al. eq. 2 energy: ``(B, d) -> (B,)``."""
        st = self._stats(x)
        k = self.memories.shape[0]
        big_m2 = self.memories.to(x).pow(2).sum(1).max()
        return (
            -st.lse / self.beta
            + 0.5 * x.pow(2).sum(1)
            + torch.log(torch.tensor(float(k), dtype=x.dtype)) / self.beta
            + 0.5 * big_m2
        )

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form score ``−∇E = X softmax(β(Xᵀξ + c)) − ξ``: ``(B, d) -> (B, d)``."""
        return self.update(x) - x

    def update(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sigma: Any = None,
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
        if mask is None:
            return self._stats(x).mean
        x = self._check_x(x)
        held = check_mask(mask, x)
        assert held is not None
        return torch.where(held, x, self._stats(x).mean)

    def retrieve(
        self,
        cue: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        max_steps: int = 100,
        generator: torch.Generator | None = None,
        record: bool = False,
        tol: float = 1e-6,
    ) -> DescentResult:
        """Iterate CCCP updates from ``cue`` until the max-abs change is below ``tol``.

        Runs through :func:`memscape.descend` (``method="update"``); the energy never
        increases along the iterates (Ramsauer et al. 2020, Theorem 1).

        Args:
            cue: start states (queries) ``(B, d)``.
            mask: bool ``(d,)`` or ``(B, d)``; ``True`` entries are held fixed at the cue
                (partial-cue retrieval).
            max_steps: update cap.
            generator: ignored (the update is deterministic); shared calling convention.
            record: keep the trajectory (states, energy, score norm per update).
            tol: convergence tolerance on the max-abs change of one update.

        Returns:
            :class:`memscape.DescentResult`.
        """
        cue = self._check_x(cue, "cue")
        return descend(
            self,
            cue,
            method="update",
            tol=tol,
            max_steps=max_steps,
            mask=mask,
            record=record,
            generator=generator,
        )

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian ``I − β Cov_p(X)`` with ``p`` the softmax weights: ``(B, d, d)``."""
        cov = self._stats(x, covariance=True).cov
        assert cov is not None
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        return eye - self.beta * cov

    # ------------------------------------------------------------ diagnostics
    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax weights ``softmax(β(Xᵀξ + c))`` over memories: ``(B, K)`` (materialized)."""
        x = self._check_x(x)
        logits = x @ self.memories.to(x).T
        if self.bias is not None:
            logits = logits + self.bias.to(x)
        return torch.softmax(self.beta * logits, dim=1)

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
