"""A sweep beside a busy process: does it keep its fair share of the cores?

Runs ``memscape run EXPERIMENT --quick`` twice from scratch: alone, then beside
``--busy`` processes that each keep one core busy with 1-thread matrix products. With
``c`` cores, ``w`` one-thread workers and ``b`` busy processes, the fair share of the
sweep is ``min(w, c·w/(w + b))`` cores, so the expected slowdown is
``w / fair share`` (1.5× for the default sweep on 2 cores beside one busy process); a
sweep whose jobs each used every core's threads would slow by 5–15× instead (small
torch ops under thread contention). Prints both wall times, the ratio, the fair-share
bound and the machine (:func:`_common.machine`).

Run: ``python benchmarks/bench_busy.py [--experiment memorization] [--busy 1]``.

Not in ``benchmarks/suite.py``: its reference is the fair-share bound, not a baseline
implementation run in the same process, and it takes two full quick runs (minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

BUSY = (
    "import torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\n"
    "while True:\n    a = torch.tanh(a @ a)\n"
)


def timed_run(experiment: str, out: Path) -> float:
    start = time.perf_counter()
    entry = "from memscape.cli import main; main()"
    cmd = [sys.executable, "-c", entry, "run", experiment, "--quick", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="memorization")
    parser.add_argument("--busy", type=int, default=1, help="busy processes (one core each)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    print(machine("cpu") + f" | {cores} cores usable")
    with tempfile.TemporaryDirectory() as tmp:
        alone = timed_run(args.experiment, Path(tmp) / "alone")
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
        try:
            time.sleep(1.0)  # let them start
            beside = timed_run(args.experiment, Path(tmp) / "beside")
        finally:
            for h in hogs:
                h.kill()
                h.wait()
    workers = cores  # the sweep's default: one 1-thread worker per core
    share = min(workers, cores * workers / (workers + args.busy))
    print(f"{args.experiment} --quick alone:            {alone:7.1f} s")
    print(f"{args.experiment} --quick beside {args.busy} busy:     {beside:7.1f} s")
    print(f"slowdown {beside / alone:.2f}× (fair share of the cores: {workers / share:.2f}×)")


if __name__ == "__main__":
    main()
