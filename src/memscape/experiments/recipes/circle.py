"""``memscape run circle``: the energy landscape of diffusion models of K points on the unit circle.

Reproduces the 2-D circle toy of Pham, Raya, Negri, Zaki, Ambrogioni & Krotov 2025
("Memorization to generalization: emergence of diffusion models from associative
memory", arXiv:2505.21777): with K training points uniform on the unit circle a
diffusion model stores each point as a minimum (small K: memorization), grows minima
that are not training points as K increases, and for large K its minima fill a ring
(generalization). In the large-K limit the exact energy at radius R is

    E(R) = R² + 1 − 2σ² log I₀(R/σ²)   (Pham et al.: R² + 1 − β_P⁻¹ log I₀(2β_P R), β_P = 1/(2σ²)),

i.e. ``2σ² (−log p_σ) + const`` (memscape's β = 1/σ² is 2β_P), so model energies are
shown in units of 2σ²; its ring of minima has radius R = I₁(R/σ²)/I₀(R/σ²) ≈ 1 − σ²/2.

For each K (training points from the registered ``circle`` data set) the exact
empirical model (:class:`~memscape.EmpiricalDiffusion`) and a trained MLP energy model
(``ScoreModel.mlp(energy=True)``, :func:`memscape.train`) get the angle-averaged energy
profile and ring radius (:func:`memscape.landscape.radial_profile`) and the census of
critical points at σ (:func:`memscape.landscape.critical_points`: minima labelled
memory / mixture / spurious; spurious minima on the ring are the generalized states).

Checked against: the ring radius root of :func:`memscape.theory.circle_radius` and the
energy profile :func:`memscape.theory.circle_energy` (up to its additive constant), for
the exact and the trained model at the largest K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.runs.sweep import job_seed

pd = lazy.load("pandas")
torch = lazy.load("torch")

RING_BAND = 0.1  #: minima within this distance of the theory ring radius count as on the ring
EXACT_PROFILE_TOLERANCE = 1e-3  #: RMS gap of the exact model's profile (finite-K fluctuations)
RING = "ring (generalized)"  #: state of a minimum on the ring that is no training point


@dataclass
class CircleConfig:
    """Options of ``circle``."""

    sizes: tuple[int, ...] = option((2, 9, 1000), "training-set sizes K on the circle", ge=1)
    sigma: float = option(0.3, "noise level σ (β = 1/σ² > 2 for a ring)", gt=0, lt=1 / math.sqrt(2))
    rays: int = option(64, "angles of the radial energy profiles", ge=1)
    radii: int = option(301, "radii in [0, 1.6] per ray", ge=3)
    steps: int = option(3000, "training steps of the MLP energy model", ge=1)
    width: int = option(128, "MLP width", ge=1)
    layers: int = option(3, "MLP layers", ge=1)
    batch: int = option(256, "training batch", ge=1)
    census_starts: int = option(300, "random starts of the critical-point census", ge=1)
    exact_tolerance: float = option(0.01, "allowed |ring radius − theory|, exact model", gt=0)
    profile_tolerance: float = option(0.05, "allowed RMS profile gap, trained model", gt=0)
    trained_tolerance: float = option(0.06, "allowed |ring radius − theory|, trained", gt=0)


def circle_job(K: int, sigma: float, rays: int, radii: int, steps: int, width: int,
               layers: int, batch: int, census_starts: int, seed: int) -> dict:  # fmt: skip
    """Exact and trained models of K circle points: profiles, ring radii, census, data."""
    data_seed, model_seed = (job_seed(seed, part) % 2**31 for part in ("data", "model"))
    data = ms.datasets.load("circle", n=K, seed=data_seed).x.double()
    net = ms.ScoreModel.mlp(2, width=width, layers=layers, energy=True, seed=model_seed)
    fit = ms.train(net, data.float(), steps=steps, batch=batch, seed=model_seed, progress=False)
    r = np.linspace(0, 1.6, radii)
    theory = ms.theory.circle_energy(r, sigma=sigma)
    out: dict[str, list] = {"profiles": [], "rings": [], "critical_points": []}
    for name, model in {"exact": ms.EmpiricalDiffusion(data), "trained": fit.model}.items():
        prof = ms.landscape.radial_profile(model, sigma, r, rays)
        e = 2 * sigma**2 * prof.energy  # circle units 2σ²E
        gap = e - e.mean() - (theory - theory.mean())  # the additive constant removed
        cols = {"R": r, "energy": e, "theory": theory, "gap": gap}
        out["profiles"].append(pd.DataFrame({"K": K, "model": name, **cols}))
        out["rings"].append(pd.DataFrame([{
            "K": K, "model": name, "ring_radius": prof.ring_radius,
            "profile_rms_gap": float(np.sqrt(np.mean(gap**2))),
            "profile_corr": float(np.corrcoef(e, theory)[0, 1])}]))  # fmt: skip
        # the network runs in float32: looser ‖∇E‖ tolerance, and points within 10⁻³ are one
        tol, dedupe = (1e-8, None) if name == "exact" else (1e-4, 1e-3)
        g = torch.Generator().manual_seed(job_seed(seed, "census", name))
        cps = ms.landscape.critical_points(
            model, sigma, n_starts=census_starts, box=(-1.6, 1.6), patterns=data, tol=tol,
            dedupe_tol=dedupe, generator=g)  # fmt: skip
        t = cps.table[cps.table["converged"]]
        out["critical_points"].append(pd.DataFrame({
            "K": K, "model": name, "x0": t["x0"], "x1": t["x1"],
            "morse_index": t["morse_index"], "label": t["label"],
            "radius": np.hypot(t["x0"], t["x1"]), "nearest_distance": t["nearest_distance"],
            "energy": 2 * sigma**2 * t["energy"]}))  # fmt: skip
    tables = {k: pd.concat(v, ignore_index=True) for k, v in out.items()}
    x = data.numpy()
    return {**tables, "data": pd.DataFrame({"K": K, "x0": x[:, 0], "x1": x[:, 1]})}


@register(
    "circle",
    config=CircleConfig,
    summary="Exact and trained diffusion energies of K circle points vs the large-K theory.",
    paper="Pham, Raya, Negri, Zaki, Ambrogioni & Krotov 2025 (circle toy)",
    quick={"sizes": (2, 9, 1000), "steps": 800, "width": 64, "rays": 32, "radii": 161,
           "census_starts": 100, "trained_tolerance": 0.08, "profile_tolerance": 0.2},
    figures={"energy_profiles": "angle-averaged energy 2σ²E(R) of each model against the "
             "large-K Bessel form, one panel per K",
             "minima": "training points, theory ring and minima by kind, exact and trained "
             "model per K"},
)  # fmt: skip
def run(cfg: CircleConfig, ctx: Context) -> None:
    """One job per K; tables ``profiles``, ``rings``, ``critical_points``, ``minima``; checks."""
    res = ctx.grid(circle_job, {"K": cfg.sizes}, name="circle", sigma=cfg.sigma, rays=cfg.rays,
                   radii=cfg.radii, steps=cfg.steps, width=cfg.width, layers=cfg.layers,
                   batch=cfg.batch, census_starts=cfg.census_starts)  # fmt: skip
    radius = ms.theory.circle_radius(sigma=cfg.sigma)
    profiles = ctx.table("profiles", res.table("profiles"))
    data = ctx.table("data", res.table("data"))
    rings = ctx.table("rings", res.table("rings").assign(
        theory_radius=radius.exact, asymptotic_radius=radius.asymptotic))  # fmt: skip
    cps = res.table("critical_points")
    on_ring = (cps["radius"] - radius.exact).abs() < RING_BAND
    state = cps["label"].where(~(on_ring & (cps["label"] == "spurious")), RING)
    cps = ctx.table("critical_points", cps.assign(on_ring=on_ring, state=state))
    keys = ["K", "model", "label", "on_ring", "state"]
    minima = cps[cps["morse_index"] == 0].groupby(keys).size().rename("count").reset_index()
    ctx.table("minima", minima)

    top = max(cfg.sizes)
    for r in rings[rings["K"] == top].itertuples():
        exact = r.model == "exact"
        tol = cfg.exact_tolerance if exact else cfg.trained_tolerance
        ctx.check(f"ring radius, {r.model}, K={top}", r.ring_radius, radius.exact, tol,
                  relative=False)  # fmt: skip
        tol = EXACT_PROFILE_TOLERANCE if exact else cfg.profile_tolerance
        ctx.check(f"energy profile RMS gap (const removed), {r.model}, K={top}",
                  r.profile_rms_gap, 0.0, tol, relative=False)  # fmt: skip

    ks = sorted(cfg.sizes)
    with ctx.figure("energy_profiles", 1, len(ks), figsize=(4.2 * len(ks), 3.6)) as (_, axes):
        for ax, k in zip(np.atleast_1d(axes), ks, strict=True):
            for name, grp in profiles[profiles["K"] == k].groupby("model"):
                ax.plot(grp["R"], grp["energy"] - grp["energy"].mean(), label=name)
            th = profiles[(profiles["K"] == k) & (profiles["model"] == "exact")]
            ax.plot(th["R"], th["theory"] - th["theory"].mean(), "k--", lw=1,
                    label="R² + 1 − 2σ² log I₀(R/σ²)")  # fmt: skip
            ax.set(xlabel="radius R", ylabel="2σ²E (mean removed)",
                   title=f"K = {k}, σ = {cfg.sigma:g}")  # fmt: skip
            ax.legend(fontsize=7)
    markers = {"memory": "o", "mixture": "s", "spurious": "*", RING: "D"}
    angle = np.linspace(0, 2 * np.pi, 200)
    with ctx.figure("minima", 2, len(ks), figsize=(3.6 * len(ks), 7)) as (_, axes):
        for row, name in zip(np.reshape(axes, (2, -1)), ("exact", "trained"), strict=True):
            for ax, k in zip(row, ks, strict=True):
                pts = data[data["K"] == k]
                ax.scatter(pts["x0"], pts["x1"], s=4, c="0.6", label="training points")
                ax.plot(radius.exact * np.cos(angle), radius.exact * np.sin(angle), "k--", lw=0.8,
                        label="theory ring")  # fmt: skip
                sel = cps[(cps["K"] == k) & (cps["model"] == name) & (cps["morse_index"] == 0)]
                for st, grp in sel.groupby("state"):
                    ax.scatter(grp["x0"], grp["x1"], marker=markers.get(st, "x"), s=30,
                               label=f"{st} minima")  # fmt: skip
                ax.set(aspect="equal", xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), title=f"{name}, K = {k}",
                       xlabel="x0", ylabel="x1")  # fmt: skip
                ax.legend(fontsize=6, loc="lower left")

    ctx.section("Convention", (
        f"σ = {cfg.sigma:g} (β = 1/σ² = {cfg.sigma**-2:.4g}): E(R) = R² + 1 − 2σ² log I₀(R/σ²) "
        "(Pham et al.'s R² + 1 − β_P⁻¹ log I₀(2β_P R), β_P = 1/(2σ²)) is the large-K limit of "
        "2σ²(−log p_σ) + const, so model energies are multiplied by 2σ² and compared after "
        "removing their mean over R (the additive constant). Ring radius theory "
        f"{radius.exact:.4f} (root of R = I₁(R/σ²)/I₀(R/σ²)); the asymptote 1 − σ²/2 = "
        f"{radius.asymptotic:.4f} differs by ≈ 3σ⁴/8. Trained models: MLP energy (Salimans & Ho form), "
        f"{cfg.steps} steps, width {cfg.width}, {cfg.layers} layers."))  # fmt: skip
    ctx.section("Ring radius and energy profile", rings.to_markdown(index=False, floatfmt=".4g"))
    ctx.section("Minima by label (critical_points census at σ)", (
        "Labels of memscape.landscape.critical_points: memory (within a third of the median "
        "nearest-neighbour distance of a training point), mixture (of 2–3 points), else "
        f"spurious; `on_ring`: within {RING_BAND} of the theory ring radius. `state` calls "
        f"the spurious minima on the ring '{RING}': at large K they are the generalizing "
        "states (near no single training point). A trained network's ring is nearly flat, "
        "so its census finds many shallow minima along it."), minima)  # fmt: skip
