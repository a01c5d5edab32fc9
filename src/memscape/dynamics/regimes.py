"""Dynamical regimes of the exact backward dynamics: speciation and collapse.

Biroli, Bonnaire, de Bortoli & Mézard 2024 ("Dynamical regimes of diffusion models"),
OU process ``x_t = e^{−t}x₀ + √(1 − e^{−2t}) z``. Going backward from noise,
trajectories first commit to a class at the **speciation time** ``t_S = ½ ln Λ``
(:func:`memscape.theory.speciation_time`), measured here by cloning
(:func:`clone_pairs`), then, with the exact empirical score of n points, fall onto
single training points at the **collapse time** (:func:`memscape.theory.collapse_time`),
measured by the posterior weight of the end point (:func:`collapse_crossing`).

An OU trajectory is a σ-space (VE) trajectory rescaled by ``s(t) = e^{−t}``
(``y = e^{t}x`` is a Brownian motion in σ² = e^{2t} − 1), so both measurements run in
σ-space with the samplers of :mod:`memscape.diffusion.samplers`; OU times convert with
:class:`~memscape.diffusion.processes.OU`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from memscape._validation import check_int, check_positive, check_tensor
from memscape.diffusion.empirical import EmpiricalDiffusion
from memscape.diffusion.mixture import GaussianMixtureDiffusion
from memscape.diffusion.processes import OU
from memscape.diffusion.samplers import karras_sigmas, sample_euler_maruyama

__all__ = ["clone_pairs", "collapse_crossing", "fit_crossing"]


def clone_pairs(
    model: GaussianMixtureDiffusion,
    clone_sigmas: torch.Tensor,
    pairs: int,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Fraction of cloned pairs ending in the same class, per cloning noise level.

    Cloning experiment of Biroli et al. 2024 (§2): ``pairs`` backward trajectories
    start from noise (``y ∼ N(0, (σ_max² + 1)I)``, σ_max = 100√Λ, Λ the top eigenvalue
    of the data covariance) and run by Euler–Maruyama with the exact score on an EDM
    grid (ρ = 7, ``steps`` steps, down to σ = 10⁻³) with the cloning levels inserted;
    at each level the state is copied, both copies run to σ_min independently and are
    classified by their most probable component (``sign(mᵀy)`` for the pair ±m).
    The exact value for ±m is :func:`memscape.theory.clone_probability`.

    Args:
        model: the exact mixture model.
        clone_sigmas: cloning noise levels ``(T,)``, strictly decreasing.
        pairs: trajectories (pairs of clones) per level.
        steps: grid steps of the full backward run.
        generator: the only source of randomness.

    Returns:
        ``(T,)`` float64 same-class fractions.
    """
    if not isinstance(model, GaussianMixtureDiffusion):
        raise TypeError(f"model must be a GaussianMixtureDiffusion, got {type(model).__name__}")
    clone_sigmas = check_tensor(clone_sigmas, "clone_sigmas", ndim=1).double()
    if bool((clone_sigmas <= 0).any()) or bool((clone_sigmas[1:] >= clone_sigmas[:-1]).any()):
        raise ValueError("clone_sigmas must be positive and strictly decreasing")
    check_int(pairs, "pairs")
    check_int(steps, "steps", minimum=2)
    lam = float(torch.linalg.eigvalsh(model.covariance().double().cpu())[-1])
    s_max, s_min = 100 * math.sqrt(lam), 1e-3
    if not (s_min < float(clone_sigmas.min()) and float(clone_sigmas.max()) < s_max):
        raise ValueError(f"clone_sigmas must lie in ({s_min}, {s_max}) (σ_min, 100√Λ)")
    grid = karras_sigmas(steps + 1, s_min, s_max)[:-1]  # EDM grid, ρ = 7, without the final 0
    grid = torch.unique(torch.cat([grid, clone_sigmas])).flip(0)
    y = torch.randn(pairs, model.dim, generator=generator, dtype=torch.float64)
    y = y * math.sqrt(s_max**2 + 1)
    out, at = [], 0
    for sc in clone_sigmas.tolist():
        stop = int((grid - sc).abs().argmin())
        if stop > at:
            y = sample_euler_maruyama(model, y, grid[at : stop + 1], generator=generator)
            at = stop
        ends = sample_euler_maruyama(model, torch.cat([y, y]), grid[stop:], generator=generator)
        side = model.posterior(ends, s_min).argmax(1)
        out.append(float((side[:pairs] == side[pairs:]).double().mean()))
    return torch.tensor(out, dtype=torch.float64)


def collapse_crossing(
    data: torch.Tensor,
    trajectories: int,
    threshold: float,
    generator: torch.Generator,
    times: torch.Tensor,
    t_max: float = 5.0,
    iters: int = 14,
) -> tuple[float, torch.Tensor]:
    """Collapse time of the exact empirical model of ``data`` and the mean weight curve.

    For the exact empirical score the backward process is the time reversal of the
    forward one, so (end point, state at t) has the law of (``y_k`` uniform over the
    data, ``y_k`` noised forward to t). Draws ``trajectories`` end points ``y_k`` and
    noise ``z``; at OU time t the σ-space state is ``y_k + σ(t) z`` and the posterior
    weight ``w_k`` (:meth:`EmpiricalDiffusion.posterior`) is that of its end point. The
    mean weight falls from 1 (t → 0) to ~1/n; its crossing of ``threshold`` (t_C,
    Biroli et al. 2024) is found by bisection on ``(0, t_max]`` with the same draws.

    Args:
        data: training points ``(n, d)``.
        trajectories: trajectories B.
        threshold: weight level in (0, 1) defining t_C.
        generator: randomness of the draws.
        times: OU times ``(T,)`` > 0 where the curve is also reported.
        t_max: upper end of the bisection interval ``(0, t_max]``.
        iters: bisection steps.

    Returns:
        ``(t_C, curve)`` with ``curve`` the ``(T,)`` mean weights (t_C is NaN when the
        weight at t_max is still above ``threshold``).
    """
    data = check_tensor(data, "data", ndim=2).double()
    check_int(trajectories, "trajectories")
    check_int(iters, "iters")
    check_positive(t_max, "t_max")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    times = check_tensor(times, "times", ndim=1)
    if bool((times <= 0).any()):
        raise ValueError("times must be > 0")
    model = EmpiricalDiffusion(data)
    ou = OU()
    k = torch.randint(0, data.shape[0], (trajectories,), generator=generator)
    z = torch.randn(trajectories, data.shape[1], generator=generator, dtype=torch.float64)

    def weight(t: float) -> float:
        s = float(ou.sigma(t))
        return float(model.posterior(data[k] + s * z, s, index=k).mean())  # streamed, no B×K

    curve = torch.tensor([weight(float(t)) for t in times], dtype=torch.float64)
    lo, hi = 0.0, t_max
    if weight(hi) > threshold:
        return float("nan"), curve
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if weight(mid) > threshold else (lo, mid)
    return 0.5 * (lo + hi), curve


def fit_crossing(t: np.ndarray, y: np.ndarray, level: float, window: float = 0.55) -> float:
    """Where a measured decreasing curve ``y(t)`` falls through ``level``.

    The first crossing by linear interpolation, then refined by a least-squares line
    through the points within ``window`` of it (several points, so the binomial noise
    of one point moves it less); the interpolated crossing when fewer than 3 points
    are near or the fitted slope is not negative. Used for the speciation time measured
    by cloning (:func:`clone_pairs`).

    Args:
        t: increasing times ``(T,)``.
        y: measured values ``(T,)``.
        level: the level crossed from above.
        window: half-width of the fitting window in t.

    Returns:
        The crossing time, NaN when ``y`` never falls below ``level`` or starts below it.
    """
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError(f"t and y must be 1-D of the same shape, got {t.shape}, {y.shape}")
    below = np.nonzero(y < level)[0]
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    t0 = t[i - 1] + (level - y[i - 1]) * (t[i] - t[i - 1]) / (y[i] - y[i - 1])
    near = np.abs(t - t0) <= window
    if near.sum() < 3:
        return float(t0)
    slope, icept = np.polyfit(t[near], y[near], 1)
    return float((level - icept) / slope) if slope < 0 else float(t0)
