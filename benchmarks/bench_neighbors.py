"""Benchmark exact k-NN: memscape's streamed torch path vs faiss IndexFlatL2 vs naive cdist.

    python benchmarks/bench_neighbors.py            # 10⁴ queries × 5·10⁴ reference, d = 64
    python benchmarks/bench_neighbors.py --quick    # 2·10³ × 10⁴

Prints machine info, the best-of-``--repeats`` wall time of each method (float32,
k = 2, everything from raw tensors to the (M, k) answer included: faiss index
construction, memscape's centring and exact re-scoring), the ratios
``memscape / faiss`` and ``memscape / naive`` and the agreement of the neighbour
indices. Target: memscape within 1.5× of faiss.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from memscape.memorization import faiss_available, nearest_neighbors
from memscape.runs.results import cpu_name


def _best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), torch.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _naive(q: torch.Tensor, r: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Chunked over queries only: cdist against the whole reference set, then topk."""
    return torch.cat(
        [
            torch.cdist(q[i : i + chunk], r).topk(k, dim=1, largest=False).indices
            for i in range(0, q.shape[0], chunk)
        ]
    )


def _faiss(q: torch.Tensor, r: torch.Tensor, k: int) -> torch.Tensor:
    import faiss

    index = faiss.IndexFlatL2(r.shape[1])
    index.add(r.numpy())
    return torch.from_numpy(index.search(q.numpy(), k)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2e3 queries x 1e4 reference")
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--reference", type=int, default=None)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="device for the memscape path (cpu, cuda…)")
    args = parser.parse_args()
    m = args.queries or (2_000 if args.quick else 10_000)
    n = args.reference or (10_000 if args.quick else 50_000)

    print(f"machine: {platform.platform()} | CPU: {cpu_name()} | cores: {os.cpu_count()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", end="")
    if faiss_available():
        import faiss

        print(f" | faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    else:
        print(" | faiss: not installed (pip install faiss-cpu)")
    print(f"problem: {m} queries x {n} reference, d = {args.dim}, k = {args.k}, float32")

    gen = torch.Generator().manual_seed(args.seed)
    q = torch.randn(m, args.dim, generator=gen)
    r = torch.randn(n, args.dim, generator=gen)
    k, reps = args.k, args.repeats

    def ours() -> torch.Tensor:
        return nearest_neighbors(
            q, r, k, chunk_size=args.chunk_size, backend="torch", device=args.device
        )[1]

    t_ours, i_ours = _best_time(ours, reps)
    t_naive, i_naive = _best_time(lambda: _naive(q, r, k, args.chunk_size), reps)
    print(f"memscape (torch)      {t_ours:8.3f} s")
    print(f"naive cdist + topk    {t_naive:8.3f} s")
    if faiss_available():
        t_faiss, i_faiss = _best_time(lambda: _faiss(q, r, k), reps)
        print(f"faiss IndexFlatL2     {t_faiss:8.3f} s")
        print(f"memscape / faiss = {t_ours / t_faiss:.2f}  (target <= 1.50)")
        agree = float((i_ours[:, 0] == i_faiss[:, 0]).double().mean())
        print(f"nearest-neighbour agreement with faiss: {agree:.4f}")
    else:
        print(
            "faiss IndexFlatL2     unavailable (pip install faiss-cpu); no memscape / faiss ratio"
        )
    print(f"memscape / naive = {t_ours / t_naive:.2f}")
    agree = float((i_ours[:, 0] == i_naive[:, 0]).double().mean())
    print(f"nearest-neighbour agreement with naive: {agree:.4f}")


if __name__ == "__main__":
    main()
