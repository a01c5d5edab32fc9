"""Memorized / spurious / generalized samples (Pham et al. 2025, "Memorization to
Generalization: Emergence of Diffusion Models from Associative Memory", §3).

A generated sample is

* **memorized** if its nearest training point lies within ``δ_m``;
* else **spurious** if its nearest *other generated* sample lies within ``δ_s`` —
  several samples fell into the same attractor, and that attractor is not a
  training point (the spurious states of a Hopfield network past its capacity);
* else **generalized**.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from memscape._validation import check_positive, check_tensor
from memscape.memorization.metrics import RATIO_THRESHOLD, distance_ratio
from memscape.memorization.neighbors import (
    DEFAULT_NN_CHUNK,
    SAME_POINT_FRACTION,
    Embed,
    embed_batches,
    nearest_neighbors,
    same_point_radius,
)

__all__ = ["CLASSES", "DEFAULT_DELTA_FRACTION", "SampleClasses", "classify_samples"]

#: Class names; :attr:`SampleClasses.labels` holds indices into this tuple.
CLASSES = ("memorized", "spurious", "generalized")

#: Default δ_m = δ_s = this fraction of the median training nearest-neighbour distance
#: (the one "same point" rule, :data:`memscape.memorization.neighbors.SAME_POINT_FRACTION`).
DEFAULT_DELTA_FRACTION = SAME_POINT_FRACTION


@dataclass(frozen=True)
class SampleClasses:
    """Per-sample distances and classes returned by :func:`classify_samples`.

    All tensors are ``(M,)``, one entry per generated sample.
    """

    d1: torch.Tensor  #: distance to the nearest training point
    d2: torch.Tensor  #: distance to the second-nearest training point
    ratio: torch.Tensor  #: d1 / d2 (0 for exact copies)
    nearest_generated: torch.Tensor  #: distance to the nearest *other* generated sample
    train_index: torch.Tensor  #: index of the nearest training point (long)
    labels: torch.Tensor  #: class index into :data:`CLASSES` (long)
    delta_m: float  #: memorization threshold used
    delta_s: float  #: spurious threshold used

    @property
    def names(self) -> list[str]:
        """Class name of each sample."""
        return [CLASSES[i] for i in self.labels.tolist()]

    def fractions(self) -> dict[str, float]:
        """Fraction of samples in each class (keys from :data:`CLASSES`)."""
        counts = torch.bincount(self.labels.cpu(), minlength=len(CLASSES))
        return {c: float(counts[i]) / self.labels.numel() for i, c in enumerate(CLASSES)}

    @property
    def table(self) -> Any:
        """Tidy pandas DataFrame, one row per generated sample.

        Columns: ``d1, d2, ratio, nearest_generated, train_index, class`` and
        ``ratio_memorized`` (``d₁/d₂ < 1/3``, Yoon et al. 2023 / Gu et al. 2023, for
        comparison with the class).
        """
        import pandas as pd

        return pd.DataFrame(
            {
                "d1": self.d1.cpu().numpy(),
                "d2": self.d2.cpu().numpy(),
                "ratio": self.ratio.cpu().numpy(),
                "nearest_generated": self.nearest_generated.cpu().numpy(),
                "train_index": self.train_index.cpu().numpy(),
                "class": self.names,
                "ratio_memorized": (self.ratio < RATIO_THRESHOLD).cpu().numpy(),
            }
        )


def classify_samples(
    generated: torch.Tensor,
    train: torch.Tensor,
    delta_m: float | None = None,
    delta_s: float | None = None,
    *,
    embed: Embed | None = None,
    chunk_size: int = DEFAULT_NN_CHUNK,
    backend: str = "auto",
    device: Any = None,
) -> SampleClasses:
    """Label each generated sample memorized, spurious or generalized (Pham et al. 2025).

    Default thresholds. Both default to ``δ = ⅓ · median_k min_{j≠k} ‖y_k − y_j‖``,
    a third of the typical spacing between training points (in ``embed`` space if
    given): :func:`memscape.memorization.neighbors.same_point_radius`, the same
    rule that labels critical points ``memory``. Rationale: the training set is the one length scale that does not
    depend on what the model produced. A sample within a third of the typical
    spacing of a training point is a copy of it — the same 1/3 as the d₁/d₂
    criterion of Yoon et al. / Gu et al. with d₂ replaced by its typical value —
    and two generated samples that close to each other, but not to any training
    point, sit in one shared attractor that is not a stored pattern. A threshold
    taken from the generated set would instead move with the very clustering it
    is meant to detect (a set made of a few tight clusters would shrink its own
    δ_s). Caveat: ``nearest_generated`` shrinks as more samples are drawn (on a
    manifold of intrinsic dimension d* it scales like M^(−1/d*)), so spurious
    counts are comparable only across runs with equal M, ideally M ≲ K; pass
    explicit thresholds to compare otherwise.

    Args:
        generated: ``(M, ...)`` samples (flattened), ``M ≥ 2``.
        train: ``(K, ...)`` training points of the same per-sample size, ``K ≥ 2``.
        delta_m: memorization radius ``δ_m ≥ 0`` (default above). A sample is
            memorized when ``d₁ ≤ δ_m``.
        delta_s: spurious radius ``δ_s ≥ 0`` (default above). A non-memorized
            sample is spurious when its nearest other generated sample is within ``δ_s``.
        embed: as in :func:`nearest_neighbors`.
        chunk_size: as in :func:`nearest_neighbors`.
        backend: as in :func:`nearest_neighbors`.
        device: as in :func:`nearest_neighbors`.

    Returns:
        :class:`SampleClasses` (``.fractions()``, ``.table``).
    """
    for value, name in ((delta_m, "delta_m"), (delta_s, "delta_s")):
        if value is not None:
            check_positive(value, name, allow_zero=True)
    check_tensor(generated, "generated", min_ndim=2)
    check_tensor(train, "train", min_ndim=2)
    if generated.shape[0] < 2:
        raise ValueError(f"generated must hold at least 2 samples, got {generated.shape[0]}")
    if train.shape[0] < 2:
        raise ValueError(f"train must hold at least 2 points, got {train.shape[0]}")
    nn: dict[str, Any] = {"chunk_size": chunk_size, "backend": backend, "device": device}
    if embed is not None:
        generated = embed_batches(generated, embed, "generated", batch_size=chunk_size)
        train = embed_batches(train, embed, "train", batch_size=chunk_size)
    dist, idx = nearest_neighbors(generated, train, 2, **nn)
    d1, d2 = dist[:, 0], dist[:, 1]
    gen_nn, _ = nearest_neighbors(generated, generated, 1, exclude_self=True, **nn)
    nearest_generated = gen_nn[:, 0]
    if delta_m is None or delta_s is None:
        default = same_point_radius(train, **nn)
        delta_m = default if delta_m is None else delta_m
        delta_s = default if delta_s is None else delta_s
    memorized = d1 <= delta_m
    spurious = ~memorized & (nearest_generated <= delta_s)
    labels = torch.full_like(idx[:, 0], CLASSES.index("generalized"))
    labels[spurious] = CLASSES.index("spurious")
    labels[memorized] = CLASSES.index("memorized")
    return SampleClasses(
        d1,
        d2,
        distance_ratio(d1, d2),
        nearest_generated,
        idx[:, 0],
        labels,
        float(delta_m),
        float(delta_s),
    )
