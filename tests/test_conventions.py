"""One calling convention: typed model protocols, ``(x, sigma)`` order, σ spelled ``sigma``."""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil

import pytest
import torch

import memscape as ms
from memscape.protocol import Denoiser, Energy, EnergyModel, ScoreField, ScoreOrDenoiser

F64 = torch.float64
# spellings of a noise level that public signatures must not use (the model's σ is ``sigma``)
OLD_SIGMA_NAMES = {"sig", "sigma_model", "noise_level", "noise_levels", "level_sigma"}


class OnlyScore:
    def score(self, x, sigma):
        return -x


class OnlyDenoiser:
    event_shape = (2,)

    def denoise(self, x, sigma):
        return x / (1 + sigma**2)


def test_protocols_are_runtime_checkable_structural_types():
    y = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = ms.EmpiricalDiffusion(y)
    hopfield = ms.ModernHopfield(y)
    net = ms.ScoreModel.mlp(2, width=8, layers=1)
    for model in (exact, hopfield, net):
        assert isinstance(model, EnergyModel)
        assert isinstance(model, ScoreField) and isinstance(model, Energy)
        assert isinstance(model, ScoreOrDenoiser)
    assert isinstance(exact, Denoiser) and isinstance(net, Denoiser)
    assert isinstance(OnlyScore(), ScoreField) and not isinstance(OnlyScore(), Energy)
    assert not isinstance(OnlyScore(), Denoiser)
    assert isinstance(OnlyDenoiser(), Denoiser) and not isinstance(OnlyDenoiser(), ScoreField)
    assert isinstance(OnlyDenoiser(), ScoreOrDenoiser) and isinstance(OnlyScore(), ScoreOrDenoiser)
    assert not isinstance(object(), ScoreOrDenoiser)
    # a user's denoiser-only object goes through the samplers and the analysis alike
    x = ms.sample(OnlyDenoiser(), 3, steps=4, dtype=F64)
    assert x.shape == (3, 2)
    s = ms.score_of(OnlyDenoiser(), x, 0.5)
    assert torch.allclose(s, (x / 1.25 - x) / 0.25)


def test_log_normalizer_takes_x_then_sigma():
    """``log K + (d/2) log 2πσ²`` per sample, for a float and a ``(B,)`` σ."""
    y = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    model = ms.EmpiricalDiffusion(y)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref = math.log(7) + 1.5 * math.log(2 * math.pi * 0.3**2)
    assert torch.allclose(model.log_normalizer(x, 0.3), torch.full((4,), ref, dtype=F64))
    sig = torch.tensor([0.1, 0.2, 0.5, 1.0], dtype=F64)
    per = model.log_normalizer(x, sig)
    assert torch.allclose(per, math.log(7) + 1.5 * torch.log(2 * math.pi * sig**2))
    # −log p_σ = ‖x‖²/2σ² − lse_k((xᵀy_k − ‖y_k‖²/2)/σ²) + log_normalizer
    logits = (x @ y.T - 0.5 * (y**2).sum(1)) / 0.3**2
    e = 0.5 * (x**2).sum(1) / 0.3**2 - torch.logsumexp(logits, 1) + ref
    assert torch.allclose(model.energy(x, 0.3), e, rtol=1e-12)


def _public_callables():
    seen = set()
    for info in pkgutil.walk_packages(ms.__path__, "memscape."):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name.endswith(".cli"):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            items = [(f"{info.name}.{name}", obj)]
            if inspect.isclass(obj):
                items += [
                    (f"{info.name}.{name}.{m}", f)
                    for m, f in vars(obj).items()
                    if not m.startswith("_") and callable(f)
                ]
            for qual, f in items:
                if callable(f) and id(f) not in seen:
                    seen.add(id(f))
                    yield qual, f


def test_public_signatures_put_x_before_sigma_and_spell_sigma():
    checked = 0
    for qual, f in _public_callables():
        try:
            params = list(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            continue
        bad = OLD_SIGMA_NAMES & set(params)
        assert not bad, f"{qual} spells a noise level {sorted(bad)}: use sigma"
        if "x" in params and "sigma" in params:
            checked += 1
            assert params.index("x") < params.index("sigma"), f"{qual}{params}: (x, sigma) order"
    assert checked > 10


def test_samplers_take_and_return_one_convention():
    from memscape.diffusion.samplers import SAMPLERS

    for name, fn in SAMPLERS.items():
        params = inspect.signature(fn).parameters
        assert list(params)[:3] == ["model", "x", "sigmas"], name
        assert "return_trajectory" not in params and "callback" in params, name
        assert params["callback"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "return_trajectory" not in inspect.signature(ms.sample).parameters


@pytest.mark.parametrize("name", ["sample", "log_likelihood", "critical_points", "basin_radius"])
def test_model_annotations_are_protocols(name):
    ann = inspect.signature(getattr(ms, name)).parameters["model"].annotation
    assert ann in ("Denoiser", "ScoreOrDenoiser"), (name, ann)
