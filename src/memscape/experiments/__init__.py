"""``memscape run`` experiments: the registry and the recipes (runs: :mod:`memscape.runs`).

The recipes live in :mod:`memscape.experiments.recipes`, one module per
experiment; importing this package registers every one of them (no import list).
"""

from memscape.experiments.registry import (
    EXPERIMENTS,
    Context,
    Experiment,
    build_config,
    discover,
    option,
    register,
    run_experiment,
)
from memscape.runs.results import Check, ResultsFolder
from memscape.runs.sweep import Job, SweepResult, grid_jobs, job_seed, load_job, run_sweep

discover()

__all__ = [
    "EXPERIMENTS",
    "Check",
    "Context",
    "Experiment",
    "Job",
    "ResultsFolder",
    "SweepResult",
    "build_config",
    "discover",
    "grid_jobs",
    "job_seed",
    "load_job",
    "option",
    "register",
    "run_experiment",
    "run_sweep",
]
