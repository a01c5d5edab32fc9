"""One descent loop for every model: retrieval in an AM is descent on its energy.

An update map (``model.update``: a Hopfield sweep, a CCCP step, one exact
denoising step) or gradient flow ``x ← x + η s(x, σ)`` is iterated until the
change (or the score norm) falls below a tolerance, with an optional ``mask``
holding the known entries of a cue fixed (``True`` = held at its cue value; partial-cue
retrieval, inpainting).

Update maps are called as ``model.update(x, sigma=sigma, generator=generator)``: every
memscape model's ``update`` takes these two keywords (models without a noise level
ignore ``sigma``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor
from memscape.protocol import score_of

__all__ = ["DescentResult", "descend"]


@dataclass
class DescentResult:
    """Outcome of :func:`descend`.

    Attributes:
        x: final states ``(B, *event_shape)``.
        converged: ``(B,)`` bool, change (or score norm) below ``tol`` at the end.
        steps: ``(B,)`` long, the step at which each sample converged (cap if never).
        trajectory: when recorded, dict with ``"x"`` ``(T+1, B, ...)``, ``"energy"``
            ``(T+1, B)`` (NaN for score-only models) and ``"score_norm"`` ``(T+1, B)``.
    """

    x: torch.Tensor
    converged: torch.Tensor
    steps: torch.Tensor
    trajectory: dict[str, torch.Tensor] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line: state shape and dtype, converged fraction, step range, trajectory length."""
        b = self.converged.numel()
        n_conv = int(self.converged.sum())
        lo, hi = (int(self.steps.min()), int(self.steps.max())) if b else (0, 0)
        steps = str(lo) if lo == hi else f"{lo}..{hi}"
        dtype = str(self.x.dtype).removeprefix("torch.")
        text = (
            f"DescentResult(x={tuple(self.x.shape)} {dtype}, converged={n_conv}/{b}, steps={steps}"
        )
        if self.trajectory:
            text += f", trajectory={len(self.trajectory['x'])} states"
        return text + ")"


def check_mask(mask: Any, x: torch.Tensor, name: str = "mask") -> torch.Tensor | None:
    """Expand an optional bool mask of shape ``x.shape[1:]`` (one state) or ``x.shape`` to ``x``.

    ``True`` marks an entry held fixed (never updated); ``None`` means every entry is free.
    Raises ``TypeError`` for a non-bool mask and ``ValueError`` for a wrong shape.
    """
    if mask is None:
        return None
    mask = check_tensor(mask, name)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got {mask.dtype}")
    if tuple(mask.shape) not in (tuple(x.shape), tuple(x.shape[1:])):
        raise ValueError(
            f"{name} must have shape {tuple(x.shape[1:])} or {tuple(x.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(x.device).expand_as(x)


def _energy_or_nan(model: Any, x: torch.Tensor, sigma: Any) -> torch.Tensor:
    if getattr(model, "has_energy", False) and hasattr(model, "energy"):
        return model.energy(x, sigma).detach()
    return torch.full((x.shape[0],), torch.nan, dtype=torch.float64)


def descend(
    model: Any,
    x: torch.Tensor,
    sigma: Any = None,
    *,
    method: str = "auto",
    step_size: float = 0.1,
    tol: float = 1e-6,
    criterion: str = "change",
    max_steps: int = 1000,
    mask: torch.Tensor | None = None,
    record: bool = False,
    generator: torch.Generator | None = None,
) -> DescentResult:
    """Drive states to fixed points of ``model`` by an update map or gradient flow.

    Args:
        model: any object following the protocol (``update``, ``score`` or ``denoise``).
        x: start states ``(B, *event_shape)``.
        sigma: noise level for noise-conditioned models (float or ``(B,)``).
        method: ``"update"`` (iterate ``model.update``), ``"gradient"`` (explicit
            Euler on ``dx/dt = s(x, σ)`` with ``step_size``), or ``"auto"`` (update
            when the model has one).
        step_size: gradient-flow step η > 0.
        tol: stop a sample when ``criterion`` falls below ``tol``.
        criterion: ``"change"`` (max-abs change of a step) or ``"score"`` (score L2 norm).
        max_steps: step cap ≥ 1.
        mask: bool, shape of one state or of ``x``; ``True`` entries are held fixed at
            their values in ``x`` (the known part of a cue), ``False`` entries evolve.
        record: keep the trajectory (states, energy, score norm per step).
        generator: passed to stochastic update maps (asynchronous Hopfield order).

    The update map is called as ``model.update(x, sigma=sigma, generator=generator)``.

    Returns:
        :class:`DescentResult`.
    """
    x = check_tensor(x, "x", min_ndim=1)
    check_choice(method, ("auto", "update", "gradient"), "method")
    check_choice(criterion, ("change", "score"), "criterion")
    check_positive(step_size, "step_size")
    check_positive(tol, "tol")
    check_int(max_steps, "max_steps")
    if method == "auto":
        method = "update" if callable(getattr(model, "update", None)) else "gradient"
    if method == "update" and not callable(getattr(model, "update", None)):
        raise ValueError(f"method 'update' needs model.update(); {type(model).__name__} has none")
    held = check_mask(mask, x)
    cue = x.detach().clone()
    b = x.shape[0]
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    steps = torch.full((b,), max_steps, dtype=torch.long, device=x.device)
    traj: dict[str, list[torch.Tensor]] = {"x": [], "energy": [], "score_norm": []}

    def snapshot(z: torch.Tensor) -> None:
        traj["x"].append(z.detach().clone())
        traj["energy"].append(_energy_or_nan(model, z, sigma).cpu())
        sn = score_of(model, z, sigma).reshape(b, -1).norm(dim=1)
        traj["score_norm"].append(sn.detach().cpu())

    if record:
        snapshot(x)
    for t in range(max_steps):
        if method == "update":
            new = model.update(x, sigma=sigma, generator=generator)
        else:
            new = x + step_size * score_of(model, x, sigma)
        if held is not None:
            new = torch.where(held, cue, new)
        new = torch.where(active.reshape(-1, *([1] * (x.ndim - 1))), new, x).detach()
        if criterion == "change":
            err = (new - x).reshape(b, -1).abs().amax(dim=1).to(torch.float64)
        else:
            err = score_of(model, new, sigma).reshape(b, -1).norm(dim=1).to(torch.float64)
        x = new
        if record:
            snapshot(x)
        done = active & (err < tol)
        steps[done] = t + 1
        active &= ~done
        if not bool(active.any()):
            break
    trajectory = {k: torch.stack(v) for k, v in traj.items()} if record else {}
    return DescentResult(x=x, converged=~active, steps=steps, trajectory=trajectory)
