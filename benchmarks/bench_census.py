"""Benchmark of the critical-point census (memscape.critical_points).

Two landscapes: a 2-D exact diffusion model of a few points with 10⁴ starts, and
a d = 64 model with K = 1000 memories (modern Hopfield and exact diffusion). For
each it prints the wall time, the number of critical points by Morse index, and
the share of time spent inside model calls (the model is wrapped in a timer).
Then completeness: on random sharp 2-D exact models (5–12 points in [−1.5, 1.5]²,
σ ∈ [0.08, 0.3]) the share of censuses with Σ(−1)^index = 1 after the first search
and after the retries (deflation), the retry rounds used and the time per census.
Then the cost against the work asked for: the census time against the number of starts
(2-D and d = 64), and the continuation time against its initial steps on a 1-D family.

Last, the suite's rows (:func:`suite`): the census at d = 64, 784 and 3072 (the exact
diffusion model of K = 100 Gaussian points in the memorization regime, σ = 0.15 × their
median nearest-neighbour distance, starts at the first training points plus noise)
against the number of starts, with the Newton step on Hessian-vector products
(``hessian="hvp"``) against the dense-Hessian step of the same run (``"dense"``) where the
dense census runs in seconds; and the Newton stage alone (:func:`memscape.landscape.newton_refine`
from points near the memories and pair midpoints), dense against hvp, at d = 784 and 3072;
and one Hessian-vector product at such states, the exact model's closed form
(:mod:`memscape.curvature`) against the autograd product of the same run (d = 784 with
K = 100 and 2000, d = 3072; and d = 784, K = 2000 at a third of the σ, where every
posterior is peaked and a product uses only each state's few weights ≥ eps/K).

Run: ``python benchmarks/bench_census.py [--device cpu] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import torch
from _common import machine, row

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


#: the suite's census cases: (d, starts in --quick, starts in a full run, the most starts
#: of a dense census: at d = 784 one dense LM iteration costs ~0.15 s per state, at
#: d = 3072 ~10 s, one 3072² eigen-decomposition; 0: dense only in the Newton-stage rows).
CENSUS_CASES = ((64, (16, 64), (16, 64, 256), 256), (784, (4, 16), (4, 16, 32), 4),
                (3072, (4,), (4, 16), 0))  # fmt: skip
CENSUS_K = 100
SIGMA_FACTOR = 0.15  # σ / median nearest-neighbour distance: each memory a minimum


def census_model(d: int, device: str, seed: int = 0) -> tuple[Any, float, torch.Tensor]:
    """The exact model of ``CENSUS_K`` Gaussian points ``N(0, I/d)`` in ℝᵈ, its σ, the points."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.randn(CENSUS_K, d, generator=g, dtype=torch.float64) / d**0.5).to(device)
    dist = torch.cdist(y, y)
    dist.fill_diagonal_(float("inf"))
    return ms.EmpiricalDiffusion(y), SIGMA_FACTOR * float(dist.min(1).values.median()), y


def near_points(y: torch.Tensor, n: int, scale: float, seed: int = 1) -> torch.Tensor:
    """``n`` starts: the training points in turn plus Gaussian noise of norm ≈ ``scale``."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, y.shape[1], generator=g, dtype=y.dtype).to(y.device)
    return y[torch.arange(n, device=y.device) % y.shape[0]] + scale * noise / y.shape[1] ** 0.5


def timed_census(model: Any, sigma: float, starts: torch.Tensor, hessian: str) -> dict[str, Any]:
    """Seconds of one census (first search only: ``retries=0``) and its points by index."""
    t0 = time.perf_counter()
    cps = ms.critical_points(model, sigma, starts=starts, retries=0, hessian=hessian)
    wall = time.perf_counter() - t0
    conv = cps.table[cps.table.converged]
    counts = conv.morse_index.value_counts().sort_index().to_dict()
    return {"s": wall, "points": len(conv), "by_index": {int(k): int(v) for k, v in counts.items()}}


def census_rows(device: str, quick: bool) -> list[dict[str, Any]]:
    """Census seconds per start against the number of starts, hvp against dense."""
    rows = []
    for d, quick_n, full_n, dense_max in CENSUS_CASES:
        model, sigma, y = census_model(d, device)
        for mode in ("hvp", "dense") if dense_max else ("hvp",):  # warm-up: first calls
            timed_census(model, sigma, near_points(y, 1, 0.5 * sigma), mode)
        for n in quick_n if quick else full_n:
            starts = near_points(y, n, 0.5 * sigma)
            hvp = timed_census(model, sigma, starts, "hvp")
            note = f"hvp: census {hvp['s']:.2f} s, {hvp['points']} points {hvp['by_index']}"
            dense = {"s": float("nan")}
            if n <= dense_max:
                dense = timed_census(model, sigma, starts, "dense")
                note += f"; dense: {dense['s']:.2f} s, {dense['points']} points {dense['by_index']}"
            else:
                note += "; dense census skipped (minutes: one LM iteration per state is a d×d eigh)"
            rows.append(row("census", f"d={d}, K={CENSUS_K}, sigma={sigma:.3g}, starts={n}",
                            hvp["s"] / n, "s per start", baseline="dense-Hessian Newton (same run)",
                            baseline_value=dense["s"] / n, higher_is_better=False,
                            note=("quick; " if quick else "") + note))  # fmt: skip
    return rows


def newton_rows(device: str, quick: bool) -> list[dict[str, Any]]:
    """The Newton stage alone: ms per state, dense against hvp, near memories and midpoints."""
    from memscape.landscape import newton_refine

    rows = []
    for d, n in ((784, 8),) if quick else ((784, 16), (3072, 2)):
        model, sigma, y = census_model(d, device)
        half = n // 2
        mid = (y[:half] + y[half : 2 * half]) / 2  # pair midpoints: index-1 saddles
        x0 = torch.cat([near_points(y, half, 0.5 * sigma), near_points(mid, half, 0.1 * sigma)])
        out = {}
        for mode in ("hvp", "dense"):
            t0 = time.perf_counter()
            res = newton_refine(model, x0, sigma, hessian=mode)
            out[mode] = (time.perf_counter() - t0, res)
        (t_h, r_h), (t_d, r_d) = out["hvp"], out["dense"]
        note = (f"converged hvp {int(r_h.converged.sum())}/{n}, dense {int(r_d.converged.sum())}/{n}; "
                f"mean LM iterations hvp {r_h.iterations.double().mean():.1f}, dense "
                f"{r_d.iterations.double().mean():.1f}; max distance between the two "
                f"{float((r_h.x - r_d.x).norm(dim=1).max()):.1e}")  # fmt: skip
        rows.append(row("census-newton", f"d={d}, K={CENSUS_K}, {half} minima + {half} saddles",
                        1e3 * t_h / n, "ms per state", baseline="dense-Hessian Newton (same run)",
                        baseline_value=1e3 * t_d / n, higher_is_better=False,
                        note=("quick; " if quick else "") + note))  # fmt: skip
    return rows


class AutogradOnly:
    """``model`` without its closed-form ``hessian_operator`` (everything else forwarded):
    Hessian-vector products by one backward pass through its closed-form score, the
    landscape's generic path."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        if name == "hessian_operator":
            raise AttributeError(name)
        return getattr(self._model, name)


def hvp_rows(device: str, quick: bool) -> list[dict[str, Any]]:
    """One Hessian-vector product at n states (minima and pair-midpoint saddles): the exact
    model's closed-form operator against the autograd product of the same run."""
    from memscape.landscape._fields import hvp_of

    rows = []
    cases = ((784, 100, 16, SIGMA_FACTOR),)
    if not quick:  # and σ a third as large: every posterior peaked (few weights ≥ eps/K)
        cases += ((784, 2000, 16, SIGMA_FACTOR), (784, 2000, 16, SIGMA_FACTOR / 3),
                  (3072, 100, 16, SIGMA_FACTOR))  # fmt: skip
    for d, k, n, factor in cases:
        g = torch.Generator().manual_seed(0)
        y = (torch.randn(k, d, generator=g, dtype=torch.float64) / d**0.5).to(device)
        dist = torch.cdist(y, y)
        dist.fill_diagonal_(float("inf"))
        sigma = factor * float(dist.min(1).values.median())
        model = ms.EmpiricalDiffusion(y)
        half = n // 2
        x = torch.cat([near_points(y, half, 0.5 * sigma), (y[:half] + y[half:n]) / 2])
        v = torch.randn(x.shape, generator=g, dtype=x.dtype).to(device)
        per_product = {}
        for name, m in (("closed", model), ("autograd", AutogradOnly(model))):
            op = hvp_of(m, x, sigma, (d,))
            op(v)  # warm-up
            reps, t0 = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - t0 < (0.3 if quick else 1.0):
                hv = op(v)
                reps += 1
            if str(device).startswith("cuda"):
                torch.cuda.synchronize(device)
            per_product[name] = ((time.perf_counter() - t0) / reps, hv)
        (t_c, hv_c), (t_a, hv_a) = per_product["closed"], per_product["autograd"]
        err = float((hv_c - hv_a).abs().max() / hv_a.abs().max())
        p = model.posterior(x, sigma)
        peaked = float((1 - p.topk(min(8, k), dim=1).values.sum(1) <= torch.finfo(p.dtype).eps)
                       .double().mean())  # fmt: skip
        rows.append(row("census-hvp", f"d={d}, K={k}, sigma={sigma:.3g}, {half} minima + {half} "
                        "saddles",
                        1e3 * t_c, "ms per product", baseline="autograd HVP (same run)",
                        baseline_value=1e3 * t_a, higher_is_better=False,
                        note=("quick; " if quick else "") + f"{n} states a product, "
                        f"{100 * peaked:.0f} % with peaked posteriors; largest difference "
                        f"between the two {err:.1e} (relative to max |Hv|)"))  # fmt: skip
    return rows


def suite(device: str, quick: bool) -> list[dict[str, Any]]:
    """The suite's rows: census seconds per start against the starts (d = 64, 784, 3072),
    the Newton stage alone, each with the dense-Hessian Newton of the same run as
    baseline, and one Hessian-vector product, closed form against autograd."""
    return census_rows(device, quick) + newton_rows(device, quick) + hvp_rows(device, quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--completeness", type=int, default=100, help="random models (0: skip)")
    parser.add_argument("--suite-only", action="store_true", help="only the suite's rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(machine(args.device))
    if args.suite_only:
        print_rows(suite(args.device, args.quick))
        return
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
    print_rows(suite(args.device, args.quick))


def print_rows(rows: list[dict[str, Any]]) -> None:
    """The suite's rows, one per line."""
    for r in rows:
        print(f"  {r['benchmark']:<14} {r['case']:<44} {r['memscape']:10.4g} {r['unit']}, "
              f"{r['baseline']} {r['baseline_value']:.4g} (ratio {r['ratio']:.2f}); {r['note']}")  # fmt: skip


if __name__ == "__main__":
    main()
