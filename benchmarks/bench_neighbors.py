"""Benchmark exact k-NN: memscape's streamed torch path vs faiss IndexFlatL2 vs naive cdist.

    python benchmarks/bench_neighbors.py            # 10⁴ queries × 5·10⁴ reference, d = 64
    python benchmarks/bench_neighbors.py --quick    # 2·10³ × 10⁴
    python benchmarks/bench_neighbors.py --device cuda

Prints :func:`_common.machine`, the faiss version (when installed), the best-of-``--repeats``
wall time of each method (float32, k = 2, everything from raw tensors to the (M, k) answer
included: faiss index construction, memscape's centring and exact re-scoring), the ratios
``memscape / faiss`` and ``memscape / naive`` and the agreement of the neighbour indices.
Target: memscape within 1.5× of faiss. The naive baseline is ``torch.cdist`` against the
whole reference set then ``topk`` (chunked over queries only), on the same device as
memscape; faiss runs on the CPU.

For ``benchmarks/suite.py``, :func:`suite` gives memscape against faiss ``IndexFlatL2``
when faiss is importable and against the ``torch.cdist`` brute force always.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from _common import machine, row

from memscape.memorization import faiss_available, nearest_neighbors


def _best_time(
    fn: Callable[[], torch.Tensor], repeats: int, device: str
) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), torch.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
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


def compare(
    m: int,
    n: int,
    *,
    dim: int = 64,
    k: int = 2,
    repeats: int = 3,
    chunk: int = 4096,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Best seconds of memscape, naive and faiss (``nan`` when not installed) on ``m``
    queries × ``n`` reference points of N(0, I_dim), and the share of queries whose
    nearest neighbour each baseline agrees on."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(m, dim, generator=gen)
    r = torch.randn(n, dim, generator=gen)
    qd, rd = q.to(device), r.to(device)

    def ours() -> torch.Tensor:
        return nearest_neighbors(qd, rd, k, chunk_size=chunk, backend="torch")[1]

    t_ours, i_ours = _best_time(ours, repeats, device)
    t_naive, i_naive = _best_time(lambda: _naive(qd, rd, k, chunk), repeats, device)
    out = {"memscape": t_ours, "naive": t_naive, "faiss": float("nan"),
           "agree_naive": float((i_ours[:, 0] == i_naive[:, 0]).double().mean()),
           "agree_faiss": float("nan")}  # fmt: skip
    if faiss_available():
        t_faiss, i_faiss = _best_time(lambda: _faiss(q, r, k), repeats, "cpu")
        agree = float((i_ours[:, 0].cpu() == i_faiss[:, 0]).double().mean())
        out |= {"faiss": t_faiss, "agree_faiss": agree}
    return out


def suite(device: str, quick: bool) -> list[dict[str, Any]]:
    """The suite's rows: wall seconds of one exact 2-NN search (see the module docstring)."""
    m, n = (2_000, 10_000) if quick else (10_000, 50_000)
    res = compare(m, n, device=device, repeats=3)
    case = f"{m} queries × {n} reference, d=64, k=2, float32"
    note = "quick; " if quick else ""
    rows = []
    if faiss_available():
        import faiss

        rows.append(row("neighbors", case, res["memscape"], "s", higher_is_better=False,
                        baseline=f"faiss {faiss.__version__} IndexFlatL2 (CPU)",
                        baseline_value=res["faiss"],
                        note=f"{note}target ratio ≥ 1/1.5; nearest agree "
                             f"{res['agree_faiss']:.4f}"))  # fmt: skip
    else:
        note += "faiss not installed (pip install faiss-cpu); "
    rows.append(row("neighbors", case, res["memscape"], "s", higher_is_better=False,
                    baseline="torch.cdist + topk brute force", baseline_value=res["naive"],
                    note=f"{note}nearest agree {res['agree_naive']:.4f}"))  # fmt: skip
    return rows


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
    parser.add_argument(
        "--device", default="cpu", help="device for memscape and naive (cpu, cuda…)"
    )
    args = parser.parse_args()
    m = args.queries or (2_000 if args.quick else 10_000)
    n = args.reference or (10_000 if args.quick else 50_000)

    print(machine(args.device))
    if faiss_available():
        import faiss

        print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")
    else:
        print("faiss: not installed (pip install faiss-cpu)")
    print(f"problem: {m} queries x {n} reference, d = {args.dim}, k = {args.k}, float32")
    res = compare(m, n, dim=args.dim, k=args.k, repeats=args.repeats, chunk=args.chunk_size,
                  seed=args.seed, device=args.device)  # fmt: skip
    print(f"memscape (torch)      {res['memscape']:8.3f} s")
    print(f"naive cdist + topk    {res['naive']:8.3f} s")
    if faiss_available():
        print(f"faiss IndexFlatL2     {res['faiss']:8.3f} s")
        print(f"memscape / faiss = {res['memscape'] / res['faiss']:.2f}  (target <= 1.50)")
        print(f"nearest-neighbour agreement with faiss: {res['agree_faiss']:.4f}")
    else:
        print(
            "faiss IndexFlatL2     unavailable (pip install faiss-cpu); no memscape / faiss ratio"
        )
    print(f"memscape / naive = {res['memscape'] / res['naive']:.2f}")
    print(f"nearest-neighbour agreement with naive: {res['agree_naive']:.4f}")


if __name__ == "__main__":
    main()
