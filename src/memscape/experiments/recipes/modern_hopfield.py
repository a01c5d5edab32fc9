"""``memscape run modern-hopfield``: retrieval error, metastable states and the β bifurcation.

Ramsauer et al. 2020 ("Hopfield networks is all you need"), continuous modern
Hopfield network ``E(ξ) = −β⁻¹ log Σ_μ exp(β x_μᵀξ) + ½ξᵀξ + const``, update
``ξ ← X softmax(β Xᵀξ)`` (:class:`memscape.ModernHopfield`). Three measurements:

* **one-step retrieval error** ``‖f(ξ) − x_i‖`` against β for memories with an
  exactly prescribed separation Δ (Def. 1; data set ``equiseparated``), with the
  Theorem 5 bound ``2(K − 1) exp(−β(Δ − 2‖ξ − x_i‖M)) M``
  (:func:`memscape.theory.hopfield_retrieval_bound`) drawn; checks: the bound holds
  for every query, and the error decays at the rate Δ in β;
* **metastable-state size** (softmax weights above a threshold at the fixed point
  reached from each stored pattern) against β: K (the global average) for small
  β, 1 (single memories) for large β;
* **the bifurcation of the global fixed point**: for centred memories (data set
  ``gaussian``) ξ = 0 is a fixed point with Hessian ``I − β Cov``, which loses
  stability at ``β_c = 1/λ_max(Cov)`` (:func:`memscape.theory.critical_beta`),
  **measured** by descent dynamics with no Hessian
  (:func:`memscape.memories.modern.critical_beta_by_descent`). Continuation in β and the
  zero of λ_min of the Hessian at the mean solve the very linearization ``I − β Cov``
  the formula states: they are reported as identities.

**Checked against:** :func:`memscape.theory.hopfield_retrieval_bound` (every query
within the bound, decay rate Δ in β) and :func:`memscape.theory.critical_beta` (measured
by descent dynamics; continuation and the Hessian at the mean as identities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.numeric import level_crossing

pd = lazy.load("pandas")
torch = lazy.load("torch")


@dataclass
class ModernHopfieldConfig:
    """Options of ``modern-hopfield`` (defaults: about a minute on 2 CPU cores)."""

    memories: int = option(16, "K of the retrieval-error sweep", ge=2)
    dim: int = option(32, "dimension d of the retrieval-error sweep (> K)", ge=3)
    separations: tuple[float, ...] = option(
        (0.25, 0.5, 1.0), "separations Δ of unit-norm memories (pairwise xᵀy = 1 − Δ)", gt=0, le=1
    )
    radii: tuple[float, ...] = option((0.0, 0.05), "distances ‖ξ − x_i‖ of the queries", ge=0)
    betas: tuple[float, ...] = option(
        tuple(round(float(b), 4) for b in np.geomspace(0.5, 24.0, 16)),
        "β of the retrieval-error sweep (keep β·Δ ≲ 25: float64 resolution)",
        gt=0,
    )
    data_points: int = option(24, "K of the 2-D Gaussian data (metastable, bifurcation)", ge=3)
    beta_factors: tuple[float, ...] = option(
        (0.25, 0.5, 0.9, 1.1, 1.5, 2, 3, 5, 8, 12, 20, 32, 50, 80),
        "β/β_c of the metastable-size sweep",
        gt=0,
    )
    threshold: float = option(0.01, "softmax weight counted in the metastable size", gt=0)
    stop_factor: float = option(4.0, "continuation runs to β = stop_factor·β_c", gt=1)
    stability_steps: int = option(5000, "updates per stability test of the mean", ge=10)
    bisections: int = option(14, "bisections of β in the stability measurement", ge=1)
    beta_c_tolerance: float = option(0.002, "allowed relative gap of β_c by descent", gt=0)

    def validate(self) -> None:
        """The memories need one spare dimension."""
        if self.dim <= self.memories:
            raise ValueError(f"dim must be > memories ({self.memories}), got {self.dim}")


def retrieval_job(delta: float, radius: float, betas: list, K: int, d: int, seed: int) -> dict:
    """One update from a query at distance ``radius`` of each memory, for every β.

    One row per (β, memory): error ``‖f(ξ) − x_i‖`` and the Theorem 5 bound
    (:meth:`memscape.ModernHopfield.retrieval_error_bound`).
    """
    x = ms.datasets.load("equiseparated", size=K, dim=d, delta=delta).x
    u = torch.randn(K, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    xi = x + radius * u / u.norm(dim=1, keepdim=True)
    rows = []
    for beta in betas:
        net = ms.ModernHopfield(x, beta=beta)
        cols = {"error": (net.update(xi) - x).norm(dim=1), "separation": net.separation()}
        cols["bound"] = net.retrieval_error_bound(xi, torch.arange(K))
        table = {"beta": beta, "memory": range(K), **{c: v.numpy() for c, v in cols.items()}}
        rows.append(pd.DataFrame(table))
    return {"retrieval": pd.concat(rows, ignore_index=True).assign(delta=delta, radius=radius)}


def metastable_job(factor: float, K: int, threshold: float, data_seed: int, seed: int) -> dict:
    """Descend from each stored point at β = factor·β_c; metastable size at its fixed point."""
    x = ms.datasets.load("gaussian", size=K, data_seed=data_seed).x
    beta = factor * ms.theory.critical_beta(x)
    net = ms.ModernHopfield(x, beta=beta)
    res = ms.descend(net, x.clone(), method="update", tol=1e-12, max_steps=5000)
    cols = {"size": net.metastable_size(res.x, threshold), "norm": res.x.norm(dim=1)}
    cols["converged"] = res.converged
    table = pd.DataFrame({"start": range(K), **{c: v.numpy() for c, v in cols.items()}})
    return {"metastable": table.assign(beta_factor=factor, beta=beta)}


def stability_job(K: int, steps: int, bisections: int, data_seed: int, seed: int) -> dict:
    """β where the mean stops attracting, by descent dynamics (memories.modern)."""
    x = ms.datasets.load("gaussian", size=K, data_seed=data_seed).x
    rows = ms.memories.modern.critical_beta_by_descent(x, steps=steps, bisections=bisections,
                                                       generator=seed)  # fmt: skip
    return {"stability": pd.DataFrame(rows)}


def bifurcation_job(K: int, stop_factor: float, data_seed: int, seed: int) -> dict:
    """Continuation from ξ = 0 over β, and λ_min of the Hessian at the mean across β."""
    x = ms.datasets.load("gaussian", size=K, data_seed=data_seed).x
    beta_c = ms.theory.critical_beta(x)
    diagram = ms.continuation(
        lambda beta: ms.ModernHopfield(x, beta=beta),
        "beta",
        start=0.5 * beta_c,
        stop=stop_factor * beta_c,
        starts=torch.zeros(1, 2, dtype=torch.float64),
        reseed=0,
    )
    betas = np.linspace(0.5, 1.5, 11) * beta_c
    hess = [ms.ModernHopfield(x, beta=b).hessian(x.mean(0, keepdim=True))[0] for b in betas]
    lam = [float(torch.linalg.eigvalsh(h)[0]) for h in hess]
    bif = diagram.bifurcations.drop(columns=["branches"], errors="ignore")
    scan = pd.DataFrame({"beta": betas, "lambda_min": lam})
    return {"branches": diagram.branches, "bifurcations": bif, "hessian_scan": scan}


@register(
    "modern-hopfield",
    config=ModernHopfieldConfig,
    summary="Modern Hopfield: retrieval error vs Theorem 5, metastable states, β_c = 1/λ_max.",
    paper="Ramsauer et al. 2020",
    quick={
        "separations": (0.5, 1.0),
        "radii": (0.0,),
        "betas": (1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 20.0),
        "beta_factors": (0.5, 0.9, 2, 8, 32, 80),
        "stop_factor": 2.0,
        "stability_steps": 2000,
        "bisections": 11,
    },
    figures={
        "modern_hopfield": "retrieval error and bound against β; metastable-state size "
        "against β; the bifurcation diagram in β with β_c marked",
    },
)
def run(cfg: ModernHopfieldConfig, ctx: Context) -> None:
    """Retrieval, metastable and bifurcation sweeps; tables, figure and checks."""
    K, T = cfg.data_points, ms.theory
    grid, betas = {"delta": cfg.separations, "radius": cfg.radii}, list(cfg.betas)
    res = ctx.grid(retrieval_job, grid, name="retrieval", betas=betas, K=cfg.memories, d=cfg.dim)
    retrieval = ctx.table("retrieval", res.table("retrieval"))
    data, factors = {"K": K, "data_seed": ctx.seed}, {"factor": cfg.beta_factors}
    res = ctx.grid(metastable_job, factors, name="metastable", threshold=cfg.threshold, **data)
    meta = ctx.table("metastable", res.table("metastable"))
    res = ctx.grid(bifurcation_job, [{}], name="bifurcation", stop_factor=cfg.stop_factor, **data)
    bif = {name: ctx.table(name, table) for name, table in res["bifurcation"].items()}
    res = ctx.grid(stability_job, [{}], name="stability", steps=cfg.stability_steps,
                   bisections=cfg.bisections, **data)  # fmt: skip
    bracket = ctx.table("stability", res.table("stability")).iloc[-1][["low", "high"]]
    bracket = bracket.to_numpy(float)
    points = ms.datasets.load("gaussian", size=K, data_seed=ctx.seed).x
    beta_c = T.critical_beta(points)
    axis = torch.linalg.eigh(points.T @ points).eigenvectors[:, -1].numpy()  # top principal axis

    ok = retrieval["bound"] >= retrieval["error"]
    ctx.check("fraction of queries within the Theorem 5 bound", ok.mean(), 1.0, 0.0, relative=False)
    for delta, grp in retrieval[retrieval["radius"] == 0].groupby("delta"):
        # error → (K−1)e^{−βΔ}·const once (K−1)e^{−βΔ} ≪ 1: fit there, above float64 noise
        fit = grp[(grp["beta"] * delta >= 6) & (grp["error"] > 1e-12)]
        if fit["beta"].nunique() >= 3:
            slope = np.polyfit(fit["beta"], np.log(fit["error"]), 1)[0]
            ctx.check(f"decay rate of the error in β, Δ = {delta:g}", -slope, delta, 0.02)
    if len(below := meta[meta["beta_factor"] < 1]):
        size = float(below["size"].mean()) / K
        ctx.check("metastable size / K below β_c (global average)", size, 1.0, 0.0, relative=False)
    forks = bif["bifurcations"][bif["bifurcations"]["kind"] == "pitchfork"]
    first = float(forks["parameter"].min()) if len(forks) else math.nan
    ctx.check(f"β_c by descent: perturbations of the mean grow (bracket {bracket[0]:.5g}–"
              f"{bracket[1]:.5g}) vs 1/λ_max(Cov)", bracket.mean(), beta_c,
              cfg.beta_c_tolerance)  # fmt: skip
    ctx.check("β of the first pitchfork (continuation) vs 1/λ_max(Cov)", first, beta_c, 0.01,
              identity=True)  # fmt: skip
    zero = level_crossing(bif["hessian_scan"]["beta"], bif["hessian_scan"]["lambda_min"], 0.0)
    ctx.check("β where λ_min(Hessian at the mean) = 0 vs 1/λ_max(Cov)", zero, beta_c, 0.01,
              identity=True)  # fmt: skip

    with ctx.figure("modern_hopfield", 1, 3, figsize=(16, 4.6)) as (_, (ax, ax2, ax3)):
        for i, ((delta, r), grp) in enumerate(retrieval.groupby(["delta", "radius"])):
            s = grp.groupby("beta", as_index=False)["error"].max()
            label = f"Δ = {delta:g}, r = {r:g}"
            ax.semilogy(s["beta"], s["error"].clip(lower=1e-17), "o", c=f"C{i}", ms=3, label=label)
            b = np.geomspace(float(s["beta"].min()), float(s["beta"].max()), 100)
            bound = T.hopfield_retrieval_bound(torch.from_numpy(b), delta, cfg.memories, 1.0, r)
            ax.semilogy(b, bound.numpy(), "--", c=f"C{i}", lw=1)
        ax.plot([], [], "k--", lw=1, label="Theorem 5 bound")
        ax.set(xlabel="β", ylabel="one-step error ‖f(ξ) − x_i‖")
        ax.set_title(f"Retrieval error (K = {cfg.memories})")
        ax.legend(fontsize=7)
        m = meta.groupby("beta", as_index=False)["size"].agg(["mean", "min", "max"])
        ax2.fill_between(m["beta"], m["min"], m["max"], alpha=0.2)
        ax2.loglog(m["beta"], m["mean"], "o-", ms=4, label="mean over starts (band: min–max)")
        ax2.axvline(beta_c, c="k", ls="--", lw=1, label=f"β_c = 1/λ_max = {beta_c:.3f}")
        ax2.axhline(K, c="gray", ls=":", lw=1)
        ax2.set(xlabel="β", ylabel=f"metastable size (weights > {cfg.threshold})")
        ax2.set_title(f"Metastable states ({K} points in 2-D)")
        ax2.legend(fontsize=7)
        diagram = ms.BifurcationDiagram("beta", False, bif["branches"], bif["bifurcations"])
        ms.plot_bifurcation(diagram, ax3, y=axis, ylabel="critical point on the top principal axis")
        ax3.axvline(beta_c, c="k", ls=":", lw=1)
        ax3.axvspan(*bracket, color="C2", alpha=0.3)
        ax3.set_title(f"Bifurcation of the global fixed point (dotted: β_c = {beta_c:.3f}, "
                      "band: by descent)", fontsize=9)  # fmt: skip
    summary = retrieval.groupby(["delta", "radius", "beta"], as_index=False).agg(
        error=("error", "max"), bound=("bound", "min")
    )
    ctx.section(
        "One-step retrieval error against β and Δ",
        f"K = {cfg.memories} unit-norm memories with every separation equal to Δ; queries at "
        "distance r from their memory; one update. Theorem 5 (Ramsauer et al. 2020): "
        "‖f(ξ) − x_i‖ ≤ 2(K − 1) exp(−β(Δ − 2rM)) M. Largest error and smallest bound per row:",
        summary,
    )
    sizes = {f"{s}_size": ("size", s) for s in ("mean", "min", "max")}
    msum = meta.groupby("beta_factor", as_index=False).agg(beta=("beta", "first"), **sizes)
    ctx.section(
        "Metastable-state size against β",
        f"{K} centred 2-D Gaussian points; from each, the update is iterated to its fixed "
        f"point; size = number of softmax weights above {cfg.threshold}. "
        f"β_c = 1/λ_max(Cov) = {beta_c:.4f}.",
        msum,
    )
    ctx.section(
        "Bifurcation of the global fixed point",
        "Pseudo-arclength continuation in β from ξ = 0 (memscape.continuation). ξ = 0 loses "
        f"stability where an eigenvalue of I − β Cov crosses zero, β_c = {beta_c:.4f}; by "
        f"descent dynamics ({cfg.stability_steps} updates, {cfg.bisections} bisections): "
        f"β_c ∈ [{bracket[0]:.5g}, {bracket[1]:.5g}]. Without symmetry the crossing is "
        "generically transcritical (an eigenvalue through zero without a turn: 'pitchfork'); a "
        "subcritical branch turns back at a fold below β_c. Detected bifurcations:",
        bif["bifurcations"],
    )
