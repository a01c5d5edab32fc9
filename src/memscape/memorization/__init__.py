"""Memorization metrics: nearest neighbours, the d₁/d₂ ratio, capacity, classes of samples
and of attractors, figures against training-set size.

See :mod:`memscape.memorization.neighbors` for plugging perceptual features
(LPIPS, Inception) in through ``embed=``.
"""

from memscape.memorization.attractors import FLATNESS, classify_attractors, critical_sigma
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
from memscape.memorization.plot import (
    plot_class_fractions,
    plot_nearest,
    plot_pair_similarity,
    plot_samples,
)

__all__ = [
    "CLASSES",
    "FLATNESS",
    "EffectiveCapacity",
    "PairedSimilarity",
    "SampleClasses",
    "classify_attractors",
    "classify_samples",
    "critical_sigma",
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
    "plot_class_fractions",
    "plot_nearest",
    "plot_pair_similarity",
    "plot_samples",
    "same_point_radius",
]
