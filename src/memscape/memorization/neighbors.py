"""Exact Euclidean k-nearest neighbours, streamed so that M×N distances never materialize.

Every memorization metric (the d₁/d₂ ratio of Yoon et al. 2023 / Gu et al. 2023,
the memorized / spurious / generalized classes of Pham et al. 2025) reduces to
"distance from each generated sample to its nearest training samples", so this
module is the one place those distances are computed.

Perceptual distances (``embed=``)
---------------------------------
Every function in :mod:`memscape.memorization` takes ``embed``: a callable mapping
a batch ``(B, ...)`` to features ``(B, f)``, applied (without gradients, in
batches) before any distance is taken. Distances are then Euclidean in feature
space. LPIPS (Zhang et al. 2018) fits exactly: its distance is
``Σ_l ‖√w_l ⊙ (f̂_l(x) − f̂_l(y))‖² / (H_l W_l)`` with ``f̂_l`` the channel-normalized
layer-``l`` activations and ``w_l ≥ 0`` the learned 1×1 "lin" weights, i.e. the
squared Euclidean distance between the embeddings
``φ(x) = concat_l vec(√w_l ⊙ f̂_l(x)) / √(H_l W_l)``. With the ``lpips`` package
and weights you already have on disk::

    import lpips
    net = lpips.LPIPS(net="alex", pretrained=True).eval()

    def lpips_embed(x):                       # x: (B, 3, H, W) in [-1, 1]
        feats = net.net(net.scaling_layer(x))
        parts = []
        for f, lin in zip(feats, net.lins):
            f = lpips.normalize_tensor(f)
            w = lin.model[-1].weight.clamp_min(0).sqrt()      # (1, C, 1, 1)
            parts.append((w * f).flatten(1) / (f.shape[2] * f.shape[3]) ** 0.5)
        return torch.cat(parts, dim=1)

    nearest_neighbors(generated, train, embed=lpips_embed)   # distance = √LPIPS

(Distances are √LPIPS; ratios and rankings are what the metrics use.) Inception
or DINO features plug in the same way (``embed=lambda x: model(x)``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor

__all__ = [
    "DEFAULT_NN_CHUNK",
    "SAME_POINT_FRACTION",
    "Embed",
    "embed_batches",
    "faiss_available",
    "median_nn_spacing",
    "nearest_neighbors",
    "same_point_radius",
]

#: Rows per block on each side; a block of distances is chunk × chunk (64 MB in float32).
DEFAULT_NN_CHUNK = 4096

#: "Same point" radius / median nearest-neighbour spacing: the d₁/d₂ < 1/3 copy rule with d₂ typical.
SAME_POINT_FRACTION = 1 / 3

Embed = Callable[[torch.Tensor], torch.Tensor]


def faiss_available() -> bool:
    """``True`` when the optional ``faiss`` package (``pip install faiss-cpu``) can be imported."""
    return importlib.util.find_spec("faiss") is not None


def embed_batches(
    x: torch.Tensor, embed: Embed | None, name: str, *, batch_size: int = DEFAULT_NN_CHUNK
) -> torch.Tensor:
    """Flatten ``x`` to ``(B, d)`` or map it through ``embed`` in batches, as floats.

    Args:
        x: ``(B, ...)``; integer tensors (e.g. uint8 images) are cast to the default dtype.
        embed: ``None`` or a callable ``(b, ...) -> (b, f)``, run under ``torch.no_grad``.
        name: argument name for error messages.
        batch_size: rows passed to ``embed`` at once.

    Returns:
        ``(B, d)`` (or ``(B, f)``) floating tensor.
    """
    x = check_tensor(x, name, min_ndim=2)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if embed is None:
        return x.reshape(x.shape[0], -1)
    if not callable(embed):
        raise TypeError(f"embed must be a callable (B, ...) -> (B, f), got {type(embed).__name__}")
    with torch.no_grad():
        parts = [embed(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    out = torch.cat(parts)
    check_tensor(out, f"embed({name})", ndim=2)
    if out.shape[0] != x.shape[0]:
        raise ValueError(
            f"embed must return one feature row per input: got {out.shape[0]} rows for "
            f"{x.shape[0]} inputs in {name}"
        )
    return out if out.is_floating_point() else out.to(x.dtype)


def nearest_neighbors(
    queries: torch.Tensor,
    reference: torch.Tensor,
    k: int = 2,
    *,
    chunk_size: int = DEFAULT_NN_CHUNK,
    exclude_self: bool = False,
    backend: str = "auto",
    device: Any = None,
    embed: Embed | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean k nearest neighbours of each query among the reference points.

    Distances come from ``‖q − r‖² = ‖q‖² + ‖r‖² − 2 qᵀr`` with one matrix product
    per ``chunk_size × chunk_size`` block (queries and reference both streamed, so
    memory is ``O(chunk_size²)``, never ``M×N``), a per-block top-k and a running
    merge. Both sets are first shifted by the reference mean (distances are
    translation invariant; this shrinks ``‖q‖²`` and with it the cancellation
    error), and the winners' distances are recomputed directly as ``‖q − r‖`` in
    the input dtype and re-sorted, so the returned distances are exact even for
    near-duplicates (d₁ ≈ 0, the memorized case).

    Args:
        queries: ``(M, ...)``; image-shaped inputs are flattened to ``(M, d)``.
        reference: ``(N, ...)`` with the same per-sample size as ``queries``.
        k: neighbours per query, ``1 ≤ k ≤ N`` (``≤ N − 1`` with ``exclude_self``).
        chunk_size: rows per block on each side.
        exclude_self: ``queries`` and ``reference`` are the same set; query ``i``
            never returns reference ``i`` (nearest *other* sample; exact duplicates
            at other indices are still found, at distance 0).
        backend: ``"torch"``, ``"faiss"`` (``IndexFlatL2``, CPU, float32 search with
            exact re-scoring) or ``"auto"`` (faiss when installed, the work is on the
            CPU and the data are float32; else torch, which ranks float64 data in
            float64).
        device: where to compute; default the queries' device. Results come back on
            the queries' device.
        embed: optional feature map applied before distances (see module docstring).

    Returns:
        ``(distances, indices)``, each ``(M, k)``, sorted by increasing distance;
        distances in the (embedded) input dtype, indices ``long`` into ``reference``.

    Raises:
        ValueError: empty / non-finite inputs, mismatched feature sizes, ``k`` out
            of range, ``exclude_self`` with differently sized sets, unknown backend.
    """
    check_int(k, "k")
    check_int(chunk_size, "chunk_size")
    check_choice(backend, ("auto", "torch", "faiss"), "backend")
    if backend == "faiss" and not faiss_available():
        raise ValueError(
            "backend 'faiss' requested but faiss is not installed (pip install faiss-cpu)"
        )
    check_tensor(queries, "queries", min_ndim=2)
    check_tensor(reference, "reference", min_ndim=2)
    if exclude_self and queries.shape[0] != reference.shape[0]:
        raise ValueError(
            "exclude_self=True needs queries and reference to be the same set, got "
            f"{queries.shape[0]} queries and {reference.shape[0]} reference points"
        )
    n_avail = reference.shape[0] - (1 if exclude_self else 0)
    if k > n_avail:
        raise ValueError(f"k must be <= {n_avail} (reference points available), got {k}")
    out_device = queries.device
    q = embed_batches(queries, embed, "queries", batch_size=chunk_size)
    r = embed_batches(reference, embed, "reference", batch_size=chunk_size)
    if q.shape[1] != r.shape[1]:
        raise ValueError(
            f"queries and reference must have the same number of features, got {q.shape[1]} "
            f"and {r.shape[1]}"
        )
    dev = torch.device(device) if device is not None else q.device
    dtype = torch.promote_types(q.dtype, r.dtype)
    q, r = q.to(dev, dtype), r.to(dev, dtype)
    center = r.mean(0)
    q, r = q - center, r - center
    use_faiss = backend == "faiss" or (
        backend == "auto" and dev.type == "cpu" and dtype == torch.float32 and faiss_available()
    )
    if use_faiss:
        idx = _faiss_candidates(q, r, k, exclude_self)
    else:
        idx = _torch_candidates(q, r, k, chunk_size, exclude_self)
    dist = torch.cat(
        [
            (q[i : i + chunk_size, None, :] - r[idx[i : i + chunk_size]]).norm(dim=2)
            for i in range(0, q.shape[0], chunk_size)
        ]
    )
    dist, order = dist.sort(dim=1, stable=True)
    idx = idx.gather(1, order)
    return dist.to(out_device), idx.to(out_device)


def _torch_candidates(
    q: torch.Tensor, r: torch.Tensor, k: int, chunk: int, exclude_self: bool
) -> torch.Tensor:
    """Indices ``(M, k)`` of the k smallest ``‖r‖² − 2qᵀr`` per query, block by block."""
    m, n = q.shape[0], r.shape[0]
    r_sq = r.pow(2).sum(1)
    out = torch.empty((m, k), dtype=torch.long, device=q.device)
    for i0 in range(0, m, chunk):
        qb = q[i0 : i0 + chunk]
        best_v = q.new_empty((qb.shape[0], 0))
        best_i = torch.empty((qb.shape[0], 0), dtype=torch.long, device=q.device)
        for j0 in range(0, n, chunk):
            block = torch.addmm(r_sq[j0 : j0 + chunk], qb, r[j0 : j0 + chunk].T, alpha=-2)
            if exclude_self and -block.shape[0] < j0 - i0 < block.shape[1]:
                block.diagonal(offset=i0 - j0).fill_(torch.inf)
            v, ix = block.topk(min(k, block.shape[1]), dim=1, largest=False)
            ix += j0
            v, ix = torch.cat([best_v, v], 1), torch.cat([best_i, ix], 1)
            best_v, pos = v.topk(min(k, v.shape[1]), dim=1, largest=False)
            best_i = ix.gather(1, pos)
        out[i0 : i0 + chunk] = best_i
    return out


def _faiss_candidates(q: torch.Tensor, r: torch.Tensor, k: int, exclude_self: bool) -> torch.Tensor:
    """Indices ``(M, k)`` from a faiss ``IndexFlatL2`` search (float32, CPU)."""
    import faiss

    index = faiss.IndexFlatL2(r.shape[1])
    index.add(r.detach().cpu().float().contiguous().numpy())
    _, found = index.search(q.detach().cpu().float().contiguous().numpy(), k + int(exclude_self))
    idx = torch.from_numpy(found).to(q.device)
    if exclude_self:
        is_self = idx == torch.arange(idx.shape[0], device=q.device)[:, None]
        order = torch.argsort(is_self.to(torch.int8), dim=1, stable=True)
        idx = idx.gather(1, order)[:, :k]
    return idx


def median_nn_spacing(
    points: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_NN_CHUNK,
    backend: str = "auto",
    device: Any = None,
    embed: Embed | None = None,
) -> float:
    """Median distance from each point to its nearest *other* point, ``median_k min_{j≠k} ‖y_k − y_j‖``.

    Streamed through :func:`nearest_neighbors` (``exclude_self=True``), so no
    ``K×K`` matrix is formed. The median is the lower middle value for even ``K``
    (``torch.median``). Exact duplicates count (at distance 0).

    Args:
        points: ``(K, ...)`` with ``K ≥ 2`` (flattened; in ``embed`` space if given).
        chunk_size: as in :func:`nearest_neighbors`.
        backend: as in :func:`nearest_neighbors`.
        device: as in :func:`nearest_neighbors`.
        embed: as in :func:`nearest_neighbors`.
    """
    check_tensor(points, "points", min_ndim=2)
    if points.shape[0] < 2:
        raise ValueError(f"points must hold at least 2 rows for a spacing, got {points.shape[0]}")
    dist, _ = nearest_neighbors(
        points, points, 1, chunk_size=chunk_size, exclude_self=True, backend=backend,
        device=device, embed=embed,
    )  # fmt: skip
    return float(dist[:, 0].median())


def same_point_radius(
    points: torch.Tensor, fraction: float = SAME_POINT_FRACTION, **nn: Any
) -> float:
    """Radius within which a point is "the same point" as one of ``points``: ``fraction`` × spacing.

    ``fraction · median_k min_{j≠k} ‖y_k − y_j‖`` (:func:`median_nn_spacing`), the one
    rule behind the Pham et al. 2025 memorized / spurious thresholds ``δ_m = δ_s``
    (:func:`memscape.memorization.classify_samples`) and the ``memory`` / ``mixture``
    label tolerance of critical points (:func:`memscape.landscape.labels.default_tolerance`).
    The default :data:`SAME_POINT_FRACTION` = 1/3 is the ``d₁/d₂ < 1/3`` copy criterion
    of Yoon et al. 2023 / Gu et al. 2023 with ``d₂`` replaced by its typical value; any
    fraction below 1/2 keeps two points at the typical spacing from claiming one point.

    Args:
        points: ``(K, ...)`` reference points, ``K ≥ 2``.
        fraction: multiple of the spacing (``≥ 0``).
        **nn: ``chunk_size``, ``backend``, ``device``, ``embed`` of :func:`median_nn_spacing`.
    """
    check_positive(fraction, "fraction", allow_zero=True)
    return float(fraction) * median_nn_spacing(points, **nn)
