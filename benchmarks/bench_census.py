"""Benchmark of the critical-point census (memscape.critical_points).

Two landscapes: a 2-D exact diffusion model of a few points with 10⁴ starts, and
a d = 64 model with K = 1000 memories (modern Hopfield and exact diffusion). For
each it prints the wall time, the number of critical points by Morse index, and
the share of time spent inside model calls (the model is wrapped in a timer).
Then completeness: on random sharp 2-D exact models (5–12 points in [−1.5, 1.5]²,
σ ∈ [0.08, 0.3]) the share of censuses with Σ(−1)^index = 1 after the first search
and after the retries (deflation), the retry rounds used and the time per census.
Last, the cost against the work asked for: the census time against the number of starts
(2-D and d = 64), and the continuation time against its initial steps on a 1-D family.

Run: ``python benchmarks/bench_census.py [--device cpu] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import defaultdict
from typing import Any

import torch

import memscape as ms

METHODS = ("energy", "score", "hessian", "update", "denoise")


class TimedModel:
    """Forwards everything to ``model`` and accumulates the time spent in its methods."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        for name in METHODS:
            if callable(getattr(model, name, None)):
                setattr(self, name, self._timed(name))

    def _timed(self, name: str) -> Any:
        fn = getattr(self._model, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.device.type == "cuda":
                torch.cuda.synchronize(out.device)
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1
            return out

        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def run(label: str, model: Any, sigma: Any, n_starts: int, seed: int = 0) -> None:
    timed = TimedModel(model)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    cps = ms.critical_points(timed, sigma, n_starts=n_starts, generator=g)
    wall = time.perf_counter() - t0
    inside = sum(timed.seconds.values())
    counts = cps.table[cps.table.converged].morse_index.value_counts().sort_index().to_dict()
    calls = ", ".join(f"{k} {timed.calls[k]}× {v:.2f}s" for k, v in timed.seconds.items())
    print(f"{label}: {wall:.2f} s wall, {100 * inside / wall:.0f}% in model calls ({calls})")
    print(
        f"    starts {n_starts}, points by index {counts}, "
        f"unconverged {int((~cps.table.converged).sum())}, "
        f"Euler characteristic {cps.euler_characteristic()}, complete {cps.complete}"
    )


def completeness(n: int, seed: int = 0) -> None:
    import warnings

    import numpy as np

    rng = np.random.default_rng(seed)
    first = done = 0
    rounds: list[int] = []
    t0 = time.perf_counter()
    for i in range(n):
        y = torch.tensor(rng.uniform(-1.5, 1.5, (int(rng.integers(5, 13)), 2)))
        model, sigma = ms.EmpiricalDiffusion(y), float(rng.uniform(0.08, 0.3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cps = ms.critical_points(model, sigma, generator=i)
        rounds.append(cps.info["retries"])
        first += cps.info["retries"] == 0
        done += cps.euler_characteristic() == 1
    per = (time.perf_counter() - t0) / n
    print(f"completeness, {n} sharp 2-D exact models: Σ(−1)^index = 1 after the first search "
          f"{first}/{n}, after retries {done}/{n}; retry rounds {np.bincount(rounds).tolist()}; "
          f"{per:.2f} s per census")  # fmt: skip


def scaling(quick: bool) -> None:
    """Seconds of a census against its starts, and of a continuation against its steps."""
    g = torch.Generator().manual_seed(1)
    two = ms.EmpiricalDiffusion(torch.randn(6, 2, generator=g, dtype=torch.float64))
    big = ms.EmpiricalDiffusion(torch.randn(200, 64, generator=g, dtype=torch.float64) / 8)
    print("census time against starts (exact diffusion; seconds, critical points found):")
    for label, model, sigma in (
        ("2-D, K=6, sigma=0.25", two, 0.25),
        ("d=64, K=200, sigma=0.3", big, 0.3),
    ):
        for n in (100, 300) if quick else (100, 300, 1000, 3000):
            t = time.perf_counter()
            cps = ms.critical_points(model, sigma, n_starts=n, generator=0)
            print(
                f"  {label:<24} starts {n:>5}: {time.perf_counter() - t:7.2f} s, {len(cps)} points"
            )
    line = ms.EmpiricalDiffusion(
        torch.tensor([[-1.13], [-0.83], [-0.07], [0.64]], dtype=torch.float64)
    )
    print("continuation time against initial steps (1-D, 4 points, sigma 2.0 -> 0.1):")
    for steps in (10, 30) if quick else (10, 30, 100, 300):
        t = time.perf_counter()
        bd = ms.continuation(line, "sigma", start=2.0, stop=0.1, steps=steps,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
        print(
            f"  steps {steps:>4}: {time.perf_counter() - t:7.2f} s, {len(bd.bifurcations)} events"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--completeness", type=int, default=100, help="random models (0: skip)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(
        f"memscape {ms.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}, device {dev}"
        + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
    )
    g = torch.Generator().manual_seed(0)
    pts2 = torch.randn(6, 2, generator=g, dtype=torch.float64).to(dev)
    run("2-D exact diffusion, K=6, sigma=0.25", ms.EmpiricalDiffusion(pts2), 0.25,
        2000 if args.quick else 10_000)  # fmt: skip
    k, d = (200, 64) if args.quick else (1000, 64)
    mem = torch.randn(k, d, generator=g, dtype=torch.float64).to(dev) / d**0.5
    n = 500 if args.quick else 2000
    run(f"d={d} modern Hopfield, K={k}, beta=8", ms.ModernHopfield(mem, beta=8.0), None, n)
    run(f"d={d} exact diffusion, K={k}, sigma=0.3", ms.EmpiricalDiffusion(mem), 0.3, n)
    if args.completeness:
        completeness(20 if args.quick else args.completeness)
    scaling(args.quick)


if __name__ == "__main__":
    main()
