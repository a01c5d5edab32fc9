"""The exact denoiser against a naive softmax and against its roofline, in one table.

    python benchmarks/bench_denoiser.py                 # d = 64 (K = 10³, 10⁴, 2·10⁵), 784, 3072
    python benchmarks/bench_denoiser.py --quick         # a CI-sized subset (~20 s)
    python benchmarks/bench_denoiser.py --big           # also K = 10⁶ at d = 64
    python benchmarks/bench_denoiser.py --dtype float64 --threads 2 --method sdpa
    python benchmarks/bench_denoiser.py --sizes 64:50000 3072:20000 --device cuda
    python benchmarks/bench_denoiser.py --sizes 784:5000 --sigma 10    # spread posteriors

B = 256 queries (training points plus N(0, σ²) noise, σ = 1 or ``--sigma``) are denoised
by the exact model of K training points ``y ~ N(0, I_d)``. Per configuration, in process CPU time
(robust on a shared machine; ``--clock wall`` for wall time), the best of ``--rounds``
interleaved rounds (each round runs every method in a rotated order, each sample lasts
≥ ``--min-sample`` seconds) of

* ``memscape``: :meth:`memscape.EmpiricalDiffusion.denoise` (checks, centring, the chunk
  rule :func:`memscape.kernels.chunk_size_for`, the kernel);
* ``naive``: the faster of two full-softmax one-liners that materialize the ``B×K``
  logits, ``softmax((x yᵀ − ‖y‖²/2)/σ²) y`` and ``softmax(−cdist(x, y)²/2σ²) y``
  (skipped above ``--max-gb``);
* ``roofline``: the time of the kernel's own operations alone, at its chunk size: the
  two matmuls ``x y_cᵀ`` and ``p_c y_c`` over every chunk plus the exponentials of the
  ``B×K`` logits (the faster of ``torch.exp`` and the fused ``torch.softmax`` on a real
  chunk of logits, in cache), timed with subnormals flushed as the kernel runs
(:func:`memscape.numeric.flush_denormals`: on Intel CPUs an ``exp`` with subnormal
results is several times slower, which would inflate the roofline; the naive softmax
runs as a user would write it, without). Where posteriors are peaked the kernel skips most of the
  second matmul (a query whose 8 largest weights hold all but eps of its mass is summed
  over those alone, from d ≈ 128 on), so it can beat this roofline of the dense
  operations; column ``peaked`` gives the share of such queries (a softmax over all K in
  the benchmark's dtype; the kernel decides per chunk, and uses it from d ≈ 128 on).

Columns ``roof/ms`` (target ≥ 0.9 at d = 64, K = 2·10⁵ and at d = 784, 3072; ≥ 0.8 at
K = 10³) and ``naive/ms`` (target ≥ 1 everywhere: never slower than naive), plus the
max-abs error of memscape and of naive against a float64 reference. The header is
:func:`_common.machine` (the machine, torch, the threads and the load average; the load
average again after).

For ``benchmarks/suite.py``, :func:`suite` gives the rows at d = 64, K = 2·10⁵; d = 784;
d = 3072 and d = 64, K = 10³ (σ = 1), and d = 784 at σ = 10 (spread posteriors): memscape against the naive softmax and against the
roofline (its ratio is the share of the roofline reached); with ``device="cuda"`` also
the SDPA path against the streamed kernel and the throughput (queries/s) on K = 5·10⁴
CIFAR-sized points (d = 3072) against the naive softmax.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from _common import machine, row

from memscape import EmpiricalDiffusion
from memscape.kernels import chunk_size_for
from memscape.numeric import flush_denormals

DTYPES = {"float32": torch.float32, "float64": torch.float64}
FULL = [(64, 1_000), (64, 10_000), (64, 200_000), (784, 20_000), (3072, 5_000)]
QUICK = [(64, 1_000), (64, 10_000), (784, 5_000)]
BIG = [(64, 1_000_000)]
TARGET_ROOF = {(64, 1_000): 0.8, (64, 200_000): 0.9, (784, 20_000): 0.9, (3072, 5_000): 0.9}
# the configs of TARGET_ROOF at σ = 1 (peaked posteriors from d = 784 on), and d = 784 again
# at σ = 10, where every posterior is spread (the dense kernel, at its roofline)
SUITE = [(64, 200_000, 1.0), (784, 20_000, 1.0), (3072, 5_000, 1.0), (64, 1_000, 1.0),
         (784, 20_000, 10.0)]  # fmt: skip
CIFAR = (3072, 50_000)  # CIFAR-10's training set: K = 5·10⁴ points of d = 32·32·3 (CUDA only)


def problem(k: int, d: int, dtype: torch.dtype, batch: int, device: str, sigma: float = 1.0):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(k, d, generator=g, dtype=dtype)
    x = y[torch.randint(0, k, (batch,), generator=g)] + sigma * torch.randn(
        batch, d, generator=g, dtype=dtype
    )
    return y.to(device), x.to(device)


def naive_methods(
    y: torch.Tensor, sigma: float
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    half_sq = 0.5 * y.pow(2).sum(1)

    def matmul(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax((x @ y.T - half_sq) / sigma**2, dim=1) @ y

    def cdist(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(-torch.cdist(x, y).square() / (2 * sigma**2), dim=1) @ y

    return {"naive_matmul": matmul, "naive_cdist": cdist}


def roofline_methods(
    y: torch.Tensor, x: torch.Tensor, sigma: float
) -> dict[str, Callable[[], object]]:
    """The kernel's operations alone at its chunk size: matmul 1, the exponentials, matmul 2."""
    b, (k, d) = x.shape[0], y.shape
    c = chunk_size_for(b, k, d, y.element_size())
    buf = torch.empty(b, c, dtype=y.dtype, device=y.device)
    logits = torch.addmm(-0.5 * y[:c].pow(2).sum(1), x, y[:c].T).div_(sigma**2)  # a real chunk
    spans = [(s, min(s + c, k)) for s in range(0, k, c)]

    def mm1() -> None:
        for s, e in spans:
            torch.mm(x, y[s:e].T, out=buf[:, : e - s])

    def exp() -> None:
        for s, e in spans:
            torch.exp(logits[:, : e - s], out=buf[:, : e - s])

    def softmax() -> None:
        for s, e in spans:
            torch.softmax(logits[:, : e - s], dim=1, out=buf[:, : e - s])

    p = torch.softmax(logits, dim=1)

    def mm2() -> None:
        for s, e in spans:
            p[:, : e - s] @ y[s:e]

    def flushed(f: Callable[[], None]) -> None:
        with flush_denormals(y.device.type == "cpu"):  # as the kernel's own pass
            f()

    return {n: partial(flushed, f) for n, f in
            {"mm1": mm1, "exp": exp, "softmax": softmax, "mm2": mm2}.items()}  # fmt: skip


def methods(
    model: EmpiricalDiffusion, x: torch.Tensor, y: torch.Tensor, max_gb: float,
    sdpa: bool = False, sigma: float = 1.0,
) -> dict[str, Callable[[], object]]:  # fmt: skip
    """Every timed method as a no-argument call (synchronized on CUDA); ``sdpa`` adds the
    denoiser through ``scaled_dot_product_attention`` and through the streamed kernel."""
    fns: dict[str, Callable[[], object]] = {"memscape": lambda: model.denoise(x, sigma)}
    if sdpa:
        for method in ("sdpa", "streamed"):
            other = EmpiricalDiffusion(y, method=method)
            fns[method] = partial(other.denoise, x, sigma)
    if 2 * x.shape[0] * y.shape[0] * y.element_size() / 2**30 <= max_gb:
        fns |= {n: partial(f, x) for n, f in naive_methods(y, sigma).items()}
    fns |= roofline_methods(y, x, sigma)
    if y.device.type != "cuda":
        return fns

    def synced(f: Callable[[], object]) -> None:
        f()
        torch.cuda.synchronize(y.device)

    return {n: partial(synced, f) for n, f in fns.items()}


def timings(
    fns: dict[str, Callable[[], object]], rounds: int, min_sample: float, clock
) -> dict[str, float]:
    """Best seconds per call of each method over ``rounds`` interleaved rounds."""
    names, inner = list(fns), {}
    for name, fn in fns.items():
        t0 = clock()
        fn()  # warm-up, and the calls per sample (over-estimated by the first touch)
        inner[name] = max(1, math.ceil(min_sample / max(clock() - t0, 1e-6)))
    best = dict.fromkeys(names, math.inf)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn, n = fns[name], inner[name]
            t0 = clock()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (clock() - t0) / n)
    return best


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.2f}" if seconds < math.inf else "skip"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a < math.inf else "-"


def measure(
    d: int,
    k: int,
    *,
    dtype: torch.dtype = torch.float32,
    batch: int = 256,
    device: str = "cpu",
    method: str = "auto",
    rounds: int = 7,
    min_sample: float = 0.05,
    clock: Callable[[], float] = time.process_time,
    max_gb: float = 1.0,
    sdpa: bool = False,
    sigma: float = 1.0,
) -> dict[str, float]:
    """Best seconds per call of memscape, naive (``inf`` when skipped) and the roofline
    (with its parts ``mm1``, ``exp``, ``mm2``), the max-abs errors against float64 and the
    chunk size, for K points of dimension d; ``sdpa`` adds ``sdpa`` and ``streamed``."""
    y, x = problem(k, d, dtype, batch, device, sigma)
    model = EmpiricalDiffusion(y, method=method)
    best = timings(methods(model, x, y, max_gb, sdpa, sigma), rounds, min_sample, clock)
    naive = min(best.get("naive_matmul", math.inf), best.get("naive_cdist", math.inf))
    exps = min(best["exp"], best["softmax"])
    ref = naive_methods(y.double(), sigma)["naive_matmul"](x.double())
    err = float((model.denoise(x, sigma).double() - ref).abs().max())
    err_n = math.nan
    if naive < math.inf:
        err_n = float((naive_methods(y, sigma)["naive_matmul"](x).double() - ref).abs().max())
    xs = x[: max(1, (1 << 26) // k)]  # the share of peaked queries, on up to 2²⁶ logits
    logits = torch.addmm(-0.5 * y.pow(2).sum(1), xs, y.T).div_(sigma**2)
    top = torch.softmax(logits, 1).topk(min(8, k), dim=1).values.sum(1)
    peaked = float((1 - top <= torch.finfo(dtype).eps).double().mean())
    out = {"memscape": best["memscape"], "peaked": peaked, "naive": naive, "mm1": best["mm1"], "exp": exps,
           "mm2": best["mm2"], "roof": best["mm1"] + exps + best["mm2"], "err": err,
           "err_naive": err_n, "chunk": chunk_size_for(batch, k, d, y.element_size())}  # fmt: skip
    return out | {name: best[name] for name in ("sdpa", "streamed") if name in best}


def suite(device: str, quick: bool) -> list[dict[str, Any]]:
    """The suite's rows (see the module docstring): float32, B = 256, one thread on CPU."""
    cuda = device.startswith("cuda")
    timing: dict[str, Any] = {"rounds": 3 if quick else 7, "min_sample": 0.02 if quick else 0.05,
                              "clock": time.perf_counter if cuda else time.process_time}  # fmt: skip
    note = ("quick; " if quick else "") + (
        "wall time, method auto = SDPA" if cuda else "CPU time, 1 thread"
    )
    threads = torch.get_num_threads()
    rows = []
    try:
        if not cuda:
            torch.set_num_threads(1)  # the roofline is the kernel's own operations on one core
        for d, k, sigma in SUITE:
            r = measure(d, k, device=device, sdpa=cuda, sigma=sigma, **timing)
            case = f"d={d} K={k} B=256 σ={sigma:g} chunk={r['chunk']:.0f}"
            naive = "naive softmax (materialized B×K logits)"
            target = f"; target ≥ {TARGET_ROOF[(d, k)]:.0%} of roofline"
            target += f"; {r['peaked']:.0%} of posteriors peaked"
            rows += [
                row("denoiser", case, 1e3 * r["memscape"], "ms/call", baseline=naive,
                    baseline_value=1e3 * r["naive"], higher_is_better=False,
                    note=f"{note}; target ratio ≥ 1"),
                row("denoiser", case, 1e3 * r["memscape"], "ms/call",
                    baseline="roofline (2 matmuls + exp at the chunk size)",
                    baseline_value=1e3 * r["roof"], higher_is_better=False,
                    note=f"{note}; ratio = share of roofline{target}"),
            ]  # fmt: skip
            if cuda:
                rows.append(row("denoiser", case + " method=sdpa", 1e3 * r["sdpa"], "ms/call",
                                baseline="memscape method=streamed",
                                baseline_value=1e3 * r["streamed"], higher_is_better=False,
                                note=note))  # fmt: skip
        if cuda:
            (d, k), b = CIFAR, 1024
            r = measure(d, k, batch=b, device=device, **timing)
            rows.append(row("denoiser", f"CIFAR-sized d={d} K={k} B={b}", b / r["memscape"],
                            "queries/s", baseline="naive softmax (materialized B×K logits)",
                            baseline_value=b / r["naive"], note=note))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized subset")
    parser.add_argument("--big", action="store_true", help="also K = 10⁶ at d = 64")
    parser.add_argument("--sizes", nargs="+", metavar="D:K", help="instead of the defaults")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sigma", type=float, default=1.0, help="noise level of the queries")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", choices=("auto", "streamed", "sdpa"), default="auto")
    parser.add_argument("--rounds", type=int, default=None, help="default 7 (5 with --quick)")
    parser.add_argument("--min-sample", type=float, default=0.05, help="seconds per sample")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--max-gb", type=float, default=1.0, help="skip naive above this")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (5 if args.quick else 7)
    cuda = args.device.startswith("cuda")
    clock = time.process_time if args.clock == "cpu" and not cuda else time.perf_counter
    dtype = DTYPES[args.dtype]
    configs = QUICK if args.quick else FULL + (BIG if args.big else [])
    if args.sizes:
        configs = [(int(d), int(k)) for d, k in (size.split(":") for size in args.sizes)]
    print(machine(args.device))
    print(
        f"B = {args.batch}, σ = {args.sigma:g}, {args.dtype}, method {args.method}; best of {rounds} "
        f"interleaved rounds, ms per call ({'wall' if clock is time.perf_counter else 'cpu'} time)"
    )
    print(
        f"{'d':>5} {'K':>8} {'chunk':>7} | {'memscape':>9} {'naive':>9} {'roofline':>9} "
        f"({'mm1':>7} {'exp':>7} {'mm2':>7}) | {'roof/ms':>7} {'naive/ms':>8} | {'peaked':>6} | "
        "err ms, naive"
    )
    missed = []
    for d, k in configs:
        r = measure(d, k, dtype=dtype, batch=args.batch, device=args.device, method=args.method,
                    rounds=rounds, min_sample=args.min_sample, clock=clock,
                    max_gb=args.max_gb, sigma=args.sigma)  # fmt: skip
        ms_t, naive, roof = r["memscape"], r["naive"], r["roof"]
        print(
            f"{d:>5} {k:>8} {r['chunk']:>7.0f} | {1e3 * ms_t:9.2f} {_ms(naive):>9} "
            f"{1e3 * roof:9.2f} ({1e3 * r['mm1']:7.2f} {1e3 * r['exp']:7.2f} "
            f"{1e3 * r['mm2']:7.2f}) | {roof / ms_t:7.2f} {_ratio(naive, ms_t):>8} | "
            f"{r['peaked']:6.0%} | {r['err']:.1e}, {r['err_naive']:.1e}",
            flush=True,
        )
        target = TARGET_ROOF.get((d, k))  # met trivially where posteriors are peaked (d ≳ 128)
        if target is not None and roof / ms_t < target:
            missed.append(f"d={d} K={k}: roof/ms {roof / ms_t:.2f} < {target}")
        if naive < math.inf and naive / ms_t < 1.0:
            missed.append(f"d={d} K={k}: naive/ms {naive / ms_t:.2f} < 1")
    print(machine(args.device).split(" | ")[-1].replace("load average", "load average after"))
    print("targets: " + ("all met" if not missed else "MISSED " + "; ".join(missed)))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
