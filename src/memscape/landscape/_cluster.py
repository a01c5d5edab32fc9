"""Deduplication of candidate points within a distance tolerance."""

from __future__ import annotations

import torch


def dedupe(points: torch.Tensor, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Group flat points ``(N, d)`` closer than ``tol`` (single linkage on a tol-grid).

    Points are first hashed to cells of side ``tol`` (exact duplicates and most
    near-duplicates share a cell), then cell representatives closer than ``tol``
    are merged by union–find. The first point of each group (in input order) is its
    representative, so callers control priority by ordering.

    Returns:
        ``(reps, inverse)``: indices ``(M,)`` into ``points`` of the representatives
        and, for every point, the group number ``(N,)`` in ``0..M-1``.
    """
    n = points.shape[0]
    if n == 0:
        empty = torch.zeros(0, dtype=torch.long, device=points.device)
        return empty, empty
    keys = torch.floor(points / tol).to(torch.int64)
    _, cell = torch.unique(keys, dim=0, return_inverse=True)
    m = int(cell.max()) + 1
    first = torch.full((m,), n, dtype=torch.long, device=points.device)
    first.scatter_reduce_(0, cell, torch.arange(n, device=points.device), reduce="amin")
    parent = list(range(m))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    reps_pts = points[first]
    block = 2048
    for i0 in range(0, m, block):
        close = torch.cdist(reps_pts[i0 : i0 + block], reps_pts) < tol
        for a, b in close.nonzero().tolist():
            ra, rb = find(a + i0), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    root = torch.tensor([find(i) for i in range(m)], device=points.device)
    # order groups by their earliest member
    first_of_root = torch.full((m,), n, dtype=torch.long, device=points.device)
    first_of_root.scatter_reduce_(0, root, first, reduce="amin")
    roots = torch.unique(root)
    order = first_of_root[roots].argsort()
    roots = roots[order]
    relabel = torch.full((m,), -1, dtype=torch.long, device=points.device)
    relabel[roots] = torch.arange(roots.numel(), device=points.device)
    inverse = relabel[root[cell]]
    return first_of_root[roots], inverse


def dedupe_converged_first(
    x: torch.Tensor, conv: torch.Tensor, tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicate candidates, converged first (so they represent their groups).

    Returns the kept candidates ``(M,)`` and each candidate's group ``(N,)``.
    """
    order = torch.cat([conv.nonzero().squeeze(1), (~conv).nonzero().squeeze(1)])
    reps, group = dedupe(x[order], tol)
    group_of = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    group_of[order] = group
    return order[reps], group_of
