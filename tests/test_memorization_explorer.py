"""The flagship's explorer on 2-D data (memscape.memorization.explorer): a slider over K.

One tiny trained run of ``memorization`` on the circle (two K, two seeds, short training)
writes ``explorer.json`` and ``explorer.html``. Each family (trained, exact) is checked
against independent truth: its curves against the medians over seeds of the summary
table and Wilson intervals computed here from their closed form; the training points
against the jobs' training sets; the exact landscape against −log p_σ computed here with
numpy; the trained landscape against the saved model's score evaluated here on the grid;
the attractor markers against the census of each job. Then the page in headless Chromium
(its self-test moves the slider, checks the cursor and a click on the curves).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex
from typer.testing import CliRunner

from memscape.experiments import load_job, run_experiment
from memscape.figures import CLASS_COLORS
from memscape.memorization import CLASSES, fraction_column
from memscape.runs.explorer import check_explorer_data, write_explorer

SIZES = (2, 8)
SIGMA = 0.02  # the census σ of the run (its default)
TINY = {"sizes": ",".join(map(str, SIZES)), "seeds": 2, "steps": 120, "samples": 16,
        "census_starts": 8, "probe_points": 1, "probe_trials": 2, "pool": 512, "width": 32,
        "layers": 2, "pairs": False}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flagship") / "run"
    with warnings.catch_warnings():  # the census of a barely trained model may not converge
        warnings.simplefilter("ignore", RuntimeWarning)
        run_experiment("memorization", out, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def data(run):
    return json.loads((run / "explorer.json").read_text())


def _family(data, name):
    return next(f for f in data["families"] if f["name"] == name)


def test_the_run_writes_the_explorer(run, data):
    assert (run / "explorer.html").is_file()
    check_explorer_data(data)
    assert data["experiment"] == "memorization"
    assert [f["name"] for f in data["families"]] == ["trained", "exact"]
    for fam in data["families"]:
        assert fam["parameter"] == "K" and fam["log"] is True and "curves" in fam
        assert [fr["value"] for fr in fam["frames"]] == list(SIZES)  # the slider is K
        assert all(f"K = {k}," in fr["title"] for k, fr in zip(SIZES, fam["frames"], strict=True))
    assert _family(data, "exact")["surface"] == "energy"
    assert _family(data, "trained")["surface"] == "log(1 + |s|)"  # a score network
    assert "explorer.html" in (run / "report.md").read_text()


def _wilson(count: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) score interval, written out here."""
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


@pytest.mark.parametrize("model", ["trained", "exact"])
def test_curves_are_the_medians_over_seeds_with_wilson_bars(run, data, model):
    summary = pd.read_parquet(run / "summary.parquet")
    rows = summary[summary["model"] == model]
    curves = _family(data, model)["curves"]
    series = {s["name"]: s for s in curves["series"]}
    assert list(series)[: len(CLASSES)] == list(CLASSES)
    for name in CLASSES:
        s, col = series[name], fraction_column(name)
        assert s["color"] == to_hex(CLASS_COLORS[name]) and s["x"] == list(SIZES)
        for j, k in enumerate(SIZES):
            seeds = rows.loc[rows["K"] == k, col].to_numpy()
            n = int(rows.loc[rows["K"] == k, "n_samples"].min())
            assert len(seeds) == 2
            assert s["y"][j] == pytest.approx(np.median(seeds), rel=1e-5, abs=1e-9)
            assert (s["min"][j], s["max"][j]) == pytest.approx((seeds.min(), seeds.max()), abs=1e-9)
            low, high = _wilson(round(np.median(seeds) * n), n)
            assert (s["low"][j], s["high"][j]) == pytest.approx((low, high), rel=1e-5, abs=1e-9)
    # the fractions table the run reports holds the same rows
    table = pd.read_parquet(run / "fractions.parquet").query("model == @model")
    mem = fraction_column("memorized")
    assert series["memorized"]["y"] == pytest.approx(table[mem].tolist(), rel=1e-5, abs=1e-9)
    has_baseline = "exact model (theory): memorized" in series
    assert has_baseline == (model == "trained")


def test_fraction_curves_take_the_median_of_three_seeds():
    """Three seeds (the median is not the mean): a summary drawn here, reduced by the library."""
    from memscape.memorization import fraction_curves, median_fractions

    rng = np.random.default_rng(0)
    rows = []
    for k in (2, 16, 128):
        for seed in range(3):
            f = rng.dirichlet(np.ones(len(CLASSES)))
            counts = np.round(f * 40) / 40  # fractions of n = 40 samples
            rows.append({"model": "trained", "K": k, "seed": seed, "n_samples": 40,
                         **{fraction_column(c): v for c, v in zip(CLASSES, counts, strict=True)}})  # fmt: skip
    summary = pd.DataFrame(rows)
    curves = fraction_curves(median_fractions(summary, "trained"))
    assert curves["log"] is True and curves["x_label"] == "training-set size K"
    for s in curves["series"]:
        col = fraction_column(s["name"])
        by_k = summary.groupby("K")[col]
        assert s["x"] == [2, 16, 128]
        assert s["y"] == pytest.approx(by_k.median().to_numpy(), abs=1e-9)
        assert s["min"] == pytest.approx(by_k.min().to_numpy(), abs=1e-9)
        assert s["max"] == pytest.approx(by_k.max().to_numpy(), abs=1e-9)
        wilson = [_wilson(round(m * 40), 40) for m in by_k.median()]
        assert np.array([s["low"], s["high"]]).T == pytest.approx(np.array(wilson), abs=1e-6)
    assert not any(s["name"].startswith("exact") for s in curves["series"])  # no baseline given


def test_training_points_are_the_jobs_training_sets(run, data):
    for fam in data["families"]:
        assert fam["patterns_label"] == "training points"
        for k, fr in zip(SIZES, fam["frames"], strict=True):
            train = load_job(run / "jobs", f"{fam['name']}_K={k}_seed=0")["train"].double()
            assert np.array(fr["patterns"]) == pytest.approx(train.numpy(), rel=1e-5, abs=1e-6)
    small, large = (np.array(fr["patterns"]) for fr in _family(data, "exact")["frames"])
    assert small == pytest.approx(large[:2])  # nested training sets across K


def _grid(run, fam):
    """The grid, rebuilt: the square ±(1.4 max|x| + 0.2) over the largest training set."""
    train = load_job(run / "jobs", f"{fam['name']}_K={max(SIZES)}_seed=0")["train"].double()
    m = 1.4 * float(train.abs().max()) + 0.2
    axis = np.linspace(-m, m, 60)
    assert np.array([fam["x"], fam["y"]]) == pytest.approx(np.array([axis, axis]), abs=1e-5)
    gx, gy = np.meshgrid(axis, axis)  # rows along y
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def test_exact_landscape_is_minus_log_density(run, data):
    fam = _family(data, "exact")
    pts = _grid(run, fam)
    for k, fr in zip(SIZES, fam["frames"], strict=True):
        y = load_job(run / "jobs", f"exact_K={k}_seed=0")["train"].double().numpy()
        d2 = ((pts[:, None, :] - y[None]) ** 2).sum(-1) / (2 * SIGMA**2)
        m = d2.min(1, keepdims=True)  # log-sum-exp by hand
        nlp = (m[:, 0] - np.log(np.exp(-(d2 - m)).mean(1))).reshape(len(fam["y"]), len(fam["x"]))
        z = np.array(fr["z"], dtype=float)
        assert z.min() == 0
        assert z == pytest.approx(nlp - nlp.min(), rel=1e-4, abs=1e-3)


def test_trained_landscape_is_the_saved_models_score_magnitude(run, data):
    import memscape as ms

    fam = _family(data, "trained")
    pts = torch.tensor(_grid(run, fam))
    for k, fr in zip(SIZES, fam["frames"], strict=True):
        net = ms.ScoreModel.load(run / "models" / f"K={k}_seed=0" / "a").double()
        s = net.score(pts, SIGMA).detach().numpy()
        mag = np.log1p(np.sqrt((s**2).sum(1))).reshape(len(fam["y"]), len(fam["x"]))
        assert np.array(fr["z"]) == pytest.approx(mag - mag.min(), rel=1e-4, abs=1e-5)


def test_attractor_markers_are_the_census(run, data):
    seen = 0
    for fam in data["families"]:
        for k, fr in zip(SIZES, fam["frames"], strict=True):
            job = load_job(run / "jobs", f"{fam['name']}_K={k}_seed=0")
            table, pts = job["attractors"], job["attractor_points"].double().numpy()
            ms = fr["markers"]
            assert len(ms) == len(table)
            order = sorted(range(len(table)), key=lambda i: CLASSES.index(table["class"].iloc[i]))
            classes = table["class"].iloc[order]  # by class (the legend's order), stable
            assert [m["label"] for m in ms] == [f"{c} attractor" for c in classes]
            assert [m["color"] for m in ms] == [to_hex(CLASS_COLORS[c]) for c in classes]
            if len(ms):
                got = np.array([[m["x0"], m["x1"]] for m in ms])
                assert got == pytest.approx(pts[order], rel=1e-5, abs=1e-6)
            seen += len(ms)
    # the exact model memorizes: at K = 2 its two minima sit on the two training points,
    # their energies −log p_σ equal (up to the model's constant) by symmetry
    fr = _family(data, "exact")["frames"][0]
    assert sorted(m["label"] for m in fr["markers"]) == ["memorized attractor"] * 2
    got = np.array(sorted([m["x0"], m["x1"]] for m in fr["markers"]))
    assert got == pytest.approx(np.array(sorted(fr["patterns"])), abs=1e-3)
    e = [m["energy"] for m in fr["markers"]]
    assert e[0] == pytest.approx(e[1], abs=1e-6)
    assert seen >= 2


def test_explore_rewrites_the_page_from_the_json(run, tmp_path):
    from memscape.cli import app

    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(run / "explorer.json", copy)
    result = CliRunner().invoke(app, ["explore", str(copy)])
    assert result.exit_code == 0, result.output
    page = (copy / "explorer.html").read_text()
    assert result.output.strip() == str(copy / "explorer.html")
    assert "sample classes against K" in page and "memorized attractor" in page


# ---------------------------------------------------------------- the curves block checks


def _curves_data() -> dict:
    """A minimal valid page with a curves family (no computation)."""
    z = [[0.0, 1.0], [1.0, 2.0]]
    marker = {"x0": 0.1, "x1": -0.2, "label": "memorized attractor", "color": "#d62728",
              "energy": None}  # fmt: skip
    frames = [{"value": k, "z": z, "points": [], "edges": [], "patterns": [[0.0, 0.0]],
               "markers": [marker]} for k in (2, 8)]  # fmt: skip
    series = {"name": "memorized", "color": "#d62728", "x": [2, 8], "y": [1.0, 0.5],
              "low": [0.8, 0.3], "high": [1.0, 0.7], "min": [1.0, 0.4], "max": [1.0, 0.6]}  # fmt: skip
    fam = {"name": "trained", "symbol": "K", "log": True, "x": [0.0, 1.0], "y": [0.0, 1.0],
           "frames": frames, "curves": {"x_label": "K", "y_label": "fraction", "log": True,
                                        "series": [series]}}  # fmt: skip
    return {"format": "memscape-explorer", "version": 1, "title": "t", "families": [fam]}


def test_a_curves_family_needs_no_diagram():
    check_explorer_data(_curves_data())


def _set(path: str, value):
    def edit(d):
        obj = d["families"][0]
        *head, last = path.split(".")
        for key in head:
            obj = obj[int(key)] if key.isdigit() else obj[key]
        if value is KeyError:
            del obj[last]
        else:
            obj[last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_set("curves", [1, 2]), r"families\[0\]\.curves must be an object"),
        (_set("curves.x_label", KeyError), r"curves\.x_label must be a string"),
        (_set("curves.log", "yes"), r"curves\.log must be true or false"),
        (_set("curves.series", []), r"curves\.series must be a non-empty list"),
        (_set("curves.series.0.color", None), r"series\[0\]\.color must be a string"),
        (_set("curves.series.0.x", []), r"series\[0\]\.x must be a non-empty list of numbers"),
        (_set("curves.series.0.x", [2, None]), r"series\[0\]\.x must be"),
        (_set("curves.series.0.y", [1.0]), r"series\[0\]\.y \(as many as x\) must be a list of 2"),
        (_set("curves.series.0.y", [1.0, "a"]), r"series\[0\]\.y"),
        (_set("curves.series.0.high", KeyError), r"series\[0\]\.high must be given with low"),
        (_set("curves.series.0.min", [0.1, 0.2, 0.3]), r"series\[0\]\.min \(as many as x\)"),
        (_set("curves.y_range", [0.0]), r"curves\.y_range \(low, high\) must be a list of 2"),
        (_set("curves.title", 3), r"curves\.title must be a string"),
        (_set("curves", KeyError), r"families\[0\]\.diagram must be an object \(or a curves"),
        (_set("frames.1.markers", {"x0": 1}), r"frames\[1\]\.markers must be a list"),
        (_set("frames.0.markers.0.color", 3), r"frames\[0\]\.markers\[0\]\.color must be a string"),
        (_set("frames.0.markers.0.x1", None), r"markers\[0\]\.x1 must be a number"),
        (_set("frames.0.markers.0.energy", "low"), r"markers\[0\]\.energy must be a number or"),
        (_set("frames.0.title", ["K"]), r"frames\[0\]\.title must be a string"),
        (_set("patterns_label", 1), r"families\[0\]\.patterns_label must be a string"),
        (_set("frames.0.value", True), r"frames\[0\]\.value must be a number"),
    ],
)
def test_bad_curves_and_markers_are_named(tmp_path, edit, match):
    data = _curves_data()
    edit(data)
    with pytest.raises(ValueError, match=match):
        check_explorer_data(data)
    with pytest.raises(ValueError, match=match):  # before anything is written
        write_explorer(tmp_path / "out", data)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_builder_rejects_bad_input(run, data):
    from memscape.memorization import fraction_curves, memorization_family

    out = {2: load_job(run / "jobs", "exact_K=2_seed=0")}
    table = pd.read_parquet(run / "fractions.parquet").query("model == 'exact'")
    with pytest.raises(ValueError, match="same K"):
        memorization_family(out, {8: None}, table, SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        memorization_family(out, {2: None}, table, -1.0)
    with pytest.raises(ValueError, match="resolution"):
        memorization_family(out, {2: None}, table, SIGMA, resolution=2)
    with pytest.raises(ValueError, match="missing"):
        fraction_curves(table.drop(columns=fraction_column("spurious")))


def test_no_explorer_off_2d_data_or_without_saved_models(run, tmp_path):
    from memscape.memorization import write_memorization_explorer

    job = load_job(run / "jobs", "exact_K=2_seed=0")
    table = pd.read_parquet(run / "fractions.parquet").query("model == 'exact'")
    three_d = {**job, "train": torch.zeros(2, 3)}
    assert (
        write_memorization_explorer(tmp_path, {"exact": {2: three_d}}, {"exact": table}, SIGMA)
        is None
    )
    with pytest.warns(UserWarning, match=r"no saved trained model at K = \[2\]"):
        assert write_memorization_explorer(tmp_path, {"trained": {2: job}}, {"trained": table},
                                           SIGMA) is None  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # nothing written


# ---------------------------------------------------------------- in the browser


def test_flagship_page_in_headless_chromium(run, tmp_path):
    from tests.test_explorer_browser import BROWSER, Chromium, _distinct_colours

    if BROWSER is None:
        pytest.skip("no chromium binary on PATH (Debian: apt-get install -y chromium)")
    page = tmp_path / "mailed" / "explorer.html"  # moved away from its folder
    page.parent.mkdir()
    shutil.copy(run / "explorer.html", page)
    browser = Chromium(tmp_path / "profile")
    try:
        browser.open(page.as_uri() + "#selftest")
        result = browser.wait_for("document.getElementById('selftest').dataset.result")
        report = json.loads(browser.evaluate("document.getElementById('selftest').textContent"))
        assert result == "pass", report
        for fam in report["families"]:
            assert fam["kind"] == "curves" and fam["curves_drawn"], fam
            assert fam["z_changed"] and fam["z_is_last_frame"] and fam["cursor_moved"], fam
            assert fam["click_moves_slider"] and fam["markers_drawn"], fam
            assert fam["error_bars"] >= len(CLASSES) * len(SIZES), fam
        exact = next(f for f in report["families"] if f["family"] == "exact")
        # K = 8: 8 training points, the exact model's attractors drawn beside them
        assert exact["markers_after"] == 8 + exact["extra_markers"] and exact["extra_markers"] >= 1
        assert browser.evaluate("document.getElementById('slider-label').textContent") == "K = 2"
        assert browser.evaluate("document.getElementById('diagram-y').parentElement.hidden")
        assert browser.problems() == []
        img = browser.screenshot()
        assert img.shape[0] > 500 and _distinct_colours(img) > 50  # not blank
    finally:
        browser.close()
