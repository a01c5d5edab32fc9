"""The sweep engine: a list of independent jobs, each written atomically, resumable.

A job is a function of a parameter dict returning named tidy tables (and
optionally named tensors). Finished jobs live in ``<out>/jobs/<key>/``; that
folder appears by one atomic rename only when the job is complete, so a crash
or Ctrl-C loses at most the jobs in flight, and re-running the same command
skips every finished job. Jobs run in-process (``workers=1``), in a local
process pool (``workers>1``), or on a Ray cluster (``executor="ray"``).
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memscape._validation import check_choice, check_int
from memscape.io import make_readable

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Job",
    "JobOutput",
    "SweepResult",
    "grid_jobs",
    "job_seed",
    "job_timings",
    "load_job",
    "run_sweep",
]

JobOutput = dict[str, Any]
"""What a job returns: ``{name: pandas.DataFrame | torch.Tensor}``."""


def job_seed(seed: int, *coords: float | int | str) -> int:
    """A 63-bit seed from the run seed and a job's coordinates (``numpy.random.SeedSequence``).

    Distinct coordinates give independent streams; the same coordinates give the same
    seed on every machine, so a job's random draws do not depend on which other jobs
    run, in what order, or where.
    """
    entropy = [int(seed)]
    for c in coords:
        if isinstance(c, str):
            entropy.extend(c.encode())
        elif isinstance(c, float):
            entropy.append(round(c * 1e9) & 0xFFFFFFFF)
        else:
            entropy.append(int(c))
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


class SweepResult(dict):
    """The outputs of a sweep, ``{job key: {name: DataFrame | Tensor}}`` in job order."""

    def table(self, name: str) -> pd.DataFrame:
        """Every job's table ``name`` concatenated (jobs without it are skipped)."""
        import pandas as pd

        parts = [out[name] for out in self.values() if name in out]
        if not parts:
            raise KeyError(f"no job returned a table {name!r}")
        return pd.concat(parts, ignore_index=True)


_SLUG = re.compile(r"[^A-Za-z0-9.=+-]+")


def _key_part(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return _SLUG.sub("-", text)


def grid_jobs(
    name: str,
    points: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    *,
    seed: int | None = None,
    **fixed: Any,
) -> list[Job]:
    """The jobs of a grid sweep: one per point, keyed by its coordinates.

    Args:
        name: the sweep's name, a prefix of every key (``"capacity"`` →
            ``"capacity_n=2_N=16"``); ASCII letters, digits and ``-``.
        points: ``{axis: values}`` (their Cartesian product) or a list of points
            ``{axis: value}``.
        seed: the run seed; when given, each job gets the parameter ``seed`` =
            :func:`job_seed` ``(seed, name, *coordinates)``.
        **fixed: parameters shared by every job.

    Returns:
        The jobs, in the order of ``points``.
    """
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ValueError(f"sweep name must be ASCII letters, digits and '-', got {name!r}")
    if isinstance(points, Mapping):
        axes = list(points)
        points = [
            dict(zip(axes, values, strict=True)) for values in itertools.product(*points.values())
        ]
    jobs = []
    for point in points:
        coords = "_".join(f"{k}={_key_part(v)}" for k, v in point.items())
        params = {**fixed, **point}
        if seed is not None:
            params["seed"] = job_seed(seed, name, *point.values())
        jobs.append(Job(f"{name}_{coords}" if coords else name, params))
    return jobs


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
    import torch

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
    import pandas as pd
    import torch
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
        for p in tmp.iterdir():
            make_readable(p)
        make_readable(tmp, folder=True)
        target = jobs_dir / job.key
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def job_timings(jobs_dir: Path, keys: Sequence[str]) -> pd.DataFrame:
    """One row per finished job: ``key``, ``seconds`` it ran, ``host``, ``threads``."""
    import pandas as pd

    rows = []
    for key in keys:
        p = Path(jobs_dir) / key / "run.json"
        rows.append({"key": key, **(json.loads(p.read_text()) if p.exists() else {})})
    return pd.DataFrame(rows)


def load_job(jobs_dir: Path, key: str) -> JobOutput:
    """Read a finished job's tables and tensors back."""
    import pandas as pd
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
) -> SweepResult:
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
    from tqdm.auto import tqdm

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
    return SweepResult((k, load_job(jobs_dir, k)) for k in keys)


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
