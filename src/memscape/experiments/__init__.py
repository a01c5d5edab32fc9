"""``memscape run`` experiments: registry, results folders, the sweep engine, and the recipes."""

# Importing a recipe registers it.
from memscape.experiments import (  # noqa: F401
    circle,
    dense_capacity,
    hopfield_capacity,
    landscape,
    memorization,
    modern_hopfield,
    morse_smale,
    regimes,
    symmetry_breaking,
)
from memscape.experiments.registry import (
    EXPERIMENTS,
    Context,
    Experiment,
    build_config,
    register,
    run_experiment,
)
from memscape.experiments.results import Check, ResultsFolder, atomic_write
from memscape.experiments.sweep import Job, load_job, run_sweep

__all__ = [
    "EXPERIMENTS",
    "Check",
    "Context",
    "Experiment",
    "Job",
    "ResultsFolder",
    "atomic_write",
    "build_config",
    "load_job",
    "register",
    "run_experiment",
    "run_sweep",
]
