"""The descent loop: gradient flow on a quadratic against the closed-form Euler
iterates, clamp masks, trajectories, convergence flags and bad inputs."""

from __future__ import annotations

import pytest
import torch

from memscape import EmpiricalDiffusion, EnergyModel, ModernHopfield, descend

F64 = torch.float64


class Quadratic(EnergyModel):
    """E(x) = ½ (x − c)ᵀ A (x − c), A SPD; no update map (gradient flow only)."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor) -> None:
        self.a, self.c = a, c
        self.event_shape = (c.shape[0],)

    def energy(self, x, sigma=None):
        z = x - self.c
        return 0.5 * ((z @ self.a) * z).sum(1)


def quad(seed: int = 0, d: int = 3) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64)).Q
    a = q @ torch.diag(torch.linspace(0.5, 2.0, d, dtype=F64)) @ q.T
    return Quadratic(a, torch.randn(d, generator=g, dtype=F64))


def x0(b: int = 4, d: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed), dtype=F64) * 3


def test_gradient_flow_matches_closed_form_euler_iterates():
    """x_t − c = (I − ηA)ᵗ (x_0 − c) exactly for explicit Euler on a quadratic."""
    model, x = quad(), x0()
    eta, t = 0.3, 7
    res = descend(model, x, method="gradient", step_size=eta, max_steps=t, tol=1e-300)
    m = torch.linalg.matrix_power(torch.eye(3, dtype=F64) - eta * model.a, t)
    torch.testing.assert_close(res.x, model.c + (x - model.c) @ m.T, rtol=1e-12, atol=1e-12)
    assert not bool(res.converged.any())
    assert bool((res.steps == t).all())


def test_gradient_flow_converges_to_minimum():
    model, x = quad(), x0()
    res = descend(model, x, step_size=0.5, max_steps=500, tol=1e-10, criterion="score")
    assert bool(res.converged.all())
    torch.testing.assert_close(res.x, model.c.expand(4, 3), rtol=0, atol=1e-9)
    assert bool((res.steps < 500).all())


def test_record_shapes_and_monotone_energy():
    model, x = quad(), x0(b=5)
    res = descend(model, x, method="gradient", step_size=0.2, max_steps=12, record=True, tol=1e-300)
    tr = res.trajectory
    assert tr["x"].shape == (13, 5, 3)
    assert tr["energy"].shape == (13, 5) and tr["score_norm"].shape == (13, 5)
    torch.testing.assert_close(tr["x"][0], x)
    torch.testing.assert_close(tr["x"][-1], res.x)
    assert bool((tr["energy"].diff(dim=0) <= 0).all())  # η < 2/λ_max
    want = (tr["x"] - model.c) @ model.a  # ‖∇E‖ per step
    torch.testing.assert_close(tr["score_norm"], want.norm(dim=-1))


@pytest.mark.parametrize("per_sample", [False, True])
def test_clamp_mask_keeps_known_entries(per_sample):
    model, x = quad(), x0()
    mask = torch.tensor([True, False, True])
    if per_sample:
        mask = torch.rand(4, 3, generator=torch.Generator().manual_seed(2)) < 0.5
    res = descend(model, x, mask=mask, step_size=0.3, max_steps=300, tol=1e-12)
    m = mask.expand_as(x)
    assert torch.equal(res.x[m], x[m])
    # free entries sit at the constrained minimum: the free part of ∇E vanishes
    g = (res.x - model.c) @ model.a
    assert float(g[~m].abs().max()) < 1e-9


def test_update_method_equals_unit_gradient_step_for_cccp():
    """For modern Hopfield, x + 1·s(x) = X softmax(βXᵀx): gradient step η = 1 = CCCP update."""
    mem = x0(b=6, d=4, seed=3)
    model = ModernHopfield(mem, beta=0.8)
    x = x0(b=5, d=4, seed=4)
    a = descend(model, x, method="update", max_steps=5, tol=1e-300).x
    b = descend(model, x, method="gradient", step_size=1.0, max_steps=5, tol=1e-300).x
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_noise_conditioned_update_is_denoiser_fixed_point_iteration():
    y = x0(b=8, d=2, seed=5)
    model = EmpiricalDiffusion(y)
    res = descend(model, y + 0.01, sigma=0.05, max_steps=50, tol=1e-12)
    assert bool(res.converged.all())
    torch.testing.assert_close(res.x, y, atol=1e-9, rtol=0)  # small σ: training points attract
    torch.testing.assert_close(model.denoise(res.x, 0.05), res.x, atol=1e-12, rtol=0)


def test_converged_flags_per_sample():
    model = quad()
    x = torch.cat([model.c[None], model.c[None] + 5])
    res = descend(model, x, step_size=0.1, max_steps=3, tol=1e-6)
    assert res.converged.tolist() == [True, False]
    assert res.steps.tolist() == [1, 3]


def test_descend_rejects_bad_input():
    model, x = quad(), x0()
    with pytest.raises(ValueError, match="method"):
        descend(model, x, method="newton")
    with pytest.raises(ValueError, match="criterion"):
        descend(model, x, criterion="energy")
    with pytest.raises(ValueError, match="step_size"):
        descend(model, x, step_size=0.0)
    with pytest.raises(ValueError, match="tol"):
        descend(model, x, tol=-1.0)
    with pytest.raises(ValueError, match="max_steps"):
        descend(model, x, max_steps=0)
    with pytest.raises(TypeError, match="max_steps"):
        descend(model, x, max_steps=2.5)
    with pytest.raises(ValueError, match="x"):
        descend(model, x.clone().fill_(float("nan")))
    with pytest.raises(TypeError, match="x"):
        descend(model, x.numpy())
    with pytest.raises(TypeError, match="mask"):
        descend(model, x, mask=torch.ones(3))
    with pytest.raises(ValueError, match="mask"):
        descend(model, x, mask=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="update"):
        descend(model, x, method="update")


def test_descent_result_repr_summarizes():
    model = quad()
    x = torch.cat([model.c[None], model.c[None] + 5])
    res = descend(model, x, step_size=0.1, max_steps=3, tol=1e-6)
    assert repr(res) == "DescentResult(x=(2, 3) float64, converged=1/2, steps=1..3)"
    res = descend(model, x, step_size=0.1, max_steps=3, tol=1e-6, record=True)
    assert repr(res).endswith("steps=1..3, trajectory=4 states)")
