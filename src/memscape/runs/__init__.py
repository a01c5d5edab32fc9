"""Runs: resumable job sweeps and results folders, independent of any experiment.

:mod:`memscape.runs.sweep` plans, runs and resumes a grid of jobs (process pool or Ray);
:mod:`memscape.runs.results` is a run's folder: config, provenance, tables, figures, checks
and the report. Both know nothing of diffusion or memories: the experiments registry
(:mod:`memscape.experiments`) builds on them.
"""
