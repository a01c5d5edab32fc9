"""Dense associative memory of Krotov & Hopfield 2016 (exponential F: Demircigil et al. 2017)."""

from __future__ import annotations

from typing import Any

import torch

from memscape._validation import check_choice, check_int
from memscape.dynamics.descent import check_mask
from memscape.kernels import SoftmaxStats, streamed_softmax
from memscape.memories.base import AssociativeMemory, check_spins
from memscape.memories.classical import (
    check_order,
    random_order,
)
from memscape.numeric import serial

__all__ = ["DenseAM"]

INTERACTIONS = ("polynomial", "rectified_polynomial", "exponential")
MAX_POWER = 1000  # 2^-n, the smallest normalized leading gain term, stays a normal float64


class DenseAM(AssociativeMemory):
    """Binary dense associative memory with interaction function ``F``.

    Energy (Krotov & Hopfield 2016, eq. 1), for ±1 patterns ``ξ_μ`` and state ``σ``::

        E(σ) = −Σ_μ F(ξ_μ · σ),
        F(x) = xⁿ                  ("polynomial"),
        F(x) = max(x, 0)ⁿ          ("rectified_polynomial"),
        F(x) = exp(x)              ("exponential", Demircigil et al. 2017).

    Both are reported in a form that cannot overflow, with the same minima and the
    same update rule (order-preserving transforms of eq. 1):

    * polynomial: normalized by ``Nⁿ``, ``E(σ) = −Σ_μ F(ξ_μ·σ / N)``, so every term
      lies in ``[−1, 1]`` and ``|E| ≤ K`` (``(ξ·σ)ⁿ`` itself overflows float32 at
      N = 784 once n ≥ 14, and float64 once n ≥ 107);
    * exponential: in log form ``E(σ) = −log Σ_μ exp(ξ_μ · σ)`` (= −log(−E_Demircigil)),
      a log-sum-exp, because ``exp(ξ·σ)`` overflows float64 once N > 709.

    Energies and scores are computed in at least float32. Capacity grows like
    ``N^(n−1)`` (polynomial) and exponentially in N (exponential).

    Update (Krotov & Hopfield 2016, eq. 3), one unit at a time in a seeded random order::

        σ_i ← sign(Σ_μ [F(ξ_μi + Σ_{j≠i} ξ_μj σ_j) − F(−ξ_μi + Σ_{j≠i} ξ_μj σ_j)]),

    i.e. ``σ_i`` takes the value of lower energy (ties keep ``σ_i``), so ``E`` never
    increases. The overlaps are kept in float64 (exact integers) and updated after
    each flip; the flip gain is computed in a normalized form with the same sign:
    ``Σ_μ ξ_μi exp(r_μ − max r)`` (exponential) and, for the polynomials, the bracket
    with every argument divided by the power of two ``2^e ≥ max_μ |r_μ| + 1`` (an exact
    scaling, so integer ties stay exact ties), which keeps the largest term in
    ``[2⁻ⁿ, 1]``: no overflow for any n, no underflow of it for ``n ≤ 1000``.

    Args:
        patterns: ``(K, N)`` tensor of ±1.
        interaction: ``"polynomial"``, ``"rectified_polynomial"`` or ``"exponential"``.
        n: power of the polynomial interactions (integer, ``2 ≤ n ≤ 1000``; n = 2 is the
            classical Hopfield network); ignored for ``"exponential"``.
    """

    spins = True
    default_tol = 0.5  # ±1 states change by 0 or 2: no change is a fixed point

    def __init__(self, patterns: torch.Tensor, interaction: str = "polynomial", n: int = 3) -> None:
        patterns = check_spins(patterns, "patterns")
        self.interaction = check_choice(interaction, INTERACTIONS, "interaction")
        self.n = check_int(n, "n", minimum=2)
        if self.interaction != "exponential" and self.n > MAX_POWER:
            raise ValueError(
                f"n must be <= {MAX_POWER} for the polynomial interactions (the normalized "
                f"flip gain 2^-n would underflow float64), got {self.n}"
            )
        dtype = patterns.dtype if patterns.is_floating_point() else torch.get_default_dtype()
        self.patterns = patterns.to(dtype)
        self.event_shape = (patterns.shape[1],)

    def _repr_fields(self) -> dict[str, Any]:
        k, n = self.patterns.shape
        fields: dict[str, Any] = {"K": k, "N": n, "interaction": self.interaction}
        if self.interaction != "exponential":
            fields["n"] = self.n
        return {**fields, "dtype": self.patterns.dtype}

    def _work(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` checked, in at least float32 (integer ±1 states take the patterns' dtype)."""
        x = self._check_x(x)
        dtype = x.dtype if x.is_floating_point() else self.patterns.dtype
        return x.to(torch.promote_types(dtype, torch.float32))

    def _normalized_overlaps(self, x: torch.Tensor) -> torch.Tensor:
        """``ξ_μ·σ / N`` (clamped at 0 for the rectified polynomial): ``(B, K)``."""
        m = x @ self.patterns.to(x).T / self.event_shape[0]
        return m.clamp_min(0) if self.interaction == "rectified_polynomial" else m

    def _streamed(self, x: torch.Tensor) -> SoftmaxStats:
        """Softmax over the overlaps ``ξ_μ·σ`` (β = 1, no bias), streamed over the patterns."""
        return streamed_softmax(x, self.patterns.to(x), x.new_ones(x.shape[0]))

    # ------------------------------------------------------------ protocol
    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``E = −Σ_μ F(ξ_μ·σ / N)`` (``−log Σ_μ exp(ξ_μ·σ)`` for exponential): ``(B, N) -> (B,)``.

        Any real states; the result is in ``x``'s dtype (at least float32).
        """
        w = self._work(x)
        if self.interaction == "exponential":  # −log Σ_μ exp(ξ_μ·σ): the streamed kernel's lse
            return -self._streamed(w).lse
        return -self._normalized_overlaps(w).pow(self.n).sum(1)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form ``−∇E``: ``(B, N) -> (B, N)``.

        ``(n/N) Σ_μ F'(ξ_μ·σ / N) ξ_μ`` for the polynomials, ``Σ_μ softmax_μ(ξ·σ) ξ_μ``
        (the streamed kernel's mean) for exponential.
        """
        w = self._work(x)
        if self.interaction == "exponential":
            return self._streamed(w).mean
        m = self._normalized_overlaps(w)
        return (self.n / self.event_shape[0]) * m.pow(self.n - 1) @ self.patterns.to(w)

    def update(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sigma: Any = None,
        order: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One asynchronous sweep of the energy-lowering unit update: ``(B, N) -> (B, N)``.

        Args:
            x: ±1 states ``(B, N)``.
            mask: bool ``(N,)`` or ``(B, N)``; ``True`` units are held fixed (never change).
            generator: draws the visiting order (one permutation shared by the batch).
            sigma: ignored; accepted because :func:`memscape.descend` passes every
                update map its noise level, and this network has none.
            order: explicit visiting order (distinct unit indices, possibly a subset).
        """
        x = check_spins(self._check_x(x), "x")
        free = check_mask(mask, x)
        n_units = x.shape[1]
        order = (
            random_order(n_units, generator, x.device)
            if order is None
            else check_order(order, n_units, x.device)
        )
        s = x.to(torch.float64, copy=True)  # never write into the caller's tensor
        pt = self.patterns.to(s).T.contiguous()  # (N, K)
        m = s @ pt
        with serial(s.device):
            for i in order.tolist():
                xi, si = pt[i], s[:, i]
                r = m - si[:, None] * xi
                g = self._gain(r, xi)
                flip = g * si < 0
                if free is not None:
                    flip &= ~free[:, i]
                new = torch.where(flip, -si, si)
                s[:, i] = new
                m = r + new[:, None] * xi
        return s.to(x.dtype)

    def _gain(self, r: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """A positive multiple of ``Σ_μ F(r_μ + ξ_μi) − F(r_μ − ξ_μi)``: ``(B,)``, float64.

        ``r`` are the integer overlaps without unit i ``(B, K)``, ``xi`` its pattern bits ``(K,)``.
        """
        if self.interaction == "exponential":
            # exp(r+ξ) − exp(r−ξ) = 2 sinh(1) ξ exp(r) for ξ = ±1; scale by exp(−max r).
            return (xi * torch.exp(r - r.amax(dim=1, keepdim=True))).sum(1)
        # divide every argument by 2^e ≥ max |r ± ξ| = max |r| + 1 (exact: a power of two)
        _, e = torch.frexp(r.abs().amax(dim=1, keepdim=True) + 1)
        scale = torch.ldexp(torch.ones_like(r[:, :1]), -e)
        up, down = (r + xi) * scale, (r - xi) * scale
        if self.interaction == "rectified_polynomial":
            up, down = up.clamp_min(0), down.clamp_min(0)
        return (up.pow(self.n) - down.pow(self.n)).sum(1)
