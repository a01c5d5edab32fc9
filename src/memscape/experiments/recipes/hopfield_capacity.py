"""``memscape run hopfield-capacity``: classical Hopfield retrieval against load α = K/N.

The storage capacity of the Hebbian Hopfield network (Amit, Gutfreund & Sompolinsky 1985,
"AGS"): below α_c ≈ 0.138 a stored pattern is retrieved with the replica-symmetric T = 0
overlap m(α) (m(α_c) ≈ 0.967); above it retrieval collapses.

* **α_c by finite-size extrapolation.** T = 0 dynamics from each stored pattern, dense α
  grid, several N; *retrieved*: final overlap ≥ ``retrieved_overlap`` (overlaps are bimodal,
  ≈ 0.97 or ≲ 0.6). α_½(N), where half the probes fail (:func:`~memscape.numeric.level_crossing`),
  is extrapolated (table ``capacity_extrapolation``) by finite-size scaling, α_½ − α_c ∝ N^-½
  like the failure curve's width (its exponent measured); the 1/N fit beside it.
* **m(α) against AGS** (:func:`memscape.theory.ags_overlap`) at α ≤ 0.1; stored patterns
  that are exact fixed points against ``exp(−N Φ(−1/√α))`` (where the fraction is ½).

**Checked against:** :func:`memscape.theory.ags_critical_load` (α_c = 0.1379) by the
extrapolation, :func:`memscape.theory.ags_overlap` at α ≤ 0.1, the fixed-point estimate.
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

DENSE = tuple(round(0.10 + 0.005 * i, 3) for i in range(21))  # 0.100 … 0.200
FIXED = tuple(round(0.04 + 0.01 * i, 2) for i in range(11))
CHUNK, BOOTSTRAP = 5, 400  # sweeps between checks for failed probes; bootstrap draws


@dataclass
class HopfieldCapacityConfig:
    """Options of ``hopfield-capacity`` (defaults: a few minutes on 2 CPU cores)."""

    sizes: tuple[int, ...] = option((500, 1000, 2000, 4000), "network sizes N", ge=2)
    alphas: tuple[float, ...] = option((0.02, 0.05, 0.08, *DENSE), "loads α = K/N", gt=0)
    trials: int = option(2, "independent pattern sets per (N, α)", ge=1)
    probes: int = option(64, "stored patterns retrieved per pattern set", ge=1)
    retrieved_overlap: float = option(0.75, "retrieved: final overlap ≥ this", gt=0, lt=1)
    fail_overlap: float = option(0.5, "a probe has failed (and stops) below this overlap", lt=1)
    fixed_alphas: tuple[float, ...] = option(FIXED, "loads of the fixed-point sweep", gt=0)
    fixed_trials: int = option(3, "pattern sets per (N, α) of the fixed-point sweep", ge=1)
    mode: str = option("async", "update mode", choices=("async", "sync"))
    flip: float = option(0.0, "fraction of cue bits flipped", ge=0, lt=0.5)
    max_sweeps: int = option(100, "step cap (sweeps)", ge=1)
    tolerance: float = option(0.01, "allowed |m − m_AGS| at α ≤ 0.1", gt=0)
    alpha_c_tolerance: float = option(0.01, "allowed |α_c extrapolated − AGS α_c|", gt=0)

    def validate(self) -> None:
        """A failed probe must lie below a retrieved one."""
        if self.fail_overlap >= self.retrieved_overlap:
            msg = f"must be < retrieved_overlap ({self.retrieved_overlap}), got {self.fail_overlap}"
            raise ValueError(f"fail_overlap {msg}")


def _patterns(k: int, n: int, g):
    """``(k, n)`` random ±1 patterns (float64) from a data seed drawn from ``g``."""
    seed = int(torch.randint(2**62, (), generator=g))
    return ms.datasets.load("binary_patterns", size=k, dim=n, data_seed=seed).x


def retrieval_job(n, alpha, trial, mode, flip, max_sweeps, probes, fail_overlap, seed):
    """Store ``round(αN)`` Hebbian patterns; retrieve ``probes`` of them from (corrupted) copies.

    Sweeps run in chunks of ``CHUNK`` until a probe reaches a fixed point, falls below
    ``fail_overlap`` (failed: it is stopped there) or reaches ``max_sweeps``. One row per
    probe: final overlap ``m = sᵀξ/N``, sweeps, convergence, whether ξ is a fixed point.
    """
    g, k = torch.Generator().manual_seed(seed), max(1, round(alpha * n))
    net = ms.ClassicalHopfield(patterns := _patterns(k, n, g))
    x = (target := patterns[: min(probes, k)]).clone()
    if flip > 0:
        x[torch.rand(x.shape, generator=g, dtype=torch.float64) < flip] *= -1
    sweeps, converged = torch.zeros(len(x), dtype=torch.long), torch.zeros(len(x), dtype=bool)
    active, done = torch.arange(len(x)), 0
    while len(active) and done < max_sweeps:
        res = net.retrieve(x[active], mode=mode, max_steps=min(CHUNK, max_sweeps - done),
                           generator=g)  # fmt: skip
        x[active], converged[active], done = res.x, res.converged, done + CHUNK
        sweeps[active] += res.steps.to(torch.long)
        failed = (res.x * target[active]).sum(1) / n < fail_overlap
        active = active[~(res.converged | failed)]
    cols = {"overlap": (x * target).sum(1) / n, "sweeps": sweeps, "converged": converged}
    cols["fixed_point"] = ms.memories.fixed_points(net, target, mode="sync")
    table = pd.DataFrame({c: v.numpy() for c, v in cols.items()}).assign(N=n, alpha=alpha, K=k)
    return {"patterns": table.assign(pattern=range(len(target)), trial=trial)}


def fixed_point_job(n: int, alpha: float, trial: int, seed: int) -> dict:
    """The stored patterns of a Hebbian network that are exact fixed points (one row)."""
    patterns = _patterns(k := max(1, round(alpha * n)), n, torch.Generator().manual_seed(seed))
    fixed = ms.memories.fixed_points(ms.ClassicalHopfield(patterns), patterns, mode="sync")
    row = {"N": n, "alpha": alpha, "K": k, "trial": trial, "fixed": int(fixed.sum())}
    return {"fixed": pd.DataFrame([{**row, "fraction": float(fixed.double().mean())}])}


def extrapolate(summary, n_boot: int, seed: int):
    """α_½(N) where half the probes fail; weighted fits α_½ = α_c + b·N^(−ν), ν = ½ and 1.

    ``summary``: a row per (N, α), ``retrieved`` fraction of ``probes``. Per N: α_½, its
    bootstrap interval (binomial redraws of each fraction), width α_¼ − α_¾ (its exponent:
    ``width_exponent``); fit intervals: the fit redone per draw (NaN below two sizes)."""
    rng, rows, boots, nan2 = np.random.default_rng(seed), [], [], (np.nan, np.nan)
    for n, grp in summary.groupby("N"):
        a, p, k = (grp[c].to_numpy() for c in ("alpha", "retrieved", "probes"))
        draws = rng.binomial(k, p, (n_boot, len(p))) / k
        boot = np.array([level_crossing(a, d, 0.5) for d in draws])
        lo, hi = np.percentile(fin, [2.5, 97.5]) if len(fin := boot[np.isfinite(boot)]) else nan2
        rows.append({"N": n, "alpha_half": level_crossing(a, p, 0.5), "low": lo, "high": hi,
                     "se": np.std(fin) if len(fin) else np.nan,
                     "width": level_crossing(a, p, 0.25) - level_crossing(a, p, 0.75)})  # fmt: skip
        boots.append(boot)
    cross, per_draw, fits = pd.DataFrame(rows), np.array(boots), []
    ok = (np.isfinite(cross["alpha_half"]) & (cross["se"] > 0)).to_numpy()
    logs = np.log(cross[["N", "width"]].dropna().to_numpy(float))
    slope = -np.polyfit(logs[:, 0], logs[:, 1], 1)[0] if len(logs) >= 2 else np.nan
    for nu in (0.5, 1.0):
        fit = {"fit": f"alpha_half = alpha_c + b N^-{nu:g}", "nu": nu, "sizes": int(ok.sum())}
        fit |= dict.fromkeys(("alpha_c", "alpha_c_low", "alpha_c_high", "b", "chi2_dof"), np.nan)
        if ok.sum() >= 2:
            x, y = cross["N"].to_numpy(float)[ok] ** -nu, cross["alpha_half"].to_numpy()[ok]
            b, c0 = np.polyfit(x, y, 1, w=(w := 1 / cross["se"].to_numpy()[ok]))
            refit = [np.polyfit(x, bs, 1, w=w)[1] for bs in per_draw[ok].T if np.isfinite(bs).all()]
            lo, hi = np.percentile(refit, [2.5, 97.5]) if refit else nan2
            chi2 = float((((y - c0 - b * x) * w) ** 2).sum()) / max(1, ok.sum() - 2)
            fit |= {"alpha_c": c0, "alpha_c_low": lo, "alpha_c_high": hi, "b": b, "chi2_dof": chi2}
        fits.append({**fit, "width_exponent": slope})
    return cross, pd.DataFrame(fits)


QUICK = {"sizes": (500, 1000, 2000), "alphas": (0.05, 0.08, *DENSE[::2]),
         "fixed_alphas": (0.06, 0.08, 0.1, 0.12, 0.14), "fixed_trials": 12,
         "alpha_c_tolerance": 0.02}  # fmt: skip
FIGURES = {"overlap_vs_alpha": "final overlap (with the AGS curve and its drop at α_c), "
           "retrieved and fixed-point fractions against the load α, per N",
           "capacity_extrapolation": "α_½(N), where half the probes fail, against N^-½ and "
           "its extrapolation to α_c"}  # fmt: skip


@register(
    "hopfield-capacity",
    config=HopfieldCapacityConfig,
    summary="Classical Hopfield retrieval against load α = K/N: α_c ≈ 0.138 by finite-size "
    "extrapolation, the AGS overlap m(α), exact fixed points.",
    paper="Amit, Gutfreund & Sompolinsky 1985 (Hopfield 1982)",
    quick=QUICK,  # N = 500 holds 30–70 patterns a set: α_½ of the fixed points needs 12 sets
    figures=FIGURES,
)
def run(cfg: HopfieldCapacityConfig, ctx: Context) -> None:
    """Retrieval and fixed-point sweeps; extrapolation, tables, figures, checks."""
    T, alpha_c, m_c = ms.theory, *ms.theory.ags_critical_load()
    dynamics = {k: getattr(cfg, k) for k in ("mode", "flip", "max_sweeps", "probes")}
    axes = {"n": cfg.sizes, "alpha": cfg.alphas, "trial": list(range(cfg.trials))}
    table = ctx.grid(retrieval_job, axes, name="retrieve", fail_overlap=cfg.fail_overlap,
                     **dynamics).table("patterns")  # fmt: skip
    table["retrieved"] = table["overlap"] >= cfg.retrieved_overlap
    ctx.table("patterns", table.assign(ags_overlap=T.ags_overlap(table["alpha"].to_numpy())))
    agg = {"K": ("K", "first"), "overlap": ("overlap", "mean"), "overlap_std": ("overlap", "std")}
    agg |= {"retrieved": ("retrieved", "mean"), "probes": ("retrieved", "size")}
    agg |= {"converged": ("converged", "mean"), "fixed_fraction": ("fixed_point", "mean")}
    summary = table.groupby(["N", "alpha"], as_index=False).agg(**agg)
    summary["ags_overlap"] = T.ags_overlap(summary["alpha"].to_numpy())
    ctx.table("summary", summary)
    axes = {"n": cfg.sizes, "alpha": cfg.fixed_alphas, "trial": list(range(cfg.fixed_trials))}
    fixed = ctx.grid(fixed_point_job, axes, name="fixed").table("fixed")
    fixed["theory"] = [T.fixed_point_probability(int(n), k / n).probability
                       for n, k in fixed[["N", "K"]].itertuples(index=False)]  # fmt: skip
    ctx.table("fixed_points", fixed)
    agg = {"K": ("K", "first"), "fixed": ("fixed", "sum"), "fraction": ("fraction", "mean")}
    fsum = fixed.groupby(["N", "alpha"], as_index=False).agg(**agg, theory=("theory", "mean"))
    cross, fits = extrapolate(summary, BOOTSTRAP, ctx.seed)
    ctx.table("capacity_crossings", cross)
    ctx.table("capacity_extrapolation", fits)

    for n, grp in summary[summary["alpha"] <= 0.1 + 1e-12].groupby("N"):
        worst = grp.iloc[int(np.argmax((grp["overlap"] - grp["ags_overlap"]).abs().to_numpy()))]
        name = f"overlap vs AGS m(α) at α = {worst['alpha']:g}, N = {n} (worst α ≤ 0.1)"
        ctx.check(name, worst["overlap"], worst["ags_overlap"], cfg.tolerance, relative=False)
    for n, grp in fsum.groupby("N"):
        if np.isfinite(measured := level_crossing(grp["alpha"], grp["fraction"], 0.5)):
            # crosstalk variance per pattern fluctuates (√(2/K)), correlating its bits: α_½ up
            # by O(N^-½). exp(−N Φ(−1/√α)) = ½ ⇔ bit error ln 2/N: n = 2 dense capacity/N
            half = T.dense_capacity(int(n), 2, error=math.log(2) / n) / n
            ctx.check(f"α_½ (half the patterns fixed), N = {n}", measured, half, 2 / np.sqrt(n))
    quick = f" (quick mode: tolerance {cfg.alpha_c_tolerance:g}, not 0.01)" if ctx.quick else ""
    if (f := fits.iloc[0])["sizes"] >= 2:  # ν = ½
        sizes = ", ".join(map(str, cfg.sizes))
        ctx.check(f"α_c: α_½(N) extrapolated in N^-½ (N = {sizes}) vs AGS{quick}", f["alpha_c"],
                  alpha_c, cfg.alpha_c_tolerance, relative=False)  # fmt: skip
    a = np.linspace(1e-3, max(0.2, max(cfg.alphas)), 800)
    with ctx.figure("overlap_vs_alpha", 1, 3, figsize=(17, 4.6)) as (_, (ax, ax1, ax2)):
        for i, (n, grp) in enumerate(summary.groupby("N")):
            ax.errorbar(grp["alpha"], grp["overlap"], grp["overlap_std"].fillna(0), marker="o",
                        ms=3, capsize=2, c=f"C{i}", label=f"N = {n}")  # fmt: skip
            ms.landscape.plot_fraction(ax1, grp["alpha"], grp["retrieved"], grp["probes"], "o-", c=f"C{i}", ms=3, label=f"N = {n}")  # fmt: skip
        ax.plot(a, T.ags_overlap(a), "k-", lw=1.5, label="AGS m(α), 0 above α_c")
        ax.set(ylabel="final overlap m", title="Hebbian retrieval (mean ± sd)", ylim=(0, 1.02))
        ax1.axhline(0.5, c="k", ls=":", lw=1)
        ax1.set(ylabel=f"fraction retrieved (m ≥ {cfg.retrieved_overlap:g})",
                title="Retrieval failure: half fail at α_½(N) (Wilson 95 %)")  # fmt: skip
        for i, (n, grp) in enumerate(fsum.groupby("N")):
            ms.landscape.plot_fraction(ax2, grp["alpha"], grp["fraction"], grp["K"] * cfg.fixed_trials, c=f"C{i}", ms=4, label=f"N = {n}")  # fmt: skip
            x = np.linspace(float(grp["alpha"].min()), float(grp["alpha"].max()), 200)
            ax2.plot(x, [T.fixed_point_probability(int(n), v).probability for v in x], c=f"C{i}")
        ax2.plot([], [], "k-", lw=1, label="exp(−N Φ(−1/√α))")
        ax2.set(ylabel="fraction of patterns that are fixed points", title="Exact fixed points (Wilson 95 %)")  # fmt: skip
        for axis in (ax, ax1, ax2):
            axis.axvline(alpha_c, ls="--", c="gray", lw=0.8, label=f"α_c = {alpha_c:.4f}")
            axis.set(xlabel="load α = K/N", xlim=(0.08 if axis is not ax2 else None, a[-1]))
            axis.legend(fontsize=7)
    with ctx.figure("capacity_extrapolation", figsize=(6, 4.4)) as (_, ax):
        x = cross["N"].to_numpy(float) ** -0.5
        err = np.abs(cross[["low", "high"]].to_numpy().T - cross["alpha_half"].to_numpy())
        ax.errorbar(x, cross["alpha_half"], err, fmt="ko", capsize=3, label="α_½(N), 95 %")
        line = np.linspace(0, np.nanmax(x) * 1.05, 100)
        for i, r in enumerate(fits[np.isfinite(fits["alpha_c"])].itertuples()):
            ax.plot(line, r.alpha_c + r.b * line ** (2 * r.nu), f"C{i}-", lw=1,
                    label=f"α_c + b N^-{r.nu:g}: α_c = {r.alpha_c:.4f} "
                    f"[{r.alpha_c_low:.4f}, {r.alpha_c_high:.4f}]")  # fmt: skip
        ax.axhline(alpha_c, c="k", ls="--", lw=1, label=f"AGS α_c = {alpha_c:.4f}")
        ax.set(xlabel="N^-½", ylabel="α_½ (half the probes fail)", title="Extrapolation")
        ax.legend(fontsize=7)
    ctx.section(
        "Critical load by finite-size extrapolation",
        f"{cfg.trials} pattern sets × ≤ {cfg.probes} probes per (N, α), retrieved when the final "
        f"overlap is ≥ {cfg.retrieved_overlap:g} ({cfg.mode} T = 0 updates, ≤ {cfg.max_sweeps} "
        f"sweeps, stopped below {cfg.fail_overlap:g}). α_½(N): the fraction falls through ½ "
        f"(95 %: {BOOTSTRAP} binomial redraws); width α_¼ − α_¾. Checked: the N^-½ fit "
        "(finite-size scaling, shift ∝ width; `width_exponent` measures the width's); the 1/N "
        f"fit beside it. AGS α_c = {alpha_c:.4f}, m(α_c) = {m_c:.4f}; tolerance "
        f"{cfg.alpha_c_tolerance:g}{quick}.",
        cross,
        fits,
    )
    ctx.section(
        "Retrieval overlap and fixed points against load",
        "Mean final overlap and retrieved fraction against the AGS m(α) (above α_c: a failed "
        "probe's remanent overlap); patterns left unchanged by one update against "
        "exp(−N·Φ(−1/√α)) (independent crosstalk per bit; correlated bits raise the measured).",
        summary,
        fsum,
    )
