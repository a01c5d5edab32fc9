"""The sweep engine, results folders, the experiment registry and the CLI wiring."""

from __future__ import annotations

import json
import os

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


def test_process_pool_equals_in_process_and_reports_progress(tmp_path, capsys):
    serial = run_sweep(square_job, _jobs(tmp_path / "s.txt"), tmp_path / "s", progress=False)
    pool = run_sweep(square_job, _jobs(tmp_path / "p.txt"), tmp_path / "p", workers=2)
    pd.testing.assert_frame_equal(_table(serial), _table(pool))
    assert set(_table(serial)["square"]) == {0, 1, 4, 9, 16}
    pids = set(pd.concat([o["rows"] for o in pool.values()])["pid"])
    assert os.getpid() not in pids and len(pids) <= 2  # in (at most) two worker processes
    err = capsys.readouterr().err  # the workers' stages came back through the queue
    assert all(f"k={k}: square" in err for k in range(5)), err[-2000:]


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
    assert len(cfg["runs"]) == 2  # the refused call added no run
    assert {"torch", "python", "memscape", "scipy", "git"} <= set(cfg["runs"][0]["environment"])


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


# ------------------------------------------------------------------ provenance, threads, progress
def test_each_job_records_its_own_environment(tmp_path):
    run_sweep(square_job, _jobs(tmp_path / "log.txt"), tmp_path / "j", progress=False)
    run = json.loads((tmp_path / "j" / "k=2" / "run.json").read_text())
    env = run["environment"]
    for package in ("memscape", "torch", "numpy", "scipy", "scikit-learn", "matplotlib",
                    "safetensors", "pandas"):  # fmt: skip
        assert package in env, package
    assert env["torch_threads"] == run["threads"] >= 1 and env["host"] == run["host"]
    assert env["git"] is None or len(env["git"]["commit"]) == 40
    assert run["start"] <= run["end"] and run["seconds"] > 0
    timing = __import__("memscape.runs.sweep", fromlist=["job_timings"]).job_timings(
        tmp_path / "j", ["k=0", "k=1"]
    )
    assert list(timing.columns) == ["key", "seconds", "host", "threads", "start", "end"]


def test_config_json_keeps_the_history_of_runs(tmp_path):
    folder = ResultsFolder(tmp_path / "r")
    for status in ("interrupted", "failed", "finished"):
        folder.write_config("demo", {"a": 1}, seed=3, data={"data": "abc"})
        folder.end_run(status)
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert [r["status"] for r in cfg["runs"]] == ["interrupted", "failed", "finished"]
    assert all(r["start"] <= r["end"] and "torch" in r["environment"] for r in cfg["runs"])
    assert cfg["data"] == {"data": "abc"} and cfg["seed"] == 3
    with pytest.raises(ValueError, match=r"different data \(data: 'abc', now 'xyz'\)"):
        folder.write_config("demo", {"a": 1}, seed=3, data={"data": "xyz"})
    with pytest.raises(ValueError, match=r"different seed \(3, now 4\), config \(a: 1, now 2\)"):
        folder.write_config("demo", {"a": 2}, seed=4, data={"data": "abc"})


def test_a_config_json_from_before_the_history_becomes_its_first_run(tmp_path):
    old = {"experiment": "demo", "seed": 0, "config": {"a": 1}, "environment": {"torch": "x"},
           "command": "memscape run demo", "time": "2025-01-01T00:00:00+0000"}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(old))
    ResultsFolder(tmp_path).write_config("demo", {"a": 1}, seed=0)
    runs = json.loads((tmp_path / "config.json").read_text())["runs"]
    assert runs[0] == {k: old[k] for k in ("command", "time", "environment")} and len(runs) == 2


def test_workers_times_threads_never_exceed_the_cores():
    from memscape.runs.sweep import plan_workers

    for cores in (1, 2, 3, 8, 64):
        for budget in range(1, cores + 1):
            for pending in (0, 1, 2, 5, 100):
                for workers in (None, 1, 2, 7, 1000):
                    w, t = plan_workers(workers, pending, budget, cores)
                    assert w >= 1 and t >= 1 and w * t <= cores
                    assert w <= max(1, pending)
                    if workers is None:
                        assert w == max(1, min(budget, pending))  # one job per core
                        if pending >= budget:
                            assert t == 1
                    if w == 1:
                        assert t == budget  # a single job uses every core it is given


def test_in_process_job_gets_the_threads_planned_and_the_caller_keeps_its_own(tmp_path):
    from memscape.runs.sweep import cpu_budget

    before = torch.get_num_threads()
    run_sweep(square_job, _jobs(tmp_path / "log.txt")[:1], tmp_path / "j", progress=False)
    run = json.loads((tmp_path / "j" / "k=0" / "run.json").read_text())
    assert run["threads"] == cpu_budget() and torch.get_num_threads() == before


def test_progress_bar_shows_the_stage_of_jobs_in_flight(tmp_path, capsys):
    from tests._resume_jobs import staged_job

    jobs = [Job(f"k={k}", {"k": k, "seed": 0}) for k in range(3)]
    run_sweep(staged_job, jobs, tmp_path / "j", description="demo")
    err = capsys.readouterr().err
    for k in range(3):
        for stage in ("start", "train 1/2 10/s", "sample", "census", "probe"):
            assert f"k={k}: {stage}" in err, (k, stage, err[-2000:])
    assert "3.0/3 jobs" in err


@pytest.mark.parametrize("key", ["a b", "K:2", "σ=0.1", ".hidden", "a/b", ""])
def test_job_keys_must_be_portable_file_names(tmp_path, key):
    with pytest.raises(ValueError, match="ASCII"):
        run_sweep(square_job, [Job(key, {})], tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["with space", "a:b", "ñame", "x/y"])
def test_results_file_names_must_be_ascii(tmp_path, name):
    from memscape.experiments import Context

    ctx = Context(ResultsFolder(tmp_path / "r"), seed=0)
    with pytest.raises(ValueError, match="table name must be ASCII"):
        ctx.table(name, pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match="sweep name must be ASCII"):
        ctx.sweep(square_job, [], name)
    assert not (tmp_path / "r").exists()


def test_progress_bar_counts_jobs_in_flight_for_its_eta(monkeypatch):
    """The bar's count (and so tqdm's ETA) includes the work of the jobs in flight."""
    from memscape.runs import sweep

    clock = [100.0]
    monkeypatch.setattr(sweep.time, "monotonic", lambda: clock[0])
    d = sweep._Display(total=10, done=2, description="jobs", enabled=True)
    d.report("a", "start", {})
    d.report("a", "train", {"step": 150, "steps": 600, "rate": 100.0})
    d.report("b", "train", {"step": 600, "steps": 600})
    assert d.bar.n == pytest.approx(2 + 0.25 + 0.95)  # training fractions, capped below 1
    d.report("a", "train", {"step": 0, "steps": 600, "what": "b"})  # a second training
    assert d.bar.n == pytest.approx(2 + 0.25 + 0.95)  # never moves back
    clock[0] = 140.0
    d.finished("a")  # ran 40 s: from now on in-flight jobs count by time
    clock[0] = 150.0
    d.report("b", "sample", {})
    assert d.bar.n == pytest.approx(3 + min(50 / 40, 0.95))
    d.report("c", "start", {})
    clock[0] = 160.0
    d.show()
    assert d.bar.n == pytest.approx(3 + 0.95 + 10 / 40)
    d.close()
    assert d.bar.n == 3  # the final count is finished jobs only
    assert sweep.progress_fraction("train", {"step": 3, "steps": 0}) is None
    assert sweep.progress_fraction("census", {"step": 3, "steps": 4}) is None
