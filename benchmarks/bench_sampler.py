"""Sampler overhead: memscape's Heun/Euler loops against raw network calls and diffusers.

For an MLP ScoreModel (width 256, 4 layers; untrained weights suffice for timing) it
times, in the same run,

* raw network calls ``F(c_in x, c_noise)`` — the floor any sampler pays (2N − 1 for
  Heun, N for Euler);
* ``sample_heun`` / ``sample_euler`` over the same Karras σ schedule (N = 18): the
  overhead is ``t_sampler / t_raw − 1`` (target < 10 %);
* the same Euler sampling with diffusers' ``EDMEulerScheduler`` loop (peer), whose
  preconditioning is identical (EDM, ``prediction_type="epsilon"``), and checks both
  samplers give the same samples.

Run: ``python benchmarks/bench_sampler.py [--threads 1] [--n 1000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

import memscape as ms
from memscape.diffusion.samplers import karras_sigmas, sample_euler, sample_heun

STEPS = 18


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def raw_calls(model: ms.ScoreModel, x: torch.Tensor, sigmas: list[float]) -> None:
    """Network calls only, with the inputs a sampler would give it (no preconditioning)."""
    with torch.no_grad():
        for s in sigmas:
            c = torch.full((x.shape[0],), 0.25 * torch.log(torch.tensor(s)).item())
            model.network(x, c)


def diffusers_euler(model: ms.ScoreModel, x: torch.Tensor) -> torch.Tensor:
    from diffusers import EDMEulerScheduler

    sched = EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=model.sigma_data)
    sched.set_timesteps(STEPS)
    with torch.no_grad():
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            out = model.network(xin, t.expand(x.shape[0]))
            x = sched.step(out, t, x).prev_sample
    return x


def case(dim: int, n: int, repeats: int) -> None:
    model = ms.ScoreModel.mlp(dim, sigma_data=0.5).eval()
    with torch.no_grad():  # non-trivial outputs: the zero-initialized last layer made random
        torch.nn.init.normal_(model.network.out.weight, std=0.05)
    x = 80.0 * torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
    sig = karras_sigmas(STEPS)
    nz = sig[:-1].tolist()
    heun_sigmas = nz + nz[1:]  # 2N − 1 evaluations
    t_raw_h = best_time(lambda: raw_calls(model, x, heun_sigmas), repeats)
    t_heun = best_time(lambda: sample_heun(model, x, sig), repeats)
    t_raw_e = best_time(lambda: raw_calls(model, x, nz), repeats)
    t_euler = best_time(lambda: sample_euler(model, x, sig), repeats)
    print(f"\nMLP 256x4, d = {dim}, n = {n}, N = {STEPS} steps")
    print(
        f"  heun : {t_heun * 1e3:8.2f} ms vs raw {t_raw_h * 1e3:8.2f} ms "
        f"({2 * STEPS - 1} calls): overhead {100 * (t_heun / t_raw_h - 1):+.1f} %"
    )
    print(
        f"  euler: {t_euler * 1e3:8.2f} ms vs raw {t_raw_e * 1e3:8.2f} ms "
        f"({STEPS} calls): overhead {100 * (t_euler / t_raw_e - 1):+.1f} %"
    )
    try:
        import diffusers  # noqa: F401
    except ImportError:
        print("  diffusers not installed: peer comparison skipped (pip install diffusers)")
        return
    t_peer = best_time(lambda: diffusers_euler(model, x), repeats)
    ours, peer = sample_euler(model, x, sig), diffusers_euler(model, x)
    diff = (ours - peer).abs().max().item()
    print(
        f"  diffusers EDMEulerScheduler loop: {t_peer * 1e3:8.2f} ms; memscape/diffusers time "
        f"ratio {t_euler / t_peer:.2f}; max |Δx| between the two = {diff:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--n", type=int, default=1000, help="samples per batch")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.platform()} | {os.cpu_count()} CPUs | torch {torch.__version__} | "
        f"threads {args.threads} | load average {load:.2f}"
    )
    for dim in (2, 64):
        case(dim, args.n, args.repeats)


if __name__ == "__main__":
    main()
