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
import json
import math
import numbers
import pkgutil
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memscape._validation import check_choice, check_int
from memscape.experiments.results import Check, ResultsFolder
from memscape.experiments.sweep import (
    Job,
    JobOutput,
    SweepResult,
    grid_jobs,
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


# ------------------------------------------------------------------ options
def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[str] | None = None,
    nonempty: bool = True,
) -> Any:
    """A config field with its help, range and choices, validated by :func:`build_config`.

    Bounds apply to the value, or to every item of a tuple option; tuples must be
    non-empty unless ``nonempty=False``; ``None`` passes when the type admits it.

    Args:
        default: the documented default run's value.
        help: one line for ``memscape run NAME --help`` and the docs.
        ge: inclusive lower bound.
        gt: exclusive lower bound.
        le: inclusive upper bound.
        lt: exclusive upper bound.
        choices: allowed strings.
        nonempty: a tuple option needs at least one item.
    """
    meta: dict[str, Any] = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    meta.update(nonempty=nonempty, choices=tuple(choices) if choices is not None else None)
    return dataclasses.field(default=default, metadata=meta)


def field_types(config: type) -> dict[str, Any]:
    """Resolved type of each config field."""
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def _base(tp: Any) -> tuple[Any, bool, bool]:
    """``(item type, is a tuple, admits None)`` of a field type."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        optional = type(None) in args
        tp = next(a for a in args if a is not type(None))
    if typing.get_origin(tp) in (list, tuple, Sequence):
        args = typing.get_args(tp)
        return (args[0] if args else str), True, optional
    return tp, False, optional


def option_spec(config: type) -> dict[str, dict[str, Any]]:
    """Per option: ``type`` (``"int"``, ``"list[float]"`` …), ``default``, ``help``, bounds, choices."""
    spec = {}
    for f in dataclasses.fields(config):
        item, is_list, optional = _base(field_types(config)[f.name])
        name = getattr(item, "__name__", str(item))
        spec[f.name] = {
            "type": f"list[{name}]" if is_list else name,
            "optional": optional,
            "default": f.default,
            **{k: f.metadata.get(k) for k in ("help", "ge", "gt", "le", "lt", "choices")},
        }
    return spec


def _check_item(value: Any, meta: Mapping[str, Any], name: str) -> None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"option {name} must be finite, got {value!r}")
        for key, ok, word in (
            ("ge", lambda v, b: v >= b, ">="),
            ("gt", lambda v, b: v > b, ">"),
            ("le", lambda v, b: v <= b, "<="),
            ("lt", lambda v, b: v < b, "<"),
        ):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                raise ValueError(f"option {name} must be {word} {bound:g}, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ValueError(f"option {name} must be one of {', '.join(choices)}; got {value!r}")


def _validate_fields(cfg: Any) -> None:
    types_ = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        _, is_list, optional = _base(types_[f.name])
        if value is None:
            if not optional:
                raise ValueError(f"option {f.name} must be set")
            continue
        items = value if is_list else (value,)
        if is_list and not items and f.metadata.get("nonempty", True):
            raise ValueError(f"option {f.name} must not be empty")
        for item in items:
            _check_item(item, f.metadata, f.name)


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
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    progress: bool = True
    quick: bool = False  #: the run uses the experiment's quick overrides

    def sweep(self, fn: Callable[..., JobOutput], jobs: Sequence[Job], name: str) -> SweepResult:
        """Run ``jobs`` through the sweep engine into ``folder/jobs`` (resumable).

        Also writes the table ``timing_<name>`` (key, seconds, host, threads per job).
        """
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
        *,
        name: str,
        **fixed: Any,
    ) -> SweepResult:
        """One job per grid point, ``fn(**point, **fixed, seed=<job seed>)``, resumable.

        Keys are ``<name>_<axis>=<value>_…``; each job's ``seed`` comes from the run
        seed, ``name`` and the point (:func:`~memscape.experiments.sweep.job_seed`),
        so results do not depend on the grid around them. Use
        :meth:`SweepResult.table` to concatenate a table over the jobs.
        """
        return self.sweep(fn, grid_jobs(name, points, seed=self.seed, **fixed), name)

    def figure(self, name: str, nrows: int = 1, ncols: int = 1, **kw: Any):
        """``with ctx.figure(name, 1, 2, figsize=…) as (fig, axes):`` — saved as PNG + SVG."""
        return self.folder.figure(name, nrows, ncols, **kw)

    def table(self, name: str, table: pd.DataFrame) -> pd.DataFrame:
        """Write ``table`` as ``<name>.parquet`` and ``.csv``; return it."""
        self.folder.write_table(name, table)
        return table

    def check(
        self, name: str, measured: float, theory: float, tolerance: float, **kw: Any
    ) -> Check:
        """Record measured against theory for the report (see :class:`Check`)."""
        return self.folder.add_check(name, measured, theory, tolerance, **kw)

    def section(self, title: str, markdown: str = "", *tables: pd.DataFrame) -> None:
        """Add a report section: text, then tables."""
        self.folder.add_section(title, markdown, *tables)


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


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert ``value`` (possibly a CLI string such as ``"2,8,32"``) to type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if origin in (list, tuple, Sequence):
        item = args[0] if args else str
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, item, name) for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"option {name} expects {getattr(tp, '__name__', tp)}, got {value!r}"
        ) from None
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (keys may use - or _)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file {str(p)!r} does not exist")
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(p)!r} must hold a mapping of options")
    return data


def build_config(
    exp: Experiment,
    *,
    quick: bool = False,
    file: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """Defaults ← quick ← config file ← explicit overrides, coerced and validated.

    Unknown keys, values of the wrong type and values outside an option's declared
    range or choices raise ``ValueError`` naming the option; then the config's own
    ``validate()`` (if any) checks relations between options.
    """
    types_ = field_types(exp.config)
    values: dict[str, Any] = {}
    for source in (exp.quick if quick else {}, file or {}, overrides or {}):
        for key, value in source.items():
            k = key.replace("-", "_")
            if k not in types_:
                raise ValueError(
                    f"unknown option {key!r} for experiment {exp.name!r}; "
                    f"expected one of {', '.join(sorted(types_))}"
                )
            values[k] = _coerce(value, types_[k], k)
    cfg = exp.config(**values)
    _validate_fields(cfg)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def run_experiment(
    name: str,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    quick: bool = False,
    config: str | Path | dict[str, Any] | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: bool = True,
    **overrides: Any,
) -> ResultsFolder:
    """Run experiment ``name`` into the results folder ``out`` and return it.

    Everything is validated before any work or file write. Re-running with the
    same options and ``out`` resumes: finished sweep jobs are not recomputed.

    Args:
        name: a key of :data:`EXPERIMENTS` (see ``memscape list``).
        out: results folder (default ``results/<name>``).
        seed: base seed of every random draw.
        quick: apply the experiment's quick overrides (a fast, small run).
        config: a YAML/JSON file or a dict of options (overridden by ``overrides``).
        workers: sweep execution (local pool or Ray cluster).
        executor: sweep execution (local pool or Ray cluster).
        address: sweep execution (local pool or Ray cluster).
        progress: show progress bars.
        **overrides: options of the experiment's config (override ``config`` and ``quick``).
    """
    check_choice(name, EXPERIMENTS, "experiment")
    check_int(seed, "seed", minimum=0)
    check_int(workers, "workers")
    check_choice(executor, ("local", "ray"), "executor")
    exp = EXPERIMENTS[name]
    file = load_config_file(config) if isinstance(config, (str, Path)) else config
    cfg = build_config(exp, quick=quick, file=file, overrides=overrides)
    folder = ResultsFolder(Path(out) if out is not None else Path("results") / name)
    folder.write_config(name, dataclasses.asdict(cfg), seed)
    ctx = Context(folder, seed, workers, executor, address, progress, quick)
    exp.run(cfg, ctx)
    folder.write_report(f"memscape run {name}")
    return folder
