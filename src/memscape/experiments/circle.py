"""``memscape run circle``: the energy landscape of diffusion models of K points on the unit circle.

Pham, Raya, Negri, Zaki, Ambrogioni & Krotov 2025 ("Memorization to
generalization: emergence of diffusion models from associative memory"), 2-D
toy: with K training points on the unit circle a diffusion model stores each
point as a minimum (K small: memorization), develops spurious minima as K
grows, and for large K its minima fill a ring (generalization). In the large-K
limit the exact energy at radius R is (:func:`memscape.theory.circle_energy`)

    E(R) = R² + 1 − 2σ² log I₀(R/σ²)   (Pham et al.: R² + 1 − β_P⁻¹ log I₀(2β_P R), β_P = 1/(2σ²)),

i.e. ``E(x) = 2σ² (−log p_σ(x)) + const`` (memscape's β = 1/σ² is 2β_P). Energies
of the models are therefore converted to these units by the factor ``2σ²``. The
ring of minima has radius ``R = I₁(R/σ²)/I₀(R/σ²)``
(:func:`memscape.theory.circle_radius`), ≈ ``1 − σ²/2`` at small σ.

For each K, one sweep job builds the exact empirical model
(:class:`EmpiricalDiffusion`) and trains an MLP energy model
(``ScoreModel.mlp(energy=True)``, :func:`memscape.train`) on the same K points,
then for both: the angle-averaged energy along the radius, the ring radius (the
minimizing R on each of ``rays`` rays, averaged) and the critical-point census at
σ (:func:`memscape.landscape.critical_points`: minima labelled memory / mixture /
spurious).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_int, check_positive
from memscape.experiments._seeds import job_seed
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job

__all__ = ["CircleConfig", "radial_profile"]

RING_BAND = 0.1  #: minima within this distance of the theory ring radius count as on the ring
EXACT_PROFILE_TOLERANCE = 1e-3  #: RMS gap of the exact model's profile (finite-K fluctuations)


@dataclass
class CircleConfig:
    """Options of ``circle``."""

    sizes: tuple[int, ...] = field(
        default=(2, 9, 1000),
        metadata={"help": "training-set sizes K (points uniform on the unit circle)"},
    )
    sigma: float = field(
        default=0.3, metadata={"help": "noise level σ of the landscape (β = 1/σ²)"}
    )
    rays: int = field(default=64, metadata={"help": "angles of the radial energy profiles"})
    radii: int = field(default=301, metadata={"help": "radii in [0, 1.6] per ray"})
    steps: int = field(default=3000, metadata={"help": "training steps of the MLP energy model"})
    width: int = field(default=128, metadata={"help": "MLP width"})
    layers: int = field(default=3, metadata={"help": "MLP layers"})
    batch: int = field(default=256, metadata={"help": "training batch"})
    census_starts: int = field(default=300, metadata={"help": "random starts of the census"})
    exact_tolerance: float = field(
        default=0.01,
        metadata={"help": "allowed |ring radius − theory| of the exact model at the largest K"},
    )
    profile_tolerance: float = field(
        default=0.05,
        metadata={"help": "allowed RMS gap of the trained energy profile at the largest K"},
    )
    trained_tolerance: float = field(
        default=0.06,
        metadata={"help": "allowed |ring radius − theory| of the trained model at the largest K"},
    )

    def validate(self) -> None:
        """Raise ``ValueError`` on an invalid option."""
        if not self.sizes:
            raise ValueError("sizes must be non-empty")
        for k in self.sizes:
            check_int(k, "sizes")
        for name in ("rays", "steps", "width", "layers", "batch", "census_starts"):
            check_int(getattr(self, name), name)
        check_int(self.radii, "radii", minimum=3)
        for name in ("sigma", "exact_tolerance", "trained_tolerance", "profile_tolerance"):
            check_positive(getattr(self, name), name)
        if self.sigma >= 1 / math.sqrt(2):
            raise ValueError(f"sigma must be < 1/√2 (β = 1/σ² > 2) for a ring, got {self.sigma}")


def radial_profile(
    model: Any, sigma: float, rays: int, radii: torch.Tensor
) -> tuple[np.ndarray, float]:
    """Angle-averaged energy along the radius and the mean minimizing radius.

    Evaluates ``model.energy`` on ``rays`` equally spaced rays at ``radii``
    (float64 inputs), in circle units ``2σ² E``.

    Returns:
        ``(profile, ring_radius)``: the ``(len(radii),)`` mean energy over the rays and
        the mean over rays of the minimizing radius, refined by a parabola through
        the grid minimum and its neighbours.
    """
    theta = torch.arange(rays, dtype=torch.float64) * (2 * math.pi / rays)
    r = radii.to(torch.float64)
    x = torch.stack([r[:, None] * torch.cos(theta), r[:, None] * torch.sin(theta)], -1)
    with torch.no_grad():
        en = torch.stack([model.energy(x[:, j], sigma).detach().double() for j in range(rays)], 1)
    e = (2 * sigma**2 * en).numpy()  # (R, rays)
    i = np.clip(e.argmin(0), 1, len(r) - 2)
    cols = np.arange(rays)
    em, e0, ep = e[i - 1, cols], e[i, cols], e[i + 1, cols]
    h = float(r[1] - r[0])
    denom = em - 2 * e0 + ep
    shift = np.where(denom > 0, 0.5 * (em - ep) / np.where(denom > 0, denom, 1.0), 0.0)
    ring = r.numpy()[i] + h * np.clip(shift, -1, 1)
    return e.mean(1), float(ring.mean())


def circle_job(
    k: int,
    sigma: float,
    rays: int,
    radii: int,
    steps: int,
    width: int,
    layers: int,
    batch: int,
    census_starts: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """Exact and trained models on K circle points: profiles, ring radii, census."""
    from memscape import datasets
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.diffusion.model import ScoreModel
    from memscape.diffusion.training import train
    from memscape.theory import circle_energy

    data_seed = job_seed(seed, "circle-data", k) % 2**31
    data = datasets.load("circle", n=k, seed=data_seed).x.to(torch.float64)
    model_seed = job_seed(seed, "circle-model", k) % 2**31
    net = ScoreModel.mlp(2, width=width, layers=layers, energy=True, seed=model_seed)
    trained = train(
        net, data.float(), steps=steps, batch=batch, seed=model_seed, progress=False
    ).model
    models = {"exact": EmpiricalDiffusion(data), "trained": trained}
    r = torch.linspace(0, 1.6, radii, dtype=torch.float64)
    theory = circle_energy(r.numpy(), sigma=sigma)
    profiles, rings, census = [], [], []
    for name, model in models.items():
        prof, ring = radial_profile(model, sigma, rays, r)
        centred = prof - prof.mean() - (theory - theory.mean())
        profiles.append(
            pd.DataFrame(
                {
                    "K": k,
                    "model": name,
                    "R": r.numpy(),
                    "energy": prof,
                    "theory": theory,
                    "gap": centred,
                }
            )
        )
        rings.append(
            {
                "K": k,
                "model": name,
                "ring_radius": ring,
                "profile_rms_gap": float(np.sqrt(np.mean(centred**2))),
                "profile_corr": float(np.corrcoef(prof, theory)[0, 1]),
            }
        )
        census.append(
            _census(
                model, name, k, sigma, data, census_starts, job_seed(seed, "circle-census", k, name)
            )
        )
    return {
        "profiles": pd.concat(profiles, ignore_index=True),
        "rings": pd.DataFrame(rings),
        "critical_points": pd.concat(census, ignore_index=True),
        "data": pd.DataFrame({"K": k, "x0": data[:, 0].numpy(), "x1": data[:, 1].numpy()}),
    }


def _census(
    model: Any, name: str, k: int, sigma: float, data: torch.Tensor, starts: int, seed: int
) -> pd.DataFrame:
    from memscape.landscape import critical_points

    g = torch.Generator().manual_seed(seed)
    # the network runs in float32: looser ‖∇E‖ tolerance, and points within 10⁻³ are one
    tol, dedupe = (1e-8, None) if name == "exact" else (1e-4, 1e-3)
    cps = critical_points(
        model,
        sigma,
        n_starts=starts,
        box=(-1.6, 1.6),
        patterns=data,
        tol=tol,
        dedupe_tol=dedupe,
        generator=g,
    )
    t = cps.table[cps.table["converged"]]
    return pd.DataFrame(
        {
            "K": k,
            "model": name,
            "x0": t["x0"].to_numpy(),
            "x1": t["x1"].to_numpy(),
            "morse_index": t["morse_index"].to_numpy(),
            "label": t["label"].to_numpy(),
            "radius": np.hypot(t["x0"].to_numpy(), t["x1"].to_numpy()),
            "nearest_distance": t["nearest_distance"].to_numpy(),
            "energy": 2 * sigma**2 * t["energy"].to_numpy(),
        }
    )


@register(
    "circle",
    config=CircleConfig,
    summary="Exact and trained diffusion energies of K circle points vs the large-K theory.",
    paper="Pham, Raya, Negri, Zaki, Ambrogioni & Krotov 2025 (circle toy)",
    quick={
        "sizes": (2, 9, 1000),
        "steps": 800,
        "width": 64,
        "rays": 32,
        "radii": 161,
        "census_starts": 100,
        "trained_tolerance": 0.08,
        "profile_tolerance": 0.2,
    },
)
def run(cfg: CircleConfig, ctx: Context) -> None:
    """One job per K; tables ``profiles``, ``rings``, ``critical_points``, ``minima``; checks."""
    from memscape.theory import circle_radius

    jobs = [
        Job(
            f"K={k}",
            {
                "k": k,
                "sigma": cfg.sigma,
                "rays": cfg.rays,
                "radii": cfg.radii,
                "steps": cfg.steps,
                "width": cfg.width,
                "layers": cfg.layers,
                "batch": cfg.batch,
                "census_starts": cfg.census_starts,
                "seed": ctx.seed,
            },
        )
        for k in cfg.sizes
    ]
    out = ctx.sweep(circle_job, jobs, "circle")
    tables = {
        name: pd.concat([o[name] for o in out.values()], ignore_index=True)
        for name in ("profiles", "rings", "critical_points", "data")
    }
    radius = circle_radius(sigma=cfg.sigma)
    rings = tables["rings"].assign(theory_radius=radius.exact, asymptotic_radius=radius.asymptotic)
    cps = tables["critical_points"].assign(
        on_ring=lambda t: (t["radius"] - radius.exact).abs() < RING_BAND
    )
    tables["critical_points"] = cps
    minima = (
        cps[cps["morse_index"] == 0]
        .groupby(["K", "model", "label", "on_ring"])
        .size()
        .rename("count")
        .reset_index()
    )
    for name in ("profiles", "critical_points", "data"):
        ctx.folder.write_table(name, tables[name])
    ctx.folder.write_table("rings", rings)
    ctx.folder.write_table("minima", minima)

    top = max(cfg.sizes)
    for r in rings[rings["K"] == top].itertuples():
        tol = cfg.exact_tolerance if r.model == "exact" else cfg.trained_tolerance
        ctx.folder.add_check(
            f"ring radius, {r.model}, K={top}", r.ring_radius, radius.exact, tol, relative=False
        )
        ctx.folder.add_check(
            f"energy profile RMS gap (const removed), {r.model}, K={top}",
            r.profile_rms_gap,
            0.0,
            EXACT_PROFILE_TOLERANCE if r.model == "exact" else cfg.profile_tolerance,
            relative=False,
        )
    ctx.folder.save_figure("energy_profiles", _profile_figure(tables["profiles"], cfg.sigma))
    ctx.folder.save_figure("minima", _minima_figure(tables["data"], cps, radius.exact))
    ctx.folder.add_section(
        "Convention",
        (
            f"σ = {cfg.sigma:g} (β = 1/σ² = {cfg.sigma**-2:.4g}): E(R) = R² + 1 − 2σ² log I₀(R/σ²) "
            "(Pham et al.'s R² + 1 − β_P⁻¹ log I₀(2β_P R), β_P = 1/(2σ²)) is the large-K limit "
            "of 2σ²(−log p_σ) + const, so model "
            "energies are multiplied by 2σ² and compared after removing their mean over R "
            f"(the additive constant). Ring radius theory {radius.exact:.4f} (root of "
            f"R = I₁(R/σ²)/I₀(R/σ²)); the asymptote 1 − σ²/2 = {radius.asymptotic:.4f} "
            "differs by ≈ 3σ⁴/8. Trained models: MLP energy (Salimans & Ho form), "
            f"{cfg.steps} steps, width {cfg.width}, {cfg.layers} layers."
        ),
    )
    ctx.folder.add_section(
        "Ring radius and energy profile", rings.to_markdown(index=False, floatfmt=".4g")
    )
    ctx.folder.add_section(
        "Minima by label (critical_points census at σ)",
        "Labels of memscape.landscape.critical_points: memory (within a third of the median "
        "nearest-neighbour distance of a training point), mixture (of 2–3 points), else "
        f"spurious; `on_ring`: within {RING_BAND} of the theory ring radius. At large K the "
        "ring minima are the generalizing states (labelled spurious: no single training "
        "point); a trained network's ring is nearly flat, so its census finds many shallow "
        "minima along it.\n\n" + minima.to_markdown(index=False),
    )


def _profile_figure(profiles: pd.DataFrame, sigma: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(profiles["K"].unique())
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        for name, grp in profiles[profiles["K"] == k].groupby("model"):
            ax.plot(grp["R"], grp["energy"] - grp["energy"].mean(), label=name)
        th = profiles[(profiles["K"] == k) & (profiles["model"] == "exact")]
        ax.plot(
            th["R"],
            th["theory"] - th["theory"].mean(),
            "k--",
            lw=1,
            label="R² + 1 − 2σ² log I₀(R/σ²)",
        )
        ax.set(xlabel="radius R", ylabel="2σ²E (mean removed)", title=f"K = {k}, σ = {sigma:g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _minima_figure(data: pd.DataFrame, cps: pd.DataFrame, ring: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(data["K"].unique())
    fig, axes = plt.subplots(2, len(ks), figsize=(3.6 * len(ks), 7), squeeze=False)
    markers = {"memory": "o", "mixture": "s", "spurious": "*"}
    angle = np.linspace(0, 2 * np.pi, 200)
    for row, name in enumerate(("exact", "trained")):
        for ax, k in zip(axes[row], ks, strict=True):
            pts = data[data["K"] == k]
            ax.scatter(pts["x0"], pts["x1"], s=4, c="0.6", label="training points")
            ax.plot(ring * np.cos(angle), ring * np.sin(angle), "k--", lw=0.8, label="theory ring")
            sel = cps[(cps["K"] == k) & (cps["model"] == name) & (cps["morse_index"] == 0)]
            for label, grp in sel.groupby("label"):
                ax.scatter(
                    grp["x0"],
                    grp["x1"],
                    marker=markers.get(label, "x"),
                    s=30,
                    label=f"{label} minima",
                )
            ax.set(aspect="equal", xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), title=f"{name}, K = {k}")
            ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return fig
