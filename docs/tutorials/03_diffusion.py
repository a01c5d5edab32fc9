"""Tutorial: train a diffusion model on 2-D data, sample it, find its attractors.

The trained model's attractors at a small noise level are compared with those of the
exact empirical model (the optimal denoiser of the training set). Run with
``python docs/tutorials/03_diffusion.py``; figures go to ``figures/`` next to this file.
"""

# --8<-- [start:setup]
import copy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import memscape as ms

FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)
# --8<-- [end:setup]

# --8<-- [start:data]
data = ms.datasets.load("circle", n=8, seed=0)  # K = 8 points of the unit circle
print(data.x.shape, f"σ_data = {data.sigma_data:.3f}")
# --8<-- [end:data]

# --8<-- [start:train]
model = ms.ScoreModel.mlp(2, width=128, layers=3, seed=0)  # EDM preconditioning
run = ms.train(model, data, steps=1200, batch=256, lr=2e-3, seed=0, progress=False)
print(run.losses.tail(3).to_string(index=False))
print(f"{run.steps_per_second:.0f} steps/s")
# --8<-- [end:train]

# --8<-- [start:sample]
samples = ms.sample(run.model, 256, seed=1)  # 18 Heun steps from σ = 80 to 0
print(f"memorized (d₁/d₂ < 1/3): {ms.memorized_fraction(samples, data.x):.0%}")
classes = ms.classify_samples(
    samples, data.x
)  # Pham et al. 2025: memorized / spurious / generalized
print({name: f"{fraction:.0%}" for name, fraction in classes.fractions().items()})
# --8<-- [end:sample]

# --8<-- [start:attractors]
sigma = 0.1
net = copy.deepcopy(run.model).double()  # the analysis runs in float64
trained = ms.critical_points(
    net,
    sigma,
    n_starts=200,
    patterns=data.x.double(),
    tol=1e-5,
    generator=torch.Generator().manual_seed(0),
)
exact_model = ms.EmpiricalDiffusion(data.x.double())  # −log p_σ of the 8 points, exactly
exact = ms.critical_points(
    exact_model, sigma, n_starts=200, generator=torch.Generator().manual_seed(0)
)


def minima(cps: ms.CriticalPoints) -> torch.Tensor:
    """Converged index-0 points of a census."""
    keep = cps.table["converged"] & (cps.table["morse_index"] == 0)
    return cps.points[torch.tensor(keep.to_numpy(dtype=bool))]


a, b = minima(trained), minima(exact)
gap = torch.cdist(a, b).min(dim=1).values
print(
    f"{len(a)} trained minima, {len(b)} exact minima; largest distance to an exact one {gap.max():.3f}"
)
# --8<-- [end:attractors]

# --8<-- [start:figures]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
axes[0].plot(run.losses["step"], run.losses["loss"])
axes[0].set(xlabel="step", ylabel="denoising loss", title="training")
for i, name in reversed(list(enumerate(ms.memorization.CLASSES))):
    axes[1].scatter(*samples[classes.labels == i].T, s=6, alpha=0.6, label=name)
axes[1].scatter(*data.x.T, marker="*", s=120, c="k", label="training points")
axes[1].set(aspect="equal", title="256 samples (Heun, 18 steps)")
axes[1].legend(fontsize=8)
ms.plot_landscape(exact_model, sigma, cps=exact, ax=axes[2], legend=False, basins=False)
axes[2].scatter(*a.T, marker="+", s=200, c="k", label="trained minima")
axes[2].set_title(f"exact −log p_σ at σ = {sigma} and the trained minima")
axes[2].legend(fontsize=8, loc="upper left")
fig.tight_layout()
fig.savefig(FIGURES / "diffusion.png", dpi=100)
# --8<-- [end:figures]
