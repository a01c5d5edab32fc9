"""Training speed (steps/s) of memscape.train and train_stacked, against a plain eager loop.

Cases of :func:`suite` (rows of ``_common.row``, baseline "plain eager loop"):

* the MLP (4 layers, width 256, batch 256) on 2-D data (unit circle, the calibration
  setting) and 64-d data (scikit-learn digits): ``memscape.train`` with its default
  ``compile="auto"`` (the eager step below ``COMPILE_AUTO_STEPS``, as here), with
  ``compile=True`` (the compiled step; its rate excludes the compile time, which the
  row's note gives), with ``compile=True, precision="bfloat16"`` (mixed precision; the
  baseline stays the float32 loop) and the baseline, timed in turn round after round in one process
  (best of the rounds: the ratio survives a loaded machine);
* full mode on a CPU with ≥ 2 cores: the 2-D case again on 2 threads (both sides);
* ``--device cuda`` only: the U-Net at 32×32×3 (batch 128), eager and compiled steps/s.

The baseline is a plain eager PyTorch loop over the same MLP and loss (EDM eq. 8 written
out, ``torch.optim.Adam`` with its defaults, ``clip_grad_norm_``, an EMA loop), whose
linears go to torch's default CPU BLAS (MKL). ``memscape.train`` sends float32 CPU linears
of ≥ 2²⁰ multiply-adds to oneDNN instead (:mod:`memscape.onednn`; ~2.1× MKL's products on
this project's AMD EPYC, where MKL takes its AVX2 path), so a fourth row, the same loop
under :func:`memscape.onednn.onednn_linear`, says how much of each ratio is that kernel
and how much the step. On the CPU everything runs on one thread unless a case says
otherwise.

Run: ``python benchmarks/bench_training.py [--device cpu] [--quick] [--sections train
stacked]``; ``stacked`` adds :func:`memscape.train_stacked` on M = 1, 4, 16 MLPs (2-D
circle, training sets of K = 8, 64, 1024 points in turn) as per-model steps/s.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import torch
from _common import machine, row

import memscape as ms
from memscape.onednn import onednn_linear


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class EagerLoop:
    """A plain PyTorch loop: the MLP, EDM's loss written out, Adam, clipping, EMA."""

    def __init__(self, x: torch.Tensor, batch: int, device: str) -> None:
        self.net = ms.ScoreModel.mlp(x.shape[1]).network.to(device)
        self.x, self.sd, self.batch, self.device = x.to(device), float(x.std()), batch, device
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.ema = [p.detach().clone() for p in self.net.parameters()]
        self.gen = torch.Generator(device).manual_seed(0)
        self.t = 0

    def step(self) -> None:
        x, g, b, sd, dev = self.x, self.gen, self.batch, self.sd, self.device
        y = x[torch.randint(len(x), (b,), generator=g, device=dev)]
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(b, generator=g, device=dev))
        s = sigma[:, None]
        noisy = y + s * torch.randn(y.shape, generator=g, device=dev)
        c_in = 1 / (s**2 + sd**2).sqrt()
        d = sd**2 / (s**2 + sd**2) * noisy + s * sd * c_in * self.net(c_in * noisy, sigma.log() / 4)
        w = (sigma**2 + sd**2) / (sigma * sd) ** 2
        loss = (w * (d - y).pow(2).mean(1)).mean()
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
        self.opt.step()
        with torch.no_grad():
            for e, p in zip(self.ema, self.net.parameters(), strict=True):
                e.lerp_(p, 1 - min(0.999, (1 + self.t) / (10 + self.t)))
        self.t += 1

    def rate(self, steps: int, onednn: bool = False) -> float:
        """Steps/s over ``steps`` steps (after one untimed step); ``onednn``: the linears
        through :func:`memscape.onednn.onednn_linear`."""
        with onednn_linear(enabled=onednn):
            self.step()
            _sync(self.device)
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            _sync(self.device)
        return steps / (time.perf_counter() - t0)


def _train_rate(model: ms.ScoreModel, data: Any, steps: int, batch: int, device: str,
                compile: bool | str, threads: int = 1,
                precision: str = "float32") -> tuple[float, float]:  # fmt: skip
    """``memscape.train``'s steps/s (compile excluded) and compile seconds."""
    run = ms.train(model, data, steps=steps, batch=batch, seed=0, progress=False,
                   device=device, threads=threads, compile=compile,
                   precision=precision)  # fmt: skip
    return run.steps_per_second, run.compile_seconds


def mlp_rows(
    name: str, data: Any, steps: int, rounds: int, device: str, threads: int = 1
) -> list[dict]:
    """Default ``train``, compiled ``train`` and the eager loop, interleaved, best of rounds."""
    torch.set_num_threads(threads)  # the eager loop's; train sets (and restores) its own
    x = getattr(data, "x", data)
    dim, batch = x.shape[1], 256
    loop = EagerLoop(x, batch, device)
    # the first compiled call pays the compile (in this process; inductor caches it on disk)
    _, compile_s = _train_rate(ms.ScoreModel.mlp(dim), data, 5, batch, device, True)
    _train_rate(ms.ScoreModel.mlp(dim), data, 5, batch, device, True, precision="bfloat16")
    best = {"auto": 0.0, True: 0.0, "bf16": 0.0, "loop": 0.0, "loop_onednn": 0.0}
    for _ in range(rounds):
        for key in ("auto", True, "bf16"):
            compile, precision = (True, "bfloat16") if key == "bf16" else (key, "float32")
            rate, _ = _train_rate(ms.ScoreModel.mlp(dim), data, steps, batch, device, compile,
                                  threads, precision)  # fmt: skip
            best[key] = max(best[key], rate)
        best["loop"] = max(best["loop"], loop.rate(steps))
        best["loop_onednn"] = max(best["loop_onednn"], loop.rate(steps, onednn=True))
    note = f"{steps} steps, best of {rounds} interleaved rounds, {threads} thread(s)"
    case = f"MLP 256x4, {dim}-d ({name}), batch {batch}, {threads} thr"
    kw = dict(baseline="plain eager loop", baseline_value=best["loop"])
    return [
        row("training", f"{case}, train default", best["auto"], "steps/s", note=note, **kw),
        row("training", f"{case}, train compile=True", best[True], "steps/s",
            note=f"{note}; first compile in this process {compile_s:.1f} s", **kw),
        row("training", f"{case}, train compile=True precision=bfloat16", best["bf16"],
            "steps/s", note=f"{note}; mixed precision against the float32 loop", **kw),
        row("training", f"{case}, the loop with onednn_linear", best["loop_onednn"],
            "steps/s", note=f"{note}; the kernel alone: the same loop, linears via oneDNN",
            **kw),
    ]  # fmt: skip


def unet_rows(steps: int, device: str) -> list[dict]:
    """The U-Net at 32×32×3 (batch 128): eager and compiled ``train`` steps/s."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(1024, 3, 32, 32, generator=g) * 2 - 1
    rates = {}
    for compile in (False, True):
        model = ms.ScoreModel.unet((3, 32, 32))
        _train_rate(model, images, 3, 128, device, compile)  # warm-up (and compile)
        rates[compile] = _train_rate(model, images, steps, 128, device, compile)[0]
    case = "U-Net 32x(1,2), 32x32x3, batch 128"
    return [
        row("training", f"{case}, train eager", rates[False], "steps/s"),
        row("training", f"{case}, train compile=True", rates[True], "steps/s",
            baseline="train eager", baseline_value=rates[False]),
    ]  # fmt: skip


def suite(device: str, quick: bool) -> list[dict]:
    """Rows of the benchmark suite (``benchmarks/suite.py``): train against the eager loop."""
    steps, rounds = (150, 3) if quick else (300, 5)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = mlp_rows("circle", ms.datasets.load("circle", n=1024), steps, rounds, device)
        if not quick:
            rows += mlp_rows("digits", ms.datasets.load("digits"), steps, rounds, device)
            if device == "cpu" and (os.cpu_count() or 1) >= 2:  # each at its best count here
                circle = ms.datasets.load("circle", n=1024)
                rows += mlp_rows("circle", circle, steps, rounds, device, threads=2)
        if device.startswith("cuda"):
            rows += unet_rows(20 if quick else 100, device)
    finally:
        torch.set_num_threads(old)
    if quick:
        for r in rows:
            r["note"] = (r["note"] + "; quick").lstrip("; ")
    return rows


def bench_stacked(device: str, quick: bool) -> None:
    """Per-model steps/s of train_stacked for M = 1, 4, 16 against train and the eager loop."""
    q = 4 if quick else 1
    circle = ms.datasets.load("circle", n=1024)
    train_rate, _ = _train_rate(ms.ScoreModel.mlp(2), circle, 400 // q, 256, device, False)
    eager_rate = EagerLoop(circle.x, 256, device).rate(400 // q)
    print(f"stacked: train (1 model) {train_rate:.1f} steps/s, eager loop {eager_rate:.1f} steps/s")
    sizes = (8, 64, 1024)
    for m in (1, 4, 16):
        models = [ms.ScoreModel.mlp(2, seed=s) for s in range(m)]
        sets = [circle.x[: sizes[i % len(sizes)]] for i in range(m)]
        kw = dict(seed=list(range(m)), progress=False, device=device, threads=1)
        ms.train_stacked(models, sets, steps=3, **kw)  # warm-up
        steps = max(8, 400 // (m * q))
        rate = m * ms.train_stacked(models, sets, steps=steps, **kw)[0].steps_per_second
        print(
            f"train_stacked M = {m:>2}  batch  256  {rate:8.1f} model-steps/s  "
            f"{rate / train_rate:5.2f}x train  {rate / eager_rate:5.2f}x eager"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds")
    parser.add_argument(
        "--sections", nargs="+", choices=("train", "stacked"), default=["train", "stacked"]
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine(args.device))
    if "train" in args.sections:
        for r in suite(args.device, args.quick):
            print(
                f"{r['case']:<52} {r['memscape']:8.1f} {r['unit']}  baseline "
                f"{r['baseline'] or '-'} {r['baseline_value']:8.1f}  ratio {r['ratio']:5.2f}  "
                f"({r['note']})"
            )
    if "stacked" in args.sections:
        bench_stacked(args.device, args.quick)


if __name__ == "__main__":
    main()
