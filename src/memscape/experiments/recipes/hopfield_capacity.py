"""``memscape run hopfield-capacity``: classical Hopfield retrieval against load α = K/N.

Reproduces the storage capacity of the Hebbian Hopfield network (Amit,
Gutfreund & Sompolinsky 1985, "AGS"): below α_c ≈ 0.138 a stored pattern is
retrieved with the replica-symmetric T = 0 overlap m(α) (m(α_c) ≈ 0.967); above
it retrieval collapses. Three measurements:

* final overlap of asynchronous zero-temperature dynamics started at a stored
  pattern, against α for several N, with the AGS curve
  :func:`memscape.theory.ags_overlap` (compared at α ≤ 0.1, where finite-size
  effects are small);
* the fraction of stored patterns that are exact fixed points
  (:func:`memscape.memories.fixed_points`) against the signal-to-noise estimate
  ``exp(−N Φ(−1/√α))`` (:func:`memscape.theory.fixed_point_probability`); the check
  compares the load α_½ at which half the patterns are fixed points;
* the Hebbian, pseudo-inverse (Personnaz et al. 1985) and Storkey (1997) rules
  side by side at one N.

**Checked against:** the AGS overlap :func:`memscape.theory.ags_overlap` at α ≤ 0.1
and the signal-to-noise fixed-point fraction
(:func:`memscape.theory.fixed_point_probability`) through the load α_½ where half the
patterns are fixed points.
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

RULES = ("hebbian", "pseudoinverse", "storkey")


@dataclass
class HopfieldCapacityConfig:
    """Options of ``hopfield-capacity`` (defaults: a few minutes on 2 CPU cores)."""

    sizes: tuple[int, ...] = option((500, 1000, 2000, 4000), "network sizes N (Hebbian)", ge=2)
    alphas: tuple[float, ...] = option(
        (0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2), "loads α = K/N of the retrieval sweep", gt=0
    )
    trials: int = option(1, "independent pattern sets per (N, α)", ge=1)
    probes: int = option(10, "stored patterns retrieved per pattern set", ge=1)
    fixed_alphas: tuple[float, ...] = option(
        tuple(round(0.04 + 0.01 * i, 2) for i in range(11)),
        "loads of the fixed-point sweep (cheap: one update per pattern)",
        gt=0,
    )
    fixed_trials: int = option(3, "pattern sets per (N, α) of the fixed-point sweep", ge=1)
    rules: tuple[str, ...] = option(RULES, "learning rules compared at rule_size", choices=RULES)
    rule_size: int = option(500, "N of the learning-rule comparison", ge=2)
    rule_alphas: tuple[float, ...] = option(
        (0.05, 0.1, 0.14, 0.2, 0.3, 0.5, 0.7), "loads of the learning-rule comparison", gt=0
    )
    mode: str = option("async", "update mode", choices=("async", "sync"))
    flip: float = option(0.0, "fraction of cue bits flipped", ge=0, lt=0.5)
    max_sweeps: int = option(20, "step cap (sweeps)", ge=1)
    tolerance: float = option(
        0.01, "allowed |m − m_AGS| at α ≤ 0.1 (0.01 at N = 2000; larger for small N)", gt=0
    )


def _patterns(k: int, n: int, g):
    """``(k, n)`` random ±1 patterns (float64) from a data seed drawn from ``g``."""
    seed = int(torch.randint(2**62, (), generator=g))
    return ms.datasets.load("binary_patterns", size=k, dim=n, data_seed=seed).x


def retrieval_job(rule, n, alpha, trial, mode, flip, max_sweeps, probes, seed) -> dict:
    """Store ``round(αN)`` patterns; retrieve ``probes`` of them from (corrupted) copies: one row
    per probe (final overlap ``m = sᵀξ/N``, convergence, whether the pattern is a fixed point)."""
    g = torch.Generator().manual_seed(seed)
    k = max(1, round(alpha * n))
    patterns = _patterns(k, n, g)
    net = ms.ClassicalHopfield(patterns, rule=rule)
    target = patterns[: min(probes, k)]
    cue = target.clone()
    if flip > 0:
        cue[torch.rand(cue.shape, generator=g, dtype=torch.float64) < flip] *= -1
    res = net.retrieve(cue, mode=mode, max_steps=max_sweeps, generator=g)
    cols = {"overlap": (res.x * target).sum(1) / n, "converged": res.converged}
    cols["fixed_point"] = ms.memories.fixed_points(net, target, mode="sync")
    table = pd.DataFrame({"pattern": range(len(target)), **{c: v.numpy() for c, v in cols.items()}})
    return {"patterns": table.assign(N=n, alpha=alpha, K=k, rule=rule, trial=trial)}


def fixed_point_job(n: int, alpha: float, trial: int, seed: int) -> dict:
    """The stored patterns of a Hebbian network that are exact fixed points (one row)."""
    k = max(1, round(alpha * n))
    patterns = _patterns(k, n, torch.Generator().manual_seed(seed))
    fixed = ms.memories.fixed_points(ms.ClassicalHopfield(patterns), patterns, mode="sync")
    row = {"N": n, "alpha": alpha, "K": k, "trial": trial, "fixed": int(fixed.sum())}
    return {"fixed": pd.DataFrame([{**row, "fraction": float(fixed.double().mean())}])}


@register(
    "hopfield-capacity",
    config=HopfieldCapacityConfig,
    summary="Classical Hopfield overlap and fixed points against load α = K/N; α_c ≈ 0.138.",
    paper="Amit, Gutfreund & Sompolinsky 1985 (Hopfield 1982; Storkey 1997)",
    quick={
        "sizes": (500, 2000),
        "alphas": (0.05, 0.1, 0.14, 0.2),
        "fixed_alphas": (0.06, 0.08, 0.1, 0.12, 0.14),
        "fixed_trials": 12,  # N = 500 holds 30–70 patterns a set: α_½ needs the pooling
        "rule_size": 200,
        "rule_alphas": (0.1, 0.2, 0.5),
        "max_sweeps": 10,
    },
    figures={
        "overlap_vs_alpha": "final overlap and fraction of patterns that are fixed points "
        "against the load α, with the theory curves; the three learning rules",
    },
)
def run(cfg: HopfieldCapacityConfig, ctx: Context) -> None:
    """Retrieval, fixed-point and learning-rule sweeps; tables, figure and checks."""
    T = ms.theory
    points = [(r, n, a) for r in ("hebbian",) for n in cfg.sizes for a in cfg.alphas]
    points += [(r, cfg.rule_size, a) for r in cfg.rules for a in cfg.rule_alphas]
    trials = range(cfg.trials)
    grid = [{"rule": r, "n": n, "alpha": a, "trial": t} for r, n, a in points for t in trials]
    grid = list({tuple(p.values()): p for p in grid}.values())  # rule_size may repeat a point
    dynamics = {k: getattr(cfg, k) for k in ("mode", "flip", "max_sweeps", "probes")}
    res = ctx.grid(retrieval_job, grid, name="retrieve", **dynamics)
    table = res.table("patterns")
    table["ags_overlap"] = T.ags_overlap(table["alpha"].to_numpy())
    ctx.table("patterns", table)
    agg = {"K": ("K", "first"), "overlap": ("overlap", "mean"), "overlap_std": ("overlap", "std")}
    agg |= {"converged": ("converged", "mean"), "fixed_fraction": ("fixed_point", "mean")}
    summary = table.groupby(["rule", "N", "alpha"], as_index=False).agg(**agg)
    summary["ags_overlap"] = T.ags_overlap(summary["alpha"].to_numpy())
    ctx.table("summary", summary)
    axes = {"n": cfg.sizes, "alpha": cfg.fixed_alphas, "trial": list(range(cfg.fixed_trials))}
    fixed = ctx.grid(fixed_point_job, axes, name="fixed").table("fixed")
    nk = fixed[["N", "K"]].itertuples(index=False)
    fixed["theory"] = [T.fixed_point_probability(int(n), k / n).probability for n, k in nk]
    ctx.table("fixed_points", fixed)
    agg = {"K": ("K", "first"), "fixed": ("fixed", "sum"), "fraction": ("fraction", "mean")}
    fsum = fixed.groupby(["N", "alpha"], as_index=False).agg(**agg, theory=("theory", "mean"))

    heb = summary[(summary["rule"] == "hebbian") & summary["N"].isin(cfg.sizes)]
    for n, grp in heb[heb["alpha"] <= 0.1 + 1e-12].groupby("N"):
        worst = grp.iloc[int(np.argmax((grp["overlap"] - grp["ags_overlap"]).abs().to_numpy()))]
        name = f"overlap vs AGS m(α) at α = {worst['alpha']:g}, N = {n} (worst α ≤ 0.1)"
        ctx.check(name, worst["overlap"], worst["ags_overlap"], cfg.tolerance, relative=False)
    for n, grp in fsum.groupby("N"):
        measured = level_crossing(grp["alpha"], grp["fraction"], 0.5)
        if np.isfinite(measured):
            # The per-pattern crosstalk variance fluctuates (relative spread √(2/K)) and
            # correlates its bits, shifting α_½ up by O(N^-½): 7 % at N = 500, 2 % at 2000.
            # exp(−N Φ(−1/√α)) = ½ ⇔ per-bit error ln 2/N: the n = 2 dense capacity over N
            half = T.dense_capacity(int(n), 2, error=math.log(2) / n) / n
            ctx.check(f"α_½ (half the patterns fixed), N = {n}", measured, half, 2 / np.sqrt(n))

    alpha_c, m_c = T.ags_critical_load()
    A = "load α = K/N"
    with ctx.figure("overlap_vs_alpha", 1, 3, figsize=(16, 4.4)) as (_, (ax, ax2, ax3)):
        a = np.linspace(1e-3, alpha_c, 400)
        heb = heb[heb["alpha"].isin(cfg.alphas)]
        zoom = ax.inset_axes((0.1, 0.1, 0.45, 0.4))
        for n, grp in heb.groupby("N"):
            x, y, err = grp["alpha"], grp["overlap"], grp["overlap_std"].fillna(0)
            ax.errorbar(x, y, err, marker="o", ms=3, capsize=2, label=f"N = {n}")
            zoom.plot(x[x <= alpha_c], y[x <= alpha_c], "o", ms=3)
        for axis, lw in ((ax, 1.5), (zoom, 1)):
            axis.plot(a, T.ags_overlap(a), "k-", lw=lw, label="AGS m(α)")
        ax.plot([alpha_c, alpha_c], [0, m_c], "k:", lw=1)
        ax.axvline(alpha_c, ls="--", c="gray", lw=0.8, label=f"α_c = {alpha_c:.3f}")
        lowest = min(0.0, float(heb["overlap"].min()))
        ax.set(xlabel=A, ylabel="final overlap m", title="Hebbian retrieval", ylim=(lowest, 1.02))
        ax.legend(fontsize=7, loc="lower right")
        zoom.set(ylim=(0.95, 1.002), xlim=(0, alpha_c * 1.02))
        zoom.tick_params(labelsize=6)
        for i, (n, grp) in enumerate(fsum.groupby("N")):
            ax2.plot(grp["alpha"], grp["fraction"], "o", c=f"C{i}", ms=4, label=f"N = {n}")
            a = np.linspace(float(grp["alpha"].min()), float(grp["alpha"].max()), 200)
            p = [T.fixed_point_probability(int(n), x).probability for x in a]
            ax2.plot(a, p, "-", c=f"C{i}", lw=1)
        ax2.plot([], [], "k-", lw=1, label="exp(−N Φ(−1/√α))")
        ax2.set(xlabel=A, ylabel="fraction of patterns that are fixed points")
        ax2.set_title("Exact fixed points (Hebbian)")
        ax2.legend(fontsize=8)
        for i, (rule, grp) in enumerate(summary[summary["N"] == cfg.rule_size].groupby("rule")):
            ax3.plot(grp["alpha"], grp["overlap"], "o-", c=f"C{i}", ms=3, label=f"{rule}: overlap")
            label = f"{rule}: fixed fraction"
            ax3.plot(
                grp["alpha"], grp["fixed_fraction"], "s--", c=f"C{i}", ms=3, lw=0.8, label=label
            )
        ax3.axvline(alpha_c, ls="--", c="gray", lw=0.8)
        ax3.set(xlabel=A, ylabel="overlap / fraction", ylim=(-0.02, 1.02))
        ax3.set_title(f"Learning rules, N = {cfg.rule_size}")
        ax3.legend(fontsize=7)
    ctx.section(
        "Retrieval overlap against load",
        f"Mean final overlap m of {cfg.probes} stored patterns per set, retrieved from a cue "
        f"with {cfg.flip:.0%} flipped bits ({cfg.mode} T = 0 updates, ≤ {cfg.max_sweeps} "
        f"sweeps), against the replica-symmetric AGS overlap m(α) (α_c = {alpha_c:.4f}, "
        f"m(α_c) = {m_c:.4f}). Above α_c the measured overlap is the remanent overlap after "
        "the sweep cap, not an equilibrium value.",
        summary,
    )
    ctx.section(
        "Stored patterns that are fixed points",
        "Fraction of all stored patterns left unchanged by one update, against "
        "exp(−N·Φ(−1/√α)) (independent Gaussian crosstalk on each bit). The estimate "
        "ignores the correlations between the bits of one pattern (they share its "
        "overlaps with the other patterns), which make the measured fraction somewhat "
        "larger; the check compares the load α_½ at which half the patterns are fixed.",
        fsum,
    )
