"""The sweep engine: a list of independent jobs, each written atomically, resumable.

A job is a function of a parameter dict returning named tidy tables (and
optionally named tensors). Finished jobs live in ``<out>/jobs/<key>/``; that
folder appears by one atomic rename only when the job is complete, so a crash
or Ctrl-C loses at most the jobs in flight, and re-running the same command
skips every finished job. Jobs run in-process (one worker), in a local process
pool (one worker per core by default, one thread each: never more threads than
cores), or on a Ray cluster (``executor="ray"``). Each job's folder records its
own environment (``run.json``: versions, git commit, host, threads, start and
end), and jobs in flight report their stage to the progress bar
(:mod:`memscape.progress`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "Interrupted",
    "Job",
    "JobOutput",
    "SweepResult",
    "cpu_budget",
    "cpu_cores",
    "grid_jobs",
    "is_interrupt",
    "job_seed",
    "job_timings",
    "load_job",
    "plan_workers",
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
    /,
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
        key: unique file name of ASCII letters, digits and ``. _ = + -`` (e.g.
            ``"K=32_seed=1"``): no spaces, colons or path separators.
        params: keyword arguments of the job function (JSON-serializable).
    """

    key: str
    params: dict[str, Any] = field(default_factory=dict)


_KEY = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; the message says how many jobs had finished (they are kept)."""


def is_interrupt(err: BaseException) -> bool:
    """Whether ``err`` is a Ctrl-C, or an error raised *because of* one.

    A SIGINT that lands while a C extension module is being imported reaches Python as
    ``ImportError("initialization failed")`` whose ``__cause__`` is the
    ``KeyboardInterrupt`` (pybind11's module init; matplotlib and scipy import such
    modules lazily). That is an interruption, not an error: walk the cause/context chain.
    """
    seen: set[int] = set()
    node: BaseException | None = err
    while node is not None and id(node) not in seen:
        if isinstance(node, KeyboardInterrupt):
            return True
        seen.add(id(node))
        node = node.__cause__ or node.__context__
    return False


# ------------------------------------------------------------------ CPU budget
def cpu_cores() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_budget() -> int:
    """The cores a sweep uses by default: :func:`cpu_cores`, capped by torch's threads.

    ``torch.get_num_threads()`` follows ``OMP_NUM_THREADS`` and ``torch.set_num_threads``,
    so a caller that limits torch (a test process, a shared machine) limits the sweep too.
    """
    import torch

    return max(1, min(cpu_cores(), torch.get_num_threads()))


def plan_workers(workers: int | None, pending: int, budget: int, cores: int) -> tuple[int, int]:
    """``(workers, threads per job)`` of a local sweep, never ``workers × threads > cores``.

    ``workers=None`` takes ``min(budget, pending)``: one job per core. An explicit
    ``workers`` is capped at ``cores`` and at the pending jobs. Each job gets
    ``budget // workers`` threads (at least one), so a single job uses every core it
    is given.
    """
    cap = budget if workers is None else min(workers, cores)
    w = max(1, min(cap, pending))
    return w, max(1, budget // w)


# ------------------------------------------------------------------ running one job
_QUEUE: Any = None  # in a pool worker: where its jobs' progress reports go


def _worker_init(queue: Any, parent: int) -> None:
    """Pool worker set-up: Ctrl-C is the parent's to handle; die with the parent."""
    global _QUEUE
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _QUEUE = queue

    def watch() -> None:  # an orphaned worker (parent killed) must not go on writing
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _queue_listener(key: str) -> Callable[[str, dict[str, Any]], None]:
    """Send a job's reports to the parent: a new stage at once, the same stage 4 times a second."""
    last_stage, last_time = "", 0.0

    def put(stage: str, info: dict[str, Any]) -> None:
        nonlocal last_stage, last_time
        now = time.monotonic()
        if stage != last_stage or now - last_time >= 0.25:
            last_stage, last_time = stage, now
            _QUEUE.put_nowait((key, stage, info))

    return put


def _run_job(
    fn: Callable[..., JobOutput],
    key: str,
    params: dict[str, Any],
    threads: int | None,
    listener: Callable[[str, dict[str, Any]], None] | None = None,
) -> tuple[JobOutput, dict[str, Any]]:
    """Run one job with ``threads`` torch threads; return its output and its run record."""
    import torch

    from memscape.progress import listen, report
    from memscape.runs.results import provenance

    if listener is None and _QUEUE is not None:
        listener = _queue_listener(key)
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    begin, start = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.perf_counter()
    try:
        with listen(listener):
            report("start")
            output = fn(**params)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    info = {
        "seconds": time.perf_counter() - start,
        "host": platform.node(),
        "threads": used,
        "start": begin,
        "end": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": {**provenance(), "torch_threads": used},
    }
    return output, info


def _save_job(jobs_dir: Path, job: Job, result: tuple[JobOutput, dict[str, Any]]) -> None:
    """Write a job's folder under a temporary name, then rename it into place (atomic)."""
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
        (tmp / "run.json").write_text(json.dumps(info, indent=2, default=str))
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


_TIMING = ("seconds", "host", "threads", "start", "end")


def job_timings(jobs_dir: Path, keys: Sequence[str]) -> pd.DataFrame:
    """One row per job: ``key``, ``seconds`` it ran, ``host``, ``threads``, ``start``, ``end``."""
    import pandas as pd

    rows = []
    for key in keys:
        p = Path(jobs_dir) / key / "run.json"
        run = json.loads(p.read_text()) if p.exists() else {}
        rows.append({"key": key, **{k: run[k] for k in _TIMING if k in run}})
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


# ------------------------------------------------------------------ the display
class _Display:
    """The progress bar: finished jobs, and the stage each job in flight last reported.

    The count includes the jobs in flight, so the bar's ETA (tqdm's rate over the count)
    accounts for work under way: an in-flight job counts as the fraction of the mean
    finished job's time it has run (at most 0.95), or, before any job of this run has
    finished, as the fraction of its training steps done (:func:`progress_fraction`).
    """

    def __init__(self, total: int, done: int, description: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} jobs [{elapsed}<{remaining}{postfix}]"
        self.bar = tqdm(total=total, initial=done, desc=description, disable=not enabled,
                        bar_format=fmt, dynamic_ncols=True)  # fmt: skip
        self.enabled = enabled
        self.stages: dict[str, str] = {}
        self.last: dict[str, str] = {}  # each job's last stage name
        self.done: set[str] = set()  # a pool worker's last reports may come after its result
        self.count = float(done)  # finished jobs
        self.started: dict[str, float] = {}  # monotonic start of each job in flight
        self.trained: dict[str, float] = {}  # fraction of its training steps each has done
        self.durations: list[float] = []  # seconds of the jobs finished in this run
        self.shown = 0.0

    def report(self, key: str, stage: str, info: dict[str, Any]) -> None:
        """Show a job's new stage at once, and the same stage's numbers twice a second."""
        from memscape.progress import describe

        if key in self.done:
            return
        self.started.setdefault(key, time.monotonic())
        if (f := progress_fraction(stage, info)) is not None:
            self.trained[key] = max(self.trained.get(key, 0.0), f)
        self.stages[key] = describe(stage, info)
        if self.last.get(key) != stage or time.monotonic() - self.shown >= 0.5:
            self.last[key] = stage
            self.show()

    def finished(self, key: str) -> None:
        self.done.add(key)
        if key in self.started:
            self.durations.append(time.monotonic() - self.started.pop(key))
        self.trained.pop(key, None)
        self.stages.pop(key, None)
        self.last.pop(key, None)
        self.count += 1
        self.show()

    def in_flight(self) -> float:
        """The finished-job equivalents of the jobs in flight."""
        if self.durations:
            mean, now = sum(self.durations) / len(self.durations), time.monotonic()
            return sum(min((now - t) / mean, 0.95) for t in self.started.values())
        return sum(min(f, 0.95) for f in self.trained.values())

    def show(self) -> None:
        self.shown = time.monotonic()
        self.bar.n = min(self.count + self.in_flight(), float(self.bar.total))
        self.bar.set_postfix_str(" | ".join(f"{k}: {s}" for k, s in self.stages.items()))

    def listener(self, key: str) -> Callable[[str, dict[str, Any]], None] | None:
        return (lambda stage, info: self.report(key, stage, info)) if self.enabled else None

    def close(self) -> None:
        self.stages.clear()
        self.bar.n = self.count
        self.bar.close()


def progress_fraction(stage: str, info: Mapping[str, Any]) -> float | None:
    """How far a job is by one report: ``step/steps`` of a training, else ``None`` (unknown)."""
    step, steps = info.get("step"), info.get("steps")
    if (
        stage != "train"
        or not isinstance(step, (int, float))
        or not isinstance(steps, (int, float))
    ):
        return None
    return min(max(step / steps, 0.0), 1.0) if steps > 0 else None


# ------------------------------------------------------------------ the sweep
def run_sweep(
    fn: Callable[..., JobOutput],
    jobs: Sequence[Job],
    jobs_dir: Path,
    *,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    description: str = "jobs",
) -> SweepResult:
    """Run every unfinished job of a sweep and return all outputs by job key.

    Jobs run in-process when one worker is planned, else in a local process pool
    (:func:`plan_workers`: by default one worker per core, ``min(cores, pending jobs)``,
    and never more threads in all than cores), or as Ray tasks. The progress bar shows,
    for each job in flight, the stage it reports through :mod:`memscape.progress`
    (training step and steps/s, sampling, census, probe). Ctrl-C stops the workers and
    raises :class:`Interrupted` saying how many jobs finished; running the sweep again
    resumes after them.

    Args:
        fn: a module-level function (picklable) called as ``fn(**job.params)``.
        jobs: the sweep; keys must be unique file names (see :class:`Job`).
        jobs_dir: folder holding one sub-folder per finished job.
        workers: parallel jobs: ``None`` plans one per core (:func:`cpu_budget`); a number
            is capped at the cores (:func:`cpu_cores`) locally, and is the Ray tasks in flight.
        executor: ``"local"`` or ``"ray"`` (an existing cluster at ``address``, or a
            local Ray instance when ``address`` is None).
        address: Ray cluster address (``ray://host:10001``), for ``executor="ray"``.
        progress: show a progress bar.
        description: label of the progress bar.

    Returns:
        ``{job.key: {table_or_tensor_name: value}}`` in the order of ``jobs``.
    """
    if workers is not None:
        check_int(workers, "workers")
    check_choice(executor, ("local", "ray"), "executor")
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("jobs must have unique keys")
    bad = [k for k in keys if not isinstance(k, str) or not _KEY.fullmatch(k)]
    if bad:
        raise ValueError(
            "job keys must be file names of ASCII letters, digits and . _ = + - (no spaces, "
            f"colons or '/', not starting with '.'), got {bad[:3]}"
        )
    jobs_dir = Path(jobs_dir)
    _remove_stale(jobs_dir, keys)
    pending = [j for j in jobs if not (jobs_dir / j.key).is_dir()]
    display = _Display(len(jobs), len(jobs) - len(pending), description, progress)
    try:
        if not pending:
            pass
        elif executor == "ray":
            _run_ray(fn, pending, jobs_dir, workers, address, display)
        else:
            w, threads = plan_workers(workers, len(pending), cpu_budget(), cpu_cores())
            if w == 1:
                for job in pending:
                    result = _run_job(fn, job.key, job.params, threads, display.listener(job.key))
                    _save_job(jobs_dir, job, result)
                    display.finished(job.key)
            else:
                _run_pool(fn, pending, jobs_dir, w, threads, display)
    except BaseException as err:
        if not is_interrupt(err):
            raise
        done = sum((jobs_dir / k).is_dir() for k in keys)
        raise Interrupted(f"{description}: {done} of {len(keys)} jobs finished") from None
    finally:
        display.close()
    return SweepResult((k, load_job(jobs_dir, k)) for k in keys)


def _remove_stale(jobs_dir: Path, keys: Sequence[str]) -> None:
    """Delete the temporary folders a killed run left for these jobs (``.<key>.<random>``)."""
    if not jobs_dir.is_dir():
        return
    mine = set(keys)
    for p in jobs_dir.glob(".*.*"):
        if p.is_dir() and p.name[1:].rsplit(".", 1)[0] in mine:
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT for a moment (in the main thread): processes spawned now inherit it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _run_pool(fn, pending, jobs_dir, workers, threads, display) -> None:
    """A spawn process pool; progress comes back through a queue; Ctrl-C kills the workers."""
    import multiprocessing as mp
    import queue as queues

    ctx = mp.get_context("spawn")
    with _sigint_ignored():  # helper processes start with Ctrl-C ignored: no tracebacks from them
        reports = ctx.Queue()
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(reports, os.getpid()))  # fmt: skip
        running = {pool.submit(_run_job, fn, j.key, j.params, threads): j for j in pending}

    def drain() -> None:
        try:
            for _ in range(1000):
                display.report(*reports.get_nowait())
        except (queues.Empty, OSError, ValueError, EOFError):
            pass

    try:
        error: BaseException | None = None
        while running:
            done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
            drain()
            for fut in done:
                job = running.pop(fut)
                if fut.cancelled():
                    continue
                if fut.exception() is not None:  # keep what the other jobs finish, then raise
                    error = error or fut.exception()
                    for other in running:
                        other.cancel()
                    continue
                _save_job(jobs_dir, job, fut.result())
                display.finished(job.key)
        if error is not None:
            raise error
    except BaseException:
        procs = getattr(pool, "_processes", None) or {}  # private, but the only handle
        for proc in list(procs.values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        reports.close()
        reports.cancel_join_thread()


def _run_ray(fn, pending, jobs_dir, workers, address, display) -> None:
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
            while queue and len(running) < (workers or len(pending)):
                job = queue.pop(0)
                running[remote.remote(fn, job.key, job.params, 1)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                _save_job(jobs_dir, job, ray.get(ref))
                display.finished(job.key)
    finally:
        if started_here:
            ray.shutdown()
