"""Benchmark the streamed exact denoiser against a naive softmax and a matmul ceiling.

    python benchmarks/bench_denoiser.py            # K = 10³…10⁶, d = 64 and 784, float32/64
    python benchmarks/bench_denoiser.py --quick    # K = 10³…2·10⁵, d = 64
    python benchmarks/bench_denoiser.py --threads 1

B = 256 queries (training points plus N(0, σ²) noise, σ = 1) are denoised by the
exact model of K training points ``y ~ N(0, I_d)``. Per configuration it prints the
best-of-``--repeats`` wall time of

* ``streamed``: :meth:`memscape.EmpiricalDiffusion.denoise`
  (:func:`memscape.kernels.streamed_softmax`, online log-sum-exp over chunks);
* ``naive``: full-softmax torch code that materializes the ``B×K`` logits
  (skipped when that would exceed ``--max-gb``);
* ``mm``: the practical ceiling, two plain matmuls of the same FLOP count
  (``(x yᵀ) y`` over the same chunks, or unchunked when that is faster),

as ratios ``streamed / naive`` (target ≤ 0.6 at K = 2·10⁵, d = 64) and
``mm / streamed`` (target ≥ 0.7), plus the peak-RSS increase of each method
(VmHWM / ``ru_maxrss`` delta of a fresh subprocess per method and configuration, one
call) next to its theoretical working set, and the max-abs difference between the
streamed and naive denoisers. Methods are timed interleaved in one process, so a
varying machine load hits them alike. Targets are checked at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from memscape import EmpiricalDiffusion
from memscape.experiments.results import cpu_name
from memscape.kernels import DEFAULT_CHUNK

DTYPES = {"float32": torch.float32, "float64": torch.float64}
METHODS = ("streamed", "naive", "mm")


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
    }


def worker(k: int, d: int, dtype_name: str, method: str, batch: int) -> None:
    """Peak-RSS increase of one call of one method in this fresh process (MB, printed)."""
    y, x = _problem(k, d, DTYPES[dtype_name], batch)
    fn = _methods(y, 1.0)[method]
    before = _maxrss_mb()
    fn(x)
    print(_maxrss_mb() - before)


def timings(
    fns: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, repeats: int
) -> dict[str, float]:
    """Best-of-``repeats`` wall time of each method, interleaved (fair under varying load)."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn(x)  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


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
    parser.add_argument("--quick", action="store_true", help="K up to 2e5, d = 64 only")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--max-gb", type=float, default=4.0, help="skip configs above this")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--worker", nargs=4, metavar=("K", "D", "DTYPE", "METHOD"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        k, d, dt, method = args.worker
        worker(int(k), int(d), dt, method, args.batch)
        return

    ks = [1_000, 10_000, 200_000] if args.quick else [1_000, 10_000, 100_000, 200_000, 1_000_000]
    dims = [64] if args.quick else [64, 784]
    print(f"machine: {platform.platform()} | CPU: {cpu_name()} | cores: {os.cpu_count()}")
    print(
        f"torch {torch.__version__}, {args.threads} threads, load average "
        f"{os.getloadavg()[0]:.1f} | B = {args.batch}, chunk = {DEFAULT_CHUNK}, "
        f"best of {args.repeats}"
    )
    print(
        f"{'dtype':>7} {'d':>4} {'K':>8} | {'streamed':>9} {'naive':>9} {'mm':>9} | "
        f"{'str/naive':>9} {'mm/str':>7} | peak RSS Δ MB (theory): streamed, naive, mm"
    )
    verdicts = []
    for dtype_name, dtype in DTYPES.items():
        nbytes = torch.empty(0, dtype=dtype).element_size()
        for d in dims:
            for k in ks:
                data_gb = k * d * nbytes / 2**30
                if data_gb > args.max_gb:
                    print(f"{dtype_name:>7} {d:>4} {k:>8} | skipped: data {data_gb:.1f} GB")
                    continue
                y, x = _problem(k, d, dtype, args.batch)
                fns = _methods(y, 1.0)
                for method in ("naive", "mm_full"):
                    work = theory_mb(method, k, d, nbytes, args.batch) / 1024
                    if data_gb + work > args.max_gb:
                        del fns[method]
                t = timings(fns, x, args.repeats)
                mm = min(t["mm"], t.get("mm_full", float("inf")))
                naive = t.get("naive", float("nan"))
                ratio_n, ratio_mm = t["streamed"] / naive, mm / t["streamed"]
                diff = ""
                if "naive" in fns:
                    err = (fns["naive"](x) - fns["streamed"](x)).abs().max()
                    diff = f" | maxdiff {float(err):.1e}"
                mem = ""
                if not args.no_rss:
                    mem = " | " + ", ".join(
                        f"{rss_mb(args, k, d, dtype_name, m):.0f} "
                        f"({theory_mb(m, k, d, nbytes, args.batch):.0f})"
                        if m in fns
                        else "skip"
                        for m in ("streamed", "naive", "mm")
                    )
                print(
                    f"{dtype_name:>7} {d:>4} {k:>8} | {t['streamed']:9.4f} {naive:9.4f} "
                    f"{mm:9.4f} | {ratio_n:9.2f} {ratio_mm:7.2f}{mem}{diff}"
                )
                del y, x, fns
                if k == 200_000 and d == 64:
                    verdicts.append((dtype_name, ratio_n, ratio_mm))
    for dtype_name, ratio_n, ratio_mm in verdicts:
        print(
            f"target K=2e5 d=64 {dtype_name}: streamed / naive = {ratio_n:.2f} "
            f"({'ok' if ratio_n <= 0.6 else 'MISSED'} ≤ 0.6), mm_ceiling / streamed = "
            f"{ratio_mm:.2f} ({'ok' if ratio_mm >= 0.7 else 'MISSED'} ≥ 0.7)"
        )


if __name__ == "__main__":
    main()
