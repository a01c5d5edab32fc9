"""Memorization metrics: nearest neighbours, the d₁/d₂ ratio, capacity, classes of samples
and of attractors, the transition points K_A / K_S / K_B, figures against training-set size.

See :mod:`memscape.memorization.neighbors` for plugging perceptual features
(LPIPS, Inception) in through ``embed=``.
"""

from memscape.memorization.attractors import (
    ATTRACTOR_CLASSES,
    FLATNESS,
    PROBE_LEVELS,
    attractor_atlas,
    attractor_summary,
    classify_attractors,
    critical_sigma,
)
from memscape.memorization.classes import (
    CLASSES,
    SampleClasses,
    classify_samples,
    expected_off_data_fraction,
    fraction_column,
    off_data_floor,
)
from memscape.memorization.measure import Measurement, measure_model
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
    plot_d1_histogram,
    plot_d1_panels,
    plot_landscapes,
    plot_nearest,
    plot_pair_similarity,
    plot_sample_panels,
    plot_samples,
)
from memscape.memorization.transitions import (
    GENERALIZED_LEVEL,
    MEMORIZED_LEVEL,
    GridInterval,
    SweepReduction,
    Transition,
    fraction_text,
    median_fractions,
    one_sided_p,
    reduce_sweep,
    transition,
    twin_agreement,
    twin_similarity,
)

__all__ = [
    "ATTRACTOR_CLASSES",
    "CLASSES",
    "FLATNESS",
    "GENERALIZED_LEVEL",
    "MEMORIZED_LEVEL",
    "PROBE_LEVELS",
    "EffectiveCapacity",
    "GridInterval",
    "Measurement",
    "PairedSimilarity",
    "SampleClasses",
    "SweepReduction",
    "Transition",
    "attractor_atlas",
    "attractor_summary",
    "classify_attractors",
    "classify_samples",
    "critical_sigma",
    "disjoint_subsets",
    "distance_ratio",
    "effective_capacity",
    "expected_off_data_fraction",
    "faiss_available",
    "fraction_column",
    "fraction_text",
    "is_memorized",
    "measure_model",
    "median_fractions",
    "median_nn_spacing",
    "memorized_fraction",
    "nearest_neighbors",
    "nn_ratio",
    "off_data_floor",
    "one_sided_p",
    "paired_similarity",
    "plot_class_fractions",
    "plot_d1_histogram",
    "plot_d1_panels",
    "plot_landscapes",
    "plot_nearest",
    "plot_pair_similarity",
    "plot_sample_panels",
    "plot_samples",
    "reduce_sweep",
    "same_point_radius",
    "transition",
    "twin_agreement",
    "twin_similarity",
]
