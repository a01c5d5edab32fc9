"""Sampler overhead: memscape's Heun/Euler loops against raw network calls and diffusers.

For an MLP ScoreModel (width 256, 4 layers; untrained weights suffice for timing) it
times, in the same run,

* raw network calls ``F(c_in x, c_noise)`` on exactly the inputs the sampler gave the
  network (recorded with a forward hook; the network's cost depends on its inputs,
  e.g. float32 denormals for unscaled inputs) — the floor any sampler pays (2N − 1
  calls for Heun, N for Euler);
* ``sample_heun`` / ``sample_euler`` over the same Karras σ schedule (N = 18): the
  overhead is ``t_sampler / t_raw − 1`` (target < 10 %);
* the same Euler sampling with diffusers' ``EDMEulerScheduler`` loop (peer), whose
  preconditioning is identical (EDM, ``prediction_type="epsilon"``), and checks both
  samplers give the same samples.

Run: ``python benchmarks/bench_sampler.py [--threads 1] [--n 1000] [--repeats 7]
[--device cpu]``; the header is :func:`_common.machine`.

For ``benchmarks/suite.py``, :func:`suite` gives ``sample_euler`` against diffusers'
``EDMEulerScheduler`` loop (when diffusers is importable) and both samplers against the raw
network calls (their ratio is the share of the time spent in the network) at d = 64.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import machine, row

import memscape as ms
from memscape.diffusion.samplers import karras_sigmas, sample_euler, sample_heun

STEPS = 18


def paired_times(fns: list[Callable[[], object]], repeats: int, device: str = "cpu") -> list[float]:
    """Best time of each function, run interleaved so load changes hit all of them alike."""
    cuda = device.startswith("cuda")
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize(device)
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def recorded_inputs(model: ms.ScoreModel, run: Callable[[], object]) -> list[tuple]:
    """The exact (x_in, c_noise) pairs the network receives during ``run()``."""
    seen: list[tuple] = []
    hook = model.network.register_forward_hook(
        lambda mod, args, out: seen.append(tuple(a.clone() for a in args))
    )
    try:
        run()
    finally:
        hook.remove()
    return seen


def inside_share(model: ms.ScoreModel, run: Callable[[], object], repeats: int) -> float:
    """Overhead measured within one run: wall time outside the network over time inside it.

    Robust to machine load that changes between runs (both parts see the same load).
    """
    inside = [0.0]
    start = [0.0]

    def pre(mod, args):
        start[0] = time.perf_counter()

    def post(mod, args, out):
        inside[0] += time.perf_counter() - start[0]

    h1 = model.network.register_forward_pre_hook(pre)
    h2 = model.network.register_forward_hook(post)
    try:
        ratios = []
        for _ in range(repeats):
            inside[0] = 0.0
            t = time.perf_counter()
            run()
            ratios.append((time.perf_counter() - t) / inside[0] - 1)
    finally:
        h1.remove()
        h2.remove()
    return sorted(ratios)[len(ratios) // 2]


def raw_calls(model: ms.ScoreModel, inputs: list[tuple]) -> None:
    """Network calls only, on the inputs a sampler gave it (no preconditioning, no loop)."""
    with torch.no_grad():
        for args in inputs:
            model.network(*args)


def diffusers_euler(model: ms.ScoreModel, x: torch.Tensor) -> torch.Tensor:
    from diffusers import EDMEulerScheduler

    sched = EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=model.sigma_data)
    sched.set_timesteps(STEPS, device=x.device)
    with torch.no_grad():
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            out = model.network(xin, t.expand(x.shape[0]))
            x = sched.step(out, t, x).prev_sample
    return x


def measure(dim: int, n: int, repeats: int, device: str = "cpu") -> dict[str, Any]:
    """Best seconds of raw calls, Heun, Euler and (when installed) diffusers' Euler loop."""
    model = ms.ScoreModel.mlp(dim, sigma_data=0.5).eval()
    with torch.no_grad():  # non-trivial outputs: the zero-initialized last layer made random
        torch.nn.init.normal_(model.network.out.weight, std=0.05)
    model = model.to(device)
    x = 80.0 * torch.randn(n, dim, generator=torch.Generator().manual_seed(0)).to(device)
    sig = karras_sigmas(STEPS)
    heun_in = recorded_inputs(model, lambda: sample_heun(model, x, sig))  # 2N − 1 calls
    euler_in = recorded_inputs(model, lambda: sample_euler(model, x, sig))  # N calls
    fns = [
        lambda: raw_calls(model, heun_in),
        lambda: sample_heun(model, x, sig),
        lambda: raw_calls(model, euler_in),
        lambda: sample_euler(model, x, sig),
    ]
    try:
        import diffusers  # noqa: F401  (only checks the peer is installed)

        fns.append(lambda: diffusers_euler(model, x))
    except ImportError:
        pass
    t_raw_h, t_heun, t_raw_e, t_euler, *t_peer = paired_times(fns, repeats, device)
    out = {"model": model, "x": x, "sigmas": sig, "raw_heun": t_raw_h, "heun": t_heun,
           "raw_euler": t_raw_e, "euler": t_euler, "diffusers": float("nan"), "diff": float("nan")}  # fmt: skip
    if t_peer:
        diff = (sample_euler(model, x, sig) - diffusers_euler(model, x)).abs().max().item()
        out |= {"diffusers": t_peer[0], "diff": diff}
    return out


def case(dim: int, n: int, repeats: int, device: str = "cpu") -> None:
    r = measure(dim, n, repeats, device)
    t_raw_h, t_heun, t_raw_e, t_euler = r["raw_heun"], r["heun"], r["raw_euler"], r["euler"]
    model, x, sig = r["model"], r["x"], r["sigmas"]
    print(f"\nMLP 256x4, d = {dim}, n = {n}, N = {STEPS} steps")
    print(
        f"  heun : {t_heun * 1e3:8.2f} ms vs raw {t_raw_h * 1e3:8.2f} ms "
        f"({2 * STEPS - 1} calls): overhead {100 * (t_heun / t_raw_h - 1):+.1f} %"
    )
    print(
        f"  euler: {t_euler * 1e3:8.2f} ms vs raw {t_raw_e * 1e3:8.2f} ms "
        f"({STEPS} calls): overhead {100 * (t_euler / t_raw_e - 1):+.1f} %"
    )
    for name, fn in (("heun", sample_heun), ("euler", sample_euler)):
        share = inside_share(model, lambda fn=fn: fn(model, x, sig), repeats)
        print(
            f"  {name:<5}: time outside network calls / inside (same run, median) {100 * share:+.1f} %"
        )
    if r["diffusers"] != r["diffusers"]:  # nan: not installed
        print("  diffusers not installed: peer comparison skipped (pip install diffusers)")
        return
    print(
        f"  diffusers EDMEulerScheduler loop: {r['diffusers'] * 1e3:8.2f} ms; memscape/diffusers "
        f"time ratio {t_euler / r['diffusers']:.2f}; max |Δx| between the two = {r['diff']:.2e}"
    )


def suite(device: str, quick: bool) -> list[dict[str, Any]]:
    """The suite's rows: ms per sampling of ``n`` points at d = 64 (see the module docstring)."""
    n, repeats = 1000, 5 if quick else 9
    r = measure(64, n, repeats, device)
    case = f"MLP 256×4, d=64, n={n}, N={STEPS}"
    note = f"{'quick; ' if quick else ''}wall time, best of {repeats} interleaved; "
    raw = "raw network calls on the sampler's inputs (floor)"
    rows = [
        row("sampler", f"{case} heun", 1e3 * r["heun"], "ms", baseline=raw,
            baseline_value=1e3 * r["raw_heun"], higher_is_better=False,
            note=f"{note}ratio = share of time in the network (target ≥ 0.91)"),
        row("sampler", f"{case} euler", 1e3 * r["euler"], "ms", baseline=raw,
            baseline_value=1e3 * r["raw_euler"], higher_is_better=False,
            note=f"{note}ratio = share of time in the network (target ≥ 0.91)"),
    ]  # fmt: skip
    if r["diffusers"] == r["diffusers"]:
        import diffusers

        peer = f"diffusers {diffusers.__version__} EDMEulerScheduler loop"
        peer_note = f"{note}max |Δx| between the two {r['diff']:.1e}"
    else:
        peer, peer_note = "diffusers EDMEulerScheduler loop", f"{note}diffusers not installed"
    rows.append(row("sampler", f"{case} euler", 1e3 * r["euler"], "ms", baseline=peer,
                    baseline_value=1e3 * r["diffusers"], higher_is_better=False,
                    note=peer_note))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--n", type=int, default=1000, help="samples per batch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine(args.device))
    for dim in (2, 64):
        case(dim, args.n, args.repeats, args.device)


if __name__ == "__main__":
    main()
