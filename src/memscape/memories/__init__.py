"""Associative-memory models: classical, dense and modern Hopfield networks."""

from memscape.memories.modern import ModernHopfield

__all__ = ["ModernHopfield"]
