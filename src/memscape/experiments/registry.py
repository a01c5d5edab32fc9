"""The experiment registry and the one way to run an experiment.

An experiment is one module in :mod:`memscape.experiments.recipes` (found there by
:func:`discover`, no import list to keep): a config dataclass whose fields are
declared with :func:`option` (default, help, type, range, choices — validated by
:func:`build_config`, shown by the CLI), and a function ``run(config, ctx)``
registered with :func:`register`. ``run`` sends independent pieces through
:meth:`Context.grid` (resumable, local pool or Ray), writes tidy tables, figures
(:meth:`Context.figure`), checks against theory and report sections.

This module and the config dataclasses load without torch, scipy, pandas or
matplotlib, so ``memscape --help`` and ``memscape list`` answer at once; recipes
import the heavy libraries lazily (:func:`lazy_loader.load`).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memscape._validation import check_choice, check_int
from memscape.config import load_config_file, make_config, option, option_spec
from memscape.runs.results import Check, ResultsFolder
from memscape.runs.sweep import (
    Interrupted,
    Job,
    JobOutput,
    SweepResult,
    grid_jobs,
    is_interrupt,
    job_timings,
    run_sweep,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXPERIMENTS",
    "Context",
    "Experiment",
    "build_config",
    "discover",
    "option",
    "option_spec",
    "register",
    "run_experiment",
]


# ------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Experiment:
    """A registered ``memscape run`` experiment."""

    name: str
    summary: str  #: one line for ``memscape list``
    paper: str  #: the result it reproduces
    config: type  #: a dataclass of :func:`option` fields
    run: Callable[[Any, Context], None]
    quick: dict[str, Any]  #: overrides applied by ``--quick``
    figures: dict[str, str] = dataclasses.field(default_factory=dict)
    """Figure names (without extension) a run writes, each with a one-line description."""


@dataclass
class Context:
    """What an experiment's ``run`` gets besides its config: the folder, seed and executor."""

    folder: ResultsFolder
    seed: int
    workers: int | None = None  #: ``None``: one per core (see ``sweep.plan_workers``)
    executor: str = "local"
    address: str | None = None
    progress: bool = True
    quick: bool = False  #: the run uses the experiment's quick overrides

    def sweep(self, fn: Callable[..., JobOutput], jobs: Sequence[Job], name: str) -> SweepResult:
        """Run ``jobs`` through the sweep engine into ``folder/jobs`` (resumable).

        Also writes the table ``timing_<name>`` (key, seconds, host, threads, start, end
        per job).
        """
        _check_name(name, "sweep name")
        outputs = run_sweep(
            fn,
            jobs,
            self.folder.jobs_dir,
            workers=self.workers,
            executor=self.executor,
            address=self.address,
            progress=self.progress,
            description=name,
        )
        timings = job_timings(self.folder.jobs_dir, [j.key for j in jobs])
        self.folder.write_table(f"timing_{name}", timings)
        return outputs

    def grid(
        self,
        fn: Callable[..., JobOutput],
        points: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
        /,
        *,
        name: str,
        **fixed: Any,
    ) -> SweepResult:
        """One job per grid point, ``fn(**point, **fixed, seed=<job seed>)``, resumable.

        Keys are ``<name>_<axis>=<value>_…``; each job's ``seed`` comes from the run
        seed, ``name`` and the point (:func:`~memscape.runs.sweep.job_seed`),
        so results do not depend on the grid around them. Use
        :meth:`SweepResult.table` to concatenate a table over the jobs.
        """
        return self.sweep(fn, grid_jobs(name, points, seed=self.seed, **fixed), name)

    def figure(self, name: str, nrows: int = 1, ncols: int = 1, **kw: Any):
        """``with ctx.figure(name, 1, 2, figsize=…) as (fig, axes):`` — saved as PNG + SVG."""
        _check_name(name, "figure name")
        return self.folder.figure(name, nrows, ncols, **kw)

    def table(self, name: str, table: pd.DataFrame) -> pd.DataFrame:
        """Write ``table`` as ``<name>.parquet`` and ``.csv``; return it."""
        _check_name(name, "table name")
        self.folder.write_table(name, table)
        return table

    def check(
        self, name: str, measured: float, theory: float, tolerance: float, **kw: Any
    ) -> Check:
        """Record a measured-vs-theory check (``relative``, ``identity``: :class:`Check`)."""
        return self.folder.add_check(name, measured, theory, tolerance, **kw)

    def section(self, title: str, markdown: str = "", *tables: pd.DataFrame) -> None:
        """Add a report section: text, then tables."""
        self.folder.add_section(title, markdown, *tables)


_FILE_NAME = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9._=+-]*")


def _check_name(name: str, what: str) -> None:
    """Results file names: ASCII letters, digits and ``. _ = + -`` (no spaces or colons)."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
        raise ValueError(
            f"{what} must be ASCII letters, digits and . _ = + - (it names files), got {name!r}"
        )


EXPERIMENTS: dict[str, Experiment] = {}


def register(
    name: str,
    *,
    summary: str,
    paper: str,
    config: type,
    quick: dict[str, Any] | None = None,
    figures: Sequence[str] | Mapping[str, str] = (),
):
    """Decorator registering ``run(config, ctx)`` as experiment ``name``.

    Args:
        name: the ``memscape run`` name.
        summary: one line for ``memscape list``, the README and the gallery.
        paper: the published result it reproduces.
        config: a dataclass of :func:`option` fields.
        quick: overrides for ``--quick``.
        figures: the figures every run writes: names, or ``{name: description}``.
    """
    if not dataclasses.is_dataclass(config):
        raise TypeError("config must be a dataclass")

    def deco(fn: Callable[[Any, Context], None]) -> Callable[[Any, Context], None]:
        old = EXPERIMENTS.get(name)
        if old is not None and old.run.__module__ != fn.__module__:
            raise ValueError(f"experiment {name!r} is registered by {old.run.__module__} already")
        described = dict(figures) if isinstance(figures, Mapping) else dict.fromkeys(figures, "")
        EXPERIMENTS[name] = Experiment(
            name, summary, paper, config, fn, dict(quick or {}), described
        )
        return fn

    return deco


def discover() -> dict[str, Experiment]:
    """Import every module of :mod:`memscape.experiments.recipes` (each registers itself)."""
    from memscape.experiments import recipes

    for info in pkgutil.iter_modules(recipes.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{recipes.__name__}.{info.name}")
    return EXPERIMENTS


def build_config(
    exp: Experiment,
    *,
    quick: bool = False,
    file: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Defaults ← quick ← config file ← explicit overrides, coerced and validated.

    Unknown keys, values of the wrong type and values outside an option's declared
    range or choices raise ``ValueError`` naming the option (:func:`memscape.config.make_config`);
    then the config's own ``validate()`` (if any) checks relations between options.
    """
    sources = (exp.quick if quick else {}, file or {}, overrides or {})
    return make_config(exp.config, *sources, owner=f"experiment {exp.name!r}")


def run_experiment(
    name: str,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
    config: str | Path | dict[str, Any] | None = None,
    workers: int | None = None,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    recompute: bool = False,
    **overrides: Any,
) -> ResultsFolder:
    """Run experiment ``name`` into the results folder ``out`` and return it.

    Everything is validated before any work or file write. Re-running with the
    same options and ``out`` resumes after any interruption (Ctrl-C, a crash, a
    killed process): finished jobs are not recomputed, an interrupted training
    continues from its checkpoint, and the tables come out identical to an
    uninterrupted run. ``config.json`` pins what the results depend on — options,
    seed, memscape's version and a content fingerprint of the data (a config's
    ``data_fingerprint(seed)``, if it has one) — and a run with any of them changed
    is refused (with ``recompute``: the old results move to ``out/superseded/`` and the
    run starts afresh); it also keeps the history of the runs into the folder.

    Args:
        name: a key of :data:`EXPERIMENTS` (see ``memscape list``).
        out: results folder (default ``results/<name>``).
        seed: base seed of every random draw.
        quick: apply the experiment's quick overrides (a fast, small run).
        config: a YAML/JSON file or a dict of options (overridden by ``overrides``).
        workers: parallel jobs; ``None``: one per core, one thread each
            (:func:`~memscape.runs.sweep.plan_workers`).
        executor: sweep execution (local pool or Ray cluster).
        address: sweep execution (local pool or Ray cluster).
        progress: show progress bars (with the stage of each job in flight).
        recompute: recompute instead of refusing when ``out`` holds other results
            (:meth:`~memscape.runs.results.ResultsFolder.write_config`).
        **overrides: options of the experiment's config (override ``config`` and ``quick``).

    Raises:
        ValueError: bad options, or ``out`` holds results of another config, seed, data
            or memscape version.
        Interrupted: Ctrl-C; its message says what finished and that re-running resumes.
    """
    check_choice(name, EXPERIMENTS, "experiment")
    check_int(seed, "seed", minimum=0)
    if workers is not None:
        check_int(workers, "workers")
    check_choice(executor, ("local", "ray"), "executor")
    exp = EXPERIMENTS[name]
    file = load_config_file(config) if isinstance(config, (str, Path)) else config
    cfg = build_config(exp, quick=quick, file=file, overrides=overrides)
    fingerprint = getattr(cfg, "data_fingerprint", None)
    data = fingerprint(seed) if callable(fingerprint) else None
    folder = ResultsFolder(Path(out) if out is not None else Path("results") / name)
    if not isinstance(recompute, bool):
        raise TypeError(f"recompute must be a bool, got {type(recompute).__name__}")
    folder.write_config(name, dataclasses.asdict(cfg), seed, data=data, recompute=recompute)
    ctx = Context(folder, seed, workers, executor, address, progress, quick)
    try:
        exp.run(cfg, ctx)
        defaults = exp.config()
        changed = (
            {k: {"value": getattr(cfg, k), "default": getattr(defaults, k)} for k in exp.quick}
            if quick
            else None
        )
        folder.write_report(f"memscape run {name}", quick=changed)
    except BaseException as err:
        if not is_interrupt(err):  # an ImportError raised by a Ctrl-C is an interruption
            folder.end_run("failed")
            raise
        folder.end_run("interrupted")
        what = str(err) if isinstance(err, Interrupted) else "every job had finished"
        message = (
            f"interrupted ({what}); run the same command again to resume "
            f"(results so far in {folder.path})"
        )
        raise Interrupted(message) from None
    folder.end_run("finished")
    return folder
