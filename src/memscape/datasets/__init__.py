"""Data sets for training diffusion models: ``memscape.datasets.load(name, n, seed, **options)``.

Every loader returns a :class:`Dataset` (tensor ``x`` of shape ``(N, *event_shape)``
plus value range, σ_data, labels and metadata). Subsets of one seed are nested.
"""

from memscape.datasets import files, patches, real, synthetic
from memscape.datasets._core import Dataset, available, load, register

__all__ = [
    "Dataset",
    "available",
    "files",
    "load",
    "patches",
    "real",
    "register",
    "synthetic",
]
