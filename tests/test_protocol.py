"""The protocol: score = −∇E by autograd for every model, closed-form Hessians =
autograd Jacobian of the autograd gradient, and bad inputs rejected by name."""

from __future__ import annotations

import pytest
import torch

from memscape import (
    ClassicalHopfield,
    DenseAM,
    EmpiricalDiffusion,
    EnergyModel,
    ModernHopfield,
    jacobian_of,
    score_of,
)

F64 = torch.float64


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64) * scale


def spins(k: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (k, n), generator=g) * 2 - 1).to(F64)


def autograd_grad(model, x, sigma=None, create_graph=False):
    """∇E by autograd straight from ``model.energy`` (independent of any closed form)."""
    with torch.enable_grad():
        xg = x if create_graph else x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model.energy(xg, sigma).sum(), xg, create_graph=create_graph)
    return g


def models():
    mem = randn(7, 5, seed=1)
    yield "modern", ModernHopfield(mem, beta=2.5), None
    yield "modern-bias", ModernHopfield(mem, beta=0.7, bias=randn(7, seed=2)), None
    yield "empirical", EmpiricalDiffusion(mem), 0.8
    yield "empirical-per-sample-sigma", EmpiricalDiffusion(mem), torch.linspace(0.3, 2.0, 6)
    p = spins(4, 5, 3)
    for rule in ("hebbian", "pseudoinverse", "storkey"):
        yield f"classical-{rule}", ClassicalHopfield(p, rule), None
    for inter in ("polynomial", "rectified_polynomial", "exponential"):
        yield f"dense-{inter}", DenseAM(p, inter, n=3), None


@pytest.mark.parametrize(
    "name,model,sigma", list(models()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_score_is_minus_autograd_gradient(name, model, sigma):
    x = randn(6, 5, seed=4, scale=1.5)
    torch.testing.assert_close(
        model.score(x, sigma), -autograd_grad(model, x, sigma), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    "name,model,sigma",
    list(models()),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_closed_form_hessian_matches_jacobian_of_gradient(name, model, sigma):
    x = randn(6, 5, seed=5)
    want = jacobian_of(lambda z: autograd_grad(model, z, sigma, create_graph=True), x)
    torch.testing.assert_close(model.hessian(x, sigma), want, rtol=1e-9, atol=1e-9)
    h = model.hessian(x, sigma)
    torch.testing.assert_close(h, h.transpose(1, 2))


class Quad(EnergyModel):
    """E = ½ xᵀAx through the base class only: score −Ax, Hessian A."""

    event_shape = (4,)

    def __init__(self):
        a = randn(4, 4, seed=6)
        self.a = a @ a.T + torch.eye(4, dtype=F64)

    def energy(self, x, sigma=None):
        return 0.5 * ((x @ self.a) * x).sum(1)


def test_base_class_autograd_score():
    x = randn(3, 4, seed=7)
    q = Quad()
    torch.testing.assert_close(q.score(x), -x @ q.a)
    with pytest.raises(TypeError, match="noise-conditioned"):
        q.denoise(x, 1.0)


def test_base_class_autograd_hessian():
    q = Quad()
    torch.testing.assert_close(q.hessian(randn(3, 4, seed=7)), q.a.expand(3, 4, 4))


def test_score_of_falls_back_to_denoiser():
    class OnlyDenoise:
        def denoise(self, x, sigma):
            return 0.5 * x

    x = randn(3, 2, seed=8)
    torch.testing.assert_close(score_of(OnlyDenoise(), x, 2.0), (0.5 * x - x) / 4.0)
    with pytest.raises(TypeError, match="model"):
        score_of(object(), x)


def test_denoise_is_tweedie():
    model = EmpiricalDiffusion(randn(9, 3, seed=9))
    x = randn(4, 3, seed=10)
    torch.testing.assert_close(
        EnergyModel.denoise(model, x, 0.6), model.denoise(x, 0.6), rtol=1e-10, atol=1e-10
    )


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_argument():
    mem = randn(5, 3, seed=11)
    with pytest.raises(ValueError, match="memories"):
        ModernHopfield(torch.empty(0, 3))
    with pytest.raises(ValueError, match="memories"):
        ModernHopfield(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="beta"):
        ModernHopfield(mem, beta=0.0)
    with pytest.raises(ValueError, match="beta"):
        ModernHopfield(mem, beta=-1.0)
    with pytest.raises(ValueError, match="bias"):
        ModernHopfield(mem, bias=torch.zeros(4))
    with pytest.raises(ValueError, match="x"):
        ModernHopfield(mem).energy(randn(2, 4))
    with pytest.raises(ValueError, match="cue"):
        ModernHopfield(mem).retrieve(torch.full((2, 3), float("inf")))
    with pytest.raises(ValueError, match="data"):
        EmpiricalDiffusion(torch.empty(0, 3))
    with pytest.raises(ValueError, match="data"):
        EmpiricalDiffusion(torch.tensor([[float("inf"), 0.0]]))
    model = EmpiricalDiffusion(mem)
    for bad in (0.0, -1.0, float("nan"), torch.tensor([1.0, 0.0])):
        with pytest.raises(ValueError, match="sigma"):
            model.denoise(randn(2, 3), bad)
    with pytest.raises(ValueError, match="sigma"):
        model.energy(randn(2, 3), None)
    with pytest.raises(ValueError, match="sigma"):
        model.score(randn(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="x"):
        model.denoise(randn(2, 4), 1.0)
    with pytest.raises(ValueError, match="x"):
        ClassicalHopfield(spins(2, 3, 0)).energy(randn(2, 4))
    with pytest.raises(ValueError, match="x"):
        DenseAM(spins(2, 3, 0)).score(randn(2, 4))


def test_diffusion_model_reprs_are_one_readable_line():
    """repr names the class and its sizes, never a tensor or an address; ScoreModel stays
    an nn.Module (children, parameters, state_dict) with a one-line repr."""
    from memscape import ScoreModel

    ed = EmpiricalDiffusion(randn(50, 2))
    assert repr(ed) == "EmpiricalDiffusion(K=50, d=2, dtype=float64)"
    img = EmpiricalDiffusion(randn(5, 1, 4, 4))
    assert repr(img) == "EmpiricalDiffusion(K=5, d=16, event_shape=(1, 4, 4), dtype=float64)"

    sm = ScoreModel.mlp(2, width=32, layers=2, sigma_data=0.5)
    text = repr(sm)
    assert text.startswith("ScoreModel(net=MLP(dim=2, width=32, layers=2"), text
    assert "precond='edm'" in text and "sigma_data=0.5" in text and "energy=False" in text
    n_params = sum(p.numel() for p in sm.parameters())
    assert f"params={n_params}" in text and "dtype=float32" in text
    assert str(sm) == text and "\n" not in text and "object at 0x" not in text
    assert isinstance(sm, torch.nn.Module) and "network" in dict(sm.named_children())
    assert set(sm.state_dict()) == {f"network.{k}" for k in sm.network.state_dict()}
    assert "Linear(" in repr(sm.network)  # the layer tree is one attribute away

    custom = ScoreModel(torch.nn.Linear(2, 2), (2,), precond="vp")
    assert repr(custom).startswith("ScoreModel(net=Linear, event_shape=(2,), precond='vp'")
    for model in (ClassicalHopfield(spins(3, 8, 0)), ModernHopfield(randn(4, 3))):
        assert "object at 0x" not in repr(model) and "K=" in repr(model)
