"""Benchmark of the landscape atlas: minimum-energy paths, certified saddles, merge tree.

The exact diffusion model (memscape.EmpiricalDiffusion) of ``K`` natural-image patches
(the ``patches`` data set: colour 32×32, d = 3072, by default K = 100) through
memscape.landscape.landscape_atlas: the minima near each patch (fixed points of the
exact denoiser), the path between
every minimum and its ``--neighbors`` nearest minima by the simplified string
method (``--method neb`` for the climbing-image band; all pairs in one batch per
chunk), each profile maximum refined and certified as an index-1 saddle (Lanczos on
Hessian-vector products), and the merge tree of the minima. Prints the wall time of
each stage, the counts, and the machine (:func:`_common.machine`).

Run: ``python benchmarks/bench_saddles.py [--k 100] [--size 32] [--neighbors 5]
[--sigma-factor 0.25] [--images 12] [--chunk 64] [--device cpu] [--threads N]
[--jobs-dir DIR [--workers W] [--executor local|ray]]``; ``--k 1000 --size 16`` is the
d = 768 scaling point of issue 16. With ``--jobs-dir`` the chunks of pairs run as
resumable sweep jobs (a re-run after Ctrl-C resumes; ``--workers`` processes or Ray tasks).

Not in ``benchmarks/suite.py``: no other library computes certified saddles and merge trees
of an exact diffusion model, so there is no baseline to run in the same process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _common import machine

import memscape as ms
from memscape.landscape import landscape_atlas
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
    parser.add_argument("--method", default="string", choices=("string", "neb"),
                        help="path method (the string is the robust one on rugged exact models)")  # fmt: skip
    parser.add_argument("--chunk", type=int, default=64, help="pairs per NEB batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--jobs-dir", default=None, help="run the pairs as resumable sweep jobs")
    parser.add_argument("--workers", type=int, default=None, help="parallel jobs (--jobs-dir)")
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    print(machine(args.device))
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

    def progress(done: int, total: int) -> None:
        print(f"  pairs {done}/{total}: {time.perf_counter() - t0:.1f} s", flush=True)

    atlas = landscape_atlas(model, sigma, y, neighbors=args.neighbors, method=args.method,
                            images=args.images, chunk=args.chunk, jobs_dir=args.jobs_dir,
                            workers=args.workers, executor=args.executor,
                            progress=progress if args.jobs_dir is None else True)  # fmt: skip
    wall = time.perf_counter() - t0
    pairs = atlas.pairs
    finite = atlas.barriers.barrier[np.isfinite(atlas.barriers.barrier)]
    print(
        f"atlas: {wall:.1f} s ({wall / max(len(pairs), 1):.3f} s/pair); minima {len(atlas.minima)} "
        f"of {args.k} patches (certified index 0: {int((atlas.barriers.morse_index == 0).sum())}); "
        f"{len(pairs)} {args.neighbors}-NN pairs, saddles "
        f"{int(pairs.saddles.sum())}, pairs all certified index 1: {int(pairs.certified.sum())}, "
        f"paths converged: {int(pairs.converged.sum())}"
    )
    print(
        f"disconnectivity graph: {len(atlas.graph.roots)} connected set(s); barrier median "
        f"{finite.median():.4g}, min {finite.min():.4g}, max {finite.max():.4g}"
    )


if __name__ == "__main__":
    main()
