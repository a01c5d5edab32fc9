"""Associative-memory models: classical, dense and modern Hopfield networks; capacity measurements."""

from memscape.memories import capacity
from memscape.memories.base import AssociativeMemory
from memscape.memories.capacity import capacity_bisection, fixed_point_fraction, fixed_points
from memscape.memories.classical import ClassicalHopfield, overlap
from memscape.memories.dense import DenseAM
from memscape.memories.modern import ModernHopfield

__all__ = [
    "AssociativeMemory",
    "ClassicalHopfield",
    "DenseAM",
    "ModernHopfield",
    "capacity",
    "capacity_bisection",
    "fixed_point_fraction",
    "fixed_points",
    "overlap",
]
