"""The experiment registry and the one way to run an experiment.

An experiment is a config dataclass (defaults = the documented default run,
``quick`` = overrides for a fast run) and a function ``run(config, ctx)`` that
writes tables, figures and report sections into ``ctx.folder``. Every option
reaches it the same way from Python, the CLI or a YAML/JSON config file.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memscape._validation import check_choice, check_int
from memscape.experiments.results import ResultsFolder
from memscape.experiments.sweep import Job, JobOutput, job_timings, run_sweep

__all__ = ["EXPERIMENTS", "Context", "Experiment", "build_config", "register", "run_experiment"]


@dataclass(frozen=True)
class Experiment:
    """A registered ``memscape run`` experiment."""

    name: str
    summary: str  #: one line for ``memscape list``
    paper: str  #: the result it reproduces
    config: type  #: a dataclass; its field metadata ``help`` documents each option
    run: Callable[[Any, Context], None]
    quick: dict[str, Any]  #: overrides applied by ``--quick``


@dataclass
class Context:
    """What an experiment's ``run`` gets besides its config."""

    folder: ResultsFolder
    seed: int
    workers: int = 1
    executor: str = "local"
    address: str | None = None
    progress: bool = True

    def sweep(
        self, fn: Callable[..., JobOutput], jobs: Sequence[Job], description: str = "jobs"
    ) -> dict[str, JobOutput]:
        """Run ``jobs`` through the sweep engine into ``folder/jobs`` (resumable).

        Also writes the table ``timing_<description>`` (key, seconds, host, threads per job).
        """
        outputs = run_sweep(
            fn,
            jobs,
            self.folder.jobs_dir,
            workers=self.workers,
            executor=self.executor,
            address=self.address,
            progress=self.progress,
            description=description,
        )
        timings = job_timings(self.folder.jobs_dir, [j.key for j in jobs])
        self.folder.write_table(f"timing_{description}", timings)
        return outputs


EXPERIMENTS: dict[str, Experiment] = {}


def register(
    name: str, *, summary: str, paper: str, config: type, quick: dict[str, Any] | None = None
):
    """Decorator registering ``run(config, ctx)`` as experiment ``name``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError("config must be a dataclass")

    def deco(fn: Callable[[Any, Context], None]) -> Callable[[Any, Context], None]:
        EXPERIMENTS[name] = Experiment(name, summary, paper, config, fn, dict(quick or {}))
        return fn

    return deco


def field_types(config: type) -> dict[str, Any]:
    """Resolved type of each config field."""
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


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
    """Defaults ← quick ← config file ← explicit overrides; unknown keys raise ``ValueError``."""
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
    ctx = Context(folder, seed, workers, executor, address, progress)
    exp.run(cfg, ctx)
    folder.write_report(f"memscape run {name}")
    return folder
