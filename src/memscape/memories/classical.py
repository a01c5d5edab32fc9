"""Classical binary Hopfield network (Hopfield 1982) with three learning rules.

States are ±1 vectors ``s ∈ {−1, +1}ᴺ``; the energy is ``E(s) = −½ sᵀWs`` and a unit
update ``s_i ← sign(Σ_j W_ij s_j)`` (ties keep ``s_i``) never increases it when
``W`` is symmetric with zero diagonal. Capacity of the Hebbian rule:
α_c = K/N ≈ 0.138 (Amit, Gutfreund & Sompolinsky 1985).
"""

from __future__ import annotations

from typing import Any

import torch

from memscape._validation import check_choice, check_generator, check_tensor
from memscape.dynamics.descent import check_mask
from memscape.memories.base import AssociativeMemory, check_spins
from memscape.numeric import serial

__all__ = ["ClassicalHopfield", "overlap"]

RULES = ("hebbian", "pseudoinverse", "storkey")
MODES = ("async", "sync")
_BLOCK = 128  # units per block of an asynchronous sweep


def overlap(s: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """Overlaps ``m_bμ = s_bᵀ ξ_μ / N`` of states with patterns: ``(B, N), (K, N) -> (B, K)``.

    ``m = 1`` is perfect retrieval, ``m = −1`` the reversed pattern (also an attractor).
    """
    s = check_tensor(s, "s", ndim=2)
    patterns = check_tensor(patterns, "patterns", ndim=2)
    if s.shape[1] != patterns.shape[1]:
        raise ValueError(
            f"s must have {patterns.shape[1]} columns like patterns, got shape {tuple(s.shape)}"
        )
    dtype = s.dtype if s.is_floating_point() else torch.get_default_dtype()
    return s.to(dtype) @ patterns.to(dtype).T / s.shape[1]


def random_order(n: int, generator: torch.Generator | None, device: Any) -> torch.Tensor:
    """A random visiting order of ``n`` units (one asynchronous sweep), drawn on the CPU."""
    return torch.randperm(n, generator=check_generator(generator)).to(device)


def check_order(order: Any, n: int, device: Any) -> torch.Tensor:
    """Return ``order`` as a long tensor of distinct unit indices in ``[0, n)``."""
    order = check_tensor(order, "order", ndim=1)
    if order.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"order must be an integer tensor of unit indices, got {order.dtype}")
    order = order.to(device=device, dtype=torch.long)
    if bool((order < 0).any() | (order >= n).any()):
        raise ValueError(f"order must hold unit indices in [0, {n}), got {order.tolist()[:8]}...")
    if order.unique().numel() != order.numel():
        raise ValueError("order must not repeat a unit within one sweep")
    return order


def _storkey(p: torch.Tensor) -> torch.Tensor:
    """Storkey (1997) incremental rule, one pattern at a time, diagonal held at zero.

    ``W ← W + (ξξᵀ − ξ hᵀ − h ξᵀ)/N`` with ``h_ij = Σ_{k≠i,j} W_ik ξ_k``, i.e.
    ``H = (Wξ)1ᵀ − W ∘ ξᵀ`` (the ``k = i`` term vanishes since ``W_ii = 0``).
    """
    n = p.shape[1]
    w = torch.zeros(n, n, dtype=p.dtype, device=p.device)
    for xi in p:
        h = (w @ xi)[:, None] - w * xi[None, :]
        dw = (torch.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
        w += dw
        w.fill_diagonal_(0)
    return w


class ClassicalHopfield(AssociativeMemory):
    """Binary Hopfield network storing ±1 patterns (Hopfield 1982).

    Learning rules (all give a symmetric ``W`` with zero diagonal):

    * ``"hebbian"``: ``W = (1/N) Σ_μ ξ_μ ξ_μᵀ`` (Hopfield 1982).
    * ``"pseudoinverse"`` (projection rule, Personnaz, Guyon & Dreyfus 1986):
      ``W = Ξᵀ(ΞΞᵀ)⁺Ξ``, the orthogonal projector onto the span of the patterns
      (``Ξ`` the ``(K, N)`` pattern matrix), so ``Wξ_μ = ξ_μ``. Its diagonal is then
      removed, which leaves the local field of a stored pattern at
      ``(1 − W_ii) ξ_μi`` with ``W_ii < 1``: every linearly independent stored
      pattern is a fixed point for any K < N, and the energy stays a Lyapunov function.
    * ``"storkey"``: Storkey's (1997) local incremental rule (see ``_storkey``).

    Dynamics: ``mode="async"`` updates units one at a time in a seeded random order
    (``s_i ← sign(Σ_j W_ij s_j)``, ties keep ``s_i``; ``E`` never increases);
    ``mode="sync"`` updates all units at once (may end in a 2-cycle). In
    :meth:`update` and :meth:`retrieve`, ``mask=True`` units are held fixed.

    Args:
        patterns: ``(K, N)`` tensor of ±1 (any dtype; float dtypes are kept for the
            states' default, integers become the default float dtype).
        rule: learning rule, one of ``"hebbian"``, ``"pseudoinverse"``, ``"storkey"``.
        mode: default update mode, ``"async"`` or ``"sync"``.
    """

    spins = True
    default_tol = 0.5  # ±1 states change by 0 or 2: no change is a fixed point

    def __init__(
        self, patterns: torch.Tensor, rule: str = "hebbian", *, mode: str = "async"
    ) -> None:
        patterns = check_spins(patterns, "patterns")
        check_choice(rule, RULES, "rule")
        self.mode = check_choice(mode, MODES, "mode")
        dtype = patterns.dtype if patterns.is_floating_point() else torch.get_default_dtype()
        self.patterns = patterns.to(dtype)
        self.rule = rule
        n = patterns.shape[1]
        p64 = patterns.to(torch.float64)
        if rule == "hebbian":
            # integer couplings Σ ξξᵀ: the dynamics only need sign(h), and integer
            # arithmetic makes ties (h = 0) exact; W = J / N.
            j = p64.T @ p64
            self._scale = 1.0 / n
        elif rule == "pseudoinverse":
            j = p64.T @ torch.linalg.pinv(p64 @ p64.T, hermitian=True) @ p64
            self._scale = 1.0
        else:
            j = _storkey(p64)
            self._scale = 1.0
        j.fill_diagonal_(0)
        self._j = j.to(dtype)
        self.event_shape = (n,)

    def _repr_fields(self) -> dict[str, Any]:
        k, n = self.patterns.shape
        return {"K": k, "N": n, "rule": self.rule, "mode": self.mode, "dtype": self.patterns.dtype}

    @property
    def weights(self) -> torch.Tensor:
        """Coupling matrix ``W`` ``(N, N)``, symmetric with zero diagonal."""
        return self._j * self._scale

    # ------------------------------------------------------------ protocol
    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``E(s) = −½ sᵀWs``: ``(B, N) -> (B,)`` (defined for any real states)."""
        x = self._check_x(x)
        return -0.5 * self._scale * ((x @ self._j.to(x)) * x).sum(1)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form ``−∇E = W s`` (the local fields): ``(B, N) -> (B, N)``."""
        x = self._check_x(x)
        return self._scale * (x @ self._j.to(x))

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Closed-form Hessian ``−W`` for every state: ``(B, N, N)``."""
        x = self._check_x(x)
        return (-self.weights.to(x)).expand(x.shape[0], -1, -1)

    def update(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        sigma: Any = None,
        mode: str | None = None,
        order: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One sweep of the dynamics: ``(B, N) -> (B, N)``.

        Args:
            x: ±1 states ``(B, N)``.
            mask: bool ``(N,)`` or ``(B, N)``; ``True`` units are held fixed (never change).
            generator: draws the visiting order of an asynchronous sweep (one random
                permutation shared by the batch).
            sigma: ignored; accepted because :func:`memscape.descend` passes every
                update map its noise level, and this network has none.
            mode: ``"async"`` or ``"sync"``; defaults to ``self.mode``.
            order: explicit visiting order (distinct unit indices, possibly a subset,
                e.g. ``tensor([i])`` for a single-unit update); async only.
        """
        x = check_spins(self._check_x(x), "x")
        mode = check_choice(self.mode if mode is None else mode, MODES, "mode")
        free = check_mask(mask, x)
        j = self._j.to(x)
        if mode == "sync":
            if order is not None:
                raise ValueError("order applies to mode 'async' only, got mode 'sync'")
            h = x @ j
            flip = h * x < 0
            if free is not None:
                flip &= ~free
            return torch.where(flip, -x, x)
        n = x.shape[1]
        order = (
            random_order(n, generator, x.device)
            if order is None
            else check_order(order, n, x.device)
        )
        return _async_sweep(x, j, order, None if free is None else ~free)


def _async_sweep(
    x: torch.Tensor, j: torch.Tensor, order: torch.Tensor, free: torch.Tensor | None
) -> torch.Tensor:
    """Exact sequential sweep over ``order``, vectorized over the batch.

    Units are taken in blocks; inside a block only flips are sequential: each pass
    finds, per state, the first unit after its cursor whose field opposes it, flips
    it and corrects the block's fields (``h ← h + 2 s_new W_j·``), so a pass count is
    the largest number of flips in one state. Fields outside the block are then
    updated with one matmul for the states that changed. Only the initial fields
    ``h = s J`` use intra-op threads (see :func:`memscape.numeric.serial`).
    """
    s = x.clone()
    h = s @ j
    b = s.shape[0]
    rows = torch.arange(b, device=s.device)
    with serial(s.device):
        for start in range(0, order.numel(), _BLOCK):
            p = order[start : start + _BLOCK]
            jp = j[p]  # (L, N)
            jpp = jp[:, p]  # (L, L)
            sp, hp = s[:, p], h[:, p]
            sp0 = sp.clone()
            movable = None if free is None else free[:, p]
            cursor = torch.zeros(b, dtype=torch.long, device=s.device)
            _flip_block(sp, hp, jpp, movable, cursor, rows)
            delta = sp - sp0
            changed = delta.ne(0).any(1).nonzero().squeeze(1)
            if 2 * changed.numel() > b:
                h.addmm_(delta, jp)
            elif changed.numel():
                h.index_add_(0, changed, delta[changed] @ jp)
            s[:, p] = sp
    return s


def _flip_block(
    sp: torch.Tensor,
    hp: torch.Tensor,
    jpp: torch.Tensor,
    movable: torch.Tensor | None,
    cursor: torch.Tensor,
    rows: torch.Tensor,
) -> None:
    """Sequential flips inside one block, in place on states ``sp`` and fields ``hp`` ``(B, L)``."""
    pos = torch.arange(sp.shape[1], device=sp.device)
    while True:
        flip = (hp * sp < 0) & (pos >= cursor[:, None])
        if movable is not None:
            flip &= movable
        has = flip.any(1)
        if not bool(has.any()):
            return
        r = rows[has]
        first = flip[r].to(torch.int8).argmax(1)
        new = -sp[r, first]
        sp[r, first] = new
        hp[r] += 2 * new[:, None] * jpp[first]
        cursor[r] = first + 1
