"""Memorization metrics: the nearest-neighbour ratio, effective capacity, paired similarity.

* d₁/d₂ ratio (Yoon et al. 2023, "Diffusion probabilistic models generalize when
  they fail to memorize"; Gu et al. 2023, "On memorization in diffusion models"):
  a generated sample is memorized when its nearest training point is much closer
  than the second nearest, ``d₁/d₂ < 1/3``.
* Effective model capacity (Gu et al. 2023): the largest training-set size K at
  which the model still memorizes (≥ 90 % of samples memorized).
* Threshold-free generalization (Kadkhodaie et al. 2024, "Generalization in
  diffusion models arises from geometry-adaptive harmonic representations"): two
  models trained on disjoint training sets and sampled from the same noise give
  nearly the same samples once they generalize.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from memscape._validation import check_int, check_positive, check_tensor
from memscape.memorization.neighbors import (
    DEFAULT_NN_CHUNK,
    Embed,
    embed_batches,
    nearest_neighbors,
)

__all__ = [
    "EffectiveCapacity",
    "PairedSimilarity",
    "disjoint_subsets",
    "distance_ratio",
    "effective_capacity",
    "is_memorized",
    "memorized_fraction",
    "nn_ratio",
    "paired_similarity",
]

#: Yoon et al. 2023 / Gu et al. 2023 threshold on d₁/d₂.
RATIO_THRESHOLD = 1 / 3


def nn_ratio(
    generated: torch.Tensor,
    train: torch.Tensor,
    *,
    embed: Embed | None = None,
    chunk_size: int = DEFAULT_NN_CHUNK,
    backend: str = "auto",
    device: Any = None,
) -> torch.Tensor:
    """Ratio ``d₁/d₂`` of each generated sample's nearest to second-nearest training distance.

    Yoon et al. 2023 (eq. for the memorization criterion); Gu et al. 2023, eq. 3.

    Args:
        generated: ``(M, ...)`` samples.
        train: ``(K, ...)`` training points, ``K ≥ 2``.
        embed: optional feature map applied first (see :mod:`memscape.memorization.neighbors`).
        chunk_size: passed to :func:`nearest_neighbors`.
        backend: passed to :func:`nearest_neighbors`.
        device: passed to :func:`nearest_neighbors`.

    Returns:
        ``(M,)`` ratios in ``[0, 1]``. An exact copy (``d₁ = 0``) has ratio 0 even
        when the training set holds duplicates (``d₂ = 0``).
    """
    check_tensor(train, "train", min_ndim=2)
    if train.shape[0] < 2:
        raise ValueError(f"train must hold at least 2 points for d1/d2, got {train.shape[0]}")
    dist, _ = nearest_neighbors(
        generated, train, 2, chunk_size=chunk_size, backend=backend, device=device, embed=embed
    )
    return distance_ratio(dist[:, 0], dist[:, 1])


def distance_ratio(d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """``d₁/d₂`` elementwise, with an exact copy (``d₁ = 0``) giving 0 even when ``d₂ = 0``."""
    return torch.where(d1 == 0, torch.zeros_like(d1), d1 / d2)


def is_memorized(
    generated: torch.Tensor,
    train: torch.Tensor,
    threshold: float = RATIO_THRESHOLD,
    **kwargs: Any,
) -> torch.Tensor:
    """``(M,)`` bool: ``d₁/d₂ < threshold`` (default 1/3, Yoon et al. 2023; Gu et al. 2023).

    ``kwargs`` (``embed``, ``chunk_size``, ``backend``, ``device``) go to :func:`nn_ratio`.
    """
    _check_threshold(threshold)
    return nn_ratio(generated, train, **kwargs) < threshold


def memorized_fraction(
    generated: torch.Tensor,
    train: torch.Tensor,
    threshold: float = RATIO_THRESHOLD,
    **kwargs: Any,
) -> float:
    """Fraction of generated samples with ``d₁/d₂ < threshold`` (see :func:`is_memorized`)."""
    return float(is_memorized(generated, train, threshold, **kwargs).double().mean())


def _check_threshold(threshold: float) -> None:
    check_positive(threshold, "threshold")
    if threshold > 1:
        raise ValueError(f"threshold on d1/d2 must be in (0, 1], got {threshold!r}")


class EffectiveCapacity(NamedTuple):
    """Result of :func:`effective_capacity`."""

    interpolated: float  #: crossing of the level, interpolated linearly in log K
    grid: float  #: largest grid K whose memorized fraction is ≥ level (NaN if none)


def effective_capacity(
    table: Any,
    fractions: Any = None,
    *,
    level: float = 0.9,
    k_column: str = "K",
    fraction_column: str = "memorized_fraction",
) -> EffectiveCapacity:
    """Effective model capacity: the largest training-set size still ≥ ``level`` memorized.

    Gu et al. 2023 ("On memorization in diffusion models", §4) define the effective
    model memorization as the largest K at which the memorized fraction stays
    above 90 %.

    ``grid`` is the largest grid K whose fraction f is ≥ ``level``. When the next
    larger grid point K' has fraction f' < ``level``, ``interpolated`` is where the
    fraction, linear in ``log K`` between the two, crosses ``level``:
    ``log K = log K_grid + (f − level)/(f − f') · (log K' − log K_grid)`` — K grids
    are usually geometric, and the fraction is close to linear in log K across a
    crossing. When ``grid`` is the largest grid point there is nothing to
    interpolate towards: ``interpolated = grid`` is then only a lower bound. When
    no grid point reaches ``level`` both are NaN.

    Args:
        table: a pandas DataFrame with columns ``k_column`` and ``fraction_column``,
            a mapping ``{K: fraction}``, an iterable of ``(K, fraction)`` pairs, or
            the sequence of K values when ``fractions`` is given. Repeated K (e.g.
            several seeds) are averaged.
        fractions: memorized fractions matching ``table`` when it is a sequence of K.
        level: fraction defining "memorizes", in ``(0, 1]``.
        k_column: column of K when ``table`` is a DataFrame.
        fraction_column: column of the memorized fraction when ``table`` is a DataFrame.

    Returns:
        :class:`EffectiveCapacity` ``(interpolated, grid)``.
    """
    check_positive(level, "level")
    if level > 1:
        raise ValueError(f"level must be in (0, 1], got {level!r}")
    if fractions is not None:
        ks, fs = list(table), list(fractions)
        if len(ks) != len(fs):
            raise ValueError(
                f"K and fractions must have the same length, got {len(ks)} and {len(fs)}"
            )
        table = list(zip(ks, fs, strict=True))
    pairs = _capacity_pairs(table, k_column, fraction_column)
    grouped: dict[float, list[float]] = {}
    for k, f in pairs:
        grouped.setdefault(k, []).append(f)
    ks = sorted(grouped)
    fr = [sum(grouped[k]) / len(grouped[k]) for k in ks]
    above = [i for i, f in enumerate(fr) if f >= level]
    if not above:
        return EffectiveCapacity(math.nan, math.nan)
    i = above[-1]
    if i == len(ks) - 1:
        return EffectiveCapacity(ks[i], ks[i])
    t = (fr[i] - level) / (fr[i] - fr[i + 1])
    log_k = math.log(ks[i]) + t * (math.log(ks[i + 1]) - math.log(ks[i]))
    return EffectiveCapacity(math.exp(log_k), ks[i])


def _capacity_pairs(table: Any, k_column: str, fraction_column: str) -> list[tuple[float, float]]:
    if hasattr(table, "columns"):
        for col in (k_column, fraction_column):
            if col not in table.columns:
                raise ValueError(f"table has no column {col!r}; columns are {list(table.columns)}")
        raw: Iterable[Any] = zip(
            table[k_column].tolist(), table[fraction_column].tolist(), strict=True
        )
    elif isinstance(table, Mapping):
        raw = table.items()
    elif isinstance(table, Iterable):
        raw = table
    else:
        raise TypeError(
            "table must be a DataFrame, a mapping or (K, fraction) pairs, "
            f"got {type(table).__name__}"
        )
    pairs = []
    for item in raw:
        try:
            k_raw, f_raw = item
            k, f = float(k_raw), float(f_raw)
        except (TypeError, ValueError):
            raise ValueError(f"table entries must be (K, fraction) pairs, got {item!r}") from None
        if not (math.isfinite(k) and k > 0):
            raise ValueError(f"K must be finite and > 0, got {k_raw!r}")
        if not 0 <= f <= 1:
            raise ValueError(f"memorized fraction must be in [0, 1], got {f_raw!r} at K={k:g}")
        pairs.append((k, f))
    if not pairs:
        raise ValueError("table must not be empty")
    return pairs


@dataclass(frozen=True)
class PairedSimilarity:
    """Per-pair similarity of two models' samples from the same noise (Kadkhodaie et al. 2024)."""

    cosine: torch.Tensor  #: (M,) cosine similarity (after per-sample mean removal if centred)
    l2: torch.Tensor  #: (M,) Euclidean distance ‖a − b‖

    def summary(self) -> dict[str, float]:
        """Mean, median and standard deviation of both per-pair quantities (NaN pairs skipped)."""
        out = {}
        for name in ("cosine", "l2"):
            v = getattr(self, name).double()
            v = v[~torch.isnan(v)]
            out[f"{name}_mean"] = float(v.mean()) if v.numel() else math.nan
            out[f"{name}_median"] = float(v.median()) if v.numel() else math.nan
            out[f"{name}_std"] = float(v.std()) if v.numel() > 1 else math.nan
        return out


def paired_similarity(
    samples_a: torch.Tensor,
    samples_b: torch.Tensor,
    *,
    center: bool = True,
    embed: Embed | None = None,
) -> PairedSimilarity:
    """Similarity of paired samples of two models driven by the same noise.

    Kadkhodaie et al. 2024 (§2, Fig. 2): train two denoisers on disjoint training
    sets of size K, sample both from the same initial noise with a deterministic
    sampler and compare sample ``i`` of one with sample ``i`` of the other. Cosine
    similarity near 1 means both models produce the same sample (generalization,
    the model no longer depends on its particular training set); low similarity
    means each reproduces its own training set (memorization).

    Args:
        samples_a: ``(M, ...)`` paired samples of the same shape.
        samples_b: ``(M, ...)`` paired samples of the same shape.
        center: remove each sample's own mean over its coordinates before the
            cosine (the cosine is then the Pearson correlation of the two samples'
            pixels, insensitive to a brightness offset). A sample with zero norm
            (after centring) gets a NaN cosine.
        embed: optional feature map applied first.

    Returns:
        :class:`PairedSimilarity` with per-pair ``cosine`` and ``l2`` distance; call
        ``.summary()`` for aggregates.
    """
    check_tensor(samples_a, "samples_a", min_ndim=2)
    check_tensor(samples_b, "samples_b", min_ndim=2)
    if samples_a.shape != samples_b.shape:
        raise ValueError(
            f"samples_a and samples_b must have the same shape, got {tuple(samples_a.shape)} "
            f"and {tuple(samples_b.shape)}"
        )
    a = embed_batches(samples_a, embed, "samples_a")
    b = embed_batches(samples_b, embed, "samples_b")
    distance = (a - b).norm(dim=1)
    if center:
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
    norms = a.norm(dim=1) * b.norm(dim=1)
    cosine = (a * b).sum(1) / norms
    cosine = torch.where(norms > 0, cosine, torch.full_like(cosine, math.nan))
    return PairedSimilarity(cosine.clamp(-1, 1), distance)


def disjoint_subsets(
    n_total: int, k: int, generator: torch.Generator | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random index sets of size ``k`` from ``range(n_total)``.

    The training sets of Kadkhodaie et al. 2024's two-model experiment.

    Args:
        n_total: size of the pool.
        k: size of each subset, ``2k ≤ n_total``.
        generator: a ``torch.Generator`` or an integer seed.

    Returns:
        ``(idx_a, idx_b)``: two ``(k,)`` long tensors with no index in common.
    """
    check_int(n_total, "n_total")
    check_int(k, "k")
    if 2 * k > n_total:
        raise ValueError(f"two disjoint subsets of size k={k} need 2k <= n_total={n_total}")
    if isinstance(generator, int) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(generator)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or an int seed, got {type(generator).__name__}"
        )
    perm = torch.randperm(n_total, generator=generator)
    return perm[:k].clone(), perm[k : 2 * k].clone()
