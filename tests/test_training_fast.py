"""The compiled training step (``train(compile=...)``): equal results, resume, fallback, options.

The truth of the one-step test is an eager step written here from the papers (EDM Table 1
and eq. 8, ``torch.optim.Adam``, ``clip_grad_norm_``, the EMA of the weights); the
others compare against the eager path of :func:`memscape.train` and its checkpoint layout.
One small architecture and batch serve every test, so the process compiles once.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch

import memscape as ms
from memscape import onednn
from memscape.diffusion import fast_step as fs
from memscape.diffusion import training
from memscape.io import load_tensors, read_json

BATCH = 64


def _model(seed: int = 0, energy: bool = False) -> ms.ScoreModel:
    return ms.ScoreModel.mlp(2, width=32, layers=2, emb_dim=16, seed=seed, energy=energy)


def _data() -> torch.Tensor:
    return ms.datasets.load("circle", n=64).x.float()


def _train(model, **kw) -> training.TrainRun:
    args = dict(steps=30, batch=BATCH, seed=3, progress=False, warmup=5, log_every=10)
    return ms.train(model, _data(), **{**args, **kw})


@pytest.fixture(scope="module")
def compiled() -> None:
    """Compile the step of the tests' architecture once (a no-compiler machine skips)."""
    run = _train(_model(), steps=2, compile=True)
    if not run.compiled:
        pytest.skip("torch.compile is not available here")


def _reference_step(net, opt, ema, y, sigma, noise, sd, clip, decay) -> float:
    """EDM eq. 7–8 with Table 1's coefficients, autograd, clip_grad_norm_, Adam, EMA."""
    s = sigma[:, None]
    x = y + s * noise
    d = sd**2 / (s**2 + sd**2) * x + s * sd / (s**2 + sd**2).sqrt() * net(
        x / (s**2 + sd**2).sqrt(), sigma.log() / 4
    )
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    loss = (weight * (d - y).pow(2).mean(1)).mean()
    opt.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, net.parameters(), strict=True):
            e.mul_(decay).add_(p, alpha=1 - decay)
    return float(norm)


class _Counted:
    """oneDNN's linear kernel, counting its calls (it runs eagerly inside the compiled
    graph: the custom operator of :mod:`memscape.onednn` is opaque to inductor)."""

    def __init__(self, kernel) -> None:
        self.kernel, self.calls = kernel, 0

    def __call__(self, *args):
        self.calls += 1
        return self.kernel(*args)


@pytest.mark.parametrize("form", ["split", "fused"])
@pytest.mark.parametrize("width, batch", [(32, BATCH), (128, 128)])
def test_one_compiled_step_equals_the_written_out_eager_step(compiled, monkeypatch, form, width,
                                                             batch):  # fmt: skip
    """Both compiled forms against the step written out with plain nn.Linear (MKL); at
    width = batch = 128 (128³ ≥ 2²⁰) the split form's linears go through oneDNN."""
    counted = _Counted(onednn._LINEAR_POINTWISE)
    monkeypatch.setattr(onednn, "_LINEAR_POINTWISE", counted)
    if form == "split" and not onednn.available():
        pytest.skip("this torch has no oneDNN linear kernel")
    monkeypatch.setenv("MEMSCAPE_ONEDNN", "1" if form == "split" else "0")  # on any CPU
    model = ms.ScoreModel.mlp(2, width=width, layers=2, emb_dim=16, seed=1)
    model.sigma_data = sd = 0.7
    ref = copy.deepcopy(model.network)
    lr, clip = 3e-3, 0.05
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    ref_ema = [p.detach().clone() for p in ref.parameters()]
    params = list(model.parameters())
    fast = fs.FastStep(model, params, clip)
    assert fast.split == (form == "split")
    fast.load(params, [p.detach().clone() for p in params], torch.optim.Adam(params))
    g = torch.Generator().manual_seed(0)
    for t in range(3):
        y = torch.randn(batch, 2, generator=g)
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(batch, generator=g))
        noise = torch.randn(batch, 2, generator=g)
        decay = min(0.999, (1 + t) / (10 + t))
        norm = _reference_step(ref, opt, ref_ema, y, sigma, noise, sd, clip, decay)
        assert norm > clip  # clipping is active: the test covers it
        fast(y, sigma, noise, lr=lr, adam_step=t + 1, ema_weight=1 - decay)
    ema = [torch.empty_like(p) for p in params]
    fast.store(params, ema, torch.optim.Adam(params), step=3)
    # oneDNN sums in another order than MKL, and Adam's lr·m/√v turns the rounding of a
    # near-zero gradient into up to ~1e-3 of a step (lr = 3e-3): 1e-5 is still far below
    # what a wrong or missing gradient term gives (a step, ~1e-3)
    atol = 1e-6 if width == 32 else 1e-5
    for p, q in zip(params, ref.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=atol)
    for e, q in zip(ema, ref_ema, strict=True):
        torch.testing.assert_close(e, q, rtol=1e-5, atol=atol)
    moved = sum(float((p.detach() - q).abs().max()) for p, q in zip(params, ema, strict=True))
    assert moved > 1e-4  # the weights moved: the comparison is not of untouched values
    # the hidden layer (batch·width², its backward alike) and the FiLM product go through
    # oneDNN in the split form at width 128, in no form at width 32
    assert (counted.calls > 0) == (form == "split" and width == 128)


def test_compiled_training_matches_eager_training(compiled):
    eager, fast = _model(), _model()
    a = _train(eager, compile=False)
    b = _train(fast, compile=True)
    assert (a.compiled, b.compiled) == (False, True)
    assert b.compile_seconds > 0 and math.isfinite(b.steps_per_second)
    for p, q in zip(eager.parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        torch.tensor(a.losses["loss"].to_numpy()), torch.tensor(b.losses["loss"].to_numpy()),
        rtol=1e-4, atol=1e-6,
    )  # fmt: skip
    assert list(a.losses["step"]) == list(b.losses["step"]) == [10, 20, 30]


def _layout(ckpt) -> dict:
    """Files, tensor names/shapes/dtypes and JSON keys of a checkpoint folder."""
    out = {"files": sorted(p.name for p in ckpt.iterdir())}
    for name in ("model", "ema", "optimizer"):
        t = load_tensors(ckpt / f"{name}.safetensors", "test")
        out[name] = {k: (tuple(v.shape), v.dtype) for k, v in t.items()}
    state = read_json(ckpt / "state.json", "test")
    out["state"] = sorted(state)
    out["groups"] = [sorted(g) for g in state["param_groups"]]
    out["step"] = state["step"]
    return out


def test_interrupted_compiled_run_resumes_bit_for_bit_in_the_eager_layout(compiled, tmp_path):
    kw = dict(steps=50, checkpoint_every=20, compile=True)
    whole = _train(_model(), out=tmp_path / "whole", **kw)
    part = _train(_model(), out=tmp_path / "part", **{**kw, "steps": 40})
    assert part.compiled
    eager = _train(_model(), out=tmp_path / "eager", steps=40, checkpoint_every=20, compile=False)
    assert _layout(tmp_path / "part" / "checkpoint") == _layout(tmp_path / "eager" / "checkpoint")
    adam = load_tensors(tmp_path / "part" / "checkpoint" / "optimizer.safetensors", "test")
    assert float(adam["adam.0.step"]) == 40.0
    resumed_model = _model()
    resumed = _train(resumed_model, out=tmp_path / "part", **kw)
    for p, q in zip(whole.model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(p, q)
    pd.testing.assert_frame_equal(whole.losses, resumed.losses, check_exact=True)
    assert eager.losses["step"].tolist() == [10, 20, 30, 40]


def test_an_eager_checkpoint_resumes_compiled_with_its_adam_state(compiled, tmp_path):
    """Eager 40 steps, then compiled to 50: the eager 50-step run to float rounding.

    A resume that lost Adam's moments (zeros in their place) differs by 5e-3 here, 500×
    the tolerance.
    """
    whole = _train(_model(), steps=50, compile=False)
    _train(_model(), out=tmp_path / "run", steps=40, compile=False)
    resumed_model = _model()
    resumed = _train(resumed_model, out=tmp_path / "run", steps=50, compile=True)
    assert resumed.compiled
    for p, q in zip(whole.model.parameters(), resumed_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_ctrl_c_while_compiling_is_an_interruption_not_a_fallback(monkeypatch):
    """A SIGINT inside a C-extension import reaches Python as an ImportError caused by the
    KeyboardInterrupt: training must stop, not warn and carry on eager."""

    def interrupted(fn, **kwargs):
        def call(*args, **kw):
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as stop:
                raise ImportError("initialization failed") from stop

        return call

    monkeypatch.setattr(fs, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", interrupted)
    with pytest.raises(ImportError, match="initialization failed"):
        _train(_model(), compile=True)


def test_failed_compilation_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C compiler")

        return call

    monkeypatch.setattr(fs, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", broken)
    fallback = _model()
    with pytest.warns(RuntimeWarning, match="compiling the training step failed.*no C compiler"):
        run = _train(fallback, compile=True)
    assert not run.compiled
    eager = _model()
    _train(eager, compile=False)
    for p, q in zip(fallback.parameters(), eager.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("bad", ["yes", 1, None, "True"])
def test_bad_compile_option_raises_before_writing(tmp_path, bad):
    with pytest.raises(ValueError, match="compile must be True, False or 'auto'"):
        _train(_model(), out=tmp_path / "run", compile=bad)
    assert not (tmp_path / "run").exists()


def test_energy_models_refuse_compile_true_and_auto_trains_them_eagerly(tmp_path):
    with pytest.raises(ValueError, match="compile=True is not available for energy models"):
        _train(_model(energy=True), out=tmp_path / "run", compile=True)
    assert not (tmp_path / "run").exists()
    assert not _train(_model(energy=True), steps=2, compile="auto").compiled


def test_auto_compiles_mlps_from_the_step_threshold_only(monkeypatch, compiled):
    assert fs.COMPILE_AUTO_STEPS > 30
    assert not _train(_model(), compile="auto").compiled  # below the threshold
    monkeypatch.setattr(fs, "COMPILE_AUTO_STEPS", 30)
    assert _train(_model(), compile="auto").compiled
    unet = ms.ScoreModel.unet((1, 4, 4), channels=8, channel_mult=(1,))
    images = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    run = ms.train(unet, images, steps=30, batch=4, progress=False, compile="auto")
    assert not run.compiled  # auto compiles only what was measured to pay back (MLPs)
