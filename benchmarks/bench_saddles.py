"""Benchmark of minimum-energy paths, certified saddles and the disconnectivity graph.

The exact diffusion model (memscape.EmpiricalDiffusion) of ``K`` natural-image patches
(the ``patches`` data set: colour 32×32, d = 3072, by default K = 100): the minima
near each patch (fixed points of the exact denoiser), the climbing-image NEB between
every minimum and its ``--neighbors`` nearest minima (all pairs in one batch per
chunk), each profile maximum refined and certified as an index-1 saddle (Lanczos on
Hessian-vector products), and the merge tree of the minima. Prints the wall time of
each stage, the counts, and the machine (memscape.io.cpu_name).

Run: ``python benchmarks/bench_saddles.py [--k 100] [--size 32] [--neighbors 5]
[--sigma-factor 0.25] [--images 12] [--chunk 64] [--device cpu] [--threads N]``;
``--k 1000 --size 16`` is the d = 768 scaling point of issue 16.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

import memscape as ms
from memscape.io import cpu_name
from memscape.landscape import disconnectivity_graph, minimum_energy_path
from memscape.memorization import nearest_neighbors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=100, help="patches K (the memories)")
    parser.add_argument("--size", type=int, default=32, choices=(8, 16, 32))
    parser.add_argument("--gray", action="store_true", help="grayscale patches (d = size²)")
    parser.add_argument("--neighbors", type=int, default=5)
    parser.add_argument("--sigma-factor", type=float, default=0.25,
                        help="σ as a multiple of the median nearest-neighbour distance")  # fmt: skip
    parser.add_argument("--images", type=int, default=12, help="images per band")
    parser.add_argument("--chunk", type=int, default=64, help="pairs per NEB batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(
        f"memscape {ms.__version__}, torch {torch.__version__}, {cpu_name()} "
        f"({platform.machine()}), {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, device {dev}"
        + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
    )
    data = ms.datasets.load("patches", n=args.k, size=args.size, color=not args.gray,
                            num_patches=max(args.k, 1000))  # fmt: skip
    y = data.x.double().to(dev)
    model = ms.EmpiricalDiffusion(y)
    flat = y.reshape(args.k, -1)
    d = flat.shape[1]
    nn_d, _ = nearest_neighbors(flat, flat, 1, exclude_self=True)
    sigma = args.sigma_factor * float(nn_d[:, 0].median())
    print(f"K={args.k}, d={d}, sigma={sigma:.4g} ({args.sigma_factor} × median NN distance)")

    t0 = time.perf_counter()
    minima = ms.descend(model, y, sigma, tol=1e-12, max_steps=5000).x.reshape(args.k, -1)
    t_min = time.perf_counter() - t0
    _, idx = nearest_neighbors(minima, minima, args.neighbors, exclude_self=True)
    pairs = sorted({(min(i, int(j)), max(i, int(j))) for i in range(args.k) for j in idx[i]})
    print(f"minima: {t_min:.2f} s; {len(pairs)} distinct {args.neighbors}-NN pairs")

    t0 = time.perf_counter()
    rows, n_saddles, n_cert, iters, shape = [], 0, 0, [], y.shape[1:]
    for c in range(0, len(pairs), args.chunk):
        chunk = pairs[c : c + args.chunk]
        a = minima[[i for i, _ in chunk]].reshape(-1, *shape)
        b = minima[[j for _, j in chunk]].reshape(-1, *shape)
        t1 = time.perf_counter()
        res = minimum_energy_path(model, a, b, sigma, images=args.images)
        iters += res.iterations.tolist()
        n_saddles += res.saddles.shape[0]
        n_cert += int((res.saddle_index == 1).sum())
        e_a = res.energies[:, 0]
        for p, (i, j) in enumerate(chunk):
            if torch.isfinite(res.barrier[p]):
                rows.append((i, j, float(res.barrier[p] + e_a[p])))
        print(
            f"  pairs {c + len(chunk)}/{len(pairs)}: {time.perf_counter() - t1:.1f} s", flush=True
        )
    t_paths = time.perf_counter() - t0
    print(
        f"paths + saddles: {t_paths:.1f} s ({t_paths / len(pairs):.3f} s/pair); NEB iterations "
        f"median {int(np.median(iters))}, max {max(iters)}; saddles {n_saddles}, "
        f"certified index 1: {n_cert}"
    )
    t0 = time.perf_counter()
    energies = model.energy(minima.reshape(-1, *shape), sigma).cpu().numpy()
    graph = disconnectivity_graph(energies, rows)
    t_graph = time.perf_counter() - t0
    finite = graph.barriers.barrier[np.isfinite(graph.barriers.barrier)]
    print(
        f"disconnectivity graph: {t_graph:.2f} s; {len(graph.roots)} connected set(s); "
        f"barrier median {finite.median():.4g}, min {finite.min():.4g}, max {finite.max():.4g}"
    )
    print(f"total {t_min + t_paths + t_graph:.1f} s")


if __name__ == "__main__":
    main()
