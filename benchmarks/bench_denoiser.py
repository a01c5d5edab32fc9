"""Benchmark the streamed exact denoiser against a naive softmax and a matmul ceiling.

    python benchmarks/bench_denoiser.py                       # K = 10³…10⁶, d = 64, float32/64
    python benchmarks/bench_denoiser.py --ks 1000 10000       # small K only (shared machines)
    python benchmarks/bench_denoiser.py --dims 64 784 --energy --threads 1

B = 256 queries (training points plus N(0, σ²) noise, σ = 1) are denoised by the
exact model of K training points ``y ~ N(0, I_d)``. Per configuration it prints the
median wall time over ``--repeats`` interleaved repetitions of

* ``streamed``: :meth:`memscape.EmpiricalDiffusion.denoise` (checks, centring,
  :func:`memscape.kernels.streamed_distance_softmax`; one direct pass when K ≤ chunk);
* ``naive``: full-softmax torch code that materializes the ``B×K`` logits
  (skipped when that would exceed ``--max-gb``);
* ``mm``: the practical ceiling, two plain matmuls of the same FLOP count
  (``(x yᵀ) y`` over the same chunks, or unchunked when that is faster);
* ``energy`` (with ``--energy``): :meth:`memscape.EmpiricalDiffusion.energy`, whose
  leading terms are re-evaluated directly (the cost of a translation-stable energy),

as ratios ``streamed / naive`` (target ≤ 1 at every K: never slower than naive, and
≤ 0.6 at K = 2·10⁵, d = 64) and ``mm / streamed`` (target ≥ 0.7), plus, with ``--rss``,
the peak-RSS increase of each method (VmHWM delta of a fresh subprocess per method and
configuration) next to its theoretical working set, and the max-abs difference between
the streamed and naive denoisers. Each repetition runs the methods in a rotated order, so
a varying machine load hits them alike, and each sample repeats a method for at least
``--min-sample`` seconds; medians (and the 10th–90th percentile spread of the per-round
ratio) are reported, in process CPU time by default (``--clock wall`` for wall time; the
other clock's median ratio is printed alongside). Targets are checked at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from memscape import EmpiricalDiffusion
from memscape.io import cpu_name
from memscape.kernels import DEFAULT_CHUNK

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _maxrss_mb() -> float:
    """Peak RSS of this process in MB: VmHWM (Linux; unlike ru_maxrss it is not
    inherited from the parent across fork/exec), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _problem(k: int, d: int, dtype: torch.dtype, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(k, d, generator=g, dtype=dtype)
    idx = torch.randint(0, k, (batch,), generator=g)
    return y, y[idx] + torch.randn(batch, d, generator=g, dtype=dtype)


def _methods(y: torch.Tensor, sigma: float) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    model = EmpiricalDiffusion(y)
    half_sq = 0.5 * y.pow(2).sum(1)

    def naive(x: torch.Tensor) -> torch.Tensor:
        logits = x @ y.T
        logits -= half_sq
        logits /= sigma**2
        return torch.softmax(logits, dim=1) @ y

    def mm(x: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros_like(x)
        for start in range(0, y.shape[0], DEFAULT_CHUNK):
            c = y[start : start + DEFAULT_CHUNK]
            acc.addmm_(x @ c.T, c)
        return acc

    def mm_full(x: torch.Tensor) -> torch.Tensor:
        return (x @ y.T) @ y

    return {
        "streamed": lambda x: model.denoise(x, sigma),
        "naive": naive,
        "mm": mm,
        "mm_full": mm_full,
        "energy": lambda x: model.energy(x, sigma),
    }


def worker(k: int, d: int, dtype_name: str, method: str, batch: int) -> None:
    """Peak-RSS increase of one call of one method in this fresh process (MB, printed)."""
    y, x = _problem(k, d, DTYPES[dtype_name], batch)
    fn = _methods(y, 1.0)[method]
    before = _maxrss_mb()
    fn(x)
    print(_maxrss_mb() - before)


def timings(
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    x: torch.Tensor,
    repeats: int,
    min_sample: float = 0.02,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per call of each method over ``repeats`` rounds: ``(wall, cpu)``.

    One sample is ``n`` back-to-back calls with ``n`` chosen so that a sample lasts at
    least ``min_sample`` seconds (a few scheduler quanta, so preemption on a shared machine
    averages out instead of hitting single millisecond calls). Round ``r`` starts at method
    ``r`` (rotated order), so load changes and cache effects fall on every method alike.
    Wall time (``perf_counter``) and process CPU time (``process_time``, which a shared
    machine's other jobs do not inflate) are both kept.
    """
    names = list(fns)
    inner = {}
    for name, fn in fns.items():
        fn(x)  # warm-up
        t0 = time.process_time()
        fn(x)
        inner[name] = max(1, math.ceil(min_sample / max(time.process_time() - t0, 1e-6)))
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = fns[name], inner[name]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn(x)
            cpu[name].append((time.process_time() - c0) / n)
            wall[name].append((time.perf_counter() - t0) / n)
    return wall, cpu


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def theory_mb(method: str, k: int, d: int, nbytes: int, batch: int) -> float:
    """Working set beyond data and queries: logits (+ softmax) of a chunk or of all K."""
    if method == "naive":
        return 2 * batch * k * nbytes / 2**20
    if method == "mm_full":
        return batch * k * nbytes / 2**20
    return batch * min(k, DEFAULT_CHUNK) * nbytes / 2**20 + 2 * batch * d * nbytes / 2**20


def rss_mb(args: argparse.Namespace, k: int, d: int, dtype_name: str, method: str) -> float:
    cmd = [sys.executable, __file__, "--worker", str(k), str(d), dtype_name, method]
    cmd += ["--batch", str(args.batch), "--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[64])
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu",
        help="time the ratios use: process CPU time (robust on a shared machine) or wall",
    )  # fmt: skip
    parser.add_argument("--min-sample", type=float, default=0.02, help="seconds per sample")
    parser.add_argument("--max-gb", type=float, default=4.0, help="skip configs above this")
    parser.add_argument("--energy", action="store_true", help="also time the exact energy")
    parser.add_argument("--rss", action="store_true", help="peak RSS per method (subprocesses)")
    parser.add_argument("--worker", nargs=4, metavar=("K", "D", "DTYPE", "METHOD"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        k, d, dt, method = args.worker
        worker(int(k), int(d), dt, method, args.batch)
        return

    print(f"machine: {platform.platform()} | CPU: {cpu_name()} | cores: {os.cpu_count()}")
    print(
        f"torch {torch.__version__}, {args.threads} threads, load average "
        f"{os.getloadavg()[0]:.1f} | B = {args.batch}, chunk = {DEFAULT_CHUNK}, "
        f"median of {args.repeats} interleaved samples of ≥ {args.min_sample:g} s "
        f"(ms per call, {args.clock} time)"
    )
    energy_head = f" {'energy':>9}" if args.energy else ""
    alt_clock = "wall" if args.clock == "cpu" else "cpu"
    print(
        f"{'dtype':>7} {'d':>4} {'K':>8} | {'streamed':>9} {'naive':>9} {'mm':>9}{energy_head} | "
        f"{'str/naive':>9} {'p10–p90':>11} {alt_clock + ' ratio':>9} {'mm/str':>7}"
        + (" | peak RSS Δ MB (theory): streamed, naive, mm" if args.rss else "")
    )
    verdicts = []
    for dtype_name in args.dtypes:
        dtype = DTYPES[dtype_name]
        nbytes = torch.empty(0, dtype=dtype).element_size()
        for d in args.dims:
            for k in args.ks:
                data_gb = k * d * nbytes / 2**30
                if data_gb > args.max_gb:
                    print(f"{dtype_name:>7} {d:>4} {k:>8} | skipped: data {data_gb:.1f} GB")
                    continue
                y, x = _problem(k, d, dtype, args.batch)
                fns = _methods(y, 1.0)
                if not args.energy:
                    del fns["energy"]
                for method in ("naive", "mm_full"):
                    work = theory_mb(method, k, d, nbytes, args.batch) / 1024
                    if data_gb + work > args.max_gb:
                        del fns[method]
                wall, cpu = timings(fns, x, args.repeats, args.min_sample)
                t = cpu if args.clock == "cpu" else wall
                med = {name: statistics.median(v) for name, v in t.items()}
                mm = min(med["mm"], med.get("mm_full", float("inf")))
                naive = med.get("naive", float("nan"))
                ratio_n, ratio_mm = med["streamed"] / naive, mm / med["streamed"]
                spread = other = ""
                if "naive" in t:  # per-round ratios: both methods ran within one round
                    per = [s / n for s, n in zip(t["streamed"], t["naive"], strict=True)]
                    spread = f"{_quantile(per, 0.1):.2f}–{_quantile(per, 0.9):.2f}"
                    alt = wall if args.clock == "cpu" else cpu
                    ratio_alt = statistics.median(alt["streamed"]) / statistics.median(alt["naive"])
                    other = f" {ratio_alt:9.2f}"
                diff = ""
                if "naive" in fns:
                    err = (fns["naive"](x) - fns["streamed"](x)).abs().max()
                    diff = f" | maxdiff {float(err):.1e}"
                mem = ""
                if args.rss:
                    mem = " | " + ", ".join(
                        f"{rss_mb(args, k, d, dtype_name, m):.0f} "
                        f"({theory_mb(m, k, d, nbytes, args.batch):.0f})"
                        if m in fns
                        else "skip"
                        for m in ("streamed", "naive", "mm")
                    )
                energy = f" {1e3 * med['energy']:9.3f}" if args.energy else ""
                print(
                    f"{dtype_name:>7} {d:>4} {k:>8} | {1e3 * med['streamed']:9.3f} "
                    f"{1e3 * naive:9.3f} {1e3 * mm:9.3f}{energy} | {ratio_n:9.2f} "
                    f"{spread:>11}{other} {ratio_mm:7.2f}{mem}{diff}"
                )
                del y, x, fns
                if "naive" in t:
                    verdicts.append((dtype_name, d, k, ratio_n, ratio_mm))
    for dtype_name, d, k, ratio_n, ratio_mm in verdicts:
        target = 0.6 if (k == 200_000 and d == 64) else 1.0
        line = (
            f"target {dtype_name} d={d} K={k}: streamed / naive = {ratio_n:.2f} "
            f"({'ok' if ratio_n <= target else 'MISSED'} ≤ {target})"
        )
        if k == 200_000 and d == 64:
            line += f", mm_ceiling / streamed = {ratio_mm:.2f} ({'ok' if ratio_mm >= 0.7 else 'MISSED'} ≥ 0.7)"
        print(line)


if __name__ == "__main__":
    main()
