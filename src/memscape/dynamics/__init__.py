"""Dynamics: the descent loop (retrieval), and later Langevin / reverse-SDE samplers."""

from memscape.dynamics.descent import DescentResult, descend

__all__ = ["DescentResult", "descend"]
