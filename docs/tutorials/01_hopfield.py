"""Tutorial: store digits in classical, dense and modern Hopfield networks; retrieve them.

Run from anywhere: ``python docs/tutorials/01_hopfield.py`` (writes its figures next to
this file, into ``figures/``). The documentation page includes this file section by
section, so the code on the page is exactly the code that runs.
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

# --8<-- [start:patterns]
digits = ms.datasets.load("digits", n=200, seed=0)  # 8×8 images flattened to 64, in [−1, 1]
first = [int((digits.labels == c).nonzero()[0]) for c in range(10)]  # one image per class
X = torch.where(digits.x[first] > 0, 1.0, -1.0)  # K = 10 binary patterns, N = 64 units
print(f"K = {X.shape[0]} patterns, N = {X.shape[1]} units, load α = {X.shape[0] / X.shape[1]:.3f}")
# --8<-- [end:patterns]

# --8<-- [start:cue]
known = torch.zeros(64, dtype=torch.bool)
known[:32] = True  # the top half of every image (4 of its 8 rows) is known
noise = torch.where(torch.rand(X.shape, generator=g) < 0.5, 1.0, -1.0)
cue = torch.where(known, X, noise)  # the bottom half is replaced by random ±1
# --8<-- [end:cue]

# --8<-- [start:models]
models = {
    "classical (Hebbian)": ms.ClassicalHopfield(X),
    "dense, F = x³": ms.DenseAM(X, interaction="polynomial", n=3),
    "dense, F = exp": ms.DenseAM(X, interaction="exponential"),
    "modern, β = 4": ms.ModernHopfield(X.double(), beta=4.0),
}
results = {}
for name, model in models.items():
    start = cue.double() if isinstance(model, ms.ModernHopfield) else cue
    res = model.retrieve(start, mask=known, record=True)  # True = held fixed: the top half
    results[name] = res
    exact = (res.x.sign() == X).all(dim=1).float().mean().item()
    print(
        f"{name:22s} retrieved {exact:4.0%} of the digits exactly, in ≤ {res.steps.max().item()} sweeps"
    )
# --8<-- [end:models]

# --8<-- [start:energy]
for name, res in results.items():
    e = res.trajectory["energy"]  # (T + 1, B): the energy after each sweep or update
    assert (e[1:] <= e[:-1] + 1e-9 * e.abs().max()).all(), f"{name}: energy went up"
# --8<-- [end:energy]

# --8<-- [start:figures]
rows = {"stored": X, "cue": cue} | {name: r.x.float() for name, r in results.items()}
fig, axes = plt.subplots(len(rows), 10, figsize=(8, 1.0 * len(rows)))
for i, (name, imgs) in enumerate(rows.items()):
    for j in range(10):
        axes[i, j].imshow(imgs[j].reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
        axes[i, j].set_xticks([])
        axes[i, j].set_yticks([])
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
fig.tight_layout()
fig.savefig(FIGURES / "hopfield_retrieval.png", dpi=100)

fig, axes = plt.subplots(1, len(results), figsize=(12, 2.6))
for ax, (name, res) in zip(axes, results.items(), strict=True):
    ax.plot(res.trajectory["energy"].numpy(), marker="o", ms=3)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("sweep")
axes[0].set_ylabel("energy E")
fig.tight_layout()
fig.savefig(FIGURES / "hopfield_energy.png", dpi=100)
# --8<-- [end:figures]
