"""Static view of memscape's public names (the package loads them lazily: see ``__init__.py``)."""

from . import (
    datasets,
    diffusion,
    dynamics,
    io,
    landscape,
    memories,
    memorization,
    protocol,
    theory,
)
from ._version import __version__
from .diffusion import (
    EmpiricalDiffusion,
    ScoreModel,
    TrainRun,
    get_process,
    log_likelihood,
    sample,
    train,
)
from .dynamics import DescentResult, descend
from .landscape import (
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
from .landscape.continuation import BifurcationDiagram, continuation
from .landscape.plot import plot_bifurcation, plot_landscape
from .memories import ClassicalHopfield, DenseAM, ModernHopfield
from .memorization import classify_samples, memorized_fraction, nearest_neighbors, nn_ratio
from .protocol import EnergyModel, jacobian_of, score_of

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
    "diffusion",
    "dynamics",
    "get_process",
    "hessian_spectrum",
    "io",
    "jacobian_of",
    "landscape",
    "log_likelihood",
    "memories",
    "memorization",
    "memorized_fraction",
    "morse_smale_graph",
    "nearest_neighbors",
    "newton_refine",
    "nn_ratio",
    "plot_bifurcation",
    "plot_landscape",
    "protocol",
    "relative_energy",
    "sample",
    "score_asymmetry",
    "score_of",
    "theory",
    "train",
]
