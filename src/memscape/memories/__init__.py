"""Associative-memory models: classical, dense and modern Hopfield networks."""

from memscape.memories.classical import ClassicalHopfield, overlap
from memscape.memories.dense import DenseAM
from memscape.memories.modern import ModernHopfield

__all__ = ["ClassicalHopfield", "DenseAM", "ModernHopfield", "overlap"]
