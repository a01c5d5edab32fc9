"""Training speed (steps/s) of memscape.train for the MLP and the U-Net.

Cases: the MLP (4 layers, width 256) on 2-D (unit circle, the calibration setting) and
64-d data (scikit-learn digits), and the U-Net on 8×8 (digits as images) and 28×28
images (random data of MNIST's shape: no download). Each case runs a short warm-up,
then times ``steps`` optimizer steps (EDM loss, Adam, EMA, gradient clipping).

Run: ``python benchmarks/bench_training.py [--threads 1] [--device cpu] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch

import memscape as ms


def machine_info(threads: int) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{platform.platform()} | {os.cpu_count()} CPUs | torch {torch.__version__} | "
        f"threads {threads} | load average {load[0]:.2f}"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    args = parser.parse_args()
    q = 4 if args.quick else 1
    print(machine_info(args.threads))
    circle = ms.datasets.load("circle", n=1024)
    digits = ms.datasets.load("digits")
    digit_images = ms.datasets.load("digits", flatten=False)
    g = torch.Generator().manual_seed(0)
    images28 = ms.datasets.Dataset(torch.rand(512, 1, 28, 28, generator=g) * 2 - 1, "random28")
    bench("MLP 256x4, 2-d (circle)", ms.ScoreModel.mlp(2), circle, 1000 // q, 256, args)
    bench("MLP 256x4, 64-d (digits)", ms.ScoreModel.mlp(64), digits, 500 // q, 256, args)
    bench("MLP 256x4 energy, 64-d", ms.ScoreModel.mlp(64, energy=True), digits, 200 // q, 256, args)
    bench("U-Net 32x(1,2), 8x8", ms.ScoreModel.unet((1, 8, 8)), digit_images, 40 // q, 128, args)
    bench("U-Net 32x(1,2), 28x28", ms.ScoreModel.unet((1, 28, 28)), images28, 12 // q, 64, args)


if __name__ == "__main__":
    main()
