"""Training speed (steps/s) of memscape.train and train_stacked, against a plain eager loop.

Sections (``--sections``):

* ``train``: the MLP (4 layers, width 256) on 2-D (unit circle, the calibration setting)
  and 64-d data (scikit-learn digits), and the U-Net on 8×8 (digits as images) and 28×28
  images (random data of MNIST's shape: no download). Each case runs a short warm-up,
  then times ``steps`` optimizer steps (EDM loss, Adam, EMA, gradient clipping).
* ``stacked``: :func:`memscape.train_stacked` on M = 1, 4, 16 MLPs (2-D circle, training
  sets of K = 8, 64, 1024 points in turn, one seed each), as per-model steps/s (M × the
  stacked loop's rate), against ``memscape.train`` on one model and the baseline.
* the baseline of both: a plain eager PyTorch loop over the same MLP and loss (EDM eq. 8
  written out, ``torch.optim.Adam`` with its defaults, ``clip_grad_norm_``, an EMA loop).

Run: ``python benchmarks/bench_training.py [--threads 1] [--device cpu] [--quick]
[--sections train stacked]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

import memscape as ms
from memscape.io import cpu_name


def machine_info(threads: int, device: str) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    gpu = f" | {torch.cuda.get_device_name(device)}" if device.startswith("cuda") else ""
    return (
        f"{platform.platform()} | {cpu_name()} | {os.cpu_count()} CPUs | torch "
        f"{torch.__version__} | threads {threads} | load average {load[0]:.2f}{gpu}"
    )


def bench(name: str, model: ms.ScoreModel, data, steps: int, batch: int, args) -> float:
    kw = dict(batch=batch, seed=0, progress=False, device=args.device, threads=args.threads)
    ms.train(model, data, steps=5, **kw)  # warm-up (allocations, kernels)
    run = ms.train(model, data, steps=steps, **kw)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{name:<28} batch {batch:>4}  params {n_params:>9,}  {run.steps_per_second:8.1f} steps/s"
    )
    return run.steps_per_second


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def eager_loop(x: torch.Tensor, steps: int, batch: int, device: str) -> float:
    """Steps/s of a plain PyTorch loop: the MLP, EDM's loss written out, Adam, clipping, EMA."""
    net = ms.ScoreModel.mlp(x.shape[1]).network.to(device)
    x, sd = x.to(device), float(x.std())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ema = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator(device).manual_seed(0)

    def step(t: int) -> None:
        y = x[torch.randint(len(x), (batch,), generator=g, device=device)]
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(batch, generator=g, device=device))
        s = sigma[:, None]
        noisy = y + s * torch.randn(y.shape, generator=g, device=device)
        c_in = 1 / (s**2 + sd**2).sqrt()
        d = sd**2 / (s**2 + sd**2) * noisy + s * sd * c_in * net(c_in * noisy, sigma.log() / 4)
        w = (sigma**2 + sd**2) / (sigma * sd) ** 2
        loss = (w * (d - y).pow(2).mean(1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters(), strict=True):
                e.lerp_(p, 1 - min(0.999, (1 + t) / (10 + t)))

    for t in range(5):  # warm-up
        step(t)
    _sync(device)
    t0 = time.perf_counter()
    for t in range(steps):
        step(t)
    _sync(device)
    return steps / (time.perf_counter() - t0)


def bench_stacked(circle, train_rate: float, eager_rate: float, q: int, args) -> None:
    """Per-model steps/s of train_stacked for M = 1, 4, 16 against train and the eager loop."""
    print(f"stacked: train (1 model) {train_rate:.1f} steps/s, eager loop {eager_rate:.1f} steps/s")
    sizes = (8, 64, 1024)
    for m in (1, 4, 16):
        models = [ms.ScoreModel.mlp(2, seed=s) for s in range(m)]
        sets = [circle.x[: sizes[i % len(sizes)]] for i in range(m)]
        kw = dict(seed=list(range(m)), progress=False, device=args.device, threads=args.threads)
        ms.train_stacked(models, sets, steps=3, **kw)  # warm-up
        steps = max(8, 400 // (m * q))
        rate = m * ms.train_stacked(models, sets, steps=steps, **kw)[0].steps_per_second
        print(
            f"train_stacked M = {m:>2}  batch  256  {rate:8.1f} model-steps/s  "
            f"{rate / train_rate:5.2f}x train  {rate / eager_rate:5.2f}x eager"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument(
        "--sections", nargs="+", choices=("train", "stacked"), default=["train", "stacked"]
    )
    args = parser.parse_args()
    q = 4 if args.quick else 1
    print(machine_info(args.threads, args.device))
    torch.set_num_threads(args.threads)
    circle = ms.datasets.load("circle", n=1024)
    train_rate = bench(
        "MLP 256x4, 2-d (circle)", ms.ScoreModel.mlp(2), circle, 1000 // q, 256, args
    )
    eager_rate = eager_loop(circle.x, 1000 // q, 256, args.device)
    print(f"{'eager loop, same MLP, 2-d':<28} batch  256  {eager_rate:27.1f} steps/s")
    if "train" in args.sections:
        digits = ms.datasets.load("digits")
        digit_images = ms.datasets.load("digits", flatten=False)
        g = torch.Generator().manual_seed(0)
        images28 = ms.datasets.Dataset(torch.rand(512, 1, 28, 28, generator=g) * 2 - 1, "random28")
        bench("MLP 256x4, 64-d (digits)", ms.ScoreModel.mlp(64), digits, 500 // q, 256, args)
        energy = ms.ScoreModel.mlp(64, energy=True)
        bench("MLP 256x4 energy, 64-d", energy, digits, 200 // q, 256, args)
        unet8 = ms.ScoreModel.unet((1, 8, 8))
        bench("U-Net 32x(1,2), 8x8", unet8, digit_images, 40 // q, 128, args)
        unet28 = ms.ScoreModel.unet((1, 28, 28))
        bench("U-Net 32x(1,2), 28x28", unet28, images28, 12 // q, 64, args)
    if "stacked" in args.sections:
        bench_stacked(circle, train_rate, eager_rate, q, args)


if __name__ == "__main__":
    main()
