"""``memscape analyze``: any model (exact, a Python-path denoiser, a diffusers folder) into a
results folder; every bad input one ``error:`` line naming the argument, before any work.

Truth: the exact model of six points of a hexagon (its samples are training points, its
minima at small σ sit on them and its index-1 saddles at the midpoints of neighbours, its
score is a gradient, its log-density the Gaussian mixture's closed form), the exact model
of two and of three points (the probability-flow ODE carries a perturbed memory back to it
exactly when the perturbation stays on its side of the transport's watershed: the bisector
of two points, the quantiles 1/3 and 2/3 of the noised mixture on a line), the Wiener filter
of Gaussian data (one critical point, the mean, with Hessian (S + σ²I)⁻¹, and a Gaussian
log-density), and a tiny ``UNet2DModel`` built here (no downloads).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import memscape as ms
from memscape import analyze as analysis
from memscape import numeric
from memscape.analyze import fingerprint
from memscape.cli import app
from tests.test_adapters import _gaussian

runner = CliRunner()
F64 = torch.float64
HEXAGON = np.stack([np.cos(np.arange(6) * math.pi / 3), np.sin(np.arange(6) * math.pi / 3)], 1)


def invoke(*args):
    return runner.invoke(app, ["analyze", *(str(a) for a in args)], env={"COLUMNS": "200"})


def refused(res, *words):
    """Exit 2 with one ``error:`` line (no traceback) containing ``words``."""
    text = res.output.strip()
    assert res.exit_code == 2, res.output
    assert text.startswith("error:") and "\n" not in text, text
    for w in words:
        assert w in text, (w, text)


def log_mixture(x: np.ndarray, centres: np.ndarray, var: float) -> np.ndarray:
    """log (1/K) Σ_k N(x; y_k, var I), by hand."""
    sq = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    logs = -sq / (2 * var) - 0.5 * x.shape[1] * math.log(2 * math.pi * var)
    return np.logaddexp.reduce(logs, axis=1) - math.log(len(centres))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    np.save(root / "train.npy", HEXAGON)
    np.save(root / "held.npy", 1.15 * HEXAGON)
    np.save(root / "three.npy", np.zeros((5, 3)))
    return root


@pytest.fixture(scope="module")
def exact_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "exact"
    args = (files / "train.npy", "--held-out", files / "held.npy", "--samples", 12,
            "--sigma", "0.1", "--census", 3, "--likelihood", 3, "--trace", "exact",
            "--likelihood-sigma", 0.2, "--out", out)  # fmt: skip
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    return out, args


def test_exact_model_results_match_the_closed_forms(exact_run):
    out, _ = exact_run
    for name in ("classes", "basin", "census", "asymmetry", "likelihood", "timings"):
        assert (out / f"{name}.parquet").is_file() and (out / f"{name}.csv").is_file(), name
    for name in ("config.json", "report.md", "report.html", "ratio.png", "nearest.png",
                 "basin.png"):  # fmt: skip
        assert (out / name).is_file(), name
    x = np.load(out / "samples.npy")
    assert x.shape == (12, 2)
    # the exact probability-flow ODE ends on a training point (stored as float32 by the loader)
    d1 = np.linalg.norm(x[:, None] - HEXAGON[None], axis=-1).min(1)
    assert d1.max() < 1e-6
    classes = pd.read_parquet(out / "classes.parquet")
    assert list(classes["class"]) == ["memorized"] * 12
    # σ = 0.1 ≪ spacing 1: minima on the points, index-1 saddles at neighbours' midpoints
    census = pd.read_parquet(out / "census.parquet")
    census = census[census["converged"]]
    pts = census[["x0", "x1"]].to_numpy()
    minima, saddles = pts[census["morse_index"] == 0], pts[census["morse_index"] == 1]
    mids = (HEXAGON + np.roll(HEXAGON, 1, axis=0)) / 2
    assert len(minima) >= 2 and len(saddles) >= 1
    assert np.linalg.norm(minima[:, None] - HEXAGON[None], axis=-1).min(1).max() < 1e-6
    assert np.linalg.norm(saddles[:, None] - mids[None], axis=-1).min(1).max() < 1e-6
    assert (census["sigma"] == 0.1).all()
    asym = pd.read_parquet(out / "asymmetry.parquet")
    assert len(asym) == 3 and asym["asymmetry"].max() < 1e-10  # −log p_σ is an energy
    like = pd.read_parquet(out / "likelihood.parquet")
    train, held = like[like["set"] == "train"], like[like["set"] == "held_out"]
    np.testing.assert_allclose(train["log_likelihood"], log_mixture(HEXAGON[:3], HEXAGON, 0.04),
                               atol=2e-3)  # fmt: skip
    np.testing.assert_allclose(held["log_likelihood"],
                               log_mixture(1.15 * HEXAGON[:3], HEXAGON, 0.04), atol=2e-3)  # fmt: skip
    assert held["log_likelihood"].max() < train["log_likelihood"].min()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["experiment"] == "analyze" and cfg["config"]["samples"] == 12
    assert cfg["config"]["sigma"] == [0.1] and cfg["config"]["likelihood_sigma"] == 0.2
    assert set(cfg["data"]) == {"model", "data", "held_out"}
    assert cfg["data"]["model"] == cfg["data"]["data"] != cfg["data"]["held_out"]
    assert cfg["runs"][-1]["environment"]["torch"] == torch.__version__
    assert cfg["runs"][-1]["status"] == "finished"
    report = (out / "report.md").read_text()
    for title in ("Memorization", "Basins of the samples", "Attractors near the samples",
                  "Conservativeness", "Likelihood at σ = 0.2", "Time"):  # fmt: skip
        assert f"## {title}" in report, title


def test_the_same_command_resumes_and_other_options_are_refused(exact_run, tmp_path, monkeypatch):
    out, args = exact_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    args = [*args[:-1], copy]
    before = {n: pd.read_parquet(copy / f"{n}.parquet") for n in ("classes", "basin", "census")}

    def boom(*a, **k):
        raise AssertionError("a finished stage ran again")

    for name in ("sample", "critical_points", "classify_samples", "log_likelihood",
                 "score_asymmetry"):  # fmt: skip
        monkeypatch.setattr(ms, name, boom)
    monkeypatch.setattr(ms.memorization, "critical_sigma", boom)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    for name, table in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(copy / f"{name}.parquet"), table)
    cfg = json.loads((copy / "config.json").read_text())
    assert [r["status"] for r in cfg["runs"]] == ["finished", "finished"]
    other = [*args]
    other[other.index("--samples") + 1] = 13
    refused(invoke(*other), "--out", "samples")
    assert len(json.loads((copy / "config.json").read_text())["runs"]) == 2


def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, by hand."""
    return 0.5 * (1 + np.vectorize(math.erf)(np.asarray(z) / math.sqrt(2)))


def _mixture_quantile(centres: np.ndarray, s: float, level: float) -> float:
    """The ``level`` quantile of (1/K) Σ_k N(c_k, s²) on a line, by bisection."""
    lo, hi = centres.min() - 10 * s, centres.max() + 10 * s
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _phi((mid - centres) / s).mean() < level else (lo, mid)
    return (lo + hi) / 2


def _basin_run(tmp_path, points, levels, trials):
    np.save(tmp_path / "pts.npy", points)
    out = tmp_path / "b"
    res = invoke(tmp_path / "pts.npy", "--samples", 12, "--probe", 12, "--probe-trials", trials,
                 "--probe-levels", ",".join(map(str, levels)), "--census", 0, "--likelihood", 0,
                 "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out / "basin.parquet")
    memory = np.load(out / "samples.npy")[table["sample"]]  # each sample is a training point
    assert set(table["sample"]) == set(range(12)) and (table["n_trials"] == trials).all()
    return table, memory, (out / "report.md").read_text()


def _within_binomial(recovery, truth, trials):
    """Recovered fractions within 5 binomial standard deviations (+1 % for the ODE steps)."""
    sd = np.sqrt(truth * (1 - truth) / trials)
    np.testing.assert_array_less(np.abs(recovery - truth), 5 * sd + 0.01)


def test_basin_of_two_points_is_bounded_by_their_bisector(tmp_path):
    """Two memories 4 apart: a trial x* + s z comes back iff s z_∥ < 2, probability Φ(2/s).

    Φ(2/s) > 1/2 at every s: σ* is the top level (censored) for both memories.
    """
    points = np.array([[-2.0, 0.0], [2.0, 0.0]])
    levels, trials = [0.5, 1.0, 2.0, 4.0, 8.0], 800
    table, memory, report = _basin_run(tmp_path, points, levels, trials)
    assert np.abs(np.abs(memory[:, 0]) - 2).max() < 1e-6
    _within_binomial(table["recovery"].to_numpy(), _phi(2 / table["probe_sigma"]), trials)
    assert (table["critical_sigma"] == 8.0).all()
    assert "| memorized | 12 |  | 12 | 0 |" in report  # all censored: no mean


def test_basin_of_three_points_on_a_line_follows_the_quantiles(tmp_path):
    """Memories −1, 0, 1: the 1-D flow keeps order, so a trial ends on the memory whose third
    of the noised mixture's mass it starts in: between the quantiles q₁ = −q₂ and q₂ of
    level 1/3 and 2/3 for the middle one (probability 2Φ(q₂/s) − 1), below q₁ for −1
    (Φ((q₁ + 1)/s)). σ* at p = 1/2: 0.5 for the middle memory (0.684 there, 0.407 at 1.2),
    the top level 1.2 for the outer ones (0.618 there)."""
    points = np.array([[-1.0], [0.0], [1.0]])
    levels, trials = [0.1, 0.25, 0.5, 1.2], 800
    table, memory, report = _basin_run(tmp_path, points, levels, trials)
    y = np.round(memory[:, 0])
    assert np.abs(memory[:, 0] - y).max() < 1e-6 and set(y) == {-1.0, 0.0, 1.0}
    s = table["probe_sigma"].to_numpy()
    q1 = np.array([_mixture_quantile(points[:, 0], v, 1 / 3) for v in s])
    truth = np.where(y == 0, 2 * _phi(-q1 / s) - 1, _phi((q1 + 1) / s))
    _within_binomial(table["recovery"].to_numpy(), truth, trials)
    np.testing.assert_array_equal(table["critical_sigma"], np.where(y == 0, 0.5, 1.2))
    assert "| memorized | 12 | 0.5 |" in report  # mean σ* of the middle memory's samples


def test_default_probe_levels_keep_each_reverse_run_in_the_models_range(pipe):
    """Pham et al.'s 10 levels 0.005·400^(i/9); a reverse run from s ends at s/2, so a model
    valid from σ_min = 0.0100013 (DDPM's β₁ = 10⁻⁴: √(β₁/(1 − β₁))) keeps the 7 from 0.0368."""
    grid = 0.005 * 400 ** (np.arange(10) / 9)
    exact = ms.EmpiricalDiffusion(torch.zeros(2, 2, dtype=F64))  # no σ range
    np.testing.assert_allclose(analysis.probe_levels(exact, None), grid, rtol=1e-12)
    model = ms.adapters.load(pipe / "pipe")
    assert 2 * model.sigma_min == pytest.approx(2 * math.sqrt(1e-4 / (1 - 1e-4)), rel=1e-4)
    np.testing.assert_allclose(analysis.probe_levels(model, None), grid[3:], rtol=1e-12)
    assert analysis.probe_levels(model, "1,0.05") == [0.05, 1.0]  # given ones, sorted


def test_a_python_path_denoiser_without_data(tmp_path):
    """The Wiener filter: one critical point, the mean μ, with Hessian (S + σ²I)⁻¹."""
    out = tmp_path / "g"
    res = invoke("tests.test_adapters:gaussian_model", "--samples", 4, "--sigma", "0.5",
                 "--census", 2, "--likelihood", 2, "--trace", "exact", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not (out / "classes.parquet").exists()  # no training set: no memorization
    mean, cov = (t.numpy() for t in _gaussian())
    census = pd.read_parquet(out / "census.parquet")
    census = census[census["converged"]]
    np.testing.assert_allclose(census[["x0", "x1", "x2"]].to_numpy(), np.tile(mean, (len(census), 1)),
                               atol=1e-8)  # fmt: skip
    assert set(census["morse_index"]) == {0}
    eig = np.linalg.eigvalsh(np.linalg.inv(cov + 0.25 * np.eye(3)))
    np.testing.assert_allclose(np.stack(census["eigenvalues"].to_numpy())[0], eig, rtol=1e-6)
    assert pd.read_parquet(out / "asymmetry.parquet")["asymmetry"].max() < 1e-10
    like = pd.read_parquet(out / "likelihood.parquet")
    assert set(like["set"]) == {"generated"}  # no training set, no held-out set
    x = np.load(out / "samples.npy")[:2]
    c = cov + 0.002**2 * np.eye(3)
    z = x - mean
    ref = -0.5 * np.einsum("bi,ij,bj->b", z, np.linalg.inv(c), z) - 0.5 * np.log(
        np.linalg.det(2 * math.pi * c)
    )
    # the prior N(0, σ_max² I) in place of p_σmax = N(μ, S + σ_max² I) costs O(‖μ‖/σ_max)
    np.testing.assert_allclose(like["log_likelihood"], ref, atol=0.02)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    root = tmp_path_factory.mktemp("pipe")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = diffusers.UNet2DModel(
            sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
        )  # fmt: skip
    diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler()).save_pretrained(
        root / "pipe"
    )
    rng = np.random.default_rng(0)
    np.save(root / "digits.npy", rng.uniform(-1, 1, (20, 64)).astype(np.float32))  # (N, 64)
    return root


def test_a_diffusers_folder_with_flat_data_reshaped_to_its_images(pipe, tmp_path):
    out = tmp_path / "d"
    res = invoke(pipe / "pipe", "--data", pipe / "digits.npy", "--samples", 4, "--steps", 3,
                 "--sigma", "1.0", "--census", 1, "--max-steps", 5, "--likelihood", 0,
                 "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    x = np.load(out / "samples.npy")
    assert x.shape == (4, 1, 8, 8) and np.isfinite(x).all()
    assert len(pd.read_parquet(out / "classes.parquet")) == 4
    assert (pd.read_parquet(out / "census.parquet")["sigma"] == 1.0).all()
    # an untrained network's score is no gradient field: its Jacobian is not symmetric
    assert pd.read_parquet(out / "asymmetry.parquet")["asymmetry"].min() > 0.1
    assert not (out / "likelihood.parquet").exists()
    assert "DiffusersModel(unet='UNet2DModel'" in (out / "report.md").read_text()


def test_fingerprints_follow_the_weights(pipe):
    model = ms.adapters.load(pipe / "pipe")
    same = ms.adapters.load(pipe / "pipe")
    assert fingerprint(model) == fingerprint(same)
    with torch.no_grad():
        same.unet.conv_out.bias[0] += 1e-6
    assert fingerprint(model) != fingerprint(same)
    x = torch.zeros(3, 2, dtype=F64)
    assert fingerprint(x) != fingerprint(x.float()) and fingerprint(x) == fingerprint(x.clone())


# ------------------------------------------------------------------ batches
def test_auto_batches_fill_a_quarter_of_free_memory_and_a_given_batch_wins(
    files, tmp_path, monkeypatch
):
    calls = []
    real = ms.sample

    def spy(model, n, *args, **kwargs):
        calls.append(n)
        return real(model, n, *args, **kwargs)

    monkeypatch.setattr(ms, "sample", spy)
    # the hexagon's exact model: 16 copies of a 2-vector and 2 rows of 6 logits in float64,
    # (16·2 + 2·6)·8 = 352 bytes a sample; a quarter of 7040 bytes holds 5 samples
    monkeypatch.setattr(numeric, "free_memory", lambda device: 7040)
    common = (files / "train.npy", "--samples", 12, "--probe", 0, "--census", 0,
              "--likelihood", 0)  # fmt: skip
    for batch, expected in (("auto", [5, 5, 2]), (3, [3, 3, 3, 3]), (20, [12])):
        calls.clear()
        out = tmp_path / f"b{batch}"
        res = invoke(*common, "--batch", batch, "--out", out)
        assert res.exit_code == 0, res.output
        assert calls == expected, batch
        assert f"drawn in batches of {expected[0]}" in (out / "report.md").read_text()
    monkeypatch.setattr(numeric, "free_memory", lambda device: 1)  # nothing free
    calls.clear()
    assert invoke(*common, "--out", tmp_path / "tiny").exit_code == 0
    assert calls == [1] * 12  # one at a time, never zero
    calls.clear()
    assert invoke(*common, "--batch", 7, "--out", tmp_path / "given").exit_code == 0
    assert calls == [7, 5]  # a given batch wins over the memory reading


class _TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner, self.outer = torch.nn.Linear(2, 50), torch.nn.Linear(50, 2)

    def forward(self, x, sigma):
        return self.outer(torch.tanh(self.inner(x)))


def test_auto_batch_counts_a_networks_activations(monkeypatch):
    """Outputs of ``inner`` (50), ``outer`` (2) and the network (2) in float32, 216 bytes, and
    16 copies of the sample, 128 bytes: 344 bytes a sample."""
    model = ms.adapters.from_denoiser(_TwoLayers(), event_shape=(2,))
    monkeypatch.setattr(numeric, "free_memory", lambda device: 4 * 344 * 7)
    kw = {"batch": "auto", "samples": 100, "device": "cpu"}
    assert analysis.sample_batch(model, kw) == 7
    assert analysis.sample_batch(model, kw | {"samples": 4}) == 4  # never more than drawn
    assert analysis.sample_batch(model, kw | {"batch": 9}) == 9


# ------------------------------------------------------------------ bad input
def _bad_inputs(files, pipe_dir):
    t, p = files / "train.npy", pipe_dir / "pipe"
    return [
        ((files / "nope",), ("MODEL", "no such model folder")),
        ((files / "nope.npy",), ("MODEL", "does not exist")),
        ((files / "notes.txt",), ("MODEL", "is a file")),
        ((files / "w.safetensors",), ("MODEL", "no model.json beside it")),
        ((files / "empty",), ("MODEL", "holds no model")),
        (("exact:no_such_set",), ("MODEL", "unknown data set")),
        ((t, "--data", files / "nope.npy"), ("--data", "does not exist")),
        ((t, "--data", files / "three.npy"), ("--data", "(3,)", "event shape is (2,)")),
        ((t, "--held-out", files / "three.npy"), ("--held-out", "event shape")),
        ((t, "--sigma", "abc"), ("--sigma", "'abc'")),
        ((t, "--sigma", "0.1,-1"), ("--sigma",)),
        ((t, "--sigma", "0"), ("--sigma",)),
        ((t, "--sigma", "nan"), ("--sigma",)),
        ((t, "--sigma", ""), ("--sigma",)),
        ((p, "--sigma", "200"), ("--sigma 200 is outside", "157.407")),
        ((p, "--likelihood-sigma", "0.001"), ("--likelihood-sigma 0.001 is outside",)),
        ((t, "--likelihood-sigma", "-1"), ("--likelihood-sigma",)),
        ((t, "--samples", 1), ("--samples must be >= 2",)),
        ((t, "--samples", 4, "--census", 5), ("--census (5)",)),
        ((t, "--steps", 0), ("--steps",)),
        ((t, "--batch", 0), ("--batch", "or auto")),
        ((t, "--batch", "abc"), ("--batch", "'abc'")),
        ((t, "--probe", -1), ("--probe must be >= 0",)),
        ((t, "--samples", 4, "--probe", 5), ("--probe (5)",)),
        ((t, "--probe-trials", 0), ("--probe-trials",)),
        ((t, "--probe-levels", "abc"), ("--probe-levels", "'abc'")),
        ((t, "--probe-levels", "0.1,-2"), ("--probe-levels",)),
        ((t, "--probe-levels", ""), ("--probe-levels",)),
        ((p, "--probe-levels", "0.015"), ("--probe-levels 0.015 is outside", "2 sigma_min")),
        ((p, "--probe-levels", "0.1,300"), ("--probe-levels 300 is outside", "157.407")),
        ((t, "--probe-delta", -1), ("--probe-delta",)),
        ((t, "--probe-delta", "nan"), ("--probe-delta",)),
        ((t, "--max-steps", 0), ("--max-steps",)),
        ((t, "--likelihood", -1), ("--likelihood",)),
        ((t, "--seed", -1), ("--seed",)),
        ((t, "--sampler", "rk99"), ("--sampler", "'rk99'")),
        ((t, "--trace", "nope"), ("--trace", "'nope'")),
        ((t, "--device", "foo"), ("'foo'",)),
        ((t, "--option", "novalue"), ("--option",)),
    ]


def test_every_bad_input_is_one_error_before_any_work(files, pipe, tmp_path, monkeypatch):
    (files / "notes.txt").write_text("hello")
    (files / "w.safetensors").write_bytes(b"\x00")
    (files / "empty").mkdir(exist_ok=True)

    def boom(*a, **k):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(ms, "sample", boom)
    out = tmp_path / "o"
    for args, words in _bad_inputs(files, pipe):
        refused(invoke(*args, "--out", out), *words)
        assert not out.exists(), args
    (tmp_path / "f").write_text("keep")
    refused(invoke(files / "train.npy", "--out", tmp_path / "f"), "--out", "is a file")
    assert (tmp_path / "f").read_text() == "keep"


def test_analyze_help_loads_no_heavy_library():
    heavy = {"torch": "torch._C", "scipy": "scipy._lib", "pandas": "pandas.core",
             "matplotlib": "matplotlib.figure"}  # fmt: skip
    code = (
        "import sys\nfrom memscape.cli import app\n"
        "try:\n    app(['analyze', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(k for k, m in {heavy!r}.items() if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout and "--held-out" in out.stdout, out.stdout[-800:]
