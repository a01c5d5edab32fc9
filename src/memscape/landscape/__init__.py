"""Landscape analysis: critical points, Morse index, labels, basins, Morse–Smale graph,
conservativeness of score fields, continuation and bifurcations, plots.

Public names are re-exported from the submodules below (DESIGN.md, "landscape" layer).
"""

from memscape.landscape.newton import NewtonResult, newton_refine

# --- continuation / bifurcations (continuation.py): add its imports below this line ---
# --- plotting (plot.py): add its imports below this line ---

__all__ = [
    "NewtonResult",
    "newton_refine",
]
