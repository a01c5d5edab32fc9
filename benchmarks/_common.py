"""What every benchmark shares: the machine line and the row of the suite's table.

Each ``bench_*.py`` module prints its own detailed output when run alone and exposes
``suite(device: str, quick: bool) -> list[dict]``: rows of :func:`row`, collected by
``benchmarks/suite.py`` into one table with :func:`machine` above it.
"""

from __future__ import annotations

import math
import os
import platform
from typing import Any

import torch

import memscape
from memscape.io import cpu_name

COLUMNS = ("benchmark", "case", "memscape", "baseline", "baseline_value", "unit", "ratio",
           "note")  # fmt: skip


def machine(device: str = "cpu") -> str:
    """One line naming the machine: OS, CPU, cores, torch, threads, device, memscape, load average."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return (
        f"machine: {platform.platform()} | CPU: {cpu_name()} | {os.cpu_count()} cores | "
        f"torch {torch.__version__} | {torch.get_num_threads()} threads | device {dev} | "
        f"memscape {memscape.__version__} | load average {load:.2f}"
    )


def row(
    benchmark: str,
    case: str,
    value: float,
    unit: str,
    *,
    baseline: str = "",
    baseline_value: float = math.nan,
    higher_is_better: bool = True,
    note: str = "",
) -> dict[str, Any]:
    """A row of the suite's table; ``ratio`` > 1 means memscape is better than the baseline.

    Args:
        benchmark: the benchmark's name (e.g. ``"training"``).
        case: what was run (sizes, options).
        value: memscape's figure.
        unit: its unit (``"steps/s"``, ``"ms"``, ``"% of roofline"``).
        baseline: the named baseline measured in the same run ("" when none).
        baseline_value: its figure in the same unit.
        higher_is_better: whether a larger ``value`` is better (rates) or smaller (times).
        note: anything a reader needs (quick run, loaded machine, skipped baseline).
    """
    if math.isfinite(baseline_value) and baseline_value > 0 and value > 0:
        ratio = value / baseline_value if higher_is_better else baseline_value / value
    else:
        ratio = math.nan
    return {"benchmark": benchmark, "case": case, "memscape": value, "baseline": baseline,
            "baseline_value": baseline_value, "unit": unit, "ratio": ratio, "note": note}  # fmt: skip
