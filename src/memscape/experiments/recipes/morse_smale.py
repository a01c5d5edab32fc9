"""``memscape run morse-smale``: the sequence of bifurcations of a landscape along generation.

Ambrogioni 2023 (generative diffusion and associative memory as Morse–Smale flows): along a generic one-parameter family, a gradient flow
stays Morse–Smale except at isolated parameter values where critical points are
born or die in saddle-node (fold) bifurcations (pitchforks when a symmetry is
present) or where a saddle connection changes the Morse–Smale graph. Generation in
a diffusion model follows such a family, σ decreasing, from one attractor to one
per memory. Three families are followed by pseudo-arclength continuation
(:func:`memscape.landscape.continuation_snapshots`):

* ``exact``: the exact diffusion energy ``−log p_σ`` of four generic centroids in 2-D
  (the data set ``four_centroids``);
* ``trained``: a small MLP diffusion model (:meth:`memscape.ScoreModel.mlp`,
  :func:`memscape.train`) trained on samples around the same centroids (its score
  field, analysed through the Jacobian — Morse index = unstable directions);
* ``hopfield``: a 3-pattern :class:`memscape.ModernHopfield` network as the third
  pattern moves toward the midpoint of the other two (the data set ``three_patterns``).

Between consecutive events a census, its Morse–Smale graph and a landscape snapshot are
taken; the census must satisfy ``Σ(−1)^index = 1`` (Poincaré–Hopf on ℝ²), and the number
of events found must equal ``Σ |ΔN|/2`` over consecutive censuses (each fold or pitchfork
changes the number N of critical points by 2). ``explorer.html`` shows the three families
in the browser: a slider over σ (or the height), the landscape with its critical points
and Morse–Smale graph, and the bifurcation diagram with a cursor at the slider's value.

**Checked against:** Poincaré–Hopf (Σ(−1)^index = 1 for every census) and the count
of events, Σ|ΔN|/2 over consecutive censuses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.runs.explorer import write_explorer

pd = lazy.load("pandas")
torch = lazy.load("torch")

SYSTEMS = ("exact", "trained", "hopfield")
TABLES = ("branches", "bifurcations", "census", "edges", "snapshots", "patterns")
WHAT = {"exact": "Exact diffusion energy −log p_σ of four centroids, σ decreasing.",
        "trained": "Score field of an MLP trained around the four centroids, σ decreasing; Morse "
                   "index = eigenvalues of −∂s/∂x with negative real part.",
        "hopfield": "Modern Hopfield network as its third pattern (0, h) moves down to the others."}  # fmt: skip


@dataclass
class MorseSmaleConfig:
    """Options of ``morse-smale``."""

    sigma_min: float = option(0.25, "smallest σ (end of generation)", gt=0)
    sigma_max: float = option(2.0, "largest σ (start of generation)", gt=0)
    spread: float = option(0.15, "std of training samples per centroid", gt=0)
    samples: int = option(2048, "training samples of the trained model", ge=16)
    train_steps: int = option(3000, "training steps (trained model)", ge=1)
    width: int = option(128, "MLP width of the trained model", ge=8)
    beta: float = option(4.0, "β of the 3-pattern Hopfield network", gt=0)
    height_start: float = option(1.5, "third pattern's first height", gt=0)
    height_stop: float = option(0.1, "third pattern's last height", gt=0)
    steps: int = option(40, "initial continuation steps per range", ge=4)
    n_starts: int = option(400, "random starts of each census", ge=10)
    resolution: int = option(60, "grid nodes per axis of snapshots and of the explorer", ge=10)
    frames: int = option(24, "explorer: slider values along each family", ge=2)

    def validate(self) -> None:
        """The σ range and the height range must be proper intervals."""
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {self.sigma_max}")
        if self.height_start == self.height_stop:
            raise ValueError("height_start and height_stop must differ")


def family(system: str, c: MorseSmaleConfig, net: Any = None) -> tuple:
    """``(family, build, parameter, start, stop, patterns)`` of a system, as
    :func:`memscape.landscape.continuation_snapshots` takes them (``net``: the trained model)."""
    if system == "hopfield":

        def factory(height: float) -> Any:
            return ms.ModernHopfield(ms.datasets.load("three_patterns", height=height).x, c.beta)

        span = ms.datasets.load("three_patterns", height=max(c.height_start, c.height_stop)).x
        return factory, lambda h: (factory(h), None), "height", c.height_start, c.height_stop, span
    y = ms.datasets.load("four_centroids").x
    model = ms.EmpiricalDiffusion(y) if system == "exact" else net
    return model, lambda s: (model, s), "sigma", c.sigma_max, c.sigma_min, y


def family_job(system: str, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Follow one system's family; for ``trained``, first train the MLP on samples around the
    centroids (then also return its losses, weights ``param.<name>`` and ``sigma_data``)."""
    c, out, net = MorseSmaleConfig(**cfg), {}, None
    if system == "trained":
        y, s = ms.datasets.load("four_centroids").x, seed % 2**31
        x = ms.datasets.load("gmm", size=c.samples, data_seed=s, centres=y.tolist(), std=c.spread).x
        net = ms.ScoreModel.mlp(2, width=c.width, layers=3, seed=s)  # 3 layers of `width`
        run = ms.train(net, x, steps=c.train_steps, batch=256, seed=s, progress=False)
        net = run.model.double().eval().requires_grad_(False)  # float64: Newton's tolerance
        out = {f"param.{k}": v for k, v in net.state_dict().items()}
        out.update(losses=run.losses, sigma_data=torch.tensor([net.sigma_data or 0.0]))
    g = torch.Generator().manual_seed(seed)
    fam, build, name, start, stop, pats = family(system, c, net)
    return {**out, **ms.landscape.continuation_snapshots(fam, build, name, start, stop, pats,
            steps=c.steps, n_starts=c.n_starts, generator=g)}  # fmt: skip


@register(
    "morse-smale",
    config=MorseSmaleConfig,
    summary="Bifurcations and Morse–Smale graphs along generation: exact, trained, Hopfield.",
    paper="Ambrogioni 2023 (Morse–Smale dynamics of generative diffusion)",
    quick={"train_steps": 1000, "width": 64, "samples": 1024, "steps": 20, "n_starts": 100,
           "resolution": 30, "frames": 12},
    figures={
        **{f"{s}_bifurcations": f"bifurcation diagram of the {s} family" for s in SYSTEMS},
        **{f"{s}_snapshots": "landscape with its Morse–Smale graph between consecutive events"
           for s in SYSTEMS},
    },  # and explorer.html: the three families in the browser, a slider over σ (or the height)
)  # fmt: skip
def run(cfg: MorseSmaleConfig, ctx: Context) -> None:
    """Three jobs (exact, trained, hopfield); tables, checks, diagrams and snapshots."""
    res = ctx.grid(family_job, {"system": SYSTEMS}, name="family", cfg=asdict(cfg))
    out = {s: res[f"family_system={s}"] for s in SYSTEMS}
    for name in TABLES:
        ctx.table(name, pd.concat([out[s][name].assign(system=s) for s in SYSTEMS]))
    ctx.table("losses", out["trained"]["losses"])
    for s in SYSTEMS:
        snaps, bif = out[s]["snapshots"], out[s]["bifurcations"]
        found = int(bif["kind"].isin(ms.landscape.snapshots.EVENTS).sum())
        predicted = int(snaps["n_points"].diff().abs().sum() // 2)
        good = int((snaps["euler_characteristic"] == 1).sum())
        ctx.check(f"{s}: censuses with Σ(−1)^index = 1 (of {len(snaps)})", good, len(snaps), 0.0,
                  relative=False)  # fmt: skip
        if s == "exact":
            ctx.check("exact: bifurcation events = Σ|ΔN|/2 of the censuses", found, predicted, 0.0,
                      relative=False)  # fmt: skip
            small = snaps.loc[snaps["value"].idxmin()]
            ctx.check(f"exact: minima at σ = {small['value']:.3g}", int(small["n_minima"]),
                      4, 0.0, relative=False)  # fmt: skip
        _figures(out[s], s, cfg, ctx)
        cols = ["parameter", "kind", "index_before", "index_after", "x0", "x1"]
        ctx.section(f"{s}: events along the family", f"{WHAT[s]} Detected events (continuation): "
                    f"{found}; predicted from the censuses between events Σ|ΔN|/2 = {predicted}. "
                    "Snapshots: landscape between events with the Morse–Smale graph (black: "
                    "saddle → minimum edges). Events, then the census between events (one row "
                    "per snapshot):", bif[cols].round(4),
                    snaps.drop(columns=["parameter_name"]).round(4))  # fmt: skip
    match = ctx.table("event_matching", ms.landscape.snapshots.match_events(
        out["trained"]["bifurcations"], out["exact"]["bifurcations"]))  # fmt: skip
    ctx.section("Trained against exact: events matched by order and location",
                "Folds and pitchforks of the trained family (a) paired one to one with the "
                "exact family's (b) by least total distance √(‖x_a − x_b‖² + Δlog σ²) "
                "(memscape.landscape.snapshots.match_events); order from σ_max down; "
                "`distance`: between the two locations.", match.round(4))  # fmt: skip
    from memscape.landscape.explorer import explorer_data

    data = explorer_data("memscape run morse-smale: landscapes along generation",
                         [_explore(out[s], s, cfg) for s in SYSTEMS], experiment="morse-smale")  # fmt: skip
    page = write_explorer(ctx.folder.path, data)
    ctx.section("Explorer", f"`{page.name}` (beside this report, one offline page): each "
                "family's landscape with a slider over its parameter, critical points by Morse "
                "index, and the bifurcation diagram with a cursor at the slider's value.")  # fmt: skip


def _diagram(res: dict[str, Any]) -> Any:
    """The family's :class:`BifurcationDiagram` from its two tables."""
    name = str(res["branches"]["parameter_name"].iloc[0])
    return ms.BifurcationDiagram(name, name == "sigma", res["branches"], res["bifurcations"])


def _build(res: dict[str, Any], system: str, cfg: MorseSmaleConfig) -> Any:
    """``build(value) -> (model, σ)`` of a system (the trained MLP restored from its weights)."""
    net = None
    if system == "trained":
        net = ms.ScoreModel.mlp(2, width=cfg.width, layers=3)
        net.load_state_dict({k[6:]: v for k, v in res.items() if k.startswith("param.")})
        net.sigma_data = float(res["sigma_data"][0])
        net.double().eval().requires_grad_(False)
    return family(system, cfg, net)[1]


def _limits(res: dict[str, Any]) -> dict[str, Any]:
    """The landscapes' box: the patterns padded by 0.8."""
    pats = torch.tensor(res["patterns"][["x0", "x1"]].to_numpy())
    lo, hi = (pats.amin(0) - 0.8).tolist(), (pats.amax(0) + 0.8).tolist()
    return {"xlim": (lo[0], hi[0]), "ylim": (lo[1], hi[1])}


def _explore(res: dict[str, Any], system: str, cfg: MorseSmaleConfig) -> dict[str, Any]:
    """The system's family for the explorer: ``cfg.frames`` values plus the snapshots'."""
    from memscape.landscape.explorer import explorer_family, explorer_values

    bd, (_, _, _, start, stop, pats) = _diagram(res), family(system, cfg)
    values = explorer_values(start, stop, cfg.frames, log=bd.log,
                             include=res["snapshots"]["value"])  # fmt: skip
    return explorer_family(_build(res, system, cfg), bd, values, name=system,
                           patterns=None if system == "hopfield" else pats, description=WHAT[system],
                           resolution=cfg.resolution, **_limits(res))  # fmt: skip


def _figures(res: dict[str, Any], system: str, cfg: MorseSmaleConfig, ctx: Context) -> None:
    """The bifurcation diagram (both coordinates) and one landscape snapshot per interval."""
    bd = _diagram(res)
    name = bd.parameter
    with ctx.figure(f"{system}_bifurcations", 1, 2, figsize=(10, 3.8)) as (fig, axes):
        for ax, coord in zip(axes, ("x0", "x1"), strict=True):
            ms.plot_bifurcation(bd, ax=ax, y=coord, legend=coord == "x0")
            ax.invert_xaxis()  # σ (or the height) decreases: generation runs left to right
        fig.suptitle(f"{system}: critical points along the family")
    snaps, build = res["snapshots"], _build(res, system, cfg)
    pats = torch.tensor(res["patterns"][["x0", "x1"]].to_numpy())
    lims = _limits(res)
    n, cols, rows = len(snaps), min(len(snaps), 4), -(-len(snaps) // min(len(snaps), 4))
    panels = []
    for s in snaps.itertuples():
        model, sig = build(s.value)
        edges = res["edges"][res["edges"]["snapshot"] == s.snapshot]
        where = (
            f"σ = {s.value:.3g}" if name == "sigma" else f"{name} = {s.value:.3g}, β = {cfg.beta:g}"
        )
        panels.append({"model": model, "sigma": sig, "edges": edges,
                       "census": res["census"][res["census"]["snapshot"] == s.snapshot],
                       "patterns": model.memories if system == "hopfield" else pats,
                       "title": f"{where}: χ = {s.euler_characteristic}, {len(edges)} edges"})  # fmt: skip
    with ctx.figure(f"{system}_snapshots", rows, cols, figsize=(3.6 * cols, 3.7 * rows)) as f:
        axes = np.asarray(f[1]).reshape(-1)
        ms.landscape.plot_snapshots(panels, axes[:n], resolution=cfg.resolution,
                                         basin_resolution=max(cfg.resolution // 2, 4), **lims)  # fmt: skip
        for ax in axes[n:]:
            ax.axis("off")
