"""The sweep engine: a list of independent jobs, each written atomically, resumable.

A job is a function of a parameter dict returning named tidy tables (and
optionally named tensors). Finished jobs live in ``<out>/jobs/<key>/``; that
folder appears by one atomic rename only when the job is complete, so a crash
or Ctrl-C loses at most the jobs in flight, and re-running the same command
skips every finished job. Jobs run in-process (``workers=1``), in a local
process pool (``workers>1``), or on a Ray cluster (``executor="ray"``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from memscape._validation import check_choice, check_int

__all__ = ["Job", "JobOutput", "job_timings", "load_job", "run_sweep"]

JobOutput = dict[str, Any]
"""What a job returns: ``{name: pandas.DataFrame | torch.Tensor}``."""


@dataclass(frozen=True)
class Job:
    """One unit of a sweep.

    Attributes:
        key: unique, filesystem-safe id (e.g. ``"K=32_seed=1"``).
        params: keyword arguments of the job function (JSON-serializable).
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)


def _run_job(
    fn: Callable[..., JobOutput], params: dict[str, Any], threads: int | None
) -> tuple[JobOutput, dict[str, Any]]:
    """Run one job; return its output and where/how long it ran."""
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    output = fn(**params)
    info = {
        "seconds": time.perf_counter() - start,
        "host": platform.node(),
        "threads": torch.get_num_threads(),
    }
    return output, info


def _save_job(jobs_dir: Path, job: Job, result: tuple[JobOutput, dict[str, Any]]) -> None:
    from safetensors.torch import save_file

    jobs_dir.mkdir(parents=True, exist_ok=True)
    output, info = result
    tmp = Path(tempfile.mkdtemp(prefix=f".{job.key}.", dir=jobs_dir))
    try:
        tensors = {}
        for name, value in output.items():
            if isinstance(value, pd.DataFrame):
                value.to_parquet(tmp / f"{name}.parquet", index=False)
            elif isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                raise TypeError(
                    f"job {job.key!r} returned {name!r} of type "
                    f"{type(value).__name__}; expected DataFrame or Tensor"
                )
        if tensors:
            save_file(tensors, str(tmp / "tensors.safetensors"))
        (tmp / "params.json").write_text(json.dumps(job.params, indent=2, default=str))
        (tmp / "run.json").write_text(json.dumps(info, indent=2))
        target = jobs_dir / job.key
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def job_timings(jobs_dir: Path, keys: Sequence[str]) -> pd.DataFrame:
    """One row per finished job: ``key``, ``seconds`` it ran, ``host``, ``threads``."""
    rows = []
    for key in keys:
        p = Path(jobs_dir) / key / "run.json"
        rows.append({"key": key, **(json.loads(p.read_text()) if p.exists() else {})})
    return pd.DataFrame(rows)


def load_job(jobs_dir: Path, key: str) -> JobOutput:
    """Read a finished job's tables and tensors back."""
    from safetensors.torch import load_file

    folder = Path(jobs_dir) / key
    out: JobOutput = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    st = folder / "tensors.safetensors"
    if st.exists():
        out.update(load_file(str(st)))
    return out


def run_sweep(
    fn: Callable[..., JobOutput],
    jobs: Sequence[Job],
    jobs_dir: Path,
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    description: str = "jobs",
) -> dict[str, JobOutput]:
    """Run every unfinished job of a sweep and return all outputs by job key.

    Args:
        fn: a module-level function (picklable) called as ``fn(**job.params)``.
        jobs: the sweep; keys must be unique.
        jobs_dir: folder holding one sub-folder per finished job.
        workers: parallel jobs (local process pool when > 1; Ray tasks in flight).
        executor: ``"local"`` or ``"ray"`` (an existing cluster at ``address``, or a
            local Ray instance when ``address`` is None).
        address: Ray cluster address (``ray://host:10001``), for ``executor="ray"``.
        progress: show a progress bar.
        description: label of the progress bar.

    Returns:
        ``{job.key: {table_or_tensor_name: value}}`` in the order of ``jobs``.
    """
    check_int(workers, "workers")
    check_choice(executor, ("local", "ray"), "executor")
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("jobs must have unique keys")
    bad = [k for k in keys if not k or "/" in k or k.startswith(".")]
    if bad:
        raise ValueError(f"job keys must be non-empty file names, got {bad[:3]}")
    jobs_dir = Path(jobs_dir)
    pending = [j for j in jobs if not (jobs_dir / j.key).is_dir()]
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        desc=description,
        disable=not progress,
        unit="job",
    )
    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        if executor == "ray":
            _run_ray(fn, pending, jobs_dir, workers, address, bar)
        elif workers == 1:
            for job in pending:
                _save_job(jobs_dir, job, _run_job(fn, job.params, None))
                bar.update()
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                running = {pool.submit(_run_job, fn, j.params, threads): j for j in pending}
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        _save_job(jobs_dir, running.pop(fut), fut.result())
                        bar.update()
    finally:
        bar.close()
    return {k: load_job(jobs_dir, k) for k in keys}


def _run_ray(fn, pending, jobs_dir, workers, address, bar) -> None:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError("executor='ray' needs Ray: pip install 'memscape[ray]'") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_run_job)
        queue = list(pending)
        running: dict[Any, Job] = {}
        while queue or running:
            while queue and len(running) < max(workers, 1):
                job = queue.pop(0)
                running[remote.remote(fn, job.params, 1)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                _save_job(jobs_dir, running.pop(ref), ray.get(ref))
                bar.update()
    finally:
        if started_here:
            ray.shutdown()
