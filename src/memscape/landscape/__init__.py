"""Landscape analysis: critical points, Morse index, labels, basins, Morse–Smale graph,
conservativeness of score fields, continuation and bifurcations, radial profiles, plots,
minimum-energy paths, certified saddles and disconnectivity graphs.

Public names are re-exported from the submodules below (the analysis layer: it imports models, never experiments).
"""

from memscape.landscape.atlas import LandscapeAtlas, landscape_atlas
from memscape.landscape.basins import (
    BasinMap,
    BasinRadius,
    basin_fractions,
    basin_map,
    basin_radius,
    wilson_interval,
)
from memscape.landscape.conservative import (
    is_conservative,
    line_integral,
    path_dependence,
    relative_energy,
    score_asymmetry,
)
from memscape.landscape.continuation import BifurcationDiagram, continuation
from memscape.landscape.critical import CriticalPoints, critical_points
from memscape.landscape.disconnectivity import (
    DisconnectivityGraph,
    disconnectivity_graph,
    plot_disconnectivity,
    plot_disconnectivity_panels,
)
from memscape.landscape.discrete import discrete_fixed_points
from memscape.landscape.labels import label_points
from memscape.landscape.morse import HessianSpectrum, hessian_spectrum, is_hyperbolic, morse_index
from memscape.landscape.morse_smale import morse_smale_graph
from memscape.landscape.newton import NewtonResult, newton_refine
from memscape.landscape.paths import MinimumEnergyPath, minimum_energy_path
from memscape.landscape.plot import plot_bifurcation, plot_census, plot_landscape
from memscape.landscape.plot_panels import (
    attractor_colors,
    plot_fraction,
    plot_morse_smale,
    plot_snapshots,
)
from memscape.landscape.profiles import RadialProfile, radial_profile
from memscape.landscape.saddles import (
    MorseCertificate,
    SaddleResult,
    certify_morse_index,
    refine_saddles,
)
from memscape.landscape.snapshots import (
    census_table,
    continuation_snapshots,
    edge_table,
    landscape_census,
    snapshot_values,
)

# --- continuation / bifurcations (continuation.py): add its imports below this line ---
# --- plotting (plot.py): add its imports below this line ---

__all__ = [
    "BasinMap",
    "BasinRadius",
    "BifurcationDiagram",
    "CriticalPoints",
    "DisconnectivityGraph",
    "HessianSpectrum",
    "LandscapeAtlas",
    "MinimumEnergyPath",
    "MorseCertificate",
    "NewtonResult",
    "RadialProfile",
    "SaddleResult",
    "attractor_colors",
    "basin_fractions",
    "basin_map",
    "basin_radius",
    "census_table",
    "certify_morse_index",
    "continuation",
    "continuation_snapshots",
    "critical_points",
    "disconnectivity_graph",
    "discrete_fixed_points",
    "edge_table",
    "hessian_spectrum",
    "is_conservative",
    "is_hyperbolic",
    "label_points",
    "landscape_atlas",
    "landscape_census",
    "line_integral",
    "minimum_energy_path",
    "morse_index",
    "morse_smale_graph",
    "newton_refine",
    "path_dependence",
    "plot_bifurcation",
    "plot_census",
    "plot_disconnectivity",
    "plot_disconnectivity_panels",
    "plot_fraction",
    "plot_landscape",
    "plot_morse_smale",
    "plot_snapshots",
    "radial_profile",
    "refine_saddles",
    "relative_energy",
    "score_asymmetry",
    "snapshot_values",
    "wilson_interval",
]
