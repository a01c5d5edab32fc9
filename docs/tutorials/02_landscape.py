"""Tutorial: the landscape of a small modern Hopfield network.

Critical points with their Morse indices, basins of attraction, the Morse–Smale
graph, and the bifurcation diagram in the inverse temperature β. Run with
``python docs/tutorials/02_landscape.py``; figures go to ``figures/`` next to this file.
"""

# --8<-- [start:setup]
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import memscape as ms

FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
# --8<-- [end:setup]

# --8<-- [start:model]
memories = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
model = ms.ModernHopfield(memories, beta=8.0)
# --8<-- [end:model]

# --8<-- [start:census]
cps = ms.critical_points(model, n_starts=200, generator=g)
print(cps.table[["x0", "x1", "energy", "morse_index", "label"]].round(3).to_string())
euler = sum((-1) ** int(i) for i in cps.table["morse_index"])
print(f"Euler characteristic Σ(−1)^index = {euler} (1 for a complete census on ℝ²)")
# --8<-- [end:census]

# --8<-- [start:basins]
fractions = ms.basin_fractions(model, cps, n=1000, generator=g)
print(fractions.round(3).to_string())
grid = ms.basin_map(model, cps, resolution=60)  # the basin of every node of a 60×60 grid
for point in fractions["point"][fractions["point"] >= 0]:
    print(f"minimum {point}: {(grid.labels == point).float().mean().item():.3f} of the grid")
# --8<-- [end:basins]

# --8<-- [start:graph]
graph = ms.morse_smale_graph(model, cps)
for saddle, minimum, edge in graph.edges(data=True):
    print(f"saddle {saddle} → minimum {minimum}, barrier {edge['barrier']:.3f}")
print("Morse–Smale:", graph.graph["is_morse_smale"])
# --8<-- [end:graph]

# --8<-- [start:plot]
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
ms.plot_landscape(model, cps=cps, ax=left, legend=False)
for saddle, minimum in graph.edges():
    a, b = cps.points[saddle].numpy(), cps.points[minimum].numpy()
    left.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.5})
left.set_title("ModernHopfield, β = 8: landscape and Morse–Smale graph")
# --8<-- [end:plot]

# --8<-- [start:continuation]
diagram = ms.continuation(
    lambda beta: ms.ModernHopfield(memories, beta=beta),  # a factory in the parameter
    "beta",
    start=0.5,
    stop=10.0,
    generator=g,
)
print(
    diagram.bifurcations[["parameter", "kind", "index_before", "index_after"]].round(3).to_string()
)
ms.plot_bifurcation(diagram, ax=middle, y="x0")
ms.plot_bifurcation(diagram, ax=right, y="x1", legend=False)
middle.set_title("critical points against β")
fig.tight_layout()
fig.savefig(FIGURES / "landscape.png", dpi=100)
# --8<-- [end:continuation]
