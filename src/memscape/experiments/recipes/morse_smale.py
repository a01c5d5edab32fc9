"""``memscape run morse-smale``: the sequence of bifurcations of a landscape along generation.

Ambrogioni 2023 (seed 000): along a generic one-parameter family, a gradient flow
stays Morse–Smale except at isolated parameter values where critical points are
born or die in saddle-node (fold) bifurcations (pitchforks when a symmetry is
present) or where a saddle connection changes the Morse–Smale graph. Generation in
a diffusion model follows such a family, σ decreasing, from one attractor to one
per memory. Three families are followed by pseudo-arclength continuation
(:func:`memscape.landscape.continuation`):

* ``exact``: the exact diffusion energy ``−log p_σ`` of four centroids in 2-D;
* ``trained``: a small MLP diffusion model (:meth:`memscape.ScoreModel.mlp`,
  :func:`memscape.train`) trained on samples around the same centroids (its score
  field, analysed through the Jacobian — Morse index = unstable directions);
* ``hopfield``: a 3-pattern :class:`memscape.ModernHopfield` network as the third
  pattern moves toward the midpoint of the other two (a factory in its height).

Between consecutive events a census (:func:`memscape.landscape.critical_points`),
its Morse–Smale graph and a landscape snapshot are taken; the census must satisfy
``Σ(−1)^index = 1`` (Poincaré–Hopf on ℝ²), and the number of events found must
equal ``Σ |ΔN|/2`` over consecutive censuses (each fold or pitchfork changes the
number N of critical points by 2).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_int, check_positive
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job

__all__ = ["CENTROIDS", "MorseSmaleConfig", "snapshot_values"]

#: four generic (asymmetric) centroids: generic families bifurcate only at folds
CENTROIDS = ((-1.0, -0.55), (1.05, -0.75), (0.8, 0.9), (-0.65, 1.05))
HOPFIELD_BASE = ((-1.0, 0.0), (1.0, 0.15))
EVENTS = ("fold", "pitchfork")


def snapshot_values(start: float, stop: float, events: Any, log: bool) -> list[float]:
    """Parameter values between consecutive events: the two ends and the midpoints.

    Args:
        start: one end of the continued range.
        stop: the other end (the values are ordered from ``start`` to ``stop``).
        events: parameter values of the events.
        log: take geometric midpoints (for σ).
    """
    ev = sorted(float(e) for e in events)
    lo, hi = sorted((start, stop))
    cuts = [lo, *[e for e in ev if lo < e < hi], hi]
    mids = [math.sqrt(a * b) if log else 0.5 * (a + b) for a, b in itertools.pairwise(cuts)]
    return sorted(mids, reverse=start > stop)


@dataclass
class MorseSmaleConfig:
    """Options of ``morse-smale``."""

    sigma_min: float = field(default=0.25, metadata={"help": "smallest σ (end of generation)"})
    sigma_max: float = field(default=2.0, metadata={"help": "largest σ (start of generation)"})
    spread: float = field(default=0.15, metadata={"help": "std of training samples per centroid"})
    samples: int = field(default=2048, metadata={"help": "training samples of the trained model"})
    train_steps: int = field(default=3000, metadata={"help": "training steps (trained model)"})
    width: int = field(default=128, metadata={"help": "MLP width of the trained model"})
    beta: float = field(default=4.0, metadata={"help": "β of the 3-pattern Hopfield network"})
    height_start: float = field(default=1.5, metadata={"help": "third pattern's first height"})
    height_stop: float = field(default=0.1, metadata={"help": "third pattern's last height"})
    steps: int = field(default=40, metadata={"help": "initial continuation steps per range"})
    n_starts: int = field(default=400, metadata={"help": "random starts of each census"})
    resolution: int = field(default=60, metadata={"help": "grid nodes per axis of snapshots"})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the invalid option."""
        for name in ("sigma_min", "sigma_max", "spread", "beta", "height_start", "height_stop"):
            check_positive(getattr(self, name), name)
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {self.sigma_max}")
        if self.height_start == self.height_stop:
            raise ValueError("height_start and height_stop must differ")
        check_int(self.samples, "samples", minimum=16)
        check_int(self.train_steps, "train_steps")
        check_int(self.width, "width", minimum=8)
        check_int(self.steps, "steps", minimum=4)
        check_int(self.n_starts, "n_starts", minimum=10)
        check_int(self.resolution, "resolution", minimum=10)


# ----------------------------------------------------------------------------- analysis
def follow(
    system: str,
    family: Any,
    build: Callable[[float], tuple[Any, Any]],
    parameter: str,
    start: float,
    stop: float,
    patterns: torch.Tensor,
    *,
    steps: int,
    n_starts: int,
    generator: torch.Generator,
) -> dict[str, pd.DataFrame]:
    """Continue ``family`` in ``parameter``; census and Morse–Smale graph between events.

    ``family`` is what :func:`memscape.landscape.continuation` takes (a model for σ, else
    a factory); ``build(value) -> (model, σ)`` gives the landscape at one value.
    """  # fmt: skip
    from memscape.landscape import continuation, critical_points, morse_smale_graph

    log = parameter == "sigma"
    bd = continuation(family, parameter, start=start, stop=stop, steps=steps,
                      census_kwargs={"n_starts": n_starts, "patterns": patterns},
                      generator=generator)  # fmt: skip
    events = bd.bifurcations[bd.bifurcations["kind"].isin(EVENTS)]
    values = snapshot_values(start, stop, events["parameter"], log)
    census, edges, summary = [], [], []
    for j, v in enumerate(values):
        model, sig = build(v)
        cps = critical_points(model, sig, n_starts=n_starts, patterns=patterns, generator=generator)
        graph = morse_smale_graph(model, cps, sig)
        tb = cps.table.drop(columns=["eigenvalues"]).reset_index(names="point")
        census.append(tb.assign(snapshot=j, value=v))
        rows = [{"saddle": s, "end": str(e), "saddle_connection": a["saddle_connection"]}
                for s, e, a in graph.edges(data=True)]  # fmt: skip
        edges.append(pd.DataFrame(rows, columns=["saddle", "end", "saddle_connection"])
                     .assign(snapshot=j, value=v))  # fmt: skip
        idx = tb.loc[tb["converged"], "morse_index"]
        summary.append({"snapshot": j, "value": v, "n_points": int(idx.size),
                        "n_minima": int((idx == 0).sum()), "n_saddles": int((idx == 1).sum()),
                        "n_maxima": int((idx == 2).sum()),
                        "euler_characteristic": cps.euler_characteristic(),
                        "n_edges": graph.number_of_edges(),
                        "is_morse_smale": bool(graph.graph["is_morse_smale"])})  # fmt: skip
    meta = {"system": system, "parameter_name": parameter}
    bif = bd.bifurcations.assign(**meta)
    bif["branches"] = bif["branches"].map(str)
    return {
        "branches": bd.branches.assign(**meta),
        "bifurcations": bif,
        "census": pd.concat(census, ignore_index=True).assign(**meta),
        "edges": pd.concat(edges, ignore_index=True).assign(**meta),
        "snapshots": pd.DataFrame(summary).assign(**meta),
        "patterns": pd.DataFrame(patterns.numpy(), columns=["x0", "x1"]).assign(**meta),
    }


def centroids() -> torch.Tensor:
    """:data:`CENTROIDS` as a ``(4, 2)`` float64 tensor."""
    return torch.tensor(CENTROIDS, dtype=torch.float64)


def hopfield_patterns(height: float) -> torch.Tensor:
    """Patterns ``(−1, 0), (1, 0.15), (0, height)`` of the Hopfield family: ``(3, 2)``."""
    third = torch.tensor([[0.0, float(height)]], dtype=torch.float64)
    return torch.cat([torch.tensor(HOPFIELD_BASE, dtype=torch.float64), third])


def mlp(width: int, seed: int = 0) -> Any:
    """The trained family's network: :meth:`ScoreModel.mlp` with 3 layers of ``width``."""
    from memscape.diffusion.model import ScoreModel

    return ScoreModel.mlp(2, width=width, layers=3, seed=seed)


def exact_job(
    sigma_min: float, sigma_max: float, steps: int, n_starts: int, seed: int
) -> dict[str, pd.DataFrame]:
    """The exact diffusion energy of :data:`CENTROIDS`, σ from ``sigma_max`` to ``sigma_min``."""
    from memscape import EmpiricalDiffusion
    from memscape.experiments._seeds import job_generator

    model = EmpiricalDiffusion(centroids())
    return follow("exact", model, lambda s: (model, s), "sigma", sigma_max, sigma_min,
                  centroids(), steps=steps, n_starts=n_starts,
                  generator=job_generator(seed, "morse-smale", "exact"))  # fmt: skip


def trained_job(
    sigma_min: float,
    sigma_max: float,
    spread: float,
    samples: int,
    train_steps: int,
    width: int,
    steps: int,
    n_starts: int,
    seed: int,
) -> dict[str, Any]:
    """Train an MLP score model on samples around the centroids; follow its score field in σ.

    Besides the tables, returns the trained weights (``param.<name>`` tensors) and
    ``sigma_data`` so that the figures can rebuild the model.
    """  # fmt: skip
    from memscape.diffusion.training import train
    from memscape.experiments._seeds import job_generator, job_seed

    g = job_generator(seed, "morse-smale", "trained")
    y = centroids()
    noise = spread * torch.randn(samples, 2, generator=g, dtype=torch.float64)
    x = (y[torch.arange(samples) % len(y)] + noise).float()
    model = mlp(width, job_seed(seed, "net") % 2**31)
    run = train(model, x, steps=train_steps, batch=256, seed=job_seed(seed, "train") % 2**31,
                progress=False)  # fmt: skip
    model = run.model.double().eval().requires_grad_(False)  # float64 for Newton's tolerance
    out: dict[str, Any] = follow(
        "trained", model, lambda s: (model, s), "sigma", sigma_max, sigma_min, y, steps=steps,
        n_starts=n_starts, generator=g)  # fmt: skip
    out["losses"] = run.losses
    out.update({f"param.{k}": v for k, v in model.state_dict().items()})
    out["sigma_data"] = torch.tensor([model.sigma_data or 0.0], dtype=torch.float64)
    return out


def hopfield_job(
    beta: float, height_start: float, height_stop: float, steps: int, n_starts: int, seed: int
) -> dict[str, pd.DataFrame]:
    """3-pattern modern Hopfield network as pattern 3 at ``(0, height)`` moves toward the others."""
    from memscape import ModernHopfield
    from memscape.experiments._seeds import job_generator

    def factory(height: float) -> ModernHopfield:
        return ModernHopfield(hopfield_patterns(height), beta)

    span = hopfield_patterns(max(height_start, height_stop))
    return follow("hopfield", factory, lambda h: (factory(h), None), "height", height_start,
                  height_stop, span, steps=steps, n_starts=n_starts,
                  generator=job_generator(seed, "morse-smale", "hopfield"))  # fmt: skip


# ----------------------------------------------------------------------------- run
@register(
    "morse-smale",
    config=MorseSmaleConfig,
    summary="Bifurcations and Morse–Smale graphs along generation: exact, trained, Hopfield.",
    paper="Ambrogioni 2023, seed 000 (Morse–Smale dynamics of generative diffusion)",
    quick={"train_steps": 1000, "width": 64, "samples": 1024, "steps": 20, "n_starts": 100,
           "resolution": 30},
)  # fmt: skip
def run(cfg: MorseSmaleConfig, ctx: Context) -> None:
    """Three jobs (exact, trained, hopfield); tables, checks, diagrams and snapshots."""
    common = {"steps": cfg.steps, "n_starts": cfg.n_starts, "seed": ctx.seed}
    sig = {"sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max}
    hop = {"beta": cfg.beta, "height_start": cfg.height_start, "height_stop": cfg.height_stop}
    trn = {"spread": cfg.spread, "samples": cfg.samples, "train_steps": cfg.train_steps,
           "width": cfg.width}  # fmt: skip
    out: dict = {}
    out.update(ctx.sweep(exact_job, [Job("exact", {**sig, **common})], "exact"))
    out.update(ctx.sweep(hopfield_job, [Job("hopfield", {**hop, **common})], "hopfield"))
    out.update(ctx.sweep(trained_job, [Job("trained", {**sig, **trn, **common})], "trained"))
    systems = ("exact", "trained", "hopfield")
    for name in ("branches", "bifurcations", "census", "edges", "snapshots", "patterns"):
        ctx.folder.write_table(name, pd.concat([out[s][name] for s in systems], ignore_index=True))
    ctx.folder.write_table("losses", out["trained"]["losses"])

    for s in systems:
        snaps, bif = out[s]["snapshots"], out[s]["bifurcations"]
        found = int(bif["kind"].isin(EVENTS).sum())
        predicted = int(snaps["n_points"].diff().abs().sum() // 2)
        good = int((snaps["euler_characteristic"] == 1).sum())
        ctx.folder.add_check(f"{s}: censuses with Σ(−1)^index = 1 (of {len(snaps)})", good,
                             len(snaps), 0.0, relative=False)  # fmt: skip
        if s == "exact":
            ctx.folder.add_check("exact: bifurcation events = Σ|ΔN|/2 of the censuses", found,
                                 predicted, 0.0, relative=False)  # fmt: skip
            small = snaps.loc[snaps["value"].idxmin()]
            ctx.folder.add_check(
                f"exact: minima at σ = {small['value']:.3g}",
                int(small["n_minima"]),
                len(CENTROIDS),
                0.0,
                relative=False,
            )
        ctx.folder.save_figure(f"{s}_bifurcations", _diagram(out[s], s))
        ctx.folder.save_figure(f"{s}_snapshots", _snapshots(out[s], s, cfg))
        cols = ["parameter", "kind", "index_before", "index_after", "x0", "x1"]
        ctx.folder.add_section(f"{s}: events along the family", (
            f"{_WHAT[s]} Detected events (continuation): {found}; predicted from the "
            f"censuses between events Σ|ΔN|/2 = {predicted}. Snapshots: landscape between "
            "events with the Morse–Smale graph (black: saddle → minimum edges).\n\n"
            + (bif[cols].to_markdown(index=False, floatfmt=".4g") if len(bif) else "none")
            + "\n\nCensus between events (one row per snapshot):\n\n"
            + snaps.drop(columns=["system", "parameter_name"]).to_markdown(
                index=False, floatfmt=".4g")))  # fmt: skip


_WHAT = {
    "exact": "Exact diffusion energy −log p_σ of four centroids, σ decreasing (generation).",
    "trained": "Score field of a small MLP diffusion model trained on samples around the four "
               "centroids, σ decreasing; Morse index = eigenvalues of −∂s/∂x with negative real "
               "part.",
    "hopfield": "Modern Hopfield network (3 patterns) as the third pattern (0, h) moves toward "
                "the other two, h decreasing.",
}  # fmt: skip


def _diagram(res: dict[str, Any], system: str) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memscape.landscape import BifurcationDiagram, plot_bifurcation

    name = str(res["branches"]["parameter_name"].iloc[0])
    bd = BifurcationDiagram(name, name == "sigma", res["branches"], res["bifurcations"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, coord in zip(axes, ("x0", "x1"), strict=True):
        plot_bifurcation(bd, ax=ax, y=coord, legend=coord == "x0")
        ax.invert_xaxis()  # σ (or the height) decreases: generation runs left to right
    fig.suptitle(f"{system}: critical points along the family")
    fig.tight_layout()
    return fig


def _rebuild(res: dict[str, Any], system: str, cfg: MorseSmaleConfig) -> Callable:
    """``value -> (model, σ)`` of a system, rebuilt in this process for the figures."""
    from memscape import EmpiricalDiffusion, ModernHopfield

    if system == "exact":
        exact = EmpiricalDiffusion(centroids())
        return lambda v: (exact, v)
    if system == "hopfield":
        return lambda v: (ModernHopfield(hopfield_patterns(v), cfg.beta), None)
    net = mlp(cfg.width)
    net.load_state_dict({k[6:]: v for k, v in res.items() if k.startswith("param.")})
    net.sigma_data = float(res["sigma_data"][0])
    net.double().eval().requires_grad_(False)
    return lambda v: (net, v)


def _snapshots(res: dict[str, Any], system: str, cfg: MorseSmaleConfig) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memscape.experiments.recipes.landscape import landscape_figure

    snaps = res["snapshots"]
    n = len(snaps)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.5 * rows), squeeze=False)
    name = str(snaps["parameter_name"].iloc[0])
    build = _rebuild(res, system, cfg)
    pats = torch.tensor(res["patterns"][["x0", "x1"]].to_numpy())
    lo, hi = (pats.amin(0) - 0.8).tolist(), (pats.amax(0) + 0.8).tolist()
    box = pd.DataFrame({"low": lo, "high": hi}, index=["x0", "x1"])
    for ax, s in zip(axes.flat, snaps.itertuples(), strict=False):
        model, sig = build(s.value)
        census = res["census"][res["census"]["snapshot"] == s.snapshot]
        shown = None if system == "hopfield" else pats
        if system == "hopfield":
            shown = hopfield_patterns(s.value)
        landscape_figure(model, sig, census, shown, box, cfg.resolution,
                         max(cfg.resolution // 2, 4), ax=ax)  # fmt: skip
        pos = census.set_index("point")
        edges = res["edges"][res["edges"]["snapshot"] == s.snapshot]
        for e in edges[edges["end"].str.isdigit()].itertuples():  # the Morse–Smale graph
            a, b = pos.loc[int(e.saddle)], pos.loc[int(e.end)]
            ax.plot([a.x0, b.x0], [a.x1, b.x1], c="k", lw=1.0, alpha=0.7, zorder=4)
        ax.set_title(f"{name} = {s.value:.3g}: χ = {s.euler_characteristic}, "
                     f"{len(edges)} edges", fontsize=9)  # fmt: skip
        legend = ax.get_legend()
        if legend is not None and ax is not axes.flat[0]:
            legend.remove()
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig
