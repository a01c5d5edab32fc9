"""Forward-SDE coefficients of the noise processes and the x-space landscape of a process.

Against independent formulas: the SDE coefficients of VE/VP/OU (Song et al. 2021),
the x-space Gaussian mixture of the forward process, autograd of log p_t, and the
closed-form time at which the drift potential loses its central minimum.
"""

from __future__ import annotations

import math

import pytest
import torch

from memscape import theory
from memscape.diffusion import EmpiricalDiffusion, ProcessLandscape
from memscape.diffusion.processes import VP, get_process
from memscape.memories import ModernHopfield
from memscape.protocol import jacobian_of

DATA = torch.tensor([[1.0, 0.2], [-0.8, 0.5], [0.1, -1.1]], dtype=torch.float64)


@pytest.mark.parametrize("t", [0.05, 0.4, 1.3])
def test_process_coefficients_match_the_sde_closed_forms(t):
    vp = VP()
    beta = vp.beta_min + vp.beta_d * t  # VP: f = −½β(t)x, g² = β(t) (Song et al. 2021)
    for name, rate, g2 in (("vp", -0.5 * beta, beta), ("ou", -1.0, 2.0), ("ve", 0.0, 2 * t)):
        proc = get_process(name)
        s, sig, r, g = (float(v) for v in proc.sde(t))
        assert s == pytest.approx(float(proc.scale(t)))
        assert sig == pytest.approx(float(proc.sigma(t)))
        assert r == pytest.approx(rate, rel=1e-9, abs=1e-12)
        assert g == pytest.approx(g2, rel=1e-9)
        assert float(proc.drift(t)) == pytest.approx(rate, rel=1e-9, abs=1e-12)
        assert float(proc.diffusion(t)) == pytest.approx(math.sqrt(g2), rel=1e-9)


def test_sde_coefficients_are_elementwise_in_t():
    times = torch.tensor([0.05, 0.4, 1.3], dtype=torch.float64)
    c = get_process("vp").sde(times)
    assert c.g2.shape == (3,)
    for i, t in enumerate(times.tolist()):
        torch.testing.assert_close(c.g2[i], get_process("vp").sde(t).g2)


def _mixture_energy(x: torch.Tensor, s: float, sig: float) -> torch.Tensor:
    """−log p_t(x) of (1/K) Σ N(x; s·y_k, s²σ² I), written directly (no σ-space rescaling)."""
    comp = torch.distributions.MultivariateNormal(
        s * DATA, covariance_matrix=(s * sig) ** 2 * torch.eye(2, dtype=torch.float64)
    )
    logp = comp.log_prob(x[:, None, :]).logsumexp(1) - math.log(DATA.shape[0])
    return -logp


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
def test_process_landscape_density_is_the_x_space_mixture(process):
    t = 0.3
    m = ProcessLandscape(EmpiricalDiffusion(DATA), process, t, "density")
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.energy(x), _mixture_energy(x, m.s, m.sigma))
    # closed-form score and Hessian against autograd of the independent formula
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_mixture_energy(xg, m.s, m.sigma).sum(), xg)
    torch.testing.assert_close(m.score(x), -grad)
    hess = -jacobian_of(lambda z: -torch.autograd.grad(
        _mixture_energy(z, m.s, m.sigma).sum(), z, create_graph=True)[0], x)  # fmt: skip
    torch.testing.assert_close(m.hessian(x), hess)


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
def test_drift_potential_gradient_is_the_reverse_sde_drift(process):
    # −∇U must equal −f + g²∇log p_t with f = (ṡ/s)x (independent: autograd of log p_t).
    t = 0.45
    m = ProcessLandscape(EmpiricalDiffusion(DATA), process, t, "drift")
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xg = x.clone().requires_grad_(True)
    (grad_e,) = torch.autograd.grad(_mixture_energy(xg, m.s, m.sigma).sum(), xg)
    drift = -m.rate * x + m.g2 * (-grad_e)
    torch.testing.assert_close(m.score(x), drift)
    xu = x.clone().requires_grad_(True)
    (grad_u,) = torch.autograd.grad(m.energy(xu).sum(), xu)
    torch.testing.assert_close(-grad_u, drift)
    torch.testing.assert_close(m.hessian(x), -jacobian_of(m.score, x))


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
@pytest.mark.parametrize("a", [0.5, 2.0])
def test_drift_potential_loses_its_central_minimum_at_the_closed_form_time(process, a):
    model = EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    t_c = theory.drift_potential_breaking_time(a, process)
    origin = torch.zeros(1, 1, dtype=torch.float64)

    def curvature(t: float) -> float:
        return float(ProcessLandscape(model, process, t, "drift").hessian(origin)[0, 0, 0])

    assert curvature(0.97 * t_c) < 0 < curvature(1.03 * t_c)
    # the density breaks at σ = a, the drift potential no later in generation (t_c ≥)
    assert t_c >= theory.symmetry_breaking_time(a, process) * (1 - 1e-12)
    if process != "ve":
        assert t_c > theory.symmetry_breaking_time(a, process)


def test_process_landscape_rejects_bad_input():
    with pytest.raises(TypeError, match="noise-conditioned"):
        ProcessLandscape(ModernHopfield(DATA), "ve", 0.5)
    with pytest.raises(ValueError, match="kind"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "ve", 0.5, "force")
    with pytest.raises(ValueError, match="process"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "cosine", 0.5)
    with pytest.raises(ValueError, match="t must be"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "vp", -0.1)
