"""The retrieval convention shared by the associative memories.

Every memory (:class:`~memscape.ClassicalHopfield`, :class:`~memscape.DenseAM`,
:class:`~memscape.ModernHopfield`) is an :class:`~memscape.EnergyModel` with an update
map ``update(x, *, mask=None, generator=None, sigma=None, …)`` that never increases the
energy (a Hopfield sweep; a CCCP step, Ramsauer et al. 2020, Theorem 1). Retrieval is
that map iterated to a fixed point by the one descent loop, :func:`memscape.descend`,
with one signature for the three models.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any

import torch

from memscape._validation import check_generator, check_int, check_positive, check_tensor
from memscape.dynamics.descent import DescentResult, check_mask, descend
from memscape.protocol import EnergyModel

Mask = torch.Tensor | None  # bool, one state's shape or the batch's: True entries held fixed
Seed = torch.Generator | None  # draws of stochastic updates


def check_spins(s: Any, name: str, *, ndim: int = 2) -> torch.Tensor:
    """Return ``s`` after checking it is a finite tensor of rank ``ndim`` holding only ±1."""
    s = check_tensor(s, name, ndim=ndim)
    if not bool(((s == 1) | (s == -1)).all()):
        raise ValueError(f"{name} must contain only +1 and -1 entries")
    return s


class AssociativeMemory(EnergyModel):
    """An energy model with an energy-non-increasing update map, retrieved by iterating it.

    Subclasses implement ``update`` and set two class attributes:

    * ``spins``: states are ±1 vectors (checked on every cue);
    * ``default_tol``: the max-abs change of one update below which a state is a fixed
      point (0.5 for ±1 states, which change by 0 or 2; 1e-6 for real states).
    """

    spins: bool = False
    default_tol: float = 1e-6
    update: Callable[..., torch.Tensor]  # update(x, *, mask, generator, sigma, …)

    def retrieve(
        self,
        cue: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        max_steps: int = 100,
        generator: torch.Generator | None = None,
        record: bool = False,
        tol: float | None = None,
        **update_options: Any,
    ) -> DescentResult:
        """Iterate :meth:`update` from ``cue`` to a fixed point or ``max_steps`` updates.

        Args:
            cue: start states ``(B, N)`` (±1 for the binary networks).
            mask: bool ``(N,)`` or ``(B, N)``; ``True`` entries are held fixed at the cue
                during every update (partial-cue retrieval).
            max_steps: update cap (sweeps, for the binary networks).
            generator: seeds stochastic updates (asynchronous visiting orders);
                deterministic updates ignore it.
            record: keep the trajectory (states, energy, score norm per update).
            tol: fixed point when one update changes no entry by more than ``tol``
                (default: the model's ``default_tol``).
            **update_options: the model's own keywords of :meth:`update`, e.g. ``mode``
                (``"async"``/``"sync"``) of :class:`~memscape.ClassicalHopfield`.

        Returns:
            :class:`memscape.DescentResult`; ``converged`` marks fixed points.
        """
        cue = self._check_x(cue, "cue")
        if self.spins:
            cue = check_spins(cue, "cue")
        check_int(max_steps, "max_steps")
        check_mask(mask, cue)  # validate before any work
        if tol is not None:
            check_positive(tol, "tol")
        generator = check_generator(generator)
        own = set(inspect.signature(self.update).parameters) - {"x", "mask", "generator", "sigma"}
        if unknown := sorted(set(update_options) - own):
            raise TypeError(
                f"{type(self).__name__}.retrieve got unknown options {unknown}; "
                f"its update takes {sorted(own) or 'none'}"
            )
        stepper = SimpleNamespace(
            update=partial(self.update, mask=mask, **update_options),
            energy=self.energy,
            score=self.score,
            has_energy=True,
        )
        return descend(
            stepper,
            cue,
            method="update",
            tol=self.default_tol if tol is None else tol,
            max_steps=max_steps,
            mask=mask,
            record=record,
            generator=generator,
        )
