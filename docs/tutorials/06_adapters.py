"""Tutorial: bring your own diffusion model — a diffusers UNet, adapted and analyzed.

Builds and briefly trains a tiny diffusers ``UNet2DModel`` on scikit-learn digits (no
downloads), saves it with ``save_pretrained``, loads it as a memscape model, checks the
adapter against the scheduler's own one-step prediction, samples it, finds the attractors
near the samples, and runs ``memscape analyze`` on the saved folder. Run with
``python docs/tutorials/06_adapters.py``; figures go to ``figures/`` next to this file.
"""

# --8<-- [start:setup]
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import diffusers
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

import memscape as ms

FIGURES = Path(__file__).resolve().parent / "figures"
FIGURES.mkdir(exist_ok=True)
torch.set_num_threads(1)
work = Path(tempfile.mkdtemp(prefix="memscape-adapters-"))
diffusers.utils.logging.set_verbosity_error()
# --8<-- [end:setup]

# --8<-- [start:build]
data = ms.datasets.load("digits", n=64, seed=0)  # 64 digits, (64, 64) in [−1, 1]
train = data.x.reshape(-1, 1, 8, 8)  # as 1 × 8 × 8 images
torch.manual_seed(0)
unet = diffusers.UNet2DModel(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    layers_per_block=1,
    block_out_channels=(16, 32),
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
)
scheduler = diffusers.DDIMScheduler()  # VP, 1000 steps, ε-prediction
print(f"{sum(p.numel() for p in unet.parameters())} parameters")
# --8<-- [end:build]

# --8<-- [start:train]
optimizer = torch.optim.Adam(unet.parameters(), lr=3e-3)
g = torch.Generator().manual_seed(0)
losses = []
for _ in range(150):  # DDPM's ε-loss (Ho et al. 2020, eq. 14), a short run
    y = train[torch.randint(0, len(train), (64,), generator=g)]
    t = torch.randint(0, 1000, (64,), generator=g)
    eps = torch.randn(y.shape, generator=g)
    loss = (unet(scheduler.add_noise(y, eps, t), t).sample - eps).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
unet.eval()
diffusers.DDIMPipeline(unet=unet, scheduler=scheduler).save_pretrained(work / "tiny")
print(f"loss {losses[0]:.3f} -> {np.mean(losses[-20:]):.3f}")
# --8<-- [end:train]

# --8<-- [start:adapt]
model = ms.adapters.load(work / "tiny", dtype=torch.float64)  # any model folder
print(model)
# the adapter in VE σ-space equals diffusers' one-step prediction of the clean image
ddpm = diffusers.DDPMScheduler.from_config(scheduler.config, clip_sample=False)
t = 500
x_t = torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64)
with torch.no_grad():
    ref = ddpm.step(model.unet(x_t, t).sample, t, x_t).pred_original_sample
alpha_bar = float(scheduler.alphas_cumprod[t])
sigma_t = math.sqrt((1 - alpha_bar) / alpha_bar)  # σ_t = √((1 − ᾱ_t)/ᾱ_t)
gap = (model.denoise(x_t / math.sqrt(alpha_bar), sigma_t) - ref).abs().max()
print(f"t = {t}: σ_t = {sigma_t:.3f}, largest difference {gap:.1e}")
# --8<-- [end:adapt]

# --8<-- [start:sample]
x = ms.sample(model, 32, seed=0)  # Heun over the model's own σ range [σ_min, σ_max]
classes = ms.classify_samples(x, train.double())
print({name: f"{fraction:.0%}" for name, fraction in classes.fractions().items()})
# --8<-- [end:sample]

# --8<-- [start:census]
sigma = 0.5
cps = ms.critical_points(
    model,
    sigma,
    starts=x[:4],  # descend from four samples, then Newton from their midpoints
    patterns=train.double(),
    n_newton_starts=0,
    max_seeds=4,
    max_steps=300,
    tol=1e-6,
    generator=torch.Generator().manual_seed(0),
)
print(cps)
minima = cps.points[cps.converged & (cps.morse_index == 0)]
print(cps.table[["morse_index", "converged", "score_norm", "nearest_distance"]].to_string())
# --8<-- [end:census]

# --8<-- [start:cli]
memscape = Path(sys.executable).with_name("memscape")  # the console script of this environment
np.save(work / "digits.npy", train.numpy())
# memorization, and the basin of one sample per class (Pham et al.'s critical σ*)
flags = "--samples 32 --probe 1 --probe-trials 8 --census 0 --likelihood 0".split()
command = [str(memscape), "analyze", str(work / "tiny"), "--data", str(work / "digits.npy")]
quiet = {**os.environ, "DIFFUSERS_VERBOSITY": "error"}
subprocess.run(
    [*command, *flags, "--out", str(work / "analysis")], check=True, env=quiet, capture_output=True
)
print(sorted(p.name for p in (work / "analysis").iterdir()))
# --8<-- [end:cli]

# --8<-- [start:figures]
fig, axes = plt.subplots(3, 8, figsize=(9, 3.8))
nearest = train[classes.train_index[:8]]
rows = [("sample", x[:8]), ("nearest digit", nearest), (f"minimum, σ = {sigma}", minima[:8])]
for row, (label, images) in zip(axes, rows, strict=True):
    for i, ax in enumerate(row):
        if i < len(images):
            ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_axis_off()
    row[0].set_title(label, fontsize=8, loc="left")
fig.tight_layout()
fig.savefig(FIGURES / "adapters.png", dpi=100)
shutil.copy(work / "analysis" / "ratio.png", FIGURES / "adapters_ratio.png")
shutil.rmtree(work)
# --8<-- [end:figures]
