"""``memscape run barriers``: barriers between memorized image patches as the noise grows.

The exact diffusion energy ``E_σ = −log p_σ`` of K natural-image patches (data set
``patches``, :class:`memscape.EmpiricalDiffusion`) has one minimum at every patch when σ
is far below their spacing, and one minimum in all when σ exceeds the radius of the data
(Ambrogioni 2023; Biroli et al. 2024: memories merge as σ grows). Between the two, for
each σ on a grid scaled by the patches' median nearest-neighbour distance s, a
landscape atlas (:func:`memscape.landscape.landscape_atlas`) descends from every patch
to its minimum, joins each minimum to its nearest minima by a minimum-energy path
(simplified string method; E, Ren & Vanden-Eijnden 2007), refines the profile maxima to
certified index-1 saddles and builds the disconnectivity graph (Becker & Karplus 1997;
Wales, Miller & Walsh 1998): each minimum's barrier to a deeper basin.

**Checked against:**

* strict convexity: for σ > R = maxᵢ‖yᵢ − ȳ‖ the Hessian ``(I − Cov_post/σ²)/σ²`` is
  positive definite (a posterior covariance of points within R of ȳ is ≼ R²I), so the
  atlas must find exactly one minimum;
* the minimax principle: the level at which a minimum-energy path joins two minima is at
  most the highest energy on the straight segment between them (a brute-force scan of
  ``segment_points`` energies per pair, independent of the path and saddle code);
* at the smallest σ every patch is a minimum (K minima labelled ``memory``) when σ is
  below half the closest pair's distance (two points at distance D merge at σ = D/2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register

pd = lazy.load("pandas")
torch = lazy.load("torch")


@dataclass
class BarriersConfig:
    """Options of ``barriers`` (defaults: about a minute on 2 CPU cores)."""

    k: int = option(24, "patches K (the memories)", ge=2)
    size: int = option(8, "patch side (d = size² grayscale, 3·size² colour)", choices=(8, 16, 32))
    color: bool = option(False, "colour patches")
    sigma_factors: tuple[float, ...] = option(
        (0.1, 0.2, 0.3, 0.5, 0.8), "σ as multiples of the median nearest-neighbour distance", gt=0
    )
    neighbors: int = option(3, "nearest minima joined to each minimum", ge=1)
    images: int = option(12, "images per path", ge=3)
    segment_points: int = option(201, "energies on each straight segment (minimax check)", ge=3)


def patches(k: int, size: int, color: bool, seed: int) -> Any:
    """``(k, C, size, size)`` float64 patches (data set ``patches``)."""
    return ms.datasets.load("patches", size=size, color=color, num_patches=k, data_seed=seed).x


def atlas_job(sigma: float, k: int, size: int, color: bool, neighbors: int, images: int,
              segment_points: int, data_seed: int, seed: int) -> dict:  # fmt: skip
    """Atlas at one σ; each pair's straight-segment maximum beside its path's join level."""
    x = patches(k, size, color, data_seed).double()
    model = ms.EmpiricalDiffusion(x)
    atlas = ms.landscape.landscape_atlas(model, sigma, x, neighbors=neighbors, images=images)
    m = atlas.minima.reshape(len(atlas.minima), -1)
    t = torch.linspace(0, 1, segment_points, dtype=m.dtype)[:, None]
    pairs = atlas.pairs.copy()
    pairs["join_energy"] = [
        atlas.graph.join_energy(i, j) for i, j in zip(pairs.i, pairs.j, strict=True)
    ]
    pairs["segment_max"] = [
        float(model.energy(((1 - t) * m[i] + t * m[j]).reshape(-1, *x.shape[1:]), sigma).max())
        for i, j in zip(pairs["i"], pairs["j"], strict=True)
    ]
    barriers = atlas.barriers.drop(columns=["saddle"], errors="ignore")
    roots = pd.DataFrame({"sigma": [sigma], "roots": [len(atlas.graph.roots)]})
    tables = {"pairs": pairs, "edges": atlas.edges, "barriers": barriers}
    return {"roots": roots, **{name: t.assign(sigma=sigma) for name, t in tables.items()}}


@register(
    "barriers",
    config=BarriersConfig,
    summary="Barriers and disconnectivity graphs of memorized image patches against σ.",
    paper="Becker & Karplus 1997; Wales et al. 1998; E, Ren & Vanden-Eijnden 2007",
    quick={"k": 12, "sigma_factors": (0.1, 0.3, 0.8), "images": 10, "segment_points": 101},
    figures={
        "barriers": "minima, memories and barrier quantiles against σ/s",
        "disconnectivity": "disconnectivity graphs at the smallest and a middle σ",
    },
)
def run(cfg: BarriersConfig, ctx: Context) -> None:
    """One atlas per σ (and one above the data radius); tables, checks and figures."""
    x = patches(cfg.k, cfg.size, cfg.color, ctx.seed).double().reshape(cfg.k, -1)
    gaps = ms.memorization.nearest_neighbors(x, x, 1, exclude_self=True)[0][:, 0]  # streamed
    s, radius = float(gaps.median()), float((x - x.mean(0)).norm(dim=1).max())
    sigmas = [f * s for f in cfg.sigma_factors] + [1.05 * radius]
    fixed = {f: getattr(cfg, f) for f in ("k", "size", "color", "neighbors", "images")}
    res = ctx.grid(atlas_job, {"sigma": sigmas}, name="atlas", data_seed=ctx.seed,
                   segment_points=cfg.segment_points, **fixed)  # fmt: skip
    pairs, barriers = (
        ctx.table("pairs", res.table("pairs")),
        ctx.table("barriers", res.table("barriers")),
    )
    roots, edges = res.table("roots"), ctx.table("edges", res.table("edges"))
    counts = barriers.groupby("sigma").agg(
        minima=("minimum", "size"), memories=("label", lambda v: int((v == "memory").sum()))
    )
    finite = barriers[np.isfinite(barriers["barrier"])].groupby("sigma")["barrier"]
    summary = counts.join(finite.quantile(0.5).rename("median_barrier"))
    summary = summary.join(finite.min().rename("min_barrier")).join(
        finite.max().rename("max_barrier")
    )
    summary = ctx.table("summary", summary.join(roots.set_index("sigma")).reset_index()
                        .assign(sigma_over_s=lambda t: t["sigma"] / s))  # fmt: skip

    top = summary.iloc[-1]
    ctx.check(f"minima at σ = 1.05·R = {top['sigma']:.3g} (strictly convex: one)",
              int(top["minima"]), 1, 0.0, relative=False)  # fmt: skip
    ok = pairs["join_energy"] <= pairs["segment_max"] + 1e-9 * (1 + pairs["segment_max"].abs())
    ctx.check("pairs joined in the tree at or below their straight-segment maximum (minimax)",
              float(ok.mean()) if len(ok) else float("nan"), 1.0, 0.0, relative=False)  # fmt: skip
    first = summary.iloc[0]
    if first["sigma"] < 0.5 * float(gaps.min()):
        ctx.check(f"memories at σ = {first['sigma']:.3g} < half the closest pair's distance",
                  int(first["memories"]), cfg.k, 0.0, relative=False)  # fmt: skip

    with ctx.figure("barriers", 1, 2, figsize=(11, 4.2)) as (_, (ax, ax2)):
        part = summary.iloc[:-1]
        ax.plot(part["sigma_over_s"], part["minima"], "o-", label="minima")
        ax.plot(part["sigma_over_s"], part["memories"], "s--", label="minima at a patch (memory)")
        ax.axhline(cfg.k, c="gray", ls=":", lw=1, label=f"K = {cfg.k}")
        ax.set(xlabel="σ / s (s: median nearest-neighbour distance)", ylabel="count",
               title=f"Minima of the exact energy of {cfg.k} patches (d = {x.shape[1]})")  # fmt: skip
        ax.legend(fontsize=8)
        scaled = {c: part[c] * part["sigma"] ** 2 for c in ("min_barrier", "max_barrier")}
        ax2.fill_between(part["sigma_over_s"], scaled["min_barrier"], scaled["max_barrier"],
                         alpha=0.25, label="min–max over minima")  # fmt: skip
        ax2.plot(part["sigma_over_s"], part["median_barrier"] * part["sigma"] ** 2, "o-",
                 label="median")  # fmt: skip
        ax2.set(xlabel="σ / s", ylabel="σ² × barrier (a pair at distance D: → D²/8)",
                yscale="log", title="Barriers to a deeper basin, in squared distance")  # fmt: skip
        ax2.legend(fontsize=8)
    mid = sigmas[len(cfg.sigma_factors) // 2]
    with ctx.figure("disconnectivity", 1, 2, figsize=(11, 4.2)) as (_, axes):
        for ax, sigma in zip(axes, (sigmas[0], mid), strict=True):
            b = barriers[barriers["sigma"] == sigma].sort_values("minimum")
            e = edges[edges["sigma"] == sigma]
            graph = ms.landscape.disconnectivity_graph(
                b["energy"].to_numpy(), e[["i", "j", "energy"]].to_numpy(), b["label"].tolist()
            )
            graph.plot(ax)
            ax.set_title(f"σ = {sigma:.3g} = {sigma / s:.2g}·s: {len(b)} minima")
    ctx.section(
        "Minima and barriers against σ",
        f"K = {cfg.k} patches ({cfg.size}×{cfg.size}, {'colour' if cfg.color else 'grayscale'}), "
        f"median nearest-neighbour distance s = {s:.4g}, data radius R = {radius:.4g}. "
        f"Each minimum joined to its {cfg.neighbors} nearest by a string of {cfg.images} "
        "images; a barrier is the minimum's merge level minus its energy (an upper bound "
        "where its lowest col leads outside its nearest minima); roots: connected sets.",
        summary,
    )
