"""The flagship ``memorization`` experiment: validation, the exact baseline, resume, calibration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from memscape.experiments import run_experiment

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
    ],
)
def test_bad_input_fails_before_any_job_or_file(tmp_path, overrides, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        run_experiment("memorization", out, progress=False, **overrides)
    assert not out.exists()


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


@pytest.mark.slow
def test_circle_quick_run_goes_from_memorization_to_generalization(tmp_path):
    """Calibration (docs/concepts.md): memorized fraction ≈ 1 at K = 2, small at large K."""
    out = tmp_path / "quick"
    run_experiment("memorization", out, quick=True, progress=False)
    summary = pd.read_parquet(out / "summary.parquet")
    trained = summary[summary["model"] == "trained"].groupby("K").mean(numeric_only=True)
    ks = trained.index.to_numpy()
    assert trained.loc[ks.min(), "ratio_memorized_fraction"] >= 0.9
    assert trained.loc[ks.max(), "ratio_memorized_fraction"] <= 0.2
    assert trained.loc[ks.max(), "generalized_fraction"] >= 0.7
    # Kadkhodaie et al.: twin models on disjoint sets agree more once they generalize
    assert trained.loc[ks.max(), "pair_l2"] < trained.loc[ks.min(), "pair_l2"]
    exact = summary[summary["model"] == "exact"]
    assert exact["ratio_memorized_fraction"].min() >= 0.95
    assert np.isfinite(trained["attractors_memorized"]).all()
    assert (out / "landscapes.png").exists() and (out / "samples_vs_nearest.png").exists()
