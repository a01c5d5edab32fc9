"""``memscape run landscape``: the full landscape of one 2-D model at one σ (or β).

For the exact diffusion energy of a small 2-D data set at noise σ
(``−log p_σ``, :class:`memscape.EmpiricalDiffusion`) or a modern Hopfield network
storing the same points at inverse temperature β (Ramsauer et al. 2020): the
critical-point census with Morse indices (:func:`memscape.landscape.critical_points`),
Monte-Carlo basin fractions with 95 % Wilson intervals
(:func:`memscape.landscape.basin_fractions`), the Morse–Smale graph saddle → minima
(:func:`memscape.landscape.morse_smale_graph`), the Euler-characteristic check
``Σ(−1)^index = 1`` (Milnor, *Morse Theory*, Thm 5.2, for a coercive Morse function
on ℝ²) and the landscape figure: energy contours, score stream lines, basin
colouring and critical points by index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job

__all__ = ["DATASETS", "LandscapeConfig", "synthetic_points"]

DATASETS = ("triangle", "circle", "mixture", "grid")
MODELS = ("diffusion", "modern")
INDEX_COLOURS = {0: "tab:blue", 1: "tab:red", 2: "tab:green"}  # minima, saddles, maxima


def synthetic_points(name: str, k: int = 3, *, generator: torch.Generator | None = None):
    """Small 2-D point sets for landscape studies: ``(K, 2)`` float64.

    ``triangle``: the 3 vertices of an equilateral triangle on the unit circle (k ignored);
    ``circle``: k evenly spaced points on the unit circle; ``grid``: ``m × m`` points,
    ``m = round(√k)``, spacing 1, centred; ``mixture``: k points from two isotropic
    Gaussians (std 0.25) at ``(±1, 0)`` (needs ``generator`` for reproducibility).
    """
    check_choice(name, DATASETS, "data")
    check_int(k, "k")
    if name == "triangle" or name == "circle":
        n = 3 if name == "triangle" else k
        ang = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n + math.pi / 2
        return torch.stack([ang.cos(), ang.sin()], 1)
    if name == "grid":
        m = max(1, round(math.sqrt(k)))
        c = torch.arange(m, dtype=torch.float64) - (m - 1) / 2
        gy, gx = torch.meshgrid(c, c, indexing="ij")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    centre = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    side = torch.arange(k) % 2
    noise = torch.randn(k, 2, generator=generator, dtype=torch.float64)
    return centre[side] + 0.25 * noise


@dataclass
class LandscapeConfig:
    """Options of ``landscape``."""

    model: str = field(default="diffusion", metadata={
        "help": "diffusion (exact empirical diffusion energy at --sigma) or modern (ModernHopfield "
                "at --beta storing the data)"})  # fmt: skip
    data: str = field(default="triangle", metadata={"help": "triangle, circle, mixture, grid"})
    k: int = field(default=4, metadata={"help": "points for circle, mixture, grid"})
    sigma: float = field(default=0.4, metadata={"help": "noise level σ (model=diffusion)"})
    beta: float = field(default=8.0, metadata={"help": "inverse temperature β (model=modern)"})
    n_starts: int = field(default=1000, metadata={"help": "random starts of the census"})
    basin_samples: int = field(default=4000, metadata={"help": "Monte-Carlo starts for basins"})
    resolution: int = field(default=120, metadata={"help": "grid nodes per axis of the figure"})
    basin_resolution: int = field(default=80, metadata={"help": "basin-map nodes per axis"})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the invalid option."""
        check_choice(self.model, MODELS, "model")
        check_choice(self.data, DATASETS, "data")
        check_int(self.k, "k")
        check_positive(self.sigma, "sigma")
        check_positive(self.beta, "beta")
        check_int(self.n_starts, "n_starts", minimum=10)
        check_int(self.basin_samples, "basin_samples", minimum=10)
        check_int(self.resolution, "resolution", minimum=10)
        check_int(self.basin_resolution, "basin_resolution", minimum=4)


def build_model(kind: str, data: torch.Tensor, sigma: float, beta: float) -> tuple[Any, Any]:
    """``(model, σ)``: the exact model at σ, or ``ModernHopfield(data, β)``, σ None."""
    from memscape import EmpiricalDiffusion, ModernHopfield

    if kind == "diffusion":
        return EmpiricalDiffusion(data), sigma
    return ModernHopfield(data, beta), None


def analyse(
    model: Any,
    sigma: Any,
    data: torch.Tensor,
    *,
    n_starts: int,
    basin_samples: int,
    generator: torch.Generator,
) -> dict[str, pd.DataFrame]:
    """Census, basins and Morse–Smale edges of one 2-D landscape (tidy tables).

    Returns tables ``critical_points`` (one row per point, :func:`critical_points`
    columns plus ``point``, ``euler_characteristic``, ``is_morse_smale``), ``basins``
    (:func:`basin_fractions` from uniform starts in ``box``), ``edges`` (one row per
    saddle → end edge) and ``box`` (the plot / basin-start box, rows x0 and x1).
    """  # fmt: skip
    from memscape.landscape import basin_fractions, critical_points, morse_smale_graph

    cps = critical_points(model, sigma, n_starts=n_starts, patterns=data, generator=generator)
    conv = cps.points[cps.converged]
    lo = torch.minimum(data.amin(0), conv.amin(0)).numpy()
    hi = torch.maximum(data.amax(0), conv.amax(0)).numpy()
    pad = 0.35 * float((hi - lo).max()) + 0.5 * (sigma or 0.0) + 0.1
    box = (torch.tensor(lo - pad), torch.tensor(hi + pad))
    basins = basin_fractions(model, cps, sigma, n=basin_samples, box=box, generator=generator)
    graph = morse_smale_graph(model, cps, sigma)
    edges = pd.DataFrame(
        [{"saddle": s, "end": str(e), **a} for s, e, a in graph.edges(data=True)],
        columns=["saddle", "end", "direction", "saddle_connection", "barrier"],
    )
    points = cps.table.drop(columns=["eigenvalues"]).reset_index(names="point")
    points["euler_characteristic"] = cps.euler_characteristic()
    points["is_morse_smale"] = bool(graph.graph["is_morse_smale"])
    box_table = pd.DataFrame({"low": lo - pad, "high": hi + pad}, index=["x0", "x1"])
    return {"critical_points": points, "basins": basins, "edges": edges,
            "box": box_table.reset_index(names="axis")}  # fmt: skip


def landscape_job(
    model: str,
    data: str,
    k: int,
    sigma: float,
    beta: float,
    n_starts: int,
    basin_samples: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """The whole analysis of one landscape (one sweep job)."""
    from memscape.experiments._seeds import job_generator

    g = job_generator(seed, "landscape", model, data, k)
    pts = synthetic_points(data, k, generator=g)
    m, sig = build_model(model, pts, sigma, beta)
    out = analyse(m, sig, pts, n_starts=n_starts, basin_samples=basin_samples, generator=g)
    out["data"] = pd.DataFrame(pts.numpy(), columns=["x0", "x1"])
    return out


@register(
    "landscape",
    config=LandscapeConfig,
    summary="Critical points, basins, Morse–Smale graph and figure of one 2-D landscape.",
    paper="Ambrogioni 2023 (seed 000, Morse–Smale); Ramsauer et al. 2020; Milnor (Euler char.)",
    quick={"n_starts": 300, "basin_samples": 1000, "resolution": 60, "basin_resolution": 40},
)
def run(cfg: LandscapeConfig, ctx: Context) -> None:
    """One job: census, basins, Morse–Smale edges; tables, Euler check, two figures."""
    names = ("model", "data", "k", "sigma", "beta", "n_starts", "basin_samples")
    params = {f: getattr(cfg, f) for f in names}
    job = Job("landscape", {**params, "seed": ctx.seed})
    out = ctx.sweep(landscape_job, [job], "landscape")["landscape"]
    for name in ("critical_points", "basins", "edges", "data", "box"):
        ctx.folder.write_table(name, out[name])
    pts = out["critical_points"]
    chi = int(pts["euler_characteristic"].iloc[0])
    ctx.folder.add_check("Euler characteristic Σ(−1)^index", chi, 1, 0.0, relative=False)
    where = f"σ = {cfg.sigma:g}" if cfg.model == "diffusion" else f"β = {cfg.beta:g}"
    title = f"{cfg.model} landscape of '{cfg.data}' at {where}"
    data = torch.tensor(out["data"][["x0", "x1"]].to_numpy())
    model, sigma = build_model(cfg.model, data, cfg.sigma, cfg.beta)
    box = out["box"].set_index("axis")
    fig = landscape_figure(model, sigma, pts, data, box, cfg.resolution, cfg.basin_resolution)
    fig.axes[0].set_title(title)
    ctx.folder.save_figure("landscape", fig)
    ctx.folder.save_figure("morse_smale_graph", graph_figure(pts, out["edges"], title))
    conv = pts[pts["converged"]]
    cols = ["point", "x0", "x1", "energy", "morse_index", "kind", "label", "hyperbolicity",
            "basin_fraction", "basin_ci_low", "basin_ci_high"]  # fmt: skip
    ctx.folder.add_section("Critical points", (
        f"{title}: {len(conv)} critical points (census of {cfg.n_starts} random starts refined "
        f"by Newton); Euler characteristic Σ(−1)^index = {chi} (1 for a complete census on "
        "ℝ²). Basin fractions here: share of the census' descent starts.\n\n"
        + conv[cols].to_markdown(index=False, floatfmt=".4g")))  # fmt: skip
    ctx.folder.add_section(
        "Basins of attraction",
        (
            f"{cfg.basin_samples} uniform starts in the figure's box descended to a minimum; "
            "95 % Wilson intervals.\n\n" + out["basins"].to_markdown(index=False, floatfmt=".4g")
        ),
    )
    ms = bool(pts["is_morse_smale"].iloc[0])
    ctx.folder.add_section("Morse–Smale graph", (
        "Edges saddle → minimum traced by descending from ±ε along each saddle's unstable "
        f"eigenvector; Morse–Smale (no saddle connection): {ms}.\n\n"
        + out["edges"].to_markdown(index=False, floatfmt=".4g")))  # fmt: skip


def landscape_figure(
    model: Any,
    sigma: Any,
    points: pd.DataFrame,
    patterns: torch.Tensor | None,
    box: pd.DataFrame | None,
    resolution: int,
    basin_resolution: int,
    ax: Any = None,
) -> Any:
    """:func:`memscape.landscape.plot_landscape` of a census table (converged points only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memscape.landscape import CriticalPoints, plot_landscape

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5.5))
    conv = points[points["converged"]]
    xy = torch.tensor(conv[["x0", "x1"]].to_numpy(), dtype=torch.float64)
    ok = torch.ones(xy.shape[0], dtype=torch.bool)  # converged in the census that found them
    cps = CriticalPoints.from_points(model, xy, sigma, converged=ok, patterns=patterns)
    xlim = None if box is None else (float(box.loc["x0", "low"]), float(box.loc["x0", "high"]))
    ylim = None if box is None else (float(box.loc["x1", "low"]), float(box.loc["x1", "high"]))
    plot_landscape(model, sigma, cps=cps, ax=ax, xlim=xlim, ylim=ylim, resolution=resolution,
                   basin_resolution=basin_resolution)  # fmt: skip
    if patterns is not None:
        ax.plot(patterns[:, 0], patterns[:, 1], "k*", ms=5, zorder=6)
    if fig is not None:
        fig.tight_layout()
    return ax.figure


def graph_figure(points: pd.DataFrame, edges: pd.DataFrame, title: str) -> Any:
    """Morse–Smale graph drawn with networkx at the critical points' positions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    fig, ax = plt.subplots(figsize=(5, 4.5))
    g = nx.DiGraph()
    conv = points[points["converged"]]
    pos = {str(r.point): (r.x0, r.x1) for r in conv.itertuples()}
    g.add_nodes_from(pos)
    g.add_edges_from((str(r.saddle), str(r.end)) for r in edges.itertuples() if str(r.end) in pos)
    colours = [INDEX_COLOURS.get(int(i), "0.5") for i in conv["morse_index"]]
    nx.draw_networkx(g, pos, ax=ax, node_color=colours, node_size=160, font_size=6,
                     arrowsize=8, edge_color="0.3")  # fmt: skip
    ax.set_title(f"Morse–Smale graph\n{title}", fontsize=9)
    ax.set_aspect("equal")
    ax.tick_params(left=True, bottom=True, labelleft=True, labelbottom=True)
    fig.tight_layout()
    return fig
