"""memscape: diffusion models as associative memories.

One protocol (:class:`EnergyModel`: energy, score = −∇E, denoiser
D = x + σ²·score), associative memories, the exact diffusion energy, and tools to
study their landscapes.
"""

from memscape import datasets, theory
from memscape.diffusion import (
    EmpiricalDiffusion,
    ScoreModel,
    TrainRun,
    get_process,
    log_likelihood,
    sample,
    train,
)
from memscape.dynamics import DescentResult, descend
from memscape.landscape import (
    CriticalPoints,
    basin_fractions,
    basin_map,
    basin_radius,
    critical_points,
    hessian_spectrum,
    morse_smale_graph,
    newton_refine,
    relative_energy,
    score_asymmetry,
)
from memscape.landscape.continuation import BifurcationDiagram, continuation
from memscape.landscape.plot import plot_bifurcation, plot_landscape
from memscape.memories import ClassicalHopfield, DenseAM, ModernHopfield
from memscape.memorization import classify_samples, memorized_fraction, nearest_neighbors, nn_ratio
from memscape.protocol import EnergyModel, jacobian_of, score_of

__version__ = "0.1.0"

__all__ = [
    "BifurcationDiagram",
    "ClassicalHopfield",
    "CriticalPoints",
    "DenseAM",
    "DescentResult",
    "EmpiricalDiffusion",
    "EnergyModel",
    "ModernHopfield",
    "ScoreModel",
    "TrainRun",
    "__version__",
    "basin_fractions",
    "basin_map",
    "basin_radius",
    "classify_samples",
    "continuation",
    "critical_points",
    "datasets",
    "descend",
    "get_process",
    "hessian_spectrum",
    "jacobian_of",
    "log_likelihood",
    "memorized_fraction",
    "morse_smale_graph",
    "nearest_neighbors",
    "newton_refine",
    "nn_ratio",
    "plot_bifurcation",
    "plot_landscape",
    "relative_energy",
    "sample",
    "score_asymmetry",
    "score_of",
    "theory",
    "train",
]
