"""Mixed-precision training (``train(precision="bfloat16")``): what runs in bfloat16, equal
results, resume, errors.

Truth: the network cast whole to bfloat16 by hand (weights and input; what autocast does
to a stack of linear layers and elementwise operations), and the float32 run of the same
seed (the loss curve within bfloat16's rounding, and measurably not the float32 curve).
"""

from __future__ import annotations

import copy

import pytest
import torch

import memscape as ms
from memscape.diffusion import fast_step as fs
from memscape.io import read_json, write_json

BATCH = 64


def _model(energy: bool = False) -> ms.ScoreModel:
    return ms.ScoreModel.mlp(2, width=32, layers=2, emb_dim=16, seed=0, energy=energy)


def _data() -> torch.Tensor:
    return ms.datasets.load("circle", n=64).x.float()


def _train(model, **kw):
    args = dict(steps=120, batch=BATCH, seed=3, progress=False, warmup=5, log_every=10,
                compile=False)  # fmt: skip
    return ms.train(model, _data(), **{**args, **kw})


def test_the_bfloat16_loss_is_the_network_cast_to_bfloat16():
    model = _model()
    model.sigma_data = 0.5
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the output layer starts at 0 (F = 0 in any precision): fill it
        model.network.out.weight.normal_(0, 0.5, generator=g)
    y = _data()[:BATCH]
    sigma = torch.exp(torch.randn(BATCH, generator=g) - 1)
    noise = torch.randn(y.shape, generator=g)
    with torch.no_grad():
        mixed = fs.edm_loss(model, y, sigma, noise, precision="bfloat16")
        full = fs.edm_loss(model, y, sigma, noise)
    # by hand: EDM Table 1 preconditioning in float32, the network in bfloat16
    sd, s = 0.5, sigma[:, None]
    net = copy.deepcopy(model.network).to(torch.bfloat16)
    x = y + s * noise
    c_in = 1 / (s**2 + sd**2).sqrt()
    f = net((c_in * x).bfloat16(), (sigma.log() / 4).bfloat16()).float()
    d = sd**2 / (s**2 + sd**2) * x + s * sd * c_in * f
    ref = ((sigma**2 + sd**2) / (sigma * sd) ** 2 * (d - y).pow(2).mean(1)).mean()
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, ref, rtol=2e-3, atol=0)
    assert abs(float(mixed - full)) > 1e-5 * float(full)  # bfloat16 did run


@pytest.mark.parametrize("compile", [False, True])
def test_bfloat16_training_follows_the_float32_loss_curve(compile):
    full = _train(_model())
    mixed = _train(_model(), precision="bfloat16", compile=compile)
    if compile and not mixed.compiled:
        pytest.skip("torch.compile is not available here")
    a, b = full.losses["loss"].to_numpy(), mixed.losses["loss"].to_numpy()
    rel = abs(a - b) / a
    assert rel.max() < 2e-2  # bfloat16 keeps 8 bits: the curve within its rounding …
    assert rel.max() > 1e-6  # … and not the float32 curve itself
    assert mixed.config["train"]["precision"] == "bfloat16"
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    x = torch.randn(5, 2)
    assert mixed.model.denoise(x, 0.3).dtype == torch.float32


def test_precision_is_checked_before_any_work(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        _train(_model(), precision="float16", out=out)
    with pytest.raises(ValueError, match="precision must be one of"):
        _train(_model(), precision=None, out=out)
    with pytest.raises(ValueError, match="not available for energy models"):
        _train(_model(energy=True), precision="bfloat16", out=out)
    assert not out.exists()


def test_a_run_resumes_only_at_its_own_precision(tmp_path):
    out = tmp_path / "run"
    _train(_model(), steps=20, out=out)
    with pytest.raises(ValueError, match="training arguments differ"):
        _train(_model(), steps=40, out=out, precision="bfloat16")
    # a run folder written before precision existed resumes as float32
    config = read_json(out / "config.json", "test")
    del config["train"]["precision"]
    write_json(out / "config.json", config)
    resumed = _train(_model(), steps=40, out=out)
    assert int(resumed.losses["step"].iloc[-1]) == 40


@pytest.mark.slow
def test_bfloat16_keeps_the_memorization_calibration():
    """The flagship's calibration (circle, MLP 256×4, 1500 steps): memorized at K = 2, not at
    K = 256, in bfloat16 as in float32, and the memorized fractions of the two precisions
    within 3 binomial standard errors of each other (measured: 0.055 against 0.059)."""
    from memscape.memorization.measure import draw_samples, make_model
    from memscape.memorization.metrics import memorized_fraction

    pool = ms.datasets.load("circle", size=4096, data_seed=0).x.float()
    n = 256
    for k, lo, hi in ((2, 0.9, 1.0), (256, 0.0, 0.1)):
        train = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(k))[:k]]
        frac = {}
        for precision in ("float32", "bfloat16"):
            model = make_model("trained", train, seed=0, precision=precision)
            x = draw_samples(model, n, (2,), sampler="heun", steps=18, exact=False,
                             generator=torch.Generator().manual_seed(7))  # fmt: skip
            frac[precision] = memorized_fraction(x, train)
        p = (frac["float32"] + frac["bfloat16"]) / 2
        assert lo <= frac["bfloat16"] <= hi, frac
        assert abs(frac["float32"] - frac["bfloat16"]) <= 3 * (2 * p * (1 - p) / n) ** 0.5 + 1e-9
