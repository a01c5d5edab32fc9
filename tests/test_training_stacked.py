"""train_stacked: each stacked model equals memscape.train alone; bad input; resume."""

from __future__ import annotations

import pytest
import torch

import memscape as ms
from memscape.diffusion.stacked import train_stacked

KW = dict(batch=16, lr=3e-3, warmup=5, log_every=7, progress=False)
POOL = ms.datasets.load("circle", n=64, seed=0).x
SETS = [POOL[:4], POOL[:16], POOL[10:50]]  # K = 4, 16, 40: one training set per model


def _mlp(seed: int, **kw) -> ms.ScoreModel:
    return ms.ScoreModel.mlp(2, width=32, layers=2, seed=seed, **kw)


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        (p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    "options", [{}, {"energy": True}, {"precond": "ve"}, {"precond": "vp", "film": "all"}]
)
def test_each_stacked_model_equals_train_alone(options):
    """Truth: memscape.train run separately on each model with its seed and data."""
    seeds = [5, 6, 7]
    stacked = train_stacked(
        [_mlp(s, **options) for s in (1, 2, 3)], SETS, seed=seeds, steps=30, **KW
    )
    for i, s in enumerate((1, 2, 3)):
        alone = ms.train(_mlp(s, **options), SETS[i], seed=seeds[i], steps=30, **KW)
        assert _max_diff(alone.model, stacked[i].model) < 1e-5, i
        assert stacked[i].model.sigma_data == pytest.approx(alone.model.sigma_data)
        assert list(stacked[i].losses["step"]) == list(alone.losses["step"])
        assert torch.allclose(
            torch.tensor(stacked[i].losses["loss"].values),
            torch.tensor(alone.losses["loss"].values),
            rtol=1e-5,
        )
        assert not stacked[i].model.training
    # the comparison can fail: other draws (seed) or another data set give other weights
    other = ms.train(_mlp(1, **options), SETS[0], seed=8, steps=30, **KW)
    assert _max_diff(other.model, stacked[0].model) > 1e-3
    assert _max_diff(stacked[1].model, stacked[2].model) > 1e-3


def _filled(seed: int) -> ms.ScoreModel:
    """An MLP whose output layer is not 0 (F = 0 in any precision at initialization)."""
    m = _mlp(seed)
    m.sigma_data = 0.5
    with torch.no_grad():
        m.network.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed))
    return m


def test_bfloat16_stacked_network_multiplies_in_bfloat16(monkeypatch):
    """precision='bfloat16': every matrix product of the stacked network in bfloat16 (under
    vmap the bias add and what follows stay float32: pytorch/pytorch#192617). Truth: each
    model alone with every linear layer written by hand as the bfloat16 product plus the
    float32 bias; the stacked D is 10× closer to it than to the float32 network."""
    from memscape.diffusion import stacked as st
    from memscape.diffusion.training import _check_hyper

    models = [_filled(s) for s in (1, 2)]
    hyper = _check_hyper(steps=1, batch=8, seed=0, lr=1e-3, warmup=0, ema=0.9, grad_clip=None,
                         log_every=1, precision="bfloat16")  # fmt: skip
    trainer = st._StackedTrainer(models, SETS[:2], torch.device("cpu"), hyper, [0, 1])
    g = torch.Generator().manual_seed(0)
    x, sigma = torch.randn(2, 8, 2, generator=g), torch.exp(torch.randn(2, 8, generator=g))
    with torch.no_grad():
        mixed = trainer._f(x, sigma)
        full = torch.stack([m._denoise(x[i], sigma[i]) for i, m in enumerate(models)])

        def by_hand(inp, weight, bias=None):
            out = (inp.bfloat16() @ weight.bfloat16().T).float()
            return out if bias is None else out + bias

        monkeypatch.setattr(torch.nn.functional, "linear", by_hand)
        hand = torch.stack([m._denoise(x[i], sigma[i]) for i, m in enumerate(models)])
    gap = float((hand - full).norm())
    assert gap > 1e-4 * float(full.norm())  # bfloat16 changes D measurably
    assert float((mixed - hand).norm()) < gap / 10


def test_bfloat16_stacked_training_is_recorded_resumes_only_so_and_not_for_energy(tmp_path):
    runs = train_stacked([_filled(s) for s in (1, 2)], SETS[:2], seed=[5, 6], steps=20,
                         precision="bfloat16", out=[tmp_path / "a", tmp_path / "b"], **KW)  # fmt: skip
    full = train_stacked([_filled(s) for s in (1, 2)], SETS[:2], seed=[5, 6], steps=20, **KW)
    for r, f in zip(runs, full, strict=True):
        assert r.config["train"]["precision"] == "bfloat16"
        a, b = r.losses["loss"].to_numpy(), f.losses["loss"].to_numpy()
        assert 1e-7 < (abs(a - b) / b).max() < 2e-2  # bfloat16's rounding, not float32's curve
    with pytest.raises(ValueError, match="training arguments differ"):
        train_stacked([_filled(s) for s in (1, 2)], SETS[:2], seed=[5, 6], steps=30,
                      out=[tmp_path / "a", tmp_path / "b"], **KW)  # fmt: skip
    energy = [_mlp(1, energy=True), _mlp(2, energy=True)]
    with pytest.raises(ValueError, match="not available for energy models"):
        train_stacked(energy, SETS[:2], steps=2, precision="bfloat16", **KW)
    unets = [ms.ScoreModel.unet((1, 8, 8), channels=8, seed=s) for s in (1, 2)]
    out = [tmp_path / "u1", tmp_path / "u2"]
    with pytest.raises(ValueError, match="MLP networks only"):
        train_stacked(unets, torch.zeros(4, 1, 8, 8), steps=2, precision="bfloat16", out=out, **KW)
    assert not any(p.exists() for p in out)


def test_one_model_and_one_data_set_for_all():
    """M = 1 is train; an unlisted data set and an int seed are shared by every model."""
    (one,) = train_stacked([_mlp(0)], SETS[1], seed=3, steps=25, **KW)
    alone = ms.train(_mlp(0), SETS[1], seed=3, steps=25, **KW)
    assert _max_diff(one.model, alone.model) < 1e-5
    assert one.config["train"] == alone.config["train"]
    assert one.config["data"] == alone.config["data"]
    a, b = train_stacked([_mlp(0), _mlp(0)], SETS[1], seed=3, steps=25, **KW)
    assert _max_diff(a.model, alone.model) < 1e-5 and _max_diff(b.model, alone.model) < 1e-5


def test_stacked_unet_equals_train_alone():
    """vmap through convolutions, GroupNorm and attention."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 1, 8, 8, generator=g) * 2 - 1
    sets = [x, x[:6]]

    def unet(seed: int) -> ms.ScoreModel:
        return ms.ScoreModel.unet((1, 8, 8), channels=8, attention=True, emb_dim=16, seed=seed)

    stacked = train_stacked([unet(0), unet(1)], sets, seed=[0, 1], steps=6, batch=4, progress=False)
    for i in range(2):
        alone = ms.train(unet(i), sets[i], seed=i, steps=6, batch=4, progress=False)
        assert _max_diff(alone.model, stacked[i].model) < 1e-5


def test_bad_input_raises_before_work(tmp_path):
    out = [tmp_path / "a", tmp_path / "b"]
    models = [_mlp(0), _mlp(1)]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    cases = [
        (dict(models=[]), ValueError, "at least one"),
        (dict(models=models[0]), TypeError, "list or tuple"),
        (dict(models=[models[0], ms.EmpiricalDiffusion(POOL)]), TypeError, r"models\[1\]"),
        (dict(models=[models[0], models[0]]), ValueError, "shares its weights"),
        (
            dict(models=[models[0], ms.ScoreModel.mlp(2, width=16, layers=2)]),
            ValueError,
            "parameters",
        ),
        (dict(models=[models[0], _mlp(1, energy=True)]), ValueError, "energy form"),
        (dict(models=[models[0], _mlp(1, precond="ve")]), ValueError, "preconditioning"),
        (dict(data=[SETS[0]]), ValueError, "one training set per model"),
        (dict(data=[SETS[0], torch.zeros(5, 3)]), ValueError, r"data\[1\] samples have shape"),
        (dict(data=[SETS[0], torch.zeros(5, 2, dtype=torch.long)]), TypeError, r"data\[1\]"),
        (dict(seed=[1, 2, 3]), ValueError, "seed must hold one value per model"),
        (dict(seed=[1, -2]), ValueError, r"seed\[1\]"),
        (dict(data=[SETS[0], torch.full((4, 2), float("nan"))]), ValueError, "finite"),
        (dict(steps=0), ValueError, "steps"),
        (dict(batch=2.5), TypeError, "batch"),
        (dict(out=out[:1]), ValueError, "out must hold one value per model"),
        (dict(out=[out[0], out[0]]), ValueError, "different folder"),
        (dict(out=str(out[0])), TypeError, "out must be a list"),
    ]
    for change, err, match in cases:
        kw = dict(models=models, data=SETS[:2], seed=[1, 2], steps=5, out=out, progress=False)
        kw.update(change)
        with pytest.raises(err, match=match):
            train_stacked(kw.pop("models"), kw.pop("data"), **kw)
    assert not any(p.exists() for p in out)
    for m, b in zip(models, before, strict=True):
        assert m.sigma_data is None and all(torch.equal(v, b[k]) for k, v in m.state_dict().items())


def test_resume_equals_uninterrupted_and_train_resumes_a_stacked_run(tmp_path):
    seeds = [3, 4]

    def run(folder: str, steps: int, **kw):
        out = [tmp_path / folder / str(i) for i in range(2)]
        models = [_mlp(s) for s in seeds]
        return train_stacked(models, SETS[:2], seed=seeds, steps=steps, out=out, **KW, **kw)

    full = run("full", 40, checkpoint_every=20)
    first = run("split", 20)
    assert len(first[0].losses) == 3 and (tmp_path / "split/1/checkpoint/state.json").is_file()
    rest = run("split", 40)
    for f, r in zip(full, rest, strict=True):
        assert all(
            torch.equal(p, q)
            for p, q in zip(f.model.parameters(), r.model.parameters(), strict=True)
        )
        assert f.losses.equals(r.losses)
        saved = ms.ScoreModel.load(r.path)  # a run folder of train's layout: EMA weights
        assert all(
            torch.equal(p, q) for p, q in zip(saved.parameters(), r.model.parameters(), strict=True)
        )
    # a finished stacked run folder is a finished train run: train adds no step
    again = ms.train(_mlp(seeds[0]), SETS[0], seed=seeds[0], steps=40, out=full[0].path, **KW)
    assert all(
        torch.equal(p, q)
        for p, q in zip(again.model.parameters(), full[0].model.parameters(), strict=True)
    )
    # train resumes a stacked model's checkpoint and ends where the stacked run did
    run("handover", 20)
    for i, f in enumerate(full):
        alone = ms.train(
            _mlp(seeds[i]),
            SETS[i],
            seed=seeds[i],
            steps=40,
            out=tmp_path / "handover" / str(i),
            **KW,
        )
        assert _max_diff(alone.model, f.model) < 1e-5
        assert torch.allclose(torch.tensor(alone.losses["loss"]), torch.tensor(f.losses["loss"]))


def test_resume_refuses_models_at_different_steps(tmp_path):
    out = [tmp_path / "a", tmp_path / "b"]
    ms.train(_mlp(0), SETS[0], seed=0, steps=10, out=out[0], **KW)
    with pytest.raises(ValueError, match="resume together"):
        train_stacked([_mlp(0), _mlp(1)], SETS[:2], seed=[0, 1], steps=20, out=out, **KW)
    assert not out[1].exists()
    ms.train(_mlp(1), SETS[1], seed=1, steps=15, out=out[1], **KW)
    with pytest.raises(ValueError, match="different steps"):
        train_stacked([_mlp(0), _mlp(1)], SETS[:2], seed=[0, 1], steps=20, out=out, **KW)
    with pytest.raises(ValueError, match="cannot resume"):
        train_stacked([_mlp(0), _mlp(1)], SETS[:2], seed=[0, 2], steps=20, out=out, **KW)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stacked_on_cuda_equals_train_on_cuda():
    cpu = train_stacked([_mlp(0), _mlp(1)], SETS[:2], seed=[0, 1], steps=10, **KW)
    gpu = train_stacked([_mlp(0), _mlp(1)], SETS[:2], seed=[0, 1], steps=10, device="cuda", **KW)
    alone = ms.train(_mlp(1), SETS[1], seed=1, steps=10, device="cuda", **KW)
    assert next(gpu[0].model.parameters()).is_cuda
    assert _max_diff(gpu[1].model, alone.model) < 1e-4
    assert all(torch.isfinite(p).all() for r in cpu + gpu for p in r.model.parameters())
