"""The sweep engine, results folders, the experiment registry and the CLI wiring."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from memscape.experiments import Job, ResultsFolder, run_sweep
from memscape.experiments.registry import EXPERIMENTS, build_config
from tests._sweep_jobs import square_job


def _jobs(log, fail_on=-1):
    return [
        Job(f"k={k}", {"k": k, "seed": 7, "log": str(log), "fail_on": fail_on}) for k in range(5)
    ]


def _table(outputs):
    return pd.concat([o["rows"] for o in outputs.values()], ignore_index=True).drop(columns="pid")


def test_resume_after_crash_skips_finished_jobs_and_matches_uninterrupted(tmp_path):
    log = tmp_path / "calls.txt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sweep(square_job, _jobs(log, fail_on=3), tmp_path / "a", progress=False)
    finished = sorted(p.name for p in (tmp_path / "a").iterdir() if not p.name.startswith("."))
    assert finished == ["k=0", "k=1", "k=2"]  # jobs before the crash are on disk, nothing partial
    resumed = run_sweep(square_job, _jobs(log, fail_on=3), tmp_path / "a", progress=False)
    calls = [int(c) for c in log.read_text().split()]
    assert calls == [0, 1, 2, 3, 3, 4]  # finished jobs 0..2 were not recomputed
    clean = run_sweep(square_job, _jobs(tmp_path / "other.txt"), tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(_table(resumed), _table(clean))
    assert torch.equal(resumed["k=4"]["vec"], clean["k=4"]["vec"])
    assert list(resumed) == [f"k={k}" for k in range(5)]


def test_process_pool_equals_in_process(tmp_path):
    serial = run_sweep(square_job, _jobs(tmp_path / "s.txt"), tmp_path / "s", progress=False)
    pool = run_sweep(
        square_job, _jobs(tmp_path / "p.txt"), tmp_path / "p", workers=2, progress=False
    )
    pd.testing.assert_frame_equal(_table(serial), _table(pool))
    assert set(_table(serial)["square"]) == {0, 1, 4, 9, 16}


def test_ray_executor_equals_local(tmp_path):
    pytest.importorskip("ray")
    local = run_sweep(square_job, _jobs(tmp_path / "l.txt"), tmp_path / "l", progress=False)
    ray_out = run_sweep(
        square_job,
        _jobs(tmp_path / "r.txt"),
        tmp_path / "r",
        workers=2,
        executor="ray",
        progress=False,
    )
    pd.testing.assert_frame_equal(_table(local), _table(ray_out))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"workers": 0}, "workers"), ({"executor": "slurm"}, "executor")],
)
def test_sweep_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_sweep(square_job, _jobs(tmp_path / "x.txt"), tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_duplicate_job_keys_rejected(tmp_path):
    jobs = [Job("a", {}), Job("a", {})]
    with pytest.raises(ValueError, match="unique"):
        run_sweep(square_job, jobs, tmp_path / "x", progress=False)


def test_results_folder_refuses_a_different_config(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    folder.write_config("demo", {"a": 1}, seed=0)
    folder.write_config("demo", {"a": 1}, seed=0)  # same config: resuming is fine
    with pytest.raises(ValueError, match="different config"):
        folder.write_config("demo", {"a": 2}, seed=0)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["config"] == {"a": 1}
    assert {"torch", "python", "memscape"} <= set(cfg["environment"])


def test_report_states_checks_with_pass_and_fail(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    folder.write_config("demo", {}, seed=0)
    ok = folder.add_check("sigma_c", measured=1.005, theory=1.0, tolerance=0.01)
    bad = folder.add_check("t_c", measured=0.8, theory=0.5, tolerance=0.05, relative=False)
    assert ok.passed and not bad.passed
    assert ok.gap == pytest.approx(0.005) and bad.gap == pytest.approx(0.3)
    folder.write_report("demo")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| sigma_c |" in md and "PASS" in md and "FAIL" in md
    assert "<table" in (tmp_path / "r" / "report.html").read_text()


def test_build_config_layers_and_errors():
    exp = EXPERIMENTS["hopfield-capacity"]
    cfg = build_config(exp, quick=True, file={"trials": 3}, overrides={"sizes": "64,128"})
    assert cfg.sizes == (64, 128) and cfg.trials == 3 and cfg.alphas == exp.quick["alphas"]
    with pytest.raises(ValueError, match="unknown option 'sizez'"):
        build_config(exp, overrides={"sizez": "1"})
    with pytest.raises(ValueError, match="trials expects int"):
        build_config(exp, overrides={"trials": "two"})
    with pytest.raises(ValueError, match="rules"):
        build_config(exp, overrides={"rules": "hebian"})


def test_cli_lists_every_experiment_and_rejects_bad_options_before_writing(tmp_path):
    from typer.testing import CliRunner

    from memscape.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    for name in EXPERIMENTS:
        assert name in listed.output
    out = tmp_path / "never"
    bad = runner.invoke(app, ["run", "hopfield-capacity", "--trials", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "trials expects int" in bad.output
    assert not out.exists()
    ok = runner.invoke(
        app,
        [
            "run",
            "hopfield-capacity",
            "--sizes",
            "64",
            "--alphas",
            "0.05",
            "--trials",
            "1",
            "--out",
            str(tmp_path / "ok"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    table = pd.read_parquet(tmp_path / "ok" / "patterns.parquet")
    mine = table[table["N"] == 64]
    assert len(mine) > 0 and (mine["overlap"] > 0.9).all()  # α = 0.05 ≪ α_c
