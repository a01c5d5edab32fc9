"""``memscape run landscape``: the full landscape of one 2-D model at one σ (or β).

For the exact diffusion energy of a small 2-D point set at noise σ (``−log p_σ``,
:class:`memscape.EmpiricalDiffusion`) or a modern Hopfield network storing the same
points at inverse temperature β (Ramsauer et al. 2020): the critical-point census with
Morse indices, Monte-Carlo basin fractions with 95 % Wilson intervals and the
Morse–Smale graph saddle → minima (:func:`memscape.landscape.landscape_census`), the
Euler-characteristic check ``Σ(−1)^index = 1`` (Milnor, *Morse Theory*, Thm 5.2, for a
coercive Morse function on ℝ²) and the landscape figure: energy contours, score stream
lines, basin colouring and critical points by index. The point sets are data sets of
:mod:`memscape.datasets`: ``polygon`` (the k vertices of a regular polygon on the unit
circle; k = 3 the triangle), ``lattice`` (a √k × √k unit grid) and ``bimodal`` (k points
split between two Gaussian blobs at (±1, 0)). ``explorer.html`` shows the family around
the run's σ (β) in the browser: a slider over σ from σ·span to σ/span (β from β/span² to
β·span²), the critical points by Morse index and the bifurcation diagram of the family
(pseudo-arclength continuation; :mod:`memscape.landscape.explorer`).

**Checked against:** the Euler characteristic Σ(−1)^index = 1 on ℝ² (Milnor, *Morse
Theory*) and hyperbolicity of every critical point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lazy_loader as lazy

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.runs.explorer import write_explorer
from memscape.runs.sweep import job_seed

pd = lazy.load("pandas")
torch = lazy.load("torch")

DATASETS = ("polygon", "lattice", "bimodal")
TABLES = ("critical_points", "basins", "edges", "data", "box", "branches", "bifurcations")
EXPLORER_RESOLUTION = 80  #: the explorer's grid nodes per axis at most (the page stays small)


@dataclass
class LandscapeConfig:
    """Options of ``landscape``."""

    model: str = option("diffusion", "diffusion (exact diffusion energy at --sigma) or modern "
                        "(ModernHopfield at --beta storing the data)",
                        choices=("diffusion", "modern"))  # fmt: skip
    data: str = option("polygon", "2-D point set (memscape.datasets)", choices=DATASETS)
    k: int = option(3, "points of the data set (a perfect square for lattice)", ge=1)
    sigma: float = option(0.4, "noise level σ (model=diffusion)", gt=0)
    beta: float = option(8.0, "inverse temperature β (model=modern)", gt=0)
    n_starts: int = option(1000, "random starts of the census", ge=10)
    basin_samples: int = option(4000, "Monte-Carlo starts for basins", ge=10)
    resolution: int = option(120, "grid nodes per axis of the figure", ge=10)
    basin_resolution: int = option(80, "basin-map nodes per axis", ge=4)
    span: float = option(2.5, "explorer: σ from σ·span down to σ/span (β from β/span² to "
                         "β·span²)", gt=1)  # fmt: skip
    frames: int = option(24, "explorer: slider values", ge=2)
    steps: int = option(30, "explorer: initial continuation steps over the range", ge=4)

    def validate(self) -> None:
        """``k`` must suit ``data``."""
        if self.data == "lattice" and math.isqrt(self.k) ** 2 != self.k:
            raise ValueError(f"k must be a perfect square for data=lattice, got {self.k}")


def build_model(kind: str, data: Any, sigma: float, beta: float) -> tuple[Any, Any]:
    """``(model, σ)``: the exact model of ``data`` at σ, or ``ModernHopfield(data, β)``, σ None."""
    if kind == "diffusion":
        return ms.EmpiricalDiffusion(data), sigma
    return ms.ModernHopfield(data, beta), None


def explored_range(model: str, sigma: float, beta: float, span: float) -> tuple[str, float, float]:
    """``(parameter, start, stop)`` of the explorer: σ decreasing or β increasing (generation)."""
    if model == "diffusion":
        return "sigma", sigma * span, sigma / span
    return "beta", beta / span**2, beta * span**2


def landscape_job(
    model: str, data: str, k: int, sigma: float, beta: float, n_starts: int, basin_samples: int,
    span: float, steps: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The whole analysis of one landscape, and the continuation of its family (one job)."""
    pts = ms.datasets.load(data, size=k, data_seed=seed).x
    m, sig = build_model(model, pts, sigma, beta)
    g = torch.Generator().manual_seed(job_seed(seed, "census"))
    out = ms.landscape.landscape_census(m, sig, pts, n_starts=n_starts,
                                        basin_samples=basin_samples, generator=g)  # fmt: skip
    out["data"] = pd.DataFrame(pts.numpy(), columns=["x0", "x1"])
    name, start, stop = explored_range(model, sigma, beta, span)
    fam = m if model == "diffusion" else (lambda b: ms.ModernHopfield(pts, b))
    bd = ms.landscape.continuation(fam, name, start=start, stop=stop, steps=steps,
                                   census_kwargs={"n_starts": n_starts, "patterns": pts},
                                   generator=torch.Generator().manual_seed(job_seed(seed, name)))  # fmt: skip
    out["branches"] = bd.branches
    out["bifurcations"] = bd.bifurcations.assign(branches=bd.bifurcations["branches"].map(str))
    return out


@register(
    "landscape",
    config=LandscapeConfig,
    summary="Critical points, basins, Morse–Smale graph and figure of one 2-D landscape.",
    paper="Ambrogioni 2023 (Morse–Smale); Ramsauer et al. 2020; Milnor (Euler char.)",
    quick={
        "n_starts": 300,
        "basin_samples": 1000,
        "resolution": 60,
        "basin_resolution": 40,
        "frames": 12,
        "steps": 16,
    },
    figures={
        "landscape": "contours, score stream lines, basins and critical points by index",
        "morse_smale_graph": "saddle → minimum edges",
    },
)  # and explorer.html: the landscape in the browser, a slider over σ (or β)
def run(cfg: LandscapeConfig, ctx: Context) -> None:
    """One job: census, basins, Morse–Smale edges; tables, Euler check, two figures."""
    fields = ("model", "data", "k", "sigma", "beta", "n_starts", "basin_samples", "span", "steps")
    res = ctx.grid(landscape_job, [{}], name="landscape", **{f: getattr(cfg, f) for f in fields})
    out = {name: ctx.table(name, res["landscape"][name]) for name in TABLES}
    pts = out["critical_points"]
    chi = int(pts["euler_characteristic"].iloc[0])
    ctx.check("Euler characteristic Σ(−1)^index", chi, 1, 0.0, relative=False)
    where = f"σ = {cfg.sigma:g}" if cfg.model == "diffusion" else f"β = {cfg.beta:g}"
    title = f"{cfg.model} landscape of '{cfg.data}' (k = {cfg.k}) at {where}"
    data = torch.tensor(out["data"][["x0", "x1"]].to_numpy())
    model, sigma = build_model(cfg.model, data, cfg.sigma, cfg.beta)
    box = out["box"].set_index("axis")
    xlim, ylim = ((float(box.loc[c, "low"]), float(box.loc[c, "high"])) for c in ("x0", "x1"))
    with ctx.figure("landscape", figsize=(6, 5.5)) as (_, ax):
        ms.landscape.plot_census(model, sigma, pts, patterns=data, ax=ax, xlim=xlim, ylim=ylim,
                                 resolution=cfg.resolution, basin_resolution=cfg.basin_resolution)  # fmt: skip
        ax.set_title(title)
    with ctx.figure("morse_smale_graph", figsize=(5, 4.5)) as (_, ax):
        ms.landscape.plot_morse_smale(pts, out["edges"], ax=ax)
        ax.set_title(f"Morse–Smale graph\n{title}", fontsize=9)
    conv = pts[pts["converged"]]
    cols = ["point", "x0", "x1", "energy", "morse_index", "kind", "label", "hyperbolicity",
            "basin_fraction", "basin_ci_low", "basin_ci_high"]  # fmt: skip
    ctx.section("Critical points", f"{title}: {len(conv)} critical points (census of "
                f"{cfg.n_starts} random starts refined by Newton); Euler characteristic "
                f"Σ(−1)^index = {chi} (1 for a complete census on ℝ²). Basin fractions here: "
                "share of the census' descent starts.", conv[cols].round(4))  # fmt: skip
    ctx.section("Basins of attraction", f"{cfg.basin_samples} uniform starts in the figure's "
                "box descended to a minimum; 95 % Wilson intervals.", out["basins"].round(4))  # fmt: skip
    ms_ = bool(pts["is_morse_smale"].iloc[0])
    ctx.section("Morse–Smale graph", "Edges saddle → minimum traced by descending from ±ε along "
                f"each saddle's unstable eigenvector; Morse–Smale (no saddle connection): {ms_}.",
                out["edges"].round(4))  # fmt: skip
    _explorer(cfg, ctx, out, title, (xlim, ylim))


def _explorer(cfg: LandscapeConfig, ctx: Context, out: dict[str, Any], title: str,
              box: tuple[Any, Any]) -> None:  # fmt: skip
    """``explorer.json`` and ``explorer.html``: the family around the run's σ (or β)."""
    from memscape.landscape.explorer import explorer_data, explorer_family, explorer_values

    name, start, stop = explored_range(cfg.model, cfg.sigma, cfg.beta, cfg.span)
    data = torch.tensor(out["data"][["x0", "x1"]].to_numpy())
    bd = ms.BifurcationDiagram(name, True, out["branches"], out["bifurcations"])
    here = cfg.sigma if name == "sigma" else cfg.beta
    values = explorer_values(start, stop, cfg.frames, log=True, include=[here])
    fam = explorer_family(lambda v: build_model(cfg.model, data, v, v), bd, values, patterns=data,
                          xlim=box[0], ylim=box[1], name=cfg.model, description=title,
                          resolution=min(cfg.resolution, EXPLORER_RESOLUTION))  # fmt: skip
    page = write_explorer(ctx.folder.path, explorer_data(f"memscape run landscape: {title}",
                                                         [fam], experiment="landscape"))  # fmt: skip
    ctx.section("Explorer", f"`{page.name}` (beside this report, one offline page): the "
                f"landscape for {fam['symbol']} from {start:.3g} to {stop:.3g} with a slider, critical "
                "points by Morse index and the bifurcation diagram with a cursor at the "
                f"slider's value ({len(out['bifurcations'])} bifurcations in the range).")  # fmt: skip
