"""Module-level job functions for the sweep tests (picklable for process pools and Ray)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch

from memscape.progress import report


def square_job(k: int, seed: int, log: str, fail_on: int = -1) -> dict:
    """Record the call, fail on demand, return a tiny table and a tensor."""
    with open(log, "a") as f:
        f.write(f"{k}\n")
    if k == fail_on and not Path(log + ".failed").exists():
        Path(log + ".failed").write_text("x")
        raise RuntimeError(f"simulated crash in job {k}")
    report("square", what=str(k))
    g = torch.Generator().manual_seed(seed * 1000 + k)
    noise = torch.rand(3, generator=g, dtype=torch.float64)
    return {
        "rows": pd.DataFrame({"k": k, "square": k * k, "noise": noise.numpy(), "pid": os.getpid()}),
        "vec": noise,
    }
