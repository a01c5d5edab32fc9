"""Resume from anything: interrupted runs re-run to tables identical, bit for bit, to a clean run.

The truth is an uninterrupted run of the same command; the interrupted folder gets no
manual step between the re-runs. The fast test interrupts in-process (a KeyboardInterrupt
at random progress reports: mid-training, sampling, census, probe); the slow one sends
real SIGINT and SIGKILL to ``memscape run memorization`` at random moments.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import memscape.experiments.recipes.memorization as recipe
from memscape.experiments import run_experiment, run_sweep
from memscape.runs.sweep import Interrupted, _Display, grid_jobs

TABLES = ("samples", "summary", "attractors", "probe")


def _tiny_jobs(models: Path, steps: int = 200) -> list:
    cfg = recipe.MemorizationConfig(sizes=(2,), seeds=1, steps=steps, samples=6, width=16,
                                    layers=1, batch=32, census_starts=3, probe_points=1,
                                    probe_trials=2, sampler_steps=6, pool=16)  # fmt: skip
    from dataclasses import asdict

    jobs = []
    for kind in ("trained", "exact"):
        jobs += grid_jobs(kind, {"K": [2], "seed": [0]}, kind=kind, run_seed=3, cfg=asdict(cfg),
                          models=str(models) if kind == "trained" else None)  # fmt: skip
    return jobs


def _interrupt_at(monkeypatch, n: int) -> None:
    """Raise KeyboardInterrupt (as Ctrl-C would) at the n-th progress report from now."""
    calls = {"n": 0}
    original = _Display.report

    def report(self, key, stage, info):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        original(self, key, stage, info)

    monkeypatch.setattr(_Display, "report", report)


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert set(a[key]) == set(b[key])
        for name, value in a[key].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key][name]), (key, name)
            else:
                pd.testing.assert_frame_equal(value, b[key][name], check_exact=True)


def test_sweep_interrupted_anywhere_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "CHECKPOINT_EVERY", 100)  # resume mid-training, not only restart
    clean = run_sweep(recipe.memorization_job, _tiny_jobs(tmp_path / "m0"), tmp_path / "j0",
                      progress=False)  # fmt: skip
    jobs = _tiny_jobs(tmp_path / "m1")
    # a clean run reports: start, train ×4, sample, census, probe, train ×4 (twin), sample
    rng = np.random.default_rng(5)
    for n in rng.integers(2, 10, size=3):
        _interrupt_at(monkeypatch, int(n))
        with pytest.raises(Interrupted, match=r"memorization: \d of 2 jobs finished"):
            run_sweep(recipe.memorization_job, jobs, tmp_path / "j1", description="memorization")
    monkeypatch.undo()
    assert (tmp_path / "m1" / "K=2_seed=0" / "a" / "checkpoint").is_dir()
    resumed = run_sweep(recipe.memorization_job, jobs, tmp_path / "j1", progress=False)
    _assert_same(resumed, clean)


def test_ctrl_c_says_what_finished_and_the_history_records_it(tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, 3)
    out = tmp_path / "run"
    opts = {"sizes": "2", "seeds": 1, "trained": False, "samples": 4, "census_starts": 2, "pool": 8}
    with pytest.raises(Interrupted) as err:
        run_experiment("memorization", out, **opts)
    message = str(err.value)
    assert "\n" not in message
    assert "memorization: 0 of 1 jobs finished" in message
    assert "run the same command again to resume" in message and str(out) in message
    runs = json.loads((out / "config.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["interrupted"]
    assert runs[0]["start"] <= runs[0]["end"]


def _import_interrupted(*args, **kwargs):
    """What a SIGINT during a C-extension import raises (pybind11: ``raise_from``)."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as ctrl_c:
        raise ImportError("initialization failed") from ctrl_c


def test_ctrl_c_during_an_extension_import_is_an_interruption_not_an_error(tmp_path, monkeypatch):
    """CI found ``error: initialization failed`` (exit 2) for a SIGINT during ``import``."""
    from typer.testing import CliRunner

    from memscape.cli import app
    from memscape.runs.sweep import is_interrupt

    assert is_interrupt(KeyboardInterrupt()) and not is_interrupt(ImportError("no module x"))
    with pytest.raises(Interrupted, match=r"demo: 0 of 1 jobs finished"):
        run_sweep(_import_interrupted, grid_jobs("j", {"a": [1]}), tmp_path / "j",
                  description="demo", progress=False)  # fmt: skip
    # while the report is written (after every job): the registry and the CLI say "interrupted"
    from memscape.runs.results import ResultsFolder

    monkeypatch.setattr(ResultsFolder, "write_report", _import_interrupted)
    out = tmp_path / "run"
    opts = ["--sizes", "2", "--seeds", "1", "--no-trained", "--samples", "4", "--pool", "8"]
    result = CliRunner().invoke(app, ["run", "memorization", "--out", str(out), *opts])
    assert result.exit_code == 130, result.output
    assert "error:" not in result.output
    assert "interrupted (every job had finished); run the same command again" in result.output
    runs = json.loads((out / "config.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["interrupted"]


def _write_npy(path: Path, shift: float) -> None:
    x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32) + shift
    np.save(path, x)


def test_changed_data_at_the_same_path_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "points.npy"
    _write_npy(data, 0.0)
    out = tmp_path / "run"
    opts = {"data": str(data), "sizes": "2", "seeds": 1, "trained": False, "samples": 4}
    _interrupt_at(monkeypatch, 2)  # the first run only needs to write its config.json
    with pytest.raises(Interrupted):
        run_experiment("memorization", out, **opts)
    monkeypatch.undo()
    stored = json.loads((out / "config.json").read_text())
    assert len(stored["data"]["data"]) == 16 and stored["memscape"]
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    _write_npy(data, 1.0)  # same path, other content
    with pytest.raises(ValueError, match=r"different data \(data: '[0-9a-f]{16}', now '[0-9a-f]"):
        run_experiment("memorization", out, progress=False, **opts)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written
    assert json.loads((out / "config.json").read_text()) == stored


def test_another_memscape_version_is_refused(tmp_path, monkeypatch):
    from memscape.runs import results
    from memscape.runs.results import ResultsFolder

    folder = ResultsFolder(tmp_path / "r")
    folder.write_config("demo", {"a": 1}, seed=0)
    monkeypatch.setattr(results, "__version__", "99.0")
    with pytest.raises(ValueError, match=r"different memscape \('.*', now '99.0'\)"):
        folder.write_config("demo", {"a": 1}, seed=0)


def test_recompute_keeps_the_old_results_aside_and_starts_afresh(tmp_path):
    from memscape.runs.results import ResultsFolder

    folder = ResultsFolder(tmp_path / "r")
    folder.write_config("demo", {"a": 1}, seed=0)
    (folder.path / "jobs").mkdir()
    (folder.path / "jobs" / "k=1.json").write_text("old job")
    before = (folder.path / "config.json").read_text()
    with pytest.raises(ValueError, match="--recompute"):
        folder.write_config("demo", {"a": 2}, seed=0)
    folder.write_config("demo", {"a": 2}, seed=0, recompute=True)
    (old,) = (folder.path / "superseded").iterdir()
    assert (old / "config.json").read_text() == before  # kept byte for byte
    assert (old / "jobs" / "k=1.json").read_text() == "old job"
    assert not (folder.path / "jobs").exists()  # nothing of the old run is resumed
    cfg = json.loads((folder.path / "config.json").read_text())
    assert cfg["config"] == {"a": 2} and len(cfg["runs"]) == 1
    assert cfg["runs"][0]["superseded"] == f"superseded/{old.name}"
    folder.write_config("demo", {"a": 2}, seed=0, recompute=True)  # same identity: a resume
    assert len(list((folder.path / "superseded").iterdir())) == 1
    assert len(json.loads((folder.path / "config.json").read_text())["runs"]) == 2
    folder.write_config("demo", {"a": 3}, seed=0, recompute=True)  # a second recompute
    assert len(list((folder.path / "superseded").iterdir())) == 2


def test_cli_recompute_runs_afresh_where_a_plain_rerun_is_refused(tmp_path):
    from typer.testing import CliRunner

    from memscape.cli import app

    out = tmp_path / "o"
    tiny = ["run", "landscape", "--quick", "--out", str(out), "--n-starts", "10",
            "--basin-samples", "10", "--resolution", "10", "--basin-resolution", "4",
            "--frames", "2", "--steps", "4"]  # fmt: skip
    assert CliRunner().invoke(app, tiny).exit_code == 0
    refused = CliRunner().invoke(app, [*tiny, "--k", "4"])
    assert refused.exit_code == 2 and "--recompute" in refused.output
    again = CliRunner().invoke(app, [*tiny, "--k", "4", "--recompute"])
    assert again.exit_code == 0, again.output
    (old,) = (out / "superseded").iterdir()
    assert json.loads((old / "config.json").read_text())["config"]["k"] == 3
    assert json.loads((out / "config.json").read_text())["config"]["k"] == 4


# ------------------------------------------------------------------ the kill test (slow)
KILL_CONFIG = """\
sizes: [2, 8]
seeds: 1
steps: 1500
samples: 16
width: 32
layers: 2
batch: 64
census_starts: 8
probe_points: 1
probe_trials: 2
sampler_steps: 8
pool: 64
"""


def _cli(out: Path, config: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", "from memscape.cli import main; main()", "run", "memorization",
           "--config", str(config), "--out", str(out), "--workers", str(workers)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip


def _runs(out: Path) -> int:
    try:
        return len(json.loads((out / "config.json").read_text())["runs"])
    except (OSError, ValueError, KeyError):
        return 0


WORKING = re.compile(r": (train|sample|census|probe)|100%\|")  # a job's stage, or all done


def _interrupt(proc: subprocess.Popen, sig: signal.Signals, rng: np.random.Generator) -> str:
    """Send ``sig`` to the run's process group at a random moment of its work; its stderr.

    The moment: 0–2 s after a job first reports working, or 0–1 s after every job is
    done (then the tables, figures and report are being written).
    """
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(64), "")))
    reader.start()
    deadline, match = time.monotonic() + 120, None
    while proc.poll() is None and time.monotonic() < deadline:
        if match := WORKING.search("".join(err)):
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.0 if match and match.group(0) == "100%|" else 2.0))
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    proc.wait(timeout=120)
    reader.join(timeout=60)
    return "".join(err)


@pytest.mark.slow
def test_killed_cli_runs_resume_to_the_tables_of_an_uninterrupted_run(tmp_path):
    """12 SIGINT / SIGKILL at random moments (workers 1 and 2), then one clean re-run.

    Each interruption lands a random 0–2 s after a job of the run reports working
    (training, sampling, census, probe, the job folders' writes) or, once every job is
    done, while the tables, figures and report are written.
    """
    config = tmp_path / "tiny.yaml"
    config.write_text(KILL_CONFIG)
    reference = run_experiment("memorization", tmp_path / "ref", config=config, progress=False)
    out = tmp_path / "killed"
    rng = np.random.default_rng(2024)
    codes = []
    while sum(rc != 0 for rc in codes) < 12 and len(codes) < 40:
        i = len(codes)
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGKILL
        proc = _cli(out, config, workers=1 + (i // 2) % 2)
        err = _interrupt(proc, sig, rng)
        codes.append(proc.returncode)
        if proc.returncode == 130:
            lines = [ln for ln in err.splitlines() if "run the same command again" in ln]
            assert len(lines) == 1 and lines[0].startswith("interrupted ("), err[-2000:]
        else:
            assert proc.returncode in (0, -signal.SIGKILL), err[-2000:]
    assert sum(rc != 0 for rc in codes) == 12, codes
    final = _cli(out, config, workers=2)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-3000:]
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(out / f"{name}.parquet"),
                                      reference.read_table(name), check_exact=True)  # fmt: skip
    for job in (reference.path / "jobs").iterdir():
        from safetensors.torch import load_file

        a, b = (load_file(str(p / job.name / "tensors.safetensors"))
                for p in (reference.path / "jobs", out / "jobs"))  # fmt: skip
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    runs = json.loads((out / "config.json").read_text())["runs"]
    assert len(runs) == len(codes) + 1 and runs[-1]["status"] == "finished"
    assert [r.get("status") for r in runs].count("interrupted") == codes.count(130)
