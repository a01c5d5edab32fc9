"""Deterministic per-job seeds derived from the run seed and the job's coordinates."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["job_generator", "job_seed"]


def job_seed(seed: int, *coords: float | int | str) -> int:
    """A 63-bit seed from the run seed and job coordinates (``numpy.random.SeedSequence``)."""
    entropy = [int(seed)]
    for c in coords:
        if isinstance(c, str):
            entropy.extend(c.encode())
        elif isinstance(c, float):
            entropy.append(round(c * 1e9) & 0xFFFFFFFF)
        else:
            entropy.append(int(c))
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


def job_generator(seed: int, *coords: float | int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded by :func:`job_seed`."""
    return torch.Generator().manual_seed(job_seed(seed, *coords))
