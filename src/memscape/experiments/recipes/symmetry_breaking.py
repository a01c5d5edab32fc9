"""``memscape run symmetry-breaking``: the pitchfork of the exact diffusion energy of two points ±a.

Raya & Ambrogioni 2023, "Spontaneous symmetry breaking in generative diffusion models":
for data ``{+a, −a}`` the exact density ``p_σ`` has one minimum, at 0, for σ > a and
splits into two minima and a saddle at ``σ_c = a``. Two objects bifurcate, at different
times (:class:`~memscape.diffusion.ProcessLandscape`):

* the density of the forward process in x-space, ``−log p_t(x) = −log p_σ(x/s) + d log s``:
  it breaks at ``σ(t_c) = a`` for every process (:func:`memscape.theory.symmetry_breaking_time`);
* the potential ``U = g²(−log p_t) + ½ f ‖x‖²`` of the reverse-SDE drift (the force on
  generated samples): for VP and OU (``f < 0``) it loses its central minimum earlier in
  generation, at ``σ_c² = a² − 1 + √(1 + a⁴)`` (:func:`memscape.theory.drift_potential_breaking_time`);
  for VE (``f = 0``) both coincide.

**Measured** without Hessians: the energy is sampled on a fine grid of x and log t is
bisected on the number of its minima (1 above t_c, 2 below). The continuation in t
(:func:`memscape.continuation`) of the central branch locates the zero of its Hessian, the
very linearization the closed forms solve: those checks are reported as identities. A
second job draws the σ diagram of a small 2-D data set; ``explorer.html`` shows it along σ
and the pair (±a, 0) along t in the browser (:func:`memscape.landscape.explorer.pair_family`).

**Checked against:** the critical time of each process
(:func:`~memscape.theory.symmetry_breaking_time`, σ(t_c) = a) and
:func:`~memscape.theory.drift_potential_breaking_time`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.runs.explorer import write_explorer

pd = lazy.load("pandas")
torch = lazy.load("torch")

PROCESSES = ("ve", "vp", "ou")
OBJECTS = ("density", "drift")
DATASETS = ("polygon", "lattice", "bimodal")  # 2-D point sets of memscape.datasets


@dataclass
class SymmetryBreakingConfig:
    """Options of ``symmetry-breaking``."""

    separations: tuple[float, ...] = option((0.5, 1.0, 2.0), "half-distances a of ±a", gt=0)
    processes: tuple[str, ...] = option(PROCESSES, "forward processes", choices=PROCESSES)
    data: str = option("polygon", "2-D data of the σ diagram (k = 3 polygon: triangle)",
                       choices=DATASETS)  # fmt: skip
    k: int = option(3, "points of the 2-D data (a perfect square for lattice)", ge=1)
    sigma_min: float = option(0.05, "smallest σ of the diagram", gt=0)
    sigma_max: float = option(2.0, "largest σ of the diagram", gt=0)
    steps: int = option(40, "initial continuation steps per range", ge=4)
    n_starts: int = option(300, "random starts of each census", ge=10)
    scan_points: int = option(4001, "x grid of the minima count (odd: holds x = 0)", ge=11)
    bisections: int = option(30, "bisections of log t on the minima count", ge=1)
    scan_tolerance: float = option(1e-5, "allowed relative gap of t_c by the count", gt=0)
    frames: int = option(16, "explorer: slider values per family", ge=2)

    def validate(self) -> None:
        """The σ range of the diagram must be increasing; ``k`` must suit ``data``."""
        if self.data == "lattice" and math.isqrt(self.k) ** 2 != self.k:
            raise ValueError(f"k must be a perfect square for data=lattice, got {self.k}")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"sigma_max must exceed sigma_min, got {self.sigma_max} <= {self.sigma_min}"
            )


def pair_job(a: float, process: str, kind: str, steps: int, n_starts: int, seed: int):
    """Critical points of ``ProcessLandscape(±a, process, t, kind)`` continued in log t.

    Range ``t(0.3a) .. t(3a)``; the central branch is ``|x| < 10⁻³a``. Bifurcations, branches.
    """
    proc = ms.diffusion.get_process(process)
    model = ms.EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    bd = ms.continuation(
        lambda t: ms.diffusion.ProcessLandscape(model, proc, t, kind), "t", log=True,
        start=float(proc.t_of_sigma(3.0 * a)), stop=float(proc.t_of_sigma(0.3 * a)), steps=steps,
        census_kwargs={"n_starts": n_starts}, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    meta = {"a": a, "process": process, "object": kind}
    bif = bd.bifurcations.assign(**meta, branches=bd.bifurcations["branches"].map(str))
    bif["central"] = bif["x0"].abs() < 1e-3 * a
    bif["sigma"] = [float(proc.sigma(t)) for t in bif["parameter"]]
    return {"bifurcations": bif, "branches": bd.branches.assign(**meta)}


def scan_job(a: float, process: str, kind: str, points: int, bisections: int, seed: int):
    """t_c without Hessians: bisect log t on the number of minima of E sampled on a grid.

    ``E`` = ``ProcessLandscape(±a, process, t, kind).energy`` on ``points`` values of x in
    ``[−2a, 2a]``; strict interior local minima are counted: 2 at ``t(0.3a)``, 1 at
    ``t(3a)``. One row: the bracket of t_c after ``bisections`` halvings of log t.
    """
    proc = ms.diffusion.get_process(process)
    model = ms.EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    x = torch.linspace(-2 * a, 2 * a, points, dtype=torch.float64)[:, None]

    def minima(log_t: float) -> int:
        e = ms.diffusion.ProcessLandscape(model, proc, math.exp(log_t), kind).energy(x)
        return int(((e[1:-1] < e[:-2]) & (e[1:-1] < e[2:])).sum())

    lo, hi = (math.log(float(proc.t_of_sigma(f * a))) for f in (0.3, 3.0))
    counts = (minima(lo), minima(hi))
    for _ in range(bisections):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if minima(mid) >= 2 else (lo, mid)
    row = {"a": a, "process": process, "object": kind, "t_c_scan": math.exp(0.5 * (lo + hi)),
           "t_low": math.exp(lo), "t_high": math.exp(hi), "minima_ends": str(counts)}  # fmt: skip
    return {"scan": pd.DataFrame([row])}


def diagram_job(data: str, k: int, sigma_min: float, sigma_max: float, steps: int,
                n_starts: int, seed: int):  # fmt: skip
    """Bifurcation diagram over σ of the exact diffusion energy of a small 2-D data set."""
    g = torch.Generator().manual_seed(seed)
    model = ms.EmpiricalDiffusion(ms.datasets.load(data, size=k, data_seed=seed).x)
    bd = ms.continuation(model, "sigma", start=sigma_min, stop=sigma_max, steps=steps,
                         census_kwargs={"n_starts": n_starts}, generator=g)  # fmt: skip
    bif = bd.bifurcations.assign(branches=bd.bifurcations["branches"].map(str))
    data = pd.DataFrame(model.data.numpy(), columns=["x0", "x1"])
    return {"branches": bd.branches, "bifurcations": bif, "data": data}


@register(
    "symmetry-breaking",
    config=SymmetryBreakingConfig,
    summary="Pitchfork of two points ±a under VE/VP/OU: density vs reverse-drift potential.",
    paper="Raya & Ambrogioni 2023 (spontaneous symmetry breaking); Biroli et al. 2024",
    quick={"separations": (1.0,), "steps": 25, "n_starts": 100, "frames": 10},
    figures={
        "pair_bifurcations": "critical points of ±a against time for each process and object",
        "sigma_diagram": "bifurcation diagram over σ of a small 2-D data set",
    },
)
def run(cfg: SymmetryBreakingConfig, ctx: Context) -> None:
    """Continuation jobs per (a, process, object) and one σ diagram; tables, checks, figures."""
    fixed = {"steps": cfg.steps, "n_starts": cfg.n_starts}
    diagram = ctx.grid(diagram_job, [{"data": cfg.data, "k": cfg.k}], name="diagram",
                       sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, **fixed)  # fmt: skip
    axes = {"a": cfg.separations, "process": cfg.processes, "kind": OBJECTS}
    out = ctx.grid(pair_job, axes, name="pair", **fixed)
    scan = ctx.grid(scan_job, axes, name="scan", points=cfg.scan_points,
                    bisections=cfg.bisections).table("scan")  # fmt: skip
    points = itertools.product(cfg.separations, cfg.processes, OBJECTS)  # the order of ctx.grid
    jobs = list(zip(points, out.values(), strict=True))
    for name in ("bifurcations", "branches"):
        ctx.table(f"pair_{name}", out.table(name))
    for name in ("branches", "bifurcations", "data"):
        ctx.table(f"diagram_{name}", diagram.table(name))

    times = {"density": ms.theory.symmetry_breaking_time,
             "drift": ms.theory.drift_potential_breaking_time}  # fmt: skip
    rows = []
    for (a, p, o), res in jobs:
        bif = res["bifurcations"]
        central = bif[bif["central"]]
        t_c = float(central["parameter"].iloc[0]) if len(central) else math.nan
        t_th, proc = times[o](a, p), ms.diffusion.get_process(p)
        rows.append({"a": a, "process": p, "object": o, "t_c": t_c, "t_c_theory": t_th,
                     "sigma_c": float(proc.sigma(t_c)), "sigma_c_theory": float(proc.sigma(t_th)),
                     "kind": central["kind"].iloc[0] if len(central) else "none",
                     "n_bifurcations": len(bif)})  # fmt: skip
    crit = pd.DataFrame(rows).merge(scan, on=["a", "process", "object"])
    crit["relative_gap"] = (crit["t_c_scan"] - crit["t_c_theory"]).abs() / crit["t_c_theory"]
    ctx.table("critical_times", crit)
    for r in crit.itertuples():
        ctx.check(f"t_c of ±{r.a:g}, {r.process}, {r.object}: minima count on a grid",
                  r.t_c_scan, r.t_c_theory, cfg.scan_tolerance)  # fmt: skip
        ctx.check(f"t_c of ±{r.a:g}, {r.process}, {r.object}: continuation (Hessian zero)",
                  r.t_c, r.t_c_theory, 0.01, identity=True)  # fmt: skip

    seps, procs = list(cfg.separations), list(cfg.processes)
    shape = (len(OBJECTS) * len(seps), len(procs))
    size = (4.2 * shape[1], 3.2 * shape[0])
    with ctx.figure("pair_bifurcations", *shape, figsize=size) as (_, grid):
        panels: Any = np.asarray(grid).reshape(shape)
        for ((a, p, o), res), r in zip(jobs, crit.itertuples(), strict=True):
            ax = panels[seps.index(a) * len(OBJECTS) + OBJECTS.index(o), procs.index(p)]
            bd = ms.BifurcationDiagram("t", True, res["branches"], res["bifurcations"])
            ms.plot_bifurcation(bd, ax=ax, y="x0", legend=r.Index == 0)
            ax.axvline(r.t_c_theory, c="k", ls=":", lw=0.8)
            ax.set_title(f"{p.upper()}, {o}, a = {a:g} (dotted: theory t_c)", fontsize=9)
            ax.set_xlabel("forward time t")
    bif = diagram.table("bifurcations")
    with ctx.figure("sigma_diagram") as (_, ax):
        ms.plot_bifurcation(ms.BifurcationDiagram("sigma", True, diagram.table("branches"), bif),
                            ax=ax)  # fmt: skip
        ax.set_title(f"{cfg.data}: critical points of −log p_σ over σ", fontsize=9)
    ctx.section("Critical times of two points ±a", TEXT, crit)

    data = torch.tensor(diagram.table("data")[["x0", "x1"]].to_numpy())
    note = ""
    if float(data.mean(0).abs().max()) < 1e-8 * float(data.abs().max()):  # centred: 0 is critical
        at_mean = bif[(bif["x0"].abs() < 1e-6) & (bif["x1"].abs() < 1e-6)]
        sigma_mean = float(at_mean["parameter"].max()) if len(at_mean) else math.nan
        sigma_th = ms.theory.critical_beta(data) ** -0.5
        ctx.check("σ at which the data mean changes index (continuation)", sigma_mean, sigma_th,
                  0.01, identity=True)  # fmt: skip
        note = (
            f" The mean of the (centred) data changes index at σ = {sigma_mean:.5g}; theory "
            f"σ_c = √λ_max(Cov) = {sigma_th:.5g} (memscape.theory.critical_beta, β = 1/σ²)."
        )
    text = (
        "Pseudo-arclength continuation of every critical point of −log p_σ for σ in "
        f"[{cfg.sigma_min:g}, {cfg.sigma_max:g}].{note} Detected bifurcations"
        + (":" if len(bif) else ": none.")
    )
    tables = [bif.drop(columns="branches")] if len(bif) else []
    ctx.section(f"Bifurcation diagram of the exact energy of '{cfg.data}' over σ", text, *tables)
    _explorer(cfg, ctx, data, ms.BifurcationDiagram("sigma", True, diagram.table("branches"), bif))


def _explorer(cfg: SymmetryBreakingConfig, ctx: Context, data: Any, bd: Any) -> None:
    """``explorer.json``, ``explorer.html``: the data set along σ, the first pair ±a along t."""
    from memscape.landscape import explorer as ex

    model, a = ms.EmpiricalDiffusion(data), cfg.separations[0]
    values = ex.explorer_values(cfg.sigma_max, cfg.sigma_min, cfg.frames, log=True)
    fams = [ex.explorer_family(lambda s: (model, s), bd, values, patterns=data, name=cfg.data,
                               description=f"−log p_σ of '{cfg.data}' over σ")]  # fmt: skip
    proc = "vp" if "vp" in cfg.processes else cfg.processes[0]
    fams += [ex.pair_family(a, proc, o, frames=cfg.frames, steps=cfg.steps, n_starts=cfg.n_starts,
                            seed=ctx.seed + i) for i, o in enumerate(OBJECTS)]  # fmt: skip
    page = write_explorer(ctx.folder.path, ex.explorer_data("memscape run symmetry-breaking",
                                                            fams, experiment="symmetry-breaking"))  # fmt: skip
    ctx.section("Explorer", f"`{page.name}` (beside this report, one offline page): '{cfg.data}' "
                f"over σ, and the pair ±{a:g} over t ({proc}, density and drift) with a slider, "
                "critical points by Morse index, the bifurcation diagram with a cursor.")  # fmt: skip


TEXT = (
    "The density −log p_t(x) = −log p_σ(x/s) + d log s bifurcates at σ(t_c) = a for every "
    "process. The reverse-SDE drift potential U = g²(−log p_t) + ½(ṡ/s)‖x‖² "
    "(−∇U = −f + g²∇log p_t; Raya & Ambrogioni 2023) bifurcates at σ_c = a for VE and at "
    "σ_c² = a² − 1 + √(1 + a⁴) for VP and OU: the generative force loses its single attractor "
    "earlier in generation (larger t) than the density. t_c_scan (measured): the bracket "
    "[t_low, t_high] where the number of minima of the energy sampled on a fine x grid "
    "changes from 2 to 1 (bisection in log t); t_c: the bifurcation detected on the central "
    "branch by continuation in t (the zero of its Hessian, an identity with the closed "
    "form); theory from memscape.theory."
)
