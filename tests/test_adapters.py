"""Adapters: any denoiser, score function or diffusers model as a memscape model.

Truth: closed forms of Gaussian data (the Wiener filter and its score), and diffusers'
own computations — the scheduler's one-step ``pred_original_sample`` and its DDIM /
EDM-Euler sampling loops — on a tiny ``UNet2DModel`` built here (no hub downloads).
The diffusers tests skip when diffusers is not installed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import memscape as ms
from memscape import adapters
from memscape.diffusion.samplers import sample_euler
from memscape.theory import gaussian_denoiser, gaussian_energy

F64 = torch.float64
PREDICTIONS = ("epsilon", "v_prediction", "sample")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gaussian(d: int = 3):
    a = torch.randn(d, d, generator=_gen(0), dtype=F64)
    return torch.randn(d, generator=_gen(1), dtype=F64), a @ a.T / d + 0.1 * torch.eye(d, dtype=F64)


def gaussian_model():
    """A Python-path target for :func:`memscape.adapters.load` (``tests.test_adapters:…``)."""
    mean, cov = _gaussian()
    return adapters.from_denoiser(
        lambda x, sigma: gaussian_denoiser(x, sigma, mean, cov), event_shape=(3,)
    )


# -------------------------------------------------------------------- any denoiser / score
def test_from_denoiser_score_and_hessian_are_the_gaussian_closed_forms():
    """Wiener filter D → score −(S + σ²I)⁻¹(x − μ), Hessian (S + σ²I)⁻¹ by autograd."""
    mean, cov = _gaussian()
    model = adapters.from_denoiser(
        lambda x, sigma: gaussian_denoiser(x, sigma, mean, cov),
        event_shape=(3,),
        sigma_data=1.0,
        name="wiener",
    )
    assert model.noise_conditioned and not model.has_energy and isinstance(model, ms.EnergyModel)
    assert isinstance(model, ms.Denoiser) and isinstance(model, ms.ScoreField)
    x = torch.randn(6, 3, generator=_gen(2), dtype=F64)
    sigma = torch.tensor([0.1, 0.3, 0.5, 1.0, 2.0, 5.0], dtype=F64)
    precision = torch.linalg.inv(cov + sigma[:, None, None] ** 2 * torch.eye(3, dtype=F64))
    score = -(precision @ (x - mean)[:, :, None])[:, :, 0]
    torch.testing.assert_close(model.score(x, sigma), score, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.hessian(x, sigma), precision, rtol=1e-10, atol=1e-10)
    assert repr(model) == "DenoiserModel(name='wiener', event_shape=(3,), sigma_data=1.0)"


def test_from_score_denoises_by_tweedie_with_autograd_inside_the_score():
    mean, cov = _gaussian()

    def score(x, sigma):  # −∇E by autograd inside the user's function
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(gaussian_energy(xg, sigma, mean, cov).sum(), xg)
        return -g

    model = adapters.from_score(score, event_shape=3)
    x = torch.randn(5, 3, generator=_gen(3), dtype=F64)
    torch.testing.assert_close(
        model.denoise(x, 0.7), gaussian_denoiser(x, 0.7, mean, cov), rtol=1e-12, atol=1e-12
    )


def test_module_denoiser_runs_in_its_dtype_without_a_graph_and_takes_conditioning():
    class Shrink(nn.Module):  # D = w x/(1 + σ²) + shift
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.5))

        def forward(self, x, sigma, shift=0.0):
            assert x.dtype == torch.float32 and sigma.shape == (x.shape[0],)
            return self.w * x / (1 + sigma[:, None] ** 2) + shift

    model = adapters.from_denoiser(Shrink(), event_shape=(2,))
    x = torch.randn(4, 2, generator=_gen(4), dtype=F64)
    out = model.denoise(x, 1.0)
    assert out.dtype == F64 and not out.requires_grad
    torch.testing.assert_close(out, 0.25 * x, rtol=1e-6, atol=1e-7)
    shift = torch.tensor([[1.0, -1.0]])  # one value for all states: broadcast over the batch
    bound = model.with_conditioning(shift=shift)
    torch.testing.assert_close(
        bound.denoise(x, 1.0), 0.25 * x + shift.double(), rtol=1e-6, atol=1e-6
    )
    torch.testing.assert_close(bound.denoise(x, 1.0, shift=0.0), out)  # a call overrides
    assert "conditioning=('shift',)" in repr(bound) and model.conditioning == {}
    with pytest.raises(ValueError, match=r"conditioning 'shift' has batch size 3.*4 states"):
        model.denoise(x, 1.0, shift=torch.zeros(3, 2))


def test_adapter_bad_input_names_what_was_wrong():
    identity = lambda x, sigma: x  # noqa: E731
    with pytest.raises(TypeError, match="fn must be callable"):
        adapters.from_denoiser(3, event_shape=(2,))
    with pytest.raises(ValueError, match="event_shape must be a non-empty tuple"):
        adapters.from_denoiser(identity, event_shape=(2, 0))
    with pytest.raises(ValueError, match=r"sigma_max \(1.0\) must exceed sigma_min \(2.0\)"):
        adapters.from_denoiser(identity, event_shape=(2,), sigma_min=2.0, sigma_max=1.0)
    model = adapters.from_denoiser(identity, event_shape=(2,), sigma_min=0.01, sigma_max=10.0)
    x = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        model.denoise(torch.zeros(3, 4), 1.0)
    with pytest.raises(ValueError, match=r"sigma 20 is outside the valid range .*\[0.01, 10\]"):
        model.denoise(x, 20.0)
    with pytest.raises(ValueError, match=r"sigma 0.001 is outside"):
        model.score(x, torch.tensor([1.0, 0.001, 1.0]))
    model.denoise(x, 10.0 * (1 + 1e-7))  # a bound computed in float32 still counts as inside
    wrong = adapters.from_denoiser(lambda x, sigma: x[:, :1], event_shape=(2,))
    with pytest.raises(ValueError, match=r"returned a denoised x of shape \(3, 1\)"):
        wrong.denoise(x, 1.0)
    broken = adapters.from_denoiser(lambda x, sigma: x / 0.0, event_shape=(2,))
    with pytest.raises(ValueError, match="returned a denoised x holding NaN or inf"):
        broken.denoise(x, 1.0)


def test_import_of_adapters_loads_no_diffusers():
    code = "import memscape, memscape.adapters, sys; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_load_dispatches_memscape_folders_and_python_paths(tmp_path):
    net = ms.ScoreModel.mlp(2, width=8, layers=1, sigma_data=1.0, seed=3)
    net.save(tmp_path / "net")
    loaded = adapters.load(tmp_path / "net")
    x = torch.randn(4, 2, generator=_gen(5), dtype=F64)
    assert isinstance(loaded, ms.ScoreModel)
    torch.testing.assert_close(loaded.denoise(x, 0.5), net.denoise(x, 0.5))
    model = adapters.load("tests.test_adapters:gaussian_model")
    mean, cov = _gaussian()
    z = torch.randn(4, 3, generator=_gen(6), dtype=F64)
    torch.testing.assert_close(model.denoise(z, 0.5), gaussian_denoiser(z, 0.5, mean, cov))
    with pytest.raises(TypeError, match="taking no arguments"):
        adapters.load("math:sqrt")
    with pytest.raises(TypeError, match="returned a float, not a memscape model"):
        adapters.load("math:pi")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        adapters.load("no_such_module_xyz:f")


def test_load_rejects_folders_that_hold_no_model(tmp_path):
    with pytest.raises(ValueError, match="no such model folder"):
        adapters.load(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="is a file"):
        adapters.load(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match=r"holds no model: expected model.json .*model_index.json"):
        adapters.load(tmp_path)
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"unfinished memscape.train run"):
        adapters.load(tmp_path / "run")
    with pytest.raises(TypeError, match="path must be a folder"):
        adapters.load(3)


# -------------------------------------------------------------------- diffusers
@pytest.fixture(scope="module")
def diffusers():
    return pytest.importorskip("diffusers")


def tiny_unet(diffusers, **kw):
    """A seeded 41k-parameter ``UNet2DModel`` on 1×8×8 images, float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = diffusers.UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=kw.pop("out_channels", 1),
            layers_per_block=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
            **kw,
        )
    return unet.double().eval()


@pytest.fixture(scope="module")
def unet(diffusers):
    return tiny_unet(diffusers)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_vp_schedule_and_timesteps_follow_the_closed_form(diffusers, unet):
    """σ_t = √((1 − ᾱ_t)/ᾱ_t) of DDPM's linear β's; t(σ) interpolates ln σ; inverse."""
    model = adapters.from_diffusers(unet, diffusers.DDPMScheduler())
    alpha_bar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    sigma = np.sqrt((1 - alpha_bar) / alpha_bar)
    # (diffusers keeps ᾱ in float32: 1 − ᾱ near ᾱ ≈ 1 carries a ~1e-4 relative error)
    np.testing.assert_allclose(model.sigmas.numpy(), sigma, rtol=1e-3)
    assert model.sigma_min == pytest.approx(sigma[0], rel=1e-3)
    assert model.sigma_max == pytest.approx(sigma[-1], rel=1e-5)
    t = torch.tensor([0.0, 0.25, 17.6, 500.0, 998.9, 999.0], dtype=F64)
    s = model.t_to_sigma(t)
    ls = np.log(model.sigmas.numpy())
    lo = np.floor(t.numpy()).astype(int)
    hi = np.minimum(lo + 1, 999)
    ref = np.exp(ls[lo] + (t.numpy() - lo) * (ls[hi] - ls[lo]))
    np.testing.assert_allclose(s.numpy(), ref, rtol=1e-12)
    torch.testing.assert_close(model.sigma_to_t(s), t, rtol=0, atol=1e-9)
    model.quantize = True
    assert model.sigma_to_t(s).tolist() == [0, 0, 18, 500, 999, 999]


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoiser_equals_the_scheduler_one_step_prediction(diffusers, unet, prediction):
    """D(x, σ_t) = DDPMScheduler.step(unet(x_t, t), t, x_t).pred_original_sample, x = x_t/√ᾱ_t.

    100 inputs × 10 training timesteps (σ from 0.01 to 157), float64, ≤ 1e-5 relative.
    """
    scheduler = diffusers.DDPMScheduler(prediction_type=prediction, clip_sample=False)
    model = adapters.from_diffusers(unet, scheduler)
    g = _gen(10)
    steps = torch.linspace(0, 999, 10).round().long()
    inputs, sigmas, refs = [], [], []
    for t in steps:
        x_t = torch.randn(100, 1, 8, 8, generator=g, dtype=F64)
        with torch.no_grad():
            ref = scheduler.step(unet(x_t, t).sample, int(t), x_t).pred_original_sample
        alpha_bar = float(scheduler.alphas_cumprod[t])
        x = x_t / math.sqrt(alpha_bar)
        sigma = math.sqrt((1 - alpha_bar) / alpha_bar)
        assert _rel(model.denoise(x, sigma), ref) <= 1e-5, (prediction, int(t))
        inputs.append(x[:3])
        sigmas.append(torch.full((3,), sigma, dtype=F64))
        refs.append(ref[:3])
    # one batch with a σ per state gives the same
    mixed = model.denoise(torch.cat(inputs), torch.cat(sigmas))
    assert _rel(mixed, torch.cat(refs)) <= 1e-5


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_edm_scheduler_denoiser_equals_its_one_step_prediction(diffusers, unet, prediction):
    scheduler = diffusers.EDMEulerScheduler(prediction_type=prediction)
    model = adapters.from_diffusers(unet, scheduler)
    assert (model.kind, model.sigma_min, model.sigma_max, model.sigma_data) == (
        "edm",
        0.002,
        80.0,
        0.5,
    )
    scheduler.set_timesteps(10)
    g = _gen(11)
    for i, t in enumerate(scheduler.timesteps):
        x = torch.randn(100, 1, 8, 8, generator=g, dtype=F64) * (1 + float(scheduler.sigmas[i]))
        with torch.no_grad():
            out = unet(scheduler.scale_model_input(x, t), t).sample
        ref = scheduler.step(out, t, x).pred_original_sample
        assert _rel(model.denoise(x, float(scheduler.sigmas[i])), ref) <= 1e-5, i


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_euler_on_the_schedule_reproduces_the_ddim_pipeline(diffusers, unet, prediction):
    """memscape's Euler (= DDIM η = 0 in σ-space) on the model's grid vs DDIMPipeline, ≤ 1e-4."""
    scheduler = diffusers.DDIMScheduler(prediction_type=prediction, clip_sample=False)
    pipe = diffusers.DDIMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        batch_size=4, generator=_gen(12), num_inference_steps=20, eta=0.0, output_type="np"
    ).images  # (B, H, W, C), clamped to [0, 1]
    images = torch.as_tensor(images).permute(0, 3, 1, 2)
    # the pipeline's loop before its final clamp to [0, 1]
    x_t = torch.randn(4, 1, 8, 8, generator=_gen(12), dtype=F64)
    scheduler.set_timesteps(20)
    with torch.no_grad():
        for t in scheduler.timesteps:
            x_t = scheduler.step(unet(x_t, t).sample, t, x_t, eta=0.0).prev_sample

    model = adapters.from_diffusers(unet, scheduler)
    sigmas = model.schedule_sigmas(20)
    assert sigmas.shape == (21,) and sigmas[-1] == 0
    assert sigmas[0] == pytest.approx(model.t_to_sigma(scheduler.timesteps[0]).item())
    start = torch.randn(4, 1, 8, 8, generator=_gen(12), dtype=F64) * math.sqrt(1 + sigmas[0] ** 2)
    x = sample_euler(model, start, sigmas)
    assert _rel(x, x_t) <= 1e-4
    assert float(((x / 2 + 0.5).clamp(0, 1) - images).abs().max()) <= 1e-4


def test_euler_on_the_edm_schedule_reproduces_the_edm_euler_loop(diffusers, unet):
    scheduler = diffusers.EDMEulerScheduler()
    model = adapters.from_diffusers(unet, scheduler)
    sigmas = model.schedule_sigmas(12)
    start = torch.randn(3, 1, 8, 8, generator=_gen(13), dtype=F64) * sigmas[0]
    scheduler.set_timesteps(12)
    x_ref = start.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(x_ref, t), t).sample
            x_ref = scheduler.step(out, t, x_ref).prev_sample
    assert _rel(sample_euler(model, start, sigmas), x_ref) <= 1e-4


def test_conditioning_and_learned_variance_pass_through(diffusers):
    unet = tiny_unet(diffusers, num_class_embeds=3, out_channels=2)
    scheduler = diffusers.DDPMScheduler(variance_type="learned_range", clip_sample=False)
    model = adapters.from_diffusers(unet, scheduler)
    x_t = torch.randn(4, 1, 8, 8, generator=_gen(14), dtype=F64)
    labels = torch.tensor([0, 1, 2, 1])
    t = 400
    with torch.no_grad():
        out = unet(x_t, t, class_labels=labels).sample
    ref = scheduler.step(out, t, x_t).pred_original_sample
    alpha_bar = float(scheduler.alphas_cumprod[t])
    x, sigma = x_t / math.sqrt(alpha_bar), math.sqrt((1 - alpha_bar) / alpha_bar)
    assert _rel(model.denoise(x, sigma, class_labels=labels), ref) <= 1e-5
    bound = adapters.from_diffusers(unet, scheduler, class_labels=1)  # an int: every state
    torch.testing.assert_close(
        bound.denoise(x, sigma), model.denoise(x, sigma, class_labels=torch.ones(4, dtype=int))
    )


def test_hessian_of_an_adapted_unet_is_the_derivative_of_its_score(diffusers, unet):
    """Autograd through the adapter, two states at once and through the UNet's attention
    block: H v, and J v by double backward (what Lanczos uses), against central
    differences of the score."""
    assert any(type(m).__name__ == "Attention" for m in unet.modules())
    model = adapters.from_diffusers(unet, diffusers.DDIMScheduler())
    x = torch.randn(2, 1, 8, 8, generator=_gen(15), dtype=F64)
    v = torch.randn(2, 1, 8, 8, generator=_gen(16), dtype=F64)
    sigma, h = 0.8, 1e-4
    fd = (model.score(x + h * v, sigma) - model.score(x - h * v, sigma)) / (2 * h)  # J v
    hv = (model.hessian(x, sigma) @ v.reshape(2, 64, 1)).reshape(x.shape)
    assert _rel(hv, -fd) <= 1e-5
    xg = x.clone().requires_grad_(True)
    s = model.score(xg, sigma)
    u = torch.zeros_like(s, requires_grad=True)
    (jt_u,) = torch.autograd.grad(s, xg, grad_outputs=u, create_graph=True)
    (jv,) = torch.autograd.grad(jt_u, u, grad_outputs=v)  # J v = ∂(Jᵀu)ᵀv/∂u
    assert _rel(jv, fd) <= 1e-5


# -------------------------------------------------------------------- analyses of adapted models
def _two_points(a: float):
    """Exact denoiser of the 1-D points ±a: D(x, σ) = a tanh(a x/σ²), by hand."""
    return adapters.from_denoiser(lambda x, sigma: a * torch.tanh(a * x / sigma[:, None] ** 2),
                                  event_shape=(1,), name="two points")  # fmt: skip


def _softmax_denoiser(points: torch.Tensor):
    """Exact denoiser of ``points``: Σ_k softmax_k(−‖x − y_k‖²/2σ²) y_k, by hand."""

    def denoise(x, sigma):
        logits = -(torch.cdist(x, points) ** 2) / (2 * sigma[:, None] ** 2)
        return logits.softmax(1) @ points

    return adapters.from_denoiser(denoise, event_shape=(points.shape[1],), sigma_min=1e-3)


def test_census_continuation_and_classes_run_on_adapted_models():
    """Wiener filter: one minimum at μ with Hessian (S + σ²I)⁻¹; ±a: a pitchfork at σ = a
    (the midpoint's Hessian (1 − a²/σ²)/σ²); well-separated points at small σ: every
    minimum and every sample is memorized."""
    mean, cov = _gaussian()
    cps = ms.critical_points(gaussian_model(), 0.5, n_starts=16, generator=_gen(20))
    ok = cps.converged
    assert int(ok.sum()) == 1 and int(cps.morse_index[ok][0]) == 0
    torch.testing.assert_close(cps.points[ok][0], mean, rtol=0, atol=1e-8)
    eig = torch.linalg.eigvalsh(torch.linalg.inv(cov + 0.25 * torch.eye(3, dtype=F64)))
    torch.testing.assert_close(cps.eigenvalues[ok][0], eig, rtol=1e-6, atol=0)
    diagram = ms.continuation(_two_points(1.5), "sigma", start=3.0, stop=0.3,
                              starts=torch.zeros(1, 1, dtype=F64), reseed=0)  # fmt: skip
    bif = diagram.bifurcations
    assert list(bif.kind) == ["pitchfork"] and abs(bif.parameter.iloc[0] - 1.5) < 0.015
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=F64)
    model = _softmax_denoiser(square)
    minima = ms.memorization.classify_attractors(model, 0.1, square, delta_m=0.1, n_starts=32,
                                                 generator=_gen(21))  # fmt: skip
    assert len(minima) == 4 and set(minima["class"]) == {"memorized"}
    assert float(minima["d1"].max()) < 1e-6
    x = ms.sample(model, 16, steps=12, dtype=F64)  # σ from the model's sigma_min = 1e-3
    assert ms.classify_samples(x, square).fractions()["memorized"] == 1.0


def test_save_pretrained_folders_load_through_one_entry_point(diffusers, unet, tmp_path):
    scheduler = diffusers.DDIMScheduler(prediction_type="v_prediction")
    diffusers.DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "pipe")
    direct = adapters.from_diffusers(unet, scheduler)
    x = torch.randn(5, 1, 8, 8, generator=_gen(17), dtype=F64)
    for loaded in (
        adapters.load_diffusers(tmp_path / "pipe", dtype=F64),
        adapters.load(tmp_path / "pipe", dtype=F64),
    ):
        assert isinstance(loaded, adapters.DiffusersModel)
        assert loaded.prediction_type == "v_prediction"
        torch.testing.assert_close(loaded.denoise(x, 2.0), direct.denoise(x, 2.0))
    assert repr(direct) == (
        "DiffusersModel(unet='UNet2DModel', scheduler='DDIMScheduler', prediction_type="
        "'v_prediction', event_shape=(1, 8, 8), sigma_min=0.0100013, sigma_max=157.407, "
        "params=41609, dtype=float64)"
    )


def test_diffusers_bad_input_is_named_before_any_work(diffusers, unet, tmp_path):
    # a folder with a network but no scheduler
    unet.save_pretrained(tmp_path / "only" / "unet")
    with pytest.raises(ValueError, match=r"missing scheduler: .* no scheduler/scheduler_config"):
        adapters.load(tmp_path / "only")
    with pytest.raises(ValueError, match="missing scheduler"):
        adapters.load_diffusers(tmp_path / "only" / "unet")  # a bare network folder
    with pytest.raises(ValueError, match="is not a diffusers folder"):
        adapters.load_diffusers(tmp_path / "only" / "..")  # nothing recognizable above
    # an unknown prediction type, found before the (missing) weights are looked at
    folder = tmp_path / "bad"
    diffusers.DDPMScheduler().save_pretrained(folder / "scheduler")
    cfg_file = folder / "scheduler" / "scheduler_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**cfg, "prediction_type": "flow"}))
    (folder / "unet").mkdir()
    (folder / "unet" / "config.json").write_text(json.dumps(dict(unet.config)))
    with pytest.raises(ValueError, match="unknown prediction_type 'flow'"):
        adapters.load(folder)
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="no weights in"):
        adapters.load(folder)
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "NoSuchUNet"}))
    with pytest.raises(ValueError, match="network class 'NoSuchUNet'"):
        adapters.load(folder)
    with pytest.raises(ValueError, match="unknown prediction_type 'flow'"):
        adapters.from_diffusers(unet, diffusers.DDPMScheduler(prediction_type="flow"))
    with pytest.raises(ValueError, match=r"unknown prediction_type 'sample'.*EDMEulerScheduler"):
        adapters.from_diffusers(unet, diffusers.EDMEulerScheduler(prediction_type="sample"))
    with pytest.raises(ValueError, match="FlowMatchEulerDiscreteScheduler is not supported"):
        adapters.from_diffusers(unet, diffusers.FlowMatchEulerDiscreteScheduler())
    with pytest.raises(TypeError, match="scheduler must be a diffusers scheduler"):
        adapters.from_diffusers(unet, object())


def test_sigma_outside_the_schedule_and_non_finite_output_are_named(diffusers, unet):
    model = adapters.from_diffusers(unet, diffusers.DDPMScheduler())
    calls = []
    hook = unet.register_forward_pre_hook(lambda *a: calls.append(1))
    x = torch.zeros(2, 1, 8, 8, dtype=F64)
    try:
        with pytest.raises(ValueError, match=r"sigma 200 is outside .*\[0.0100013, 157.407\]"):
            model.denoise(x, 200.0)
        with pytest.raises(ValueError, match=r"sigma 0.001 is outside"):
            model.score(x, torch.tensor([0.5, 0.001], dtype=F64))
        assert calls == []  # refused before the network ran
    finally:
        hook.remove()
    broken = tiny_unet(diffusers)
    with torch.no_grad():
        broken.conv_out.bias.fill_(float("nan"))
    with pytest.raises(
        ValueError, match=r"network output \(epsilon prediction\) holding NaN or inf"
    ):
        adapters.from_diffusers(broken, diffusers.DDPMScheduler()).denoise(x, 1.0)
