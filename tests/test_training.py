"""Training: accuracy on a Gaussian mixture, determinism, checkpoints/resume, bad input, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import memscape as ms
from memscape.cli import app

C = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
W = torch.tensor([0.5, 0.3, 0.2])
STD = 0.15


def mixture_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Closed-form E[y | x] for y ~ Σ_k w_k N(c_k, s²I), x = y + σz."""
    v = STD**2 + sigma**2
    logp = W.log() - ((x[:, None, :] - C[None]) ** 2).sum(-1) / (2 * v)
    r = torch.softmax(logp, 1)
    return ((C[None] + STD**2 / v * (x[:, None, :] - C[None])) * r[..., None]).sum(1)


def _tiny(**kw) -> ms.ScoreModel:
    return ms.ScoreModel.mlp(2, width=32, layers=2, **kw)


def _circle(n: int = 32) -> ms.datasets.Dataset:
    return ms.datasets.load("circle", n=n, seed=0)


def test_trained_mlp_matches_mixture_denoiser_and_weights():
    data = ms.datasets.load("gmm", size=4096, centres=C.tolist(), weights=W.tolist(), std=STD)
    model = ms.ScoreModel.mlp(2, width=64, layers=3)
    run = ms.train(model, data, steps=1200, batch=256, lr=2e-3, seed=0, progress=False)
    assert run.losses["loss"].iloc[-1] < run.losses["loss"].iloc[0]
    g = torch.Generator().manual_seed(1)
    for sigma in (0.3, 0.6, 1.0):
        y = data.x[torch.randint(len(data), (2000,), generator=g)]
        x = y + sigma * torch.randn(y.shape, generator=g)
        with torch.no_grad():
            d, exact = model.denoise(x, sigma), mixture_denoiser(x, sigma)
        rel = (d - exact).norm(dim=1).mean() / (exact - x).norm(dim=1).mean()
        assert rel < 0.15, (sigma, rel)
    x = ms.sample(model, 4000, generator=torch.Generator().manual_seed(2))
    freq = torch.bincount(torch.cdist(x, C).argmin(1), minlength=3) / len(x)
    assert torch.allclose(freq, W, atol=0.06)
    assert (torch.cdist(x, C).min(1).values < 4 * STD).float().mean() > 0.95


def test_two_runs_with_one_seed_are_identical_and_seeds_differ():
    data = _circle()
    a = ms.train(_tiny(), data, steps=30, batch=16, seed=5, progress=False)
    b = ms.train(_tiny(), data, steps=30, batch=16, seed=5, progress=False)
    c = ms.train(_tiny(), data, steps=30, batch=16, seed=6, progress=False)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert a.losses.equals(b.losses) and not a.losses.equals(c.losses)


@pytest.mark.parametrize("energy", [False, True])
def test_resume_equals_uninterrupted_training(tmp_path, energy):
    data = _circle()
    kw = dict(batch=16, seed=3, log_every=7, progress=False)
    full = ms.train(
        _tiny(energy=energy), data, steps=40, out=tmp_path / "full", checkpoint_every=20, **kw
    )
    first = ms.train(_tiny(energy=energy), data, steps=20, out=tmp_path / "split", **kw)
    assert (tmp_path / "split" / "checkpoint" / "state.json").is_file()
    assert len(first.losses) == 3
    rest = ms.train(_tiny(energy=energy), data, steps=40, out=tmp_path / "split", **kw)
    for (k, p), (_, q) in zip(
        full.model.state_dict().items(), rest.model.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), k
    assert full.losses.equals(rest.losses)
    saved = ms.ScoreModel.load(tmp_path / "split")  # run folder: EMA weights
    for p, q in zip(saved.parameters(), rest.model.parameters(), strict=True):
        assert torch.equal(p, q)
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    assert cfg["train"]["seed"] == 3 and "torch" in cfg["versions"]
    assert (tmp_path / "full" / "losses.csv").read_text().startswith("step,loss,lr")


def test_rerunning_a_finished_run_keeps_its_final_partial_loss_row(tmp_path):
    """40 steps logged every 7: rows at 7, …, 35 and a partial one at 40 — also on a re-run."""
    data = _circle()
    kw = dict(steps=40, batch=16, seed=3, log_every=7, out=tmp_path / "run", progress=False)
    first = ms.train(_tiny(), data, **kw)
    assert list(first.losses["step"]) == [7, 14, 21, 28, 35, 40]
    again = ms.train(_tiny(), data, **kw)  # finished: resumes at step 40, trains nothing
    pd.testing.assert_frame_equal(again.losses, first.losses, check_exact=True)
    on_disk = pd.read_csv(tmp_path / "run" / "losses.csv")
    assert list(on_disk["step"]) == [7, 14, 21, 28, 35, 40]


def test_resume_refuses_a_different_configuration(tmp_path):
    data = _circle()
    ms.train(_tiny(), data, steps=10, batch=8, out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="cannot resume"):
        ms.train(_tiny(), data, steps=20, batch=16, out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="cannot resume"):
        ms.train(_tiny(), _circle(40), steps=20, batch=8, out=tmp_path / "r", progress=False)
    fresh = ms.train(
        _tiny(), data, steps=20, batch=16, out=tmp_path / "r", progress=False, resume=False
    )
    assert fresh.losses["step"].iloc[-1] == 20


def test_bad_input_raises_before_writing(tmp_path):
    data = _circle()
    out = tmp_path / "never"
    cases = [
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=10, batch=0), ValueError, "batch"),
        (dict(steps=10, lr=-1.0), ValueError, "lr"),
        (dict(steps=10, ema=1.5), ValueError, "ema"),
        (dict(steps=2.5), TypeError, "steps"),
    ]
    for kw, err, match in cases:
        with pytest.raises(err, match=match):
            ms.train(_tiny(), data, out=out, progress=False, **kw)
    with pytest.raises(ValueError, match="shape"):
        ms.train(ms.ScoreModel.mlp(3, width=8, layers=1), data, steps=5, out=out, progress=False)
    with pytest.raises(TypeError, match="ScoreModel"):
        ms.train(ms.EmpiricalDiffusion(data.x), data, steps=5, out=out, progress=False)
    with pytest.raises(ValueError, match="finite"):
        ms.train(_tiny(), torch.full((4, 2), float("nan")), steps=5, out=out, progress=False)
    assert not out.exists()


def test_train_takes_everything_after_data_by_keyword(tmp_path):
    """``train(model, data, *, steps, ...)``: the old positional form fails before any work."""
    import inspect

    params = list(inspect.signature(ms.train).parameters.values())
    assert [p.name for p in params[:2]] == ["model", "data"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:])
    assert params[2].name == "steps" and params[2].default is inspect.Parameter.empty
    out = tmp_path / "never"
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match="positional"):
        ms.train(model, _circle(), 5, out=out, progress=False)
    with pytest.raises(TypeError, match="positional"):
        ms.train(model, _circle(), 5, 8, 0, out)
    with pytest.raises(TypeError, match="steps"):
        ms.train(model, _circle(), out=out, progress=False)
    assert not out.exists()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_cli_train_and_sample(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            "circle",
            "--n",
            "16",
            "--out",
            str(run_dir),
            "--steps",
            "60",
            "--batch",
            "16",
            "--width",
            "16",
            "--layers",
            "1",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (run_dir / "model.safetensors").is_file() and "final loss" in res.output
    res = runner.invoke(
        app, ["sample", str(run_dir), "--n", "20", "--steps", "6", "--out", str(tmp_path / "s.npy")]
    )
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "s.npy").shape == (20, 2)
    res = runner.invoke(
        app, ["train", "--data", "circle", "--out", str(tmp_path / "bad"), "--steps", "0"]
    )
    assert res.exit_code == 2 and "steps" in res.output and not (tmp_path / "bad").exists()
    res = runner.invoke(app, ["sample", str(run_dir), "--sampler", "nope"])
    assert res.exit_code == 2 and "sampler" in res.output


@pytest.mark.slow
def test_memorization_falls_with_training_set_size():
    """Calibration (d₁/d₂ < 1/3, 3500 steps, 18 Heun steps): circle 1.00 at K = 2 and
    0.03 at K = 1024; digits 0.99 at K = 4 and 0.02 at K = 64."""
    frac = {}
    for name, dim, sizes in (("circle", 2, (2, 1024)), ("digits", 64, (4, 64))):
        pool = ms.datasets.load(name)
        for k in sizes:
            data = pool.subset(k, seed=0)
            model = ms.ScoreModel.mlp(dim)
            ms.train(model, data, steps=3500, batch=256, seed=0, progress=False)
            g = torch.Generator().manual_seed(1)
            x = ms.sample(model, 1000, sampler="heun", steps=18, generator=g)
            d = torch.cdist(x, data.x).topk(2, largest=False).values
            frac[name, k] = (d[:, 0] / d[:, 1] < 1 / 3).float().mean().item()
    assert frac["circle", 2] > 0.95 and frac["circle", 1024] < 0.15, frac
    assert frac["digits", 4] > 0.8 and frac["digits", 64] < 0.35, frac
