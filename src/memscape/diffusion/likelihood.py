"""Log-likelihood of points under a diffusion model by the probability-flow ODE.

With ``t = ln σ`` the probability-flow ODE is ``dx/dt = f(x, t) = x − D(x, eᵗ)``
(Karras et al. 2022, eq. 4 in σ-space). Along its solution the instantaneous
change of variables (Chen et al. 2018, "Neural ODEs", Thm. 1; Song et al. 2021, eq. 39)
gives ``d/dt log p_t(x_t) = −∇·f``, so

    log p_{σ_min}(x) = log N(x_T; 0, σ_max² I) + ∫_{ln σ_min}^{ln σ_max} ∇·f(x_t, t) dt,
    ∇·f = d − tr ∂D/∂x,

integrated from ``x_{ln σ_min} = x`` up to ``σ_max`` with scipy's RK45. The trace is
exact (``d`` vector-Jacobian products, small d) or Hutchinson's estimate ``εᵀ(∂D/∂x)ε``
with one fixed Rademacher ε per point (Hutchinson 1989; Grathwohl et al. 2019, FFJORD).
``−log p`` is the energy of a score-only model.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor
from memscape.protocol import Denoiser, jacobian_of

__all__ = ["log_likelihood"]


def log_likelihood(
    model: Denoiser,
    x: torch.Tensor,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    *,
    method: str = "exact",
    generator: torch.Generator | None = None,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> torch.Tensor:
    """``log p_{σ_min}(x)`` (nats) under ``model`` via the probability-flow ODE: ``(B,)``.

    Args:
        model: any object with a differentiable ``denoise(x, sigma)``.
        x: points ``(B, *event_shape)``; the ODE runs in ``x``'s dtype and device.
        sigma_min: noise level at which the density is evaluated (> 0).
        sigma_max: where the prior ``N(0, σ_max² I)`` replaces ``p_σ_max`` (≫ data scale).
        method: ``"exact"`` (trace of the Jacobian, ``d`` backward passes per evaluation)
            or ``"hutchinson"`` (one Rademacher probe per point; unbiased, noisy).
        generator: source of the Hutchinson probes (default: a generator seeded with ``seed``).
        seed: seed of the default generator.
        rtol: RK45 tolerances.
        atol: RK45 tolerances.
    """
    from scipy.integrate import solve_ivp

    if not callable(getattr(model, "denoise", None)):
        raise TypeError(f"model must define denoise(x, sigma), got {type(model).__name__}")
    x = check_tensor(x, "x", min_ndim=1)
    check_positive(sigma_min, "sigma_min")
    check_positive(sigma_max, "sigma_max")
    if sigma_max <= sigma_min:
        raise ValueError(f"sigma_max ({sigma_max}) must exceed sigma_min ({sigma_min})")
    check_choice(method, ("exact", "hutchinson"), "method")
    check_positive(rtol, "rtol")
    check_positive(atol, "atol")
    b, shape, d = x.shape[0], x.shape, x[0].numel()
    probe = None
    if method == "hutchinson":
        if generator is None:
            check_int(seed, "seed", minimum=0)
            generator = torch.Generator().manual_seed(seed)
        r = torch.randint(0, 2, shape, generator=generator, device=generator.device)
        probe = (2.0 * r - 1.0).to(x.device, x.dtype)

    def trace_jd(z: torch.Tensor, sigma: float) -> torch.Tensor:
        if probe is None:
            jac = jacobian_of(lambda u: model.denoise(u, sigma), z)
            return jac.diagonal(dim1=1, dim2=2).sum(1)
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            (vjp,) = torch.autograd.grad((model.denoise(zg, sigma) * probe).sum(), zg)
        return (vjp * probe).reshape(b, -1).sum(1)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        z = torch.from_numpy(y[: b * d]).reshape(shape).to(x.device, x.dtype)
        sigma = math.exp(t)
        with torch.no_grad():
            dx = z - model.denoise(z, sigma)
        div = d - trace_jd(z, sigma)
        out = torch.cat([dx.reshape(-1), div.reshape(-1)]).detach()
        return out.double().cpu().numpy()

    y0 = np.concatenate([x.detach().reshape(-1).double().cpu().numpy(), np.zeros(b)])
    sol = solve_ivp(
        rhs, (math.log(sigma_min), math.log(sigma_max)), y0, method="RK45", rtol=rtol, atol=atol
    )
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE integration failed: {sol.message}")
    end = torch.from_numpy(sol.y[:, -1].copy())
    x_t, delta = end[: b * d].reshape(b, d), end[b * d :]
    prior = -0.5 * x_t.pow(2).sum(1) / sigma_max**2 - 0.5 * d * math.log(2 * math.pi * sigma_max**2)
    return (prior + delta).to(x.device, x.dtype)
