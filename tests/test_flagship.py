"""The flagship ``memorization`` experiment: validation, the exact baseline, resume, calibration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from memscape.experiments import load_job, run_experiment
from tests._checks import assert_checks_measure

EXACT_ONLY = {
    "trained": False,
    "samples": 48,
    "census_starts": 32,
    "probe_points": 1,
    "probe_trials": 4,
    "pool": 512,
}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sizes": ""}, "sizes must not be empty"),
        ({"sizes": "2,100000"}, "larger than the dataset"),
        ({"delta_m": -0.1}, "delta_m must be > 0"),
        ({"data": "no-such-set"}, "unknown data set"),
        ({"sampler": "rk45"}, "sampler"),
        ({"device": "warp-drive"}, "device"),
        ({"trained": False, "exact_baseline": False}, "nothing to run"),
        ({"precision": "float16"}, "precision"),
        ({"energy": True, "precision": "bfloat16"}, "not available for energy models"),
    ],
)
def test_bad_input_fails_before_any_job_or_file(tmp_path, overrides, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        run_experiment("memorization", out, progress=False, **overrides)
    assert not out.exists()


def test_bfloat16_option_trains_the_models_in_mixed_precision(tmp_path):
    """``precision=bfloat16`` reaches memscape.train: each model's run folder records it (and
    the run's config.json the option)."""
    out = tmp_path / "bf16"
    tiny = {"sizes": "2", "seeds": 1, "steps": 8, "samples": 8, "census_starts": 4,
            "probe_points": 0, "pool": 256, "width": 16, "layers": 2, "pairs": False,
            "exact_baseline": False, "precision": "bfloat16"}  # fmt: skip
    run_experiment("memorization", out, progress=False, **tiny)
    configs = sorted((out / "models").rglob("config.json"))
    assert configs and all(
        json.loads(c.read_text())["train"]["precision"] == "bfloat16" for c in configs
    )
    assert json.loads((out / "config.json").read_text())["config"]["precision"] == "bfloat16"


def test_exact_model_memorizes_at_every_k_and_resumes(tmp_path):
    """Theory baseline: the exact denoiser sends every sample to a training point."""
    out = tmp_path / "run"
    run_experiment("memorization", out, sizes="2,16,64", seeds=1, progress=False, **EXACT_ONLY)
    summary = pd.read_parquet(out / "summary.parquet")
    assert (summary["model"] == "exact").all()
    assert summary["ratio_memorized_fraction"].min() >= 0.95
    assert summary["memorized_fraction"].min() >= 0.95
    samples = pd.read_parquet(out / "samples.parquet")
    assert len(samples) == 3 * EXACT_ONLY["samples"]
    assert {"d1", "d2", "ratio", "nearest_generated", "class", "K", "seed"} <= set(samples)
    # d1 is a real distance to the training set: memorized samples sit on training points
    assert samples.loc[samples["class"] == "memorized", "d1"].max() < 1e-2
    for name in ("report.md", "report.html", "class_fractions.png", "config.json"):
        assert (out / name).exists(), name
    timing = pd.read_parquet(out / "timing_memorization.parquet")
    assert len(timing) == 3 and (timing["seconds"] > 0).all()
    _assert_two_memories_barrier(out)
    checks = pd.read_parquet(out / "checks.parquet")
    assert checks["passed"].all()
    # resume: drop one finished job, re-run; the others are not recomputed
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()}
    victim = "exact_K=16_seed=0"
    for f in (out / "jobs" / victim).iterdir():
        f.unlink()
    (out / "jobs" / victim).rmdir()
    run_experiment("memorization", out, sizes="2,16,64", seeds=1, progress=False, **EXACT_ONLY)
    again = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()}
    assert all(again[k] == v for k, v in stamps.items() if k != victim)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "samples.parquet"), samples)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["experiment"] == "memorization" and cfg["config"]["trained"] is False
    # provenance: the data's fingerprint, both runs in the history, each job's own record
    assert (
        set(cfg["data"]) == {"data"}
        and cfg["memscape"] == cfg["runs"][0]["environment"]["memscape"]
    )
    assert [r["status"] for r in cfg["runs"]] == ["finished", "finished"]
    job = json.loads((out / "jobs" / victim / "run.json").read_text())
    assert {"scipy", "scikit-learn", "matplotlib", "safetensors", "git"} <= set(job["environment"])
    assert job["start"] >= cfg["runs"][1]["start"]  # recomputed by the second run


def _assert_two_memories_barrier(out):
    """The disconnectivity graph of K = 2 memories: one funnel each, joined at the col of the
    segment between them (the energy is symmetric about that line, so its saddle lies on
    it), found here by bounded Brent on the exact energy along the segment."""
    from scipy.optimize import minimize_scalar

    import memscape as ms

    atlas = pd.read_parquet(out / "atlas.parquet")
    assert (out / "disconnectivity.png").exists() and set(atlas["K"]) == {2, 16, 64}
    two = atlas[atlas["K"] == 2]
    assert len(two) == 2 and (two["class"] == "memorized").all() and (two["morse_index"] == 0).all()
    y = load_job(out / "jobs", "exact_K=2_seed=0")["train"].double()
    model = ms.EmpiricalDiffusion(y)

    def energy(t):
        return float(model.energy(((1 - t) * y[0] + t * y[1])[None], 0.02))

    opts = {"method": "bounded", "options": {"xatol": 1e-12}}
    col = -minimize_scalar(lambda t: -energy(t), bounds=(0.1, 0.9), **opts).fun
    low = min(minimize_scalar(energy, bounds=b, **opts).fun for b in ((-0.2, 0.3), (0.7, 1.2)))
    finite = two["barrier"][np.isfinite(two["barrier"])]
    assert len(finite) == 1 and float(finite.iloc[0]) == pytest.approx(col - low, rel=1e-8)
    # memories of K = 16 sit in deeper funnels than those of K = 64 (closer, merged sooner)
    med = atlas[np.isfinite(atlas["barrier"])].groupby("K")["barrier"].median()
    assert med[16] > med[64]


def test_tiny_trained_run_writes_every_table_figure_and_check(tmp_path):
    """Structure of a trained run (too short to calibrate): classes with off-data, K_A/K_S/K_B,
    twins with their reference, the d₁ histogram; every number recomputable from the jobs."""
    out = tmp_path / "tiny"
    tiny = {"sizes": "2,8", "seeds": 1, "steps": 60, "samples": 16, "census_starts": 8,
            "probe_points": 1, "probe_trials": 2, "pool": 512, "width": 32, "layers": 2}  # fmt: skip
    folder = run_experiment("memorization", out, progress=False, **tiny)
    summary = folder.read_table("summary")
    assert {"off_data_fraction", "off_data_threshold", "off_data_floor", "closest_pair",
            "real_off_data", "n_real", "mean_twin_cosine", "mean_reference_cosine"} <= set(summary)  # fmt: skip
    # the pool's held-out part: half of what the largest K and its twin leave (512 − 16 → 248)
    assert (summary["held_out"] == 248).all() and (summary["n_real"] == 248).all()
    samples = folder.read_table("samples")
    job = load_job(out / "jobs", "trained_K=8_seed=0")
    gen, train = job["generated"].double(), job["train"].double()
    rows = samples[(samples["model"] == "trained") & (samples["K"] == 8)]
    d1 = torch.cdist(gen, train).min(1).values.numpy()  # brute force
    np.testing.assert_allclose(rows["d1"].to_numpy(), d1, rtol=1e-5, atol=1e-6)
    thr = float(summary.query("model == 'trained' and K == 8")["off_data_threshold"].iloc[0])
    assert (rows["class"] == "off-data").tolist() == (d1 > thr).tolist()
    assert len(job["reference_d1"]) == 248
    transition = folder.read_table("transition")
    assert transition["model"].tolist() == ["trained", "exact"]
    assert transition.loc[1, "K_A"] == "> 8" and np.isinf(transition.loc[1, "K_A_high"])
    assert {"twin_cosine", "reference_cosine"} <= set(samples)
    for name in ("d1_histogram.png", "class_fractions.png", "fractions.parquet"):
        assert (out / name).exists(), name
    names = folder.read_table("checks")["name"].tolist()
    assert any("K_A ≤ K_S ≤ K_B" in n for n in names) and any(
        "twin cosine rises" in n for n in names
    )
    assert any("fresh real samples off-data" in n for n in names)
    assert_checks_measure(folder)


@pytest.mark.slow
def test_circle_quick_run_goes_from_memorization_to_generalization(tmp_path):
    """Calibration: memorized ≈ 1 at K = 2, small at large K; K_A ≤ K_S ≤ K_B (Pham et al.)."""
    out = tmp_path / "quick"
    folder = run_experiment("memorization", out, quick=True, progress=False)
    summary = pd.read_parquet(out / "summary.parquet")
    trained = summary[summary["model"] == "trained"].groupby("K").mean(numeric_only=True)
    ks = trained.index.to_numpy()
    assert trained.loc[ks.min(), "memorized_fraction"] >= 0.9
    assert trained.loc[ks.max(), "memorized_fraction"] <= 0.1
    assert trained.loc[ks.max(), "ratio_memorized_fraction"] <= 0.2
    assert trained.loc[ks.max(), "generalized_fraction"] >= 0.7
    assert trained.loc[ks.max(), "off_data_fraction"] <= 0.15  # the resolution floor at work
    # Kadkhodaie et al.: twin models on disjoint sets agree more once they generalize
    assert trained.loc[ks.max(), "mean_twin_l2"] < trained.loc[ks.min(), "mean_twin_l2"]
    exact = summary[summary["model"] == "exact"]
    assert exact["memorized_fraction"].min() >= 0.95
    t = folder.read_table("transition").set_index("model").loc["trained"]
    assert bool(t["ordered"]) and t["K_A_high"] <= t["K_B_high"]
    assert ks.min() <= t["K_S_peak"] <= ks.max()
    assert folder.read_table("checks")["passed"].all()
    assert_checks_measure(folder)
    for name in ("landscapes.png", "samples_vs_nearest.png", "d1_histogram.png", "explorer.html"):
        assert (out / name).exists(), name
    page = json.loads((out / "explorer.json").read_text())  # one frame per K, both models
    for family in page["families"]:  # trained and exact
        assert [fr["value"] for fr in family["frames"]] == sorted(ks.tolist())
    assert len(page["families"]) == 2
