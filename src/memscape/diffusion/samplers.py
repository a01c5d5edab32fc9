"""Samplers: pure functions over an explicit decreasing σ array kept on the CPU.

Every sampler takes any object with ``denoise(x, sigma)`` (a trained
:class:`ScoreModel`, :class:`EmpiricalDiffusion`, or a user's object), start states
``x ~ N(0, σ_0² I)`` and ``sigmas = [σ_0 > σ_1 > … > σ_{N−1} > σ_N = 0]``, and integrates
the probability-flow ODE (Karras et al. 2022, eq. 4 with σ(t) = t, s(t) = 1)

    dx/dσ = (x − D(x, σ)) / σ

or the reverse SDE. Every sampler returns the final state ``x`` at σ_N, the shape of
its input. Intermediate states go to ``callback``, called after every step ``i`` (from
σ_i to σ_{i+1}) with a dict

    i           the step, 0 … N − 1
    sigma       σ_i (float)
    sigma_next  σ_{i+1} (float)
    x_prev      the state at σ_i, before the step
    x           the state at σ_{i+1}, after the step
    denoised    D(x̂, σ̂) evaluated in the step (``None`` where there is none)

A :class:`TrajectoryRecorder` is such a callback that keeps the states::

    rec = TrajectoryRecorder()
    x0 = sample_heun(model, x, sigmas, callback=rec)
    rec.trajectory  # (N + 1, B, *event_shape); rec.trajectory[-1] equals x0

``sample_ddim`` is :func:`sample_euler`: deterministic DDIM (η = 0) is the Euler step of
the probability-flow ODE in σ-space (Song, Meng & Ermon 2021, eq. 12–14; Karras et al.
2022, §3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor

# isort: split
from memscape._validation import check_device, check_dtype, check_generator
from memscape.protocol import Denoiser

__all__ = [
    "TrajectoryRecorder",
    "get_sigmas",
    "karras_sigmas",
    "linear_sigmas",
    "log_sigmas",
    "sample",
    "sample_ddim",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_ode",
]

Callback = Callable[[dict[str, Any]], None] | None
"""A sampler callback: called after every step with the dict of the module docstring."""

Tensor = torch.Tensor
Generator = torch.Generator | None
"""A sampler's noise source: a ``torch.Generator``, or ``None`` for torch's global one."""


# ------------------------------------------------------------------ schedules
def _check_range(n: int, sigma_min: float, sigma_max: float) -> None:
    check_int(n, "n")
    check_positive(sigma_min, "sigma_min")
    check_positive(sigma_max, "sigma_max")
    if sigma_max <= sigma_min:
        raise ValueError(f"sigma_max ({sigma_max}) must exceed sigma_min ({sigma_min})")


def _append_zero(s: torch.Tensor) -> torch.Tensor:
    return torch.cat([s, s.new_zeros(1)])


def karras_sigmas(
    n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
) -> torch.Tensor:
    """EDM schedule (Karras et al. 2022, eq. 5), then 0: ``(n + 1,)`` float64 on the CPU.

    ``σ_i = (σ_max^{1/ρ} + i/(n−1) (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`` for ``i < n``, ``σ_n = 0``.
    """
    _check_range(n, sigma_min, sigma_max)
    check_positive(rho, "rho")
    ramp = (
        torch.linspace(0, 1, n, dtype=torch.float64)
        if n > 1
        else torch.zeros(1, dtype=torch.float64)
    )
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def linear_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """``n`` σ's evenly spaced from σ_max to σ_min, then 0: ``(n + 1,)`` float64."""
    _check_range(n, sigma_min, sigma_max)
    return _append_zero(torch.linspace(sigma_max, sigma_min, n, dtype=torch.float64))


def log_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """``n`` σ's evenly spaced in ln σ from σ_max to σ_min, then 0: ``(n + 1,)`` float64."""
    _check_range(n, sigma_min, sigma_max)
    return _append_zero(
        torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n, dtype=torch.float64)
    )


_SCHEDULES = {"karras": karras_sigmas, "linear": linear_sigmas, "log": log_sigmas}


def get_sigmas(
    schedule: str, n: int, sigma_min: float, sigma_max: float, **kw: Any
) -> torch.Tensor:
    """Schedule by name: ``"karras"`` (takes ``rho``), ``"linear"`` or ``"log"``."""
    return _SCHEDULES[check_choice(schedule, _SCHEDULES, "schedule")](n, sigma_min, sigma_max, **kw)


# ------------------------------------------------------------------ helpers
def _check(model: Denoiser, x: torch.Tensor, sigmas: Any) -> list[float]:
    if not callable(getattr(model, "denoise", None)):
        raise TypeError(f"model must define denoise(x, sigma), got {type(model).__name__}")
    check_tensor(x, "x", min_ndim=1)
    s = check_tensor(torch.as_tensor(sigmas, dtype=torch.float64), "sigmas", ndim=1)
    if s.numel() < 2 or bool((s[:-1] <= 0).any()) or bool((s[1:] >= s[:-1]).any()) or s[-1] < 0:
        raise ValueError(
            "sigmas must be a strictly decreasing 1-D array of >= 2 values, positive except "
            f"possibly a final 0, got {s.tolist()[:6]}..."
        )
    return s.tolist()


class TrajectoryRecorder:
    """A sampler ``callback`` that keeps every state: ``trajectory`` ``(N + 1, B, *event_shape)``.

    ``trajectory[0]`` is the start state at σ_0 and ``trajectory[i + 1]`` the state after
    step ``i`` (at σ_{i+1}), so ``trajectory[-1]`` equals what the sampler returned;
    ``sigmas`` lists the matching N + 1 noise levels. A step with ``i == 0`` starts a new
    trajectory, so one recorder can be reused across runs (it keeps the latest).

    Args:
        callback: another callback to forward every step's dict to (optional).
        device: where to keep the states (default: where the sampler runs); e.g.
            ``"cpu"`` to keep a long GPU trajectory off the accelerator.

    Example::

        rec = TrajectoryRecorder()
        x0 = sample_heun(model, x, karras_sigmas(18), callback=rec)
        rec.trajectory.shape  # (19, *x.shape)
    """

    def __init__(
        self, callback: Callback = None, *, device: str | torch.device | None = None
    ) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self.callback = callback
        self.device = torch.device(device) if device is not None else None
        self.states: list[torch.Tensor] = []
        self.sigmas: list[float] = []

    def _keep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        return x.to(self.device, copy=True) if self.device is not None else x.clone()

    def __call__(self, info: dict[str, Any]) -> None:
        """Record one step (the sampler calls this)."""
        if info["i"] == 0 or not self.states:
            self.states = [self._keep(info["x_prev"])]
            self.sigmas = [float(info["sigma"])]
        self.states.append(self._keep(info["x"]))
        self.sigmas.append(float(info["sigma_next"]))
        if self.callback is not None:
            self.callback(info)

    @property
    def trajectory(self) -> torch.Tensor:
        """``(N + 1, B, *event_shape)``: the start state and the state after every step."""
        if not self.states:
            raise RuntimeError("nothing recorded yet: pass the recorder as a sampler's callback")
        return torch.stack(self.states)


class _Steps:
    """Calls the user's callback (if any) after every step with the documented dict."""

    def __init__(self, callback: Callback) -> None:
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self.callback = callback

    def __call__(
        self,
        i: int,
        sigma: float,
        sigma_next: float,
        x_prev: torch.Tensor,
        x: torch.Tensor,
        denoised: torch.Tensor | None,
    ) -> None:
        if self.callback is not None:
            self.callback(
                {
                    "i": i,
                    "sigma": sigma,
                    "sigma_next": sigma_next,
                    "x_prev": x_prev,
                    "x": x,
                    "denoised": denoised,
                }
            )


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)


# ------------------------------------------------------------------ samplers
@torch.no_grad()
def sample_euler(model: Denoiser, x: Tensor, sigmas: Any, *, callback: Callback = None) -> Tensor:
    """Euler on the probability-flow ODE: ``x ← x + (σ_{i+1} − σ_i)(x − D(x, σ_i))/σ_i``.

    Also deterministic DDIM (Song, Meng & Ermon 2021, eq. 12 with η = 0) in σ-space,
    ``x ← D + (σ_{i+1}/σ_i)(x − D)``, which is the same update rearranged (Karras et al.
    2022, §3); ``sample_ddim`` is this function.

    Args:
        model: any object with ``denoise(x, sigma)``.
        x: start states ``(B, *event_shape)`` at σ_0.
        sigmas: the decreasing σ grid ``(N + 1,)``.
        callback: called after every step (module docstring; :class:`TrajectoryRecorder`).

    Returns:
        the states at σ_N, shape of ``x``.
    """
    s = _check(model, x, sigmas)
    step = _Steps(callback)
    for i in range(len(s) - 1):
        d = model.denoise(x, s[i])
        x_prev, x = x, x + (s[i + 1] - s[i]) / s[i] * (x - d)
        step(i, s[i], s[i + 1], x_prev, x, d)
    return x


@torch.no_grad()
def sample_heun(
    model: Denoiser, x: Tensor, sigmas: Any, *, s_churn: float = 0.0, s_tmin: float = 0.0,
    s_tmax: float = math.inf, s_noise: float = 1.0, generator: Generator = None,
    callback: Callback = None,
) -> Tensor:  # fmt: skip
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1; Algorithm 2 when ``s_churn > 0``).

    Step i: ``γ = min(S_churn/N, √2 − 1)`` if ``S_tmin ≤ σ_i ≤ S_tmax`` else 0,
    ``σ̂ = σ_i(1 + γ)``, ``x̂ = x + √(σ̂² − σ_i²) S_noise ε``; Euler step
    ``x' = x̂ + (σ_{i+1} − σ̂) d``, ``d = (x̂ − D(x̂, σ̂))/σ̂``, corrected by the trapezoidal
    rule unless ``σ_{i+1} = 0`` (a final Euler step).

    Args:
        model: any object with ``denoise(x, sigma)``.
        x: start states ``(B, *event_shape)`` at σ_0.
        sigmas: the decreasing σ grid ``(N + 1,)``.
        s_churn: ``S_churn`` (0: the deterministic Algorithm 1).
        s_tmin: ``S_tmin``.
        s_tmax: ``S_tmax``.
        s_noise: ``S_noise``.
        generator: source of the churn noise.
        callback: called after every step (module docstring; :class:`TrajectoryRecorder`).

    Returns:
        the states at σ_N, shape of ``x``.
    """
    s = _check(model, x, sigmas)
    check_positive(s_churn, "s_churn", allow_zero=True)
    generator = check_generator(generator)
    n = len(s) - 1
    step = _Steps(callback)
    for i in range(n):
        x_prev = x
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= s[i] <= s_tmax else 0.0
        s_hat = s[i] * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(s_hat**2 - s[i] ** 2) * s_noise * _noise(x, generator)
        den = model.denoise(x, s_hat)
        h = s[i + 1] - s_hat
        d = (x - den).div_(s_hat)
        x_next = torch.add(x, d, alpha=h)
        if s[i + 1] > 0:
            d2 = (x_next - model.denoise(x_next, s[i + 1])).div_(s[i + 1])
            x_next = torch.add(x, d.add_(d2), alpha=0.5 * h)
        x = x_next
        step(i, s[i], s[i + 1], x_prev, x, den)
    return x


@torch.no_grad()
def sample_euler_maruyama(
    model: Denoiser, x: Tensor, sigmas: Any, *, generator: Generator = None,
    callback: Callback = None,
) -> Tensor:  # fmt: skip
    """Euler–Maruyama on the reverse SDE in σ-space (Song et al. 2021, eq. 6 for VE).

    ``x ← x + (σ_i² − σ_{i+1}²) s(x, σ_i) + √(σ_i² − σ_{i+1}²) ε`` with
    ``s = (D − x)/σ²``; the last step (to σ = 0) returns the posterior mean ``D(x, σ_{N−1})``
    without noise.

    Args:
        model: any object with ``denoise(x, sigma)``.
        x: start states ``(B, *event_shape)`` at σ_0.
        sigmas: the decreasing σ grid ``(N + 1,)``.
        generator: source of the noise ε.
        callback: called after every step (module docstring; :class:`TrajectoryRecorder`).

    Returns:
        the states at σ_N, shape of ``x``.
    """
    s = _check(model, x, sigmas)
    generator = check_generator(generator)
    step = _Steps(callback)
    for i in range(len(s) - 1):
        d = model.denoise(x, s[i])
        x_prev = x
        if s[i + 1] == 0:
            x = d
        else:
            dv = s[i] ** 2 - s[i + 1] ** 2
            x = x + dv / s[i] ** 2 * (d - x) + math.sqrt(dv) * _noise(x, generator)
        step(i, s[i], s[i + 1], x_prev, x, d)
    return x


sample_ddim = sample_euler
"""Deterministic DDIM (Song, Meng & Ermon 2021, eq. 12 with η = 0): an alias of :func:`sample_euler`.

In σ-space DDIM's ``x_{i+1} = D + (σ_{i+1}/σ_i)(x_i − D)`` is the Euler step of the
probability-flow ODE ``x_i + (σ_{i+1} − σ_i)(x_i − D)/σ_i`` rearranged (Karras et al. 2022, §3).
"""


@torch.no_grad()
def sample_ode(
    model: Denoiser, x: Tensor, sigmas: Any, *, rtol: float = 1e-5, atol: float = 1e-5,
    callback: Callback = None,
) -> Tensor:  # fmt: skip
    """Adaptive RK45 (scipy ``solve_ivp``) on the probability-flow ODE in ``t = ln σ``.

    ``dx/dt = x − D(x, eᵗ)`` from σ_0 to the last nonzero σ (states recorded at every
    σ of the grid; the callback's ``denoised`` is ``None`` there), then ``D(x, σ_{N−1})``
    as the final step to σ = 0 (if ``σ_N = 0``).

    Args:
        model: any object with ``denoise(x, sigma)``.
        x: start states ``(B, *event_shape)`` at σ_0.
        sigmas: the decreasing σ grid ``(N + 1,)``.
        rtol: RK45 relative tolerance.
        atol: RK45 absolute tolerance.
        callback: called after every step (module docstring; :class:`TrajectoryRecorder`).

    Returns:
        the states at σ_N, shape of ``x``.
    """
    from scipy.integrate import solve_ivp

    s = _check(model, x, sigmas)
    check_positive(rtol, "rtol")
    check_positive(atol, "atol")
    pos = [v for v in s if v > 0]
    step = _Steps(callback)
    shape, dtype, dev = x.shape, x.dtype, x.device

    def f(t: float, y: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(y).reshape(shape).to(dev, dtype)
        return (z - model.denoise(z, math.exp(t))).reshape(-1).double().cpu().numpy()

    if len(pos) > 1:
        ts = np.log(pos)
        sol = solve_ivp(
            f,
            (ts[0], ts[-1]),
            x.reshape(-1).double().cpu().numpy(),
            method="RK45",
            t_eval=ts,
            rtol=rtol,
            atol=atol,
        )
        if not sol.success:
            raise RuntimeError(f"probability-flow ODE integration failed: {sol.message}")
        for i in range(1, len(pos)):
            xi = torch.from_numpy(sol.y[:, i].copy()).reshape(shape).to(dev, dtype)
            step(i - 1, pos[i - 1], pos[i], x, xi, None)
            x = xi
    if s[-1] == 0:
        d = model.denoise(x, pos[-1])
        step(len(pos) - 1, pos[-1], 0.0, x, d, d)
        x = d
    return x


SAMPLERS = {
    "euler": sample_euler,
    "heun": sample_heun,
    "euler_maruyama": sample_euler_maruyama,
    "ddim": sample_ddim,
    "ode": sample_ode,
}


def _placement(model: object) -> tuple[torch.device, torch.dtype]:
    if isinstance(model, torch.nn.Module):
        p = next(model.parameters(), None)
        if p is not None:
            return p.device, p.dtype
    data = getattr(model, "data", None)
    if isinstance(data, torch.Tensor) and data.is_floating_point():
        return data.device, data.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _sigma_range(model: object, lo: float | None, hi: float | None) -> tuple[float, float]:
    """``(sigma_min, sigma_max)``: the given ones, else the model's declared ones, else EDM's."""
    out = []
    for given, attr, default in ((lo, "sigma_min", 0.002), (hi, "sigma_max", 80.0)):
        value = getattr(model, attr, None) if given is None else given
        out.append(default if value is None else value)
    return out[0], out[1]


def sample(
    model: Denoiser,
    n: int,
    shape: tuple[int, ...] | None = None,
    *,
    sampler: str = "heun",
    steps: int = 18,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = 7.0,
    schedule: str = "karras",
    generator: torch.Generator | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    callback: Callback = None,
    **options: Any,
) -> torch.Tensor:
    """Draw ``n`` samples from any object with ``denoise(x, sigma)``.

    Starts from ``x ~ N(0, σ_max² I)`` and runs ``sampler`` over ``steps`` noise levels
    of ``schedule`` (Karras et al. 2022 eq. 5 by default) ending at σ = 0. The σ range
    defaults to the one the model declares (``model.sigma_min`` / ``model.sigma_max``,
    e.g. an adapted diffusers model's training schedule), else EDM's
    ``[0.002, 80]`` (Karras et al. 2022, Table 1).

    Args:
        model: a :class:`ScoreModel`, :class:`EmpiricalDiffusion` or any object with
            ``denoise(x, sigma)``.
        n: number of samples.
        shape: event shape; defaults to ``model.event_shape``.
        sampler: ``"heun"``, ``"euler"``, ``"euler_maruyama"``, ``"ddim"`` or ``"ode"``.
        steps: number of nonzero σ's (network evaluations: ``2·steps − 1`` for Heun).
        sigma_min: the smallest nonzero σ of the grid (:func:`get_sigmas`); default
            ``model.sigma_min`` when the model declares one, else 0.002.
        sigma_max: the largest σ of the grid; default ``model.sigma_max`` when the model
            declares one, else 80.
        rho: the σ grid (:func:`get_sigmas`).
        schedule: the σ grid (:func:`get_sigmas`).
        generator: source of the start noise and any sampler noise (a
            ``torch.Generator`` or an int seed); if ``None`` one seeded with ``seed``.
        seed: seed of the default generator.
        device: where to sample (default: the model's).
        dtype: in what precision to sample (default: the model's).
        callback: called after every step with the dict of the module docstring; pass a
            :class:`TrajectoryRecorder` to keep the trajectory ``(steps + 1, n, *shape)``.
        **options: sampler keywords (``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``,
            ``rtol``, ``atol``).

    Returns:
        ``(n, *shape)`` samples.
    """
    import inspect

    if not callable(getattr(model, "denoise", None)):
        raise TypeError(f"model must define denoise(x, sigma), got {type(model).__name__}")
    fn = SAMPLERS[check_choice(sampler, SAMPLERS, "sampler")]
    check_int(n, "n")
    check_int(steps, "steps")
    allowed = {
        k
        for k, p in inspect.signature(fn).parameters.items()
        if p.kind is p.KEYWORD_ONLY and k not in ("callback", "generator")
    }
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for sampler {sampler!r}; "
            f"expected {sorted(allowed)}"
        )
    if shape is None:
        shape = tuple(getattr(model, "event_shape", ()) or ())
        if not shape:
            raise ValueError("shape is required: the model has no event_shape")
    shape = tuple(shape)
    for v in shape:
        check_int(v, "shape")
    sigma_min, sigma_max = _sigma_range(model, sigma_min, sigma_max)
    sigmas = get_sigmas(
        schedule, steps, sigma_min, sigma_max, **({"rho": rho} if schedule == "karras" else {})
    )
    dev0, dt0 = _placement(model)
    dev = check_device(device) if device is not None else dev0
    dt = check_dtype(dtype) if dtype is not None else dt0
    generator = check_generator(generator)
    if generator is None:
        check_int(seed, "seed", minimum=0)
        generator = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=generator, device=generator.device, dtype=dt)
    x = (x * sigmas[0].item()).to(dev)
    if "generator" in inspect.signature(fn).parameters:
        options["generator"] = generator
    return fn(model, x, sigmas, callback=callback, **options)
