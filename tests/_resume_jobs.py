"""Module-level job functions for the resume/progress tests (picklable for process pools)."""

from __future__ import annotations

import pandas as pd

from memscape.progress import report


def staged_job(k: int, seed: int) -> dict:
    """Report the stages a memorization job goes through; return a one-row table."""
    for step in (1, 2):
        report("train", step=step, steps=2, rate=10.0)
    for stage in ("sample", "census", "probe"):
        report(stage)
    return {"rows": pd.DataFrame({"k": [k], "seed": [seed]})}
