"""Fixed-point census of discrete (±1) models such as the classical Hopfield network.

A state ``s ∈ {−1, +1}ᴺ`` is a fixed point of the asynchronous sign dynamics when no
single spin flip lowers ``E`` (ties kept). Starts (Amit, Gutfreund & Sompolinsky 1985):
the stored patterns, their negatives (also attractors, ``E(−s) = E(s)``), symmetric
3-pattern mixtures ``sign(±ξ_a ± ξ_b ± ξ_c)`` and uniformly random states. Each start
is run to a fixed point by :func:`memscape.descend` with the model's ``update``;
distinct endpoints are checked by their ``N`` single-flip energy changes and
labelled ``memory`` (a pattern or its negative), ``mixture`` or ``spurious``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from memscape.dynamics import descend
from memscape.landscape.basins import wilson_interval
from memscape.landscape.labels import default_tolerance, label_points
from memscape.protocol import EnergyModel

__all__ = ["discrete_fixed_points", "flip_energy_changes"]

BINARY_TOL_FRACTION = 0.45


def flip_energy_changes(model: EnergyModel, s: torch.Tensor, chunk: int = 1 << 22) -> torch.Tensor:
    """``ΔE_bi = E(s_b with spin i flipped) − E(s_b)`` for ±1 states ``(B, N)``: ``(B, N)``."""
    b, n = s.shape
    e0 = model.energy(s)
    out = torch.empty(b, n, dtype=e0.dtype, device=s.device)
    rows = max(1, chunk // (n * n))
    eye = torch.eye(n, dtype=s.dtype, device=s.device)
    for i in range(0, b, rows):
        blk = s[i : i + rows]
        flipped = blk[:, None, :] * (1 - 2 * eye)  # (r, N, N): row j has spin j flipped
        e = model.energy(flipped.reshape(-1, n)).reshape(blk.shape[0], n)
        out[i : i + rows] = e - e0[i : i + rows, None]
    return out


def discrete_fixed_points(
    model: Any,
    *,
    n_starts: int = 1000,
    starts: torch.Tensor | None = None,
    patterns: torch.Tensor | None = None,
    n_mixtures: int = 500,
    label_tol: float | None = None,
    max_steps: int = 200,
    generator: torch.Generator | None = None,
) -> Any:
    """Census of the fixed points of a discrete ±1 model (called by :func:`critical_points`).

    Args:
        model: defines ``energy`` and ``update(x, sigma=..., generator=...)`` on ``(B, N)`` ±1.
        n_starts: uniformly random ±1 starts (their endpoints give basin fractions).
        starts: explicit ±1 starts used instead of the random ones.
        patterns: ``(K, N)`` stored patterns (seeds and labels).
        n_mixtures: random 3-pattern mixtures ``sign(±ξ_a ± ξ_b ± ξ_c)`` as starts.
        label_tol: Euclidean tolerance of labels. For ±1 vectors a distance ``r`` is
            ``r²/4`` flipped spins; the default, 0.45 × the median nearest-neighbour
            distance of the patterns, is about 10 % of the spins for random patterns
            (whose mutual distance is ≈ √(2N)), well below the 25 % separating a
            3-mixture state from each of its patterns.
        max_steps: sweep cap per start.
        generator: ``torch.Generator`` for the random starts and the sweep orders.

    Returns:
        :class:`CriticalPoints` with ``discrete = True``. ``morse_index`` counts the
        energy-lowering single flips (0 at a fixed point), ``hyperbolicity`` is the
        smallest single-flip energy increase (the stability margin).
    """
    from memscape.landscape.critical import MAX_TABLE_COORDS, CriticalPoints

    n = int(model.event_shape[0]) if getattr(model, "event_shape", ()) else None
    if patterns is not None:
        patterns = patterns.reshape(patterns.shape[0], -1)
        n = patterns.shape[1]
        dtype = patterns.dtype if patterns.is_floating_point() else torch.float64
    else:
        dtype = torch.float64
    if n is None:
        raise ValueError("a discrete model needs event_shape or patterns to set N")
    if starts is None:
        rand = 2.0 * torch.randint(0, 2, (n_starts, n), generator=generator).to(dtype) - 1
    else:
        rand = starts.reshape(starts.shape[0], -1).to(dtype)
    parts, src = [rand], ["random"] * rand.shape[0]
    if patterns is not None:
        pats = patterns.to(dtype)
        parts += [pats, -pats]
        src += ["pattern"] * pats.shape[0] + ["negative"] * pats.shape[0]
        k = pats.shape[0]
        if k >= 3 and n_mixtures > 0:
            idx = torch.stack(
                [torch.randperm(k, generator=generator)[:3] for _ in range(n_mixtures)]
            )
            sg = 2.0 * torch.randint(0, 2, (n_mixtures, 3, 1), generator=generator).to(dtype) - 1
            mix = torch.sign((pats[idx] * sg).sum(1))
            parts.append(mix)
            src += ["mixture3"] * n_mixtures
    x0 = torch.cat(parts)
    res = descend(model, x0, method="update", tol=0.5, max_steps=max_steps, generator=generator)
    uniq, inv = torch.unique(res.x, dim=0, return_inverse=True)
    first = torch.full((uniq.shape[0],), x0.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inv, torch.arange(x0.shape[0]), reduce="amin")
    order = first.argsort()
    uniq, first = uniq[order], first[order]
    relabel = torch.empty_like(order)
    relabel[order] = torch.arange(order.numel())
    inv = relabel[inv]
    dE = flip_energy_changes(model, uniq)
    index = (dE < 0).sum(1)
    conv = index == 0
    n_rand = rand.shape[0]
    counts = torch.bincount(inv[:n_rand], minlength=uniq.shape[0])
    lo, hi = wilson_interval(counts, n_rand)
    if label_tol is None:
        label_tol = default_tolerance(
            None if patterns is None else patterns.to(dtype), fraction=BINARY_TOL_FRACTION
        )
    ltol = label_tol
    labels = label_points(
        uniq, torch.where(conv, index, -1), n,
        None if patterns is None else patterns.to(dtype), ltol, binary=True,
    )  # fmt: skip
    cols: dict[str, Any] = {}
    if n <= MAX_TABLE_COORDS:
        cols.update({f"x{j}": uniq[:, j].numpy() for j in range(n)})
    else:
        cols["x"] = list(uniq.numpy())
    nan = torch.full((uniq.shape[0],), float("nan"), dtype=torch.float64)
    is_fp = conv.to(torch.bool)
    cols.update(
        energy=model.energy(uniq).to(torch.float64).numpy(),
        score_norm=nan.numpy(),
        morse_index=torch.where(is_fp, 0, -1).numpy(),
        n_lowering_flips=index.numpy(),
        hyperbolicity=dE.amin(1).clamp_min(0).to(torch.float64).numpy(),
        asymmetry=nan.numpy(),
        converged=is_fp.numpy(),
    )
    cols.update(labels)
    cols["kind"] = ["fixed_point" if c else "unconverged" for c in is_fp.tolist()]
    cols.update(
        basin_count=counts.numpy(),
        basin_fraction=(counts.to(torch.float64) / n_rand).numpy(),
        basin_ci_low=lo.numpy(),
        basin_ci_high=hi.numpy(),
        source=[src[int(i)] for i in first],
    )
    info = {"n_starts": x0.shape[0], "n_random_starts": n_rand, "label_tol": ltol}
    ev = torch.zeros(uniq.shape[0], 0, dtype=torch.float64)
    return CriticalPoints(uniq, pd.DataFrame(cols), ev, None, True, info)
