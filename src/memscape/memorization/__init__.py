"""Memorization metrics: nearest neighbours, the d₁/d₂ ratio, capacity, sample classes.

See :mod:`memscape.memorization.neighbors` for plugging perceptual features
(LPIPS, Inception) in through ``embed=``.
"""

from memscape.memorization.classes import CLASSES, SampleClasses, classify_samples
from memscape.memorization.metrics import (
    EffectiveCapacity,
    PairedSimilarity,
    disjoint_subsets,
    distance_ratio,
    effective_capacity,
    is_memorized,
    memorized_fraction,
    nn_ratio,
    paired_similarity,
)
from memscape.memorization.neighbors import (
    faiss_available,
    median_nn_spacing,
    nearest_neighbors,
    same_point_radius,
)

__all__ = [
    "CLASSES",
    "EffectiveCapacity",
    "PairedSimilarity",
    "SampleClasses",
    "classify_samples",
    "disjoint_subsets",
    "distance_ratio",
    "effective_capacity",
    "faiss_available",
    "is_memorized",
    "median_nn_spacing",
    "memorized_fraction",
    "nearest_neighbors",
    "nn_ratio",
    "paired_similarity",
    "same_point_radius",
]
