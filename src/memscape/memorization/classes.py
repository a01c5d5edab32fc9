"""Memorized / spurious / generalized / off-data samples (Pham et al. 2025, "Memorization to
Generalization: Emergence of Diffusion Models from Associative Memory", §3).

A generated sample is

* **off-data** if its nearest-training distance ``d₁`` exceeds a high quantile (default
  0.99) of the ``d₁`` of *real* samples of the data distribution that are not in the
  training set — held-out samples, or by default each training point against the others
  (leave-one-out). Such a sample is farther from the training set than real data ever is:
  it is not on the data manifold at the resolution the training set resolves (an
  undertrained network's noise, a diverged sampler). Pham et al.'s generalized samples are
  new samples *on* the manifold; without this class anything that is neither memorized nor
  spurious would be called generalized. With ``resolution = σ > 0`` the threshold is never
  below ``σ·√χ²_d(q)``, the distance within which a real sample observed at noise σ lies
  of its clean self with probability ``q``: on a manifold of zero thickness (the circle)
  the held-out ``d₁`` shrink like the training spacing (``∝ 1/K`` on a curve) while a
  model resolves the data only down to the smallest noise level it was trained at;
  without the floor every sample of a good model at large K would be off-data;
* else **memorized** if its nearest training point lies within ``δ_m``;
* else **spurious** if its nearest *other generated* sample lies within ``δ_s`` —
  several samples fell into the same attractor, and that attractor is not a
  training point (the spurious states of a Hopfield network past its capacity);
* else **generalized**.
"""

from __future__ import annotations

import math
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

__all__ = [
    "CLASSES",
    "DEFAULT_DELTA_FRACTION",
    "DEFAULT_OFF_DATA_QUANTILE",
    "SampleClasses",
    "classify_samples",
    "expected_off_data_fraction",
    "fraction_column",
    "off_data_floor",
]

#: Class names; :attr:`SampleClasses.labels` holds indices into this tuple.
CLASSES = ("memorized", "spurious", "generalized", "off-data")

#: Default δ_m = δ_s = this fraction of the median training nearest-neighbour distance
#: (the one "same point" rule, :data:`memscape.memorization.neighbors.SAME_POINT_FRACTION`).
DEFAULT_DELTA_FRACTION = SAME_POINT_FRACTION

#: Default quantile of the real samples' d₁ above which a generated sample is off-data.
DEFAULT_OFF_DATA_QUANTILE = 0.99


def fraction_column(name: str) -> str:
    """Table column of a class's fraction: ``memorized_fraction`` … ``off_data_fraction``."""
    return f"{name.replace('-', '_')}_fraction"


def off_data_floor(resolution: float, quantile: float, dim: int) -> float:
    """``σ·√χ²_d(q)``: a real sample seen at noise σ lies this far from its clean self w.p. ``q``.

    ``‖σz‖² / σ²`` with ``z ~ N(0, I_d)`` is chi-square with ``d`` degrees of freedom, so
    ``P(‖σz‖ ≤ σ·√χ²_d(q)) = q`` (for ``d = 2``: ``σ·√(−2 ln(1 − q))``, the Rayleigh law).
    The lower bound of the off-data threshold of :func:`classify_samples` at ``resolution``.
    """
    check_positive(resolution, "resolution", allow_zero=True)
    if resolution == 0:
        return 0.0
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1) with a resolution > 0, got {quantile}")
    from scipy.stats import chi2

    return float(resolution) * math.sqrt(float(chi2.ppf(quantile, dim)))


def expected_off_data_fraction(n_reference: int, quantile: float) -> float:
    """Probability that a fresh real sample lies above the reference's empirical quantile.

    With ``H`` i.i.d. reference distances and the linearly interpolated ``q`` quantile
    (``torch.quantile``) at order-statistic position ``1 + q(H − 1)``, a fresh draw of the
    same continuous law exceeds the ``j``-th order statistic with probability
    ``(H + 1 − j)/(H + 1)`` (its rank is uniform on ``1 … H + 1``); at the interpolated
    position this is ``((1 − q)H + q)/(H + 1)`` — ``1 − q`` plus the finite-``H`` excess
    (1.44 % at ``H = 224``, 1.10 % at ``H = 1024``, ``q = 0.99``). Exact when the
    position is an integer; the resolution floor of :func:`classify_samples` only lowers it.
    """
    check_positive(n_reference, "n_reference")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    h = float(n_reference)
    return ((1 - quantile) * h + quantile) / (h + 1)


@dataclass(frozen=True)
class SampleClasses:
    """Per-sample distances and classes returned by :func:`classify_samples`.

    Tensors named per generated sample are ``(M,)``; ``reference_d1`` is ``(H,)``.
    """

    d1: torch.Tensor  #: distance to the nearest training point
    d2: torch.Tensor  #: distance to the second-nearest training point
    ratio: torch.Tensor  #: d1 / d2 (0 for exact copies)
    nearest_generated: torch.Tensor  #: distance to the nearest *other* generated sample
    train_index: torch.Tensor  #: index of the nearest training point (long)
    labels: torch.Tensor  #: class index into :data:`CLASSES` (long)
    delta_m: float  #: memorization threshold used
    delta_s: float  #: spurious threshold used
    #: d₁ of the real reference samples: held-out to the training set (H = len(held_out)),
    #: or leave-one-out within it (H = K)
    reference_d1: torch.Tensor
    off_data_threshold: float  #: a sample with d₁ above this is off-data (floor included)
    off_data_quantile: float  #: the quantile of ``reference_d1`` that gave the threshold
    reference: str  #: ``"held_out"`` or ``"leave_one_out"``
    off_data_floor: float = 0.0  #: the resolution floor ``σ·√χ²_d(q)`` of the threshold

    @property
    def names(self) -> list[str]:
        """Class name of each sample."""
        return [CLASSES[i] for i in self.labels.tolist()]

    def fractions(self) -> dict[str, float]:
        """Fraction of samples in each class (keys from :data:`CLASSES`)."""
        counts = torch.bincount(self.labels.cpu(), minlength=len(CLASSES))
        return {c: float(counts[i]) / self.labels.numel() for i, c in enumerate(CLASSES)}

    def summary(self) -> dict[str, Any]:
        """One row: ``n_samples``, the thresholds, the reference, each class's fraction
        (:func:`fraction_column`) and ``ratio_memorized_fraction`` (``d₁/d₂ < 1/3``)."""
        row: dict[str, Any] = {
            "n_samples": int(self.labels.numel()),
            "delta_m": self.delta_m,
            "delta_s": self.delta_s,
            "off_data_threshold": self.off_data_threshold,
            "off_data_floor": self.off_data_floor,
            "reference": self.reference,
            "ratio_memorized_fraction": float((self.ratio < RATIO_THRESHOLD).double().mean()),
        }
        return row | {fraction_column(c): f for c, f in self.fractions().items()}

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
    held_out: torch.Tensor | None = None,
    off_data_quantile: float = DEFAULT_OFF_DATA_QUANTILE,
    resolution: float = 0.0,
    embed: Embed | None = None,
    chunk_size: int = DEFAULT_NN_CHUNK,
    backend: str = "auto",
    device: Any = None,
) -> SampleClasses:
    """Label each generated sample memorized, spurious, generalized or off-data (Pham et al. 2025).

    Off-data first. With ``held_out`` — real samples of the training distribution that
    are *not* in ``train`` — the reference distances are their ``d₁`` to the training set;
    a generated sample is off-data when its ``d₁`` exceeds the ``off_data_quantile``
    quantile of them (``torch.quantile``, linear interpolation), so at most about
    ``1 − off_data_quantile`` of fresh real samples are off-data, by construction.
    Without ``held_out`` the default reference is the training set itself, leave-one-out:
    each training point's distance to its nearest *other* training point
    (:func:`memscape.memorization.neighbors.nearest_neighbors` with ``exclude_self``,
    streamed, no ``K×K`` matrix). A training point against the other ``K − 1`` is a real
    sample against a training set of one point fewer, so these are draws of the held-out
    ``d₁`` distribution at ``K − 1`` (slightly larger distances: the default errs towards
    fewer off-data samples). Caveats: with few training points the quantile is near the
    largest spacing (at ``K = 2`` it is the distance between the two points — keep a
    held-out set there); exact duplicates in ``train`` pull the leave-one-out distances to
    0. Memorized, spurious and generalized are assigned only among the other samples.

    Resolution floor. The threshold is ``max(Q_q(reference d₁), σ·√χ²_d(q))`` with
    ``σ = resolution`` and ``χ²_d(q)`` the ``q`` quantile of the chi-square law with ``d``
    (the number of features) degrees of freedom: ``‖σz‖``, ``z ~ N(0, I_d)``, is below
    ``σ·√χ²_d(q)`` with probability ``q``, so a real sample seen at noise σ is off-data
    with probability at most ``1 − q`` whatever K. Why: the reference ``d₁`` measure the
    data at the resolution of the training set's spacing, which on a low-dimensional
    manifold of zero thickness falls below what any trained model resolves (measured on
    the unit circle, K = 1024, an MLP after 3000 steps: held-out ``d₁`` has 99 % quantile
    0.014 while the samples' distance to the circle has median 0.014 and 99 % quantile
    0.07–0.09 — 55 % "off-data" with no floor, ~2 % with σ = 0.02). Pass the smallest
    noise level the model is trained to resolve (for EDM training ``ln σ ~ N(−1.2, 1.2²)``
    its 1 % quantile is ``e^{−1.2 − 2.33·1.2} ≈ 0.018``); the default 0 keeps the pure
    data rule.

    Default thresholds. ``δ_m`` and ``δ_s`` both default to
    ``δ = ⅓ · median_k min_{j≠k} ‖y_k − y_j‖``, a third of the typical spacing between
    training points (in ``embed`` space if given):
    :func:`memscape.memorization.neighbors.same_point_radius`, the same rule that labels
    critical points ``memory``. Rationale: the training set is the one length scale that
    does not depend on what the model produced. A sample within a third of the typical
    spacing of a training point is a copy of it — the same 1/3 as the d₁/d₂ criterion of
    Yoon et al. / Gu et al. with d₂ replaced by its typical value — and two generated
    samples that close to each other, but not to any training point, sit in one shared
    attractor that is not a stored pattern. A threshold taken from the generated set
    would instead move with the very clustering it is meant to detect (a set made of a
    few tight clusters would shrink its own δ_s). Caveat: ``nearest_generated`` (taken
    over all generated samples, off-data ones included) shrinks as more samples are drawn
    (on a manifold of intrinsic dimension d* it scales like M^(−1/d*)), so spurious counts
    are comparable only across runs with equal M, ideally M ≲ K; pass explicit thresholds
    to compare otherwise.

    Args:
        generated: ``(M, ...)`` samples (flattened), ``M ≥ 2``.
        train: ``(K, ...)`` training points of the same per-sample size, ``K ≥ 2``.
        delta_m: memorization radius ``δ_m ≥ 0`` (default above). A sample is
            memorized when ``d₁ ≤ δ_m`` (and it is not off-data).
        delta_s: spurious radius ``δ_s ≥ 0`` (default above). A non-memorized
            sample is spurious when its nearest other generated sample is within ``δ_s``.
        held_out: ``(H, ...)`` real samples of the same distribution, never in ``train``
            (``H ≥ 1``; ``H ≳ 100 / (1 − off_data_quantile)`` resolves the quantile);
            default ``None``: leave-one-out within ``train``.
        off_data_quantile: quantile ``q ∈ (0, 1]`` of the reference ``d₁``; a sample
            with ``d₁`` above it is off-data (``q = 1``: above the largest).
        resolution: noise level ``σ ≥ 0`` below which the model does not resolve the
            data; the threshold is at least ``σ·√χ²_d(q)`` (needs ``q < 1`` when ``σ > 0``).
        embed: as in :func:`nearest_neighbors` (applied to ``held_out`` too).
        chunk_size: as in :func:`nearest_neighbors`.
        backend: as in :func:`nearest_neighbors`.
        device: as in :func:`nearest_neighbors`.

    Returns:
        :class:`SampleClasses` (``.fractions()``, ``.table``, the reference ``d₁`` and
        the off-data threshold).

    Raises:
        ValueError: negative thresholds or resolution, ``off_data_quantile`` outside ``(0, 1]``
            (or 1 with a resolution), fewer
            than 2 generated or training samples, mismatched feature sizes, or a
            ``held_out`` set whose every row is a training point.
    """
    for value, name in ((delta_m, "delta_m"), (delta_s, "delta_s")):
        if value is not None:
            check_positive(value, name, allow_zero=True)
    if isinstance(off_data_quantile, bool) or not isinstance(off_data_quantile, (int, float)):
        raise TypeError(f"off_data_quantile must be a number, got {off_data_quantile!r}")
    if not 0 < off_data_quantile <= 1:
        raise ValueError(f"off_data_quantile must be in (0, 1], got {off_data_quantile}")
    check_positive(resolution, "resolution", allow_zero=True)
    if resolution > 0 and off_data_quantile == 1:
        raise ValueError("resolution > 0 needs off_data_quantile < 1 (the χ² quantile at 1 is ∞)")
    check_tensor(generated, "generated", min_ndim=2)
    check_tensor(train, "train", min_ndim=2)
    if held_out is not None:
        check_tensor(held_out, "held_out", min_ndim=2)
    if generated.shape[0] < 2:
        raise ValueError(f"generated must hold at least 2 samples, got {generated.shape[0]}")
    if train.shape[0] < 2:
        raise ValueError(f"train must hold at least 2 points, got {train.shape[0]}")
    nn: dict[str, Any] = {"chunk_size": chunk_size, "backend": backend, "device": device}
    if embed is not None:
        generated = embed_batches(generated, embed, "generated", batch_size=chunk_size)
        train = embed_batches(train, embed, "train", batch_size=chunk_size)
        if held_out is not None:
            held_out = embed_batches(held_out, embed, "held_out", batch_size=chunk_size)
    width = train[0].numel()
    for x, name in ((generated, "generated"), (held_out, "held_out")):
        if x is not None and x[0].numel() != width:
            raise ValueError(
                f"{name} and train must have the same number of features, got "
                f"{x[0].numel()} and {width}"
            )
    dist, idx = nearest_neighbors(generated, train, 2, **nn)
    d1, d2 = dist[:, 0], dist[:, 1]
    gen_nn, _ = nearest_neighbors(generated, generated, 1, exclude_self=True, **nn)
    nearest_generated = gen_nn[:, 0]
    if held_out is None:
        ref, _ = nearest_neighbors(train, train, 1, exclude_self=True, **nn)
        reference = "leave_one_out"
    else:
        ref, _ = nearest_neighbors(held_out, train, 1, **nn)
        reference = "held_out"
        if bool((ref[:, 0] == 0).all()):
            raise ValueError(
                f"held_out must hold real samples that are not in train: all {len(ref)} "
                "rows are exact training points"
            )
    reference_d1 = ref[:, 0].to(d1.device)
    threshold = float(torch.quantile(reference_d1.double(), float(off_data_quantile)))
    floor = off_data_floor(resolution, off_data_quantile, width)
    threshold = max(threshold, floor)
    if delta_m is None or delta_s is None:
        default = same_point_radius(train, **nn)
        delta_m = default if delta_m is None else delta_m
        delta_s = default if delta_s is None else delta_s
    off = d1 > threshold
    memorized = ~off & (d1 <= delta_m)
    spurious = ~off & ~memorized & (nearest_generated <= delta_s)
    labels = torch.full_like(idx[:, 0], CLASSES.index("generalized"))
    labels[spurious] = CLASSES.index("spurious")
    labels[memorized] = CLASSES.index("memorized")
    labels[off] = CLASSES.index("off-data")
    return SampleClasses(
        d1,
        d2,
        distance_ratio(d1, d2),
        nearest_generated,
        idx[:, 0],
        labels,
        float(delta_m),
        float(delta_s),
        reference_d1,
        threshold,
        float(off_data_quantile),
        reference,
        floor,
    )
