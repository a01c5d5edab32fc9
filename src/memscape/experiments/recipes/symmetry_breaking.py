"""``memscape run symmetry-breaking``: the pitchfork of the exact diffusion energy of two points ±a.

Raya & Ambrogioni 2023, "Spontaneous symmetry breaking in generative diffusion
models": for data ``{+a, −a}`` the exact density ``p_σ`` has one critical point,
a minimum at 0, for σ > a and splits into two minima and a saddle at ``σ_c = a``
(Hessian ``(1 − a²/σ²)/σ²`` at 0). Two objects bifurcate, at different times:

* the density of the forward process in x-space, ``−log p_t(x) = −log p_σ(x/s) + d log s``
  (``x_t = s(t)(x₀ + σ(t) z)``): its critical points are ``s·`` those of ``p_σ``
  and its Hessian ``H_σ/s²``, so it breaks at ``σ(t_c) = a`` for every process —
  ``t_c = a`` (VE), ``½ ln(1 + a²)`` (OU), ``VP.t_of_sigma(a)`` (VP);
* the potential ``U`` of the reverse-SDE drift (the force on generated samples),
  ``−f + g²∇log p_t = −∇U`` with ``f = (ṡ/s)x`` and ``g² = 2s²σσ̇`` (Karras et al.
  2022, eq. 4; ``f = −½β(t)x``, ``g² = β(t)`` for VP; ``f = −x``, ``g² = 2`` for OU)::

      U(x, t) = g(t)² (−log p_t(x)) + ½ (ṡ/s) ‖x‖².

  For VP and OU ``ṡ/s < 0`` (``½(ṡ/s)‖x‖² = −¼β(t)‖x‖²``): the drift ``−f`` of the
  reverse process pushes outward, so ``U`` loses its central minimum earlier in
  generative time (larger σ), at ``σ_c² = a² − 1 + √(1 + a⁴)`` whatever the β
  schedule (:func:`memscape.theory.drift_potential_breaking_time`);
  for VE (``f = 0``) both coincide.

The experiment follows both objects in t by pseudo-arclength continuation
(:func:`memscape.landscape.continuation`) with a factory ``t ↦`` :class:`ProcessLandscape`
and compares the detected bifurcation with the closed forms; it also draws the
bifurcation diagram of a small 2-D data set over σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.diffusion.processes import NoiseProcess, get_process
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job
from memscape.protocol import EnergyModel

__all__ = ["ProcessLandscape", "SymmetryBreakingConfig", "process_coefficients"]

PROCESSES = ("ve", "vp", "ou")
OBJECTS = ("density", "drift")


def process_coefficients(
    process: str | NoiseProcess, t: float
) -> tuple[float, float, float, float]:
    """``(s, σ, ṡ/s, g²)`` of a forward process at time ``t``.

    The process ``x_t = s(t)(x₀ + σ(t)z)`` is the SDE ``dx = (ṡ/s) x dt + g dW`` with
    ``g² = 2 s² σ σ̇`` (Karras et al. 2022, eq. 4); derivatives by autograd through
    the process' ``scale`` and ``sigma``. VP: ``ṡ/s = −½β(t)``, ``g² = β(t)``;
    OU: ``−1``, ``2``; VE: ``0``, ``2t``.
    """
    proc = get_process(process)
    check_positive(t, "t")
    tt = torch.tensor(float(t), dtype=torch.float64, requires_grad=True)
    with torch.enable_grad():
        s, sig = proc.scale(tt), proc.sigma(tt)
        ds = torch.autograd.grad(s, tt)[0] if s.requires_grad else torch.zeros(())
        dsig = torch.autograd.grad(sig, tt)[0]
    sv, sigv = float(s.detach()), float(sig.detach())
    return sv, sigv, float(ds) / sv, 2 * sv * sv * sigv * float(dsig)


class ProcessLandscape(EnergyModel):
    """A noise-conditioned model's landscape in x-space at forward time ``t`` of a process.

    ``kind = "density"``: ``E(x) = −log p_t(x) = E_σ(x/s) + d log s`` with σ = σ(t),
    s = s(t) and ``E_σ`` the model's energy (``−log p_σ`` for :class:`EmpiricalDiffusion`).
    ``kind = "drift"``: the reverse-SDE drift potential (Raya & Ambrogioni 2023)
    ``U(x) = g² E(x) + ½ (ṡ/s) ‖x‖²``, whose negative gradient is the generative drift
    ``−f + g² ∇log p_t`` (module docstring). Closed-form score and Hessian from the
    model's: ``∇E = ∇E_σ(x/s)/s``, ``∇²E = ∇²E_σ(x/s)/s²``.

    Args:
        model: a noise-conditioned model with ``energy``, ``score`` and ``hessian``.
        process: ``"ve"``, ``"vp"``, ``"ou"`` (or a :class:`NoiseProcess`).
        t: forward time > 0.
        kind: ``"density"`` or ``"drift"``.
    """

    def __init__(self, model: Any, process: str | NoiseProcess, t: float, kind: str = "density"):
        if not getattr(model, "noise_conditioned", False):
            raise TypeError(f"model must be noise-conditioned, got {type(model).__name__}")
        self.kind = check_choice(kind, OBJECTS, "kind")
        self.process = get_process(process)
        self.t = float(t)
        self.s, self.sigma, self.rate, self.g2 = process_coefficients(self.process, t)
        self.model = model
        self.event_shape = tuple(model.event_shape)
        data = getattr(model, "data", None)
        self.patterns = None if data is None else self.s * data  # the means of p_t's modes

    def _z(self, x: torch.Tensor) -> torch.Tensor:
        return self._check_x(x) / self.s

    def energy(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """Density energy ``−log p_t(x)`` or drift potential ``U(x, t)``: ``(B, *E) -> (B,)``."""
        e = self.model.energy(self._z(x), self.sigma) + self.dim * math.log(self.s)
        if self.kind == "density":
            return e
        return self.g2 * e + 0.5 * self.rate * x.reshape(x.shape[0], -1).pow(2).sum(1)

    def score(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``−∇E``: the density's score or the generative drift ``−f + g²∇log p_t``; shape of x."""
        sc = self.model.score(self._z(x), self.sigma) / self.s
        return sc if self.kind == "density" else self.g2 * sc - self.rate * x

    def hessian(self, x: torch.Tensor, sigma: Any = None) -> torch.Tensor:
        """``∇²E`` in x-space: ``(B, d, d)``."""
        h = self.model.hessian(self._z(x), self.sigma) / self.s**2
        if self.kind == "density":
            return h
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return self.g2 * h + self.rate * eye


# ----------------------------------------------------------------------------- config
@dataclass
class SymmetryBreakingConfig:
    """Options of ``symmetry-breaking``."""

    separations: tuple[float, ...] = field(
        default=(0.5, 1.0, 2.0), metadata={"help": "half-distances a of the two points ±a"}
    )
    processes: tuple[str, ...] = field(
        default=PROCESSES, metadata={"help": "forward processes (ve, vp, ou)"}
    )
    data: str = field(
        default="triangle",
        metadata={"help": "2-D data of the σ bifurcation diagram: triangle, circle, mixture, grid"},
    )
    k: int = field(default=3, metadata={"help": "points of the 2-D data (circle, mixture, grid)"})
    sigma_min: float = field(default=0.05, metadata={"help": "smallest σ of the diagram"})
    sigma_max: float = field(default=2.0, metadata={"help": "largest σ of the diagram"})
    steps: int = field(default=40, metadata={"help": "initial continuation steps per range"})
    n_starts: int = field(default=300, metadata={"help": "random starts of each census"})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the invalid option."""
        from memscape.experiments.recipes.landscape import DATASETS

        if not self.separations or not self.processes:
            raise ValueError("separations and processes must be non-empty")
        for a in self.separations:
            check_positive(a, "separations")
        for p in self.processes:
            check_choice(p, PROCESSES, "processes")
        check_choice(self.data, DATASETS, "data")
        check_int(self.k, "k")
        check_positive(self.sigma_min, "sigma_min")
        check_positive(self.sigma_max, "sigma_max")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(
                f"sigma_max must exceed sigma_min, got {self.sigma_max} <= {self.sigma_min}"
            )
        check_int(self.steps, "steps", minimum=4)
        check_int(self.n_starts, "n_starts", minimum=10)


# ----------------------------------------------------------------------------- jobs
def pair_job(a: float, process: str, kind: str, steps: int, n_starts: int, seed: int):
    """Continue the critical points of ``ProcessLandscape(±a, process, t, kind)`` in t.

    Range ``t(0.3a) .. t(3a)``; the measured critical time is the bifurcation on the
    central branch (``|x| < 10⁻³a``). One row per bifurcation plus the branch table.
    """
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.experiments._seeds import job_generator
    from memscape.landscape import continuation

    proc = get_process(process)
    model = EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    t0, t1 = float(proc.t_of_sigma(0.3 * a)), float(proc.t_of_sigma(3.0 * a))
    g = job_generator(seed, "symmetry-breaking", a, process, kind)
    # log t keeps t > 0: the corrector may step past the ends of the range
    bd = continuation(
        lambda t: ProcessLandscape(model, proc, t, kind), "t", start=t1, stop=t0, log=True,
        steps=steps, census_kwargs={"n_starts": n_starts}, generator=g,
    )  # fmt: skip
    meta = {"a": a, "process": process, "object": kind}
    bif = bd.bifurcations.assign(**meta)
    bif["branches"] = bif["branches"].map(str)
    bif["central"] = bif["x0"].abs() < 1e-3 * a
    bif["sigma"] = [float(proc.sigma(t)) for t in bif["parameter"]]
    return {"bifurcations": bif, "branches": bd.branches.assign(**meta)}


def diagram_job(
    data: str, k: int, sigma_min: float, sigma_max: float, steps: int, n_starts: int, seed: int
):
    """Bifurcation diagram over σ of the exact diffusion energy of a small 2-D data set."""
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.experiments._seeds import job_generator
    from memscape.experiments.recipes.landscape import synthetic_points
    from memscape.landscape import continuation

    g = job_generator(seed, "symmetry-breaking-diagram", data, k)
    model = EmpiricalDiffusion(synthetic_points(data, k, generator=g))
    bd = continuation(
        model,
        "sigma",
        start=sigma_min,
        stop=sigma_max,
        steps=steps,
        census_kwargs={"n_starts": n_starts},
        generator=g,
    )
    return {
        "branches": bd.branches,
        "bifurcations": bd.bifurcations.assign(branches=bd.bifurcations["branches"].map(str)),
        "data": pd.DataFrame(model.data.numpy(), columns=["x0", "x1"]),
    }


# ----------------------------------------------------------------------------- run
@register(
    "symmetry-breaking",
    config=SymmetryBreakingConfig,
    summary="Pitchfork of two points ±a under VE/VP/OU: density vs reverse-drift potential.",
    paper="Raya & Ambrogioni 2023 (spontaneous symmetry breaking); Biroli et al. 2024",
    quick={"separations": (1.0,), "steps": 25, "n_starts": 100},
)
def run(cfg: SymmetryBreakingConfig, ctx: Context) -> None:
    """Continuation jobs per (a, process, object) and one σ diagram; tables, checks, figures."""
    from memscape import theory

    jobs = [
        Job(
            "diagram",
            {
                "data": cfg.data,
                "k": cfg.k,
                "sigma_min": cfg.sigma_min,
                "sigma_max": cfg.sigma_max,
                "steps": cfg.steps,
                "n_starts": cfg.n_starts,
                "seed": ctx.seed,
            },
        )
    ]
    pairs = [(a, p, o) for a in cfg.separations for p in cfg.processes for o in OBJECTS]
    jobs += [
        Job(
            f"a={a:g}_{p}_{o}",
            {
                "a": a,
                "process": p,
                "kind": o,
                "steps": cfg.steps,
                "n_starts": cfg.n_starts,
                "seed": ctx.seed,
            },
        )
        for a, p, o in pairs
    ]
    diagram = ctx.sweep(diagram_job, jobs[:1], "σ diagram")["diagram"]
    out = ctx.sweep(pair_job, jobs[1:], "two points ±a")

    rows = []
    for (a, p, o), job in zip(pairs, jobs[1:], strict=True):
        bif = out[job.key]["bifurcations"]
        central = bif[bif["central"]]
        t_meas = float(central["parameter"].iloc[0]) if len(central) else math.nan
        if o == "density":
            t_th = theory.symmetry_breaking_time(a, p)
        else:
            t_th = theory.drift_potential_breaking_time(a, p)
        proc = get_process(p)
        rows.append(
            {
                "a": a,
                "process": p,
                "object": o,
                "t_c": t_meas,
                "t_c_theory": t_th,
                "sigma_c": float(proc.sigma(t_meas)) if len(central) else math.nan,
                "sigma_c_theory": float(proc.sigma(t_th)),
                "kind": central["kind"].iloc[0] if len(central) else "none",
                "n_bifurcations": len(bif),
            }
        )
    crit = pd.DataFrame(rows)
    crit["relative_gap"] = (crit["t_c"] - crit["t_c_theory"]).abs() / crit["t_c_theory"]
    ctx.folder.write_table("critical_times", crit)
    ctx.folder.write_table(
        "pair_bifurcations",
        pd.concat([out[j.key]["bifurcations"] for j in jobs[1:]], ignore_index=True),
    )
    ctx.folder.write_table(
        "pair_branches", pd.concat([out[j.key]["branches"] for j in jobs[1:]], ignore_index=True)
    )
    for r in crit.itertuples():
        if r.object == "density" and r.process == "ve":
            ctx.folder.add_check(f"σ_c of ±{r.a:g} (density)", r.sigma_c, r.a, 0.01)
        ctx.folder.add_check(f"t_c of ±{r.a:g}, {r.process}, {r.object}", r.t_c, r.t_c_theory, 0.01)
    for name in ("branches", "bifurcations", "data"):
        ctx.folder.write_table(f"diagram_{name}", diagram[name])

    ctx.folder.save_figure("pair_bifurcations", _pair_figure(crit, out, jobs[1:], pairs))
    ctx.folder.save_figure("sigma_diagram", _diagram_figure(diagram, cfg.data))
    ctx.folder.add_section(
        "Critical times of two points ±a",
        _TEXT + "\n\n" + crit.to_markdown(index=False, floatfmt=".5g"),
    )
    bif = diagram["bifurcations"]
    data = torch.tensor(diagram["data"][["x0", "x1"]].to_numpy())
    mean = data.mean(0)
    note = ""
    if float(mean.abs().max()) < 1e-8 * float(data.abs().max()):  # centred: the mean is critical
        m0, m1 = float(mean[0]), float(mean[1])
        at_mean = bif[(bif["x0"] - m0).abs().lt(1e-6) & (bif["x1"] - m1).abs().lt(1e-6)]
        sigma_mean = float(at_mean["parameter"].max()) if len(at_mean) else math.nan
        sigma_th = theory.critical_beta(data) ** -0.5
        ctx.folder.add_check("σ at which the data mean changes index", sigma_mean, sigma_th, 0.01)
        note = (
            f" The mean of the (centred) data changes index at σ = {sigma_mean:.5g}; theory "
            f"σ_c = √λ_max(Cov) = {sigma_th:.5g} (memscape.theory.critical_beta, β = 1/σ²)."
        )
    ctx.folder.add_section(
        f"Bifurcation diagram of the exact energy of '{cfg.data}' over σ",
        "Pseudo-arclength continuation of every critical point of −log p_σ for σ in "
        f"[{cfg.sigma_min:g}, {cfg.sigma_max:g}].{note} Detected bifurcations:\n\n"
        + (
            bif.drop(columns=["branches"]).to_markdown(index=False, floatfmt=".5g")
            if len(bif)
            else "none"
        ),
    )


_TEXT = (
    "The density −log p_t(x) = −log p_σ(x/s) + d log s bifurcates at σ(t_c) = a for every "
    "process. The reverse-SDE drift potential U = g²(−log p_t) + ½(ṡ/s)‖x‖² "
    "(−∇U = −f + g²∇log p_t; Raya & Ambrogioni 2023) bifurcates at σ_c = a for VE and at "
    "σ_c² = a² − 1 + √(1 + a⁴) for VP and OU: the generative force loses its single attractor "
    "earlier in generation (larger t) than the density. t_c: the bifurcation detected on the "
    "central branch by continuation in t; theory from memscape.theory."
)


def _pair_figure(crit: pd.DataFrame, out: dict[str, Any], jobs: list[Job], pairs: list) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memscape.landscape import BifurcationDiagram, plot_bifurcation

    procs = list(dict.fromkeys(p for _, p, _ in pairs))
    seps = list(dict.fromkeys(a for a, _, _ in pairs))
    rows = len(OBJECTS) * len(seps)
    fig, axes = plt.subplots(rows, len(procs), figsize=(4.2 * len(procs), 3.2 * rows),
                             squeeze=False)  # fmt: skip
    for (a, p, o), job in zip(pairs, jobs, strict=True):
        ax = axes[seps.index(a) * len(OBJECTS) + OBJECTS.index(o), procs.index(p)]
        res = out[job.key]
        bd = BifurcationDiagram("t", True, res["branches"], res["bifurcations"])
        plot_bifurcation(bd, ax=ax, y="x0", legend=(a, p, o) == pairs[0])
        r = crit[(crit.a == a) & (crit.process == p) & (crit.object == o)].iloc[0]
        ax.axvline(r.t_c_theory, c="k", ls=":", lw=0.8)
        ax.set_title(f"{p.upper()}, {o}, a = {a:g} (dotted: theory t_c)", fontsize=9)
        ax.set_xlabel("forward time t")
    fig.tight_layout()
    return fig


def _diagram_figure(diagram: dict[str, pd.DataFrame], data: str) -> Any:
    from memscape.landscape import BifurcationDiagram, plot_bifurcation

    bd = BifurcationDiagram("sigma", True, diagram["branches"], diagram["bifurcations"])
    fig = plot_bifurcation(bd).figure
    fig.axes[0].set_title(f"{data}: critical points of −log p_σ over σ", fontsize=9)
    return fig
