"""Per-job generators (seeds from :func:`memscape.experiments.sweep.job_seed`)."""

from __future__ import annotations

import torch

from memscape.experiments.sweep import job_seed

__all__ = ["job_generator", "job_seed"]


def job_generator(seed: int, *coords: float | int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`job_seed`."""
    return torch.Generator().manual_seed(job_seed(seed, *coords))
