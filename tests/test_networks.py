"""Preconditioning, networks and ScoreModel: EDM identities, energy form, persistence."""

from __future__ import annotations

import math

import pytest
import torch

import memscape as ms
from memscape.diffusion import EDMPrecond, VEPrecond, VPPrecond
from memscape.diffusion.processes import VP

F64 = torch.float64


def test_edm_coefficients_give_unit_variance_input_and_target():
    """EDM §B.6: c_in makes the input unit-variance, c_skip/c_out the target; λ c_out² = 1."""
    sd = 0.7
    g = torch.Generator().manual_seed(0)
    y = sd * torch.randn(200_000, generator=g, dtype=F64)
    n = torch.randn(200_000, generator=g, dtype=F64)
    pre = EDMPrecond()
    for sigma in (0.01, 0.3, 1.0, 20.0):
        s = torch.full((1,), sigma, dtype=F64)
        c_skip, c_out, c_in, c_noise = pre.coefficients(s, sd)
        x = y + sigma * n
        assert (c_in * x).var().item() == pytest.approx(1.0, rel=0.02)
        assert ((y - c_skip * x) / c_out).var().item() == pytest.approx(1.0, rel=0.02)
        assert (pre.loss_weight(s, sd) * c_out**2).item() == pytest.approx(1.0, rel=1e-12)
        assert c_noise.item() == pytest.approx(0.25 * math.log(sigma))


def test_training_sigma_distributions():
    g = torch.Generator().manual_seed(1)
    s = EDMPrecond().sample_sigma(100_000, generator=g, device="cpu", dtype=F64)
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.02)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.02)
    ve = VEPrecond().sample_sigma(10_000, generator=g, device="cpu", dtype=F64)
    assert ve.min() >= 0.02 and ve.max() <= 100.0
    vp_pre = VPPrecond()
    vp = vp_pre.sample_sigma(10_000, generator=g, device="cpu", dtype=F64)
    assert vp.max() <= VP().sigma(1.0) + 1e-9 and vp.min() >= VP().sigma(1e-5) - 1e-12
    c_skip, c_out, c_in, c_noise = vp_pre.coefficients(torch.tensor([2.0], dtype=F64), 0.5)
    assert c_skip.item() == 1 and c_out.item() == -2 and c_in.item() == pytest.approx(5**-0.5)
    t = c_noise.item() / 999
    assert VP().sigma(t).item() == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("precond", ["edm", "vp", "ve"])
def test_untrained_model_is_skip_connection(precond):
    m = ms.ScoreModel.mlp(3, width=32, layers=2, sigma_data=0.5, precond=precond)
    x = torch.randn(4, 3)
    s = torch.tensor([0.1, 1.0, 3.0, 10.0])
    c_skip = m.precond.coefficients(s, 0.5)[0]
    assert torch.allclose(m.denoise(x, s), c_skip[:, None] * x)  # zero-initialized output layer


def test_unet_shapes_and_levels():
    m = ms.ScoreModel.unet(
        (1, 28, 28), channels=8, channel_mult=(1, 2, 2), attention=True, sigma_data=0.5
    )
    assert m.denoise(torch.randn(2, 1, 28, 28), 1.0).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="divisible"):
        ms.ScoreModel.unet((1, 28, 28), channel_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        m.denoise(torch.randn(2, 1, 8, 8), 1.0)


def _perturbed_energy_model(**kw) -> ms.ScoreModel:
    m = ms.ScoreModel.mlp(2, width=32, layers=2, energy=True, sigma_data=0.5, **kw)
    with torch.no_grad():  # move off the zero-initialized (quadratic) start
        torch.nn.init.normal_(
            m.network.out.weight, std=0.5, generator=torch.Generator().manual_seed(2)
        )
    return m.double()


def test_energy_model_score_is_minus_grad_energy():
    m = _perturbed_energy_model()
    x = torch.randn(5, 2, dtype=F64)
    sigma = torch.tensor([0.1, 0.3, 1.0, 2.0, 5.0], dtype=F64)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.energy(xg, sigma).sum(), xg)
    assert torch.allclose(m.score(x, sigma), -g)
    assert torch.allclose(m.denoise(x, sigma), x - sigma[:, None] ** 2 * g)
    h = m.hessian(x, 0.5)
    assert torch.allclose(h, h.transpose(1, 2), atol=1e-10)  # a Hessian of an energy is symmetric


def test_energy_decreases_along_descent_at_small_sigma():
    m = _perturbed_energy_model()
    sigma = 0.05
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    res = ms.descend(
        m, x, sigma, method="gradient", step_size=0.02 * sigma**2, max_steps=50, record=True
    )
    e = res.trajectory["energy"]
    assert (e[1:] <= e[:-1] + 1e-12).all() and (e[-1] < e[0]).all()


def test_score_model_protocol_and_dtypes():
    m = ms.ScoreModel.mlp(2, width=16, layers=2, sigma_data=0.5)
    assert m.noise_conditioned and not m.has_energy and m.event_shape == (2,)
    x64 = torch.randn(3, 2, dtype=F64)
    assert m.denoise(x64, 0.5).dtype == F64 and m.score(x64, 0.5).dtype == F64
    with pytest.raises(NotImplementedError, match="log_likelihood"):
        m.energy(x64, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        m.denoise(x64, -1.0)
    with pytest.raises(ValueError, match="sigma_data"):
        ms.ScoreModel.mlp(2).denoise(x64, 1.0)
    with pytest.raises(ValueError, match="finite"):
        m.denoise(torch.full((1, 2), float("nan")), 1.0)


@pytest.mark.parametrize("energy", [False, True])
def test_save_load_roundtrip_is_bit_identical(tmp_path, energy):
    m = ms.ScoreModel.mlp(2, width=16, layers=2, sigma_data=0.37, energy=energy, precond="vp")
    with torch.no_grad():
        torch.nn.init.normal_(m.network.out.weight, generator=torch.Generator().manual_seed(4))
    m.save(tmp_path / "m")
    m2 = ms.ScoreModel.load(tmp_path / "m")
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(4, 2)
    assert torch.equal(m.denoise(x, 0.4), m2.denoise(x, 0.4))
    assert m2.config == m.config
    with pytest.raises(ValueError, match="missing"):
        ms.ScoreModel.load(tmp_path / "nope")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="safetensors"):
        ms.ScoreModel.load(tmp_path / "m")
