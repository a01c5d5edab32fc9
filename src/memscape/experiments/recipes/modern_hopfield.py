"""``memscape run modern-hopfield``: retrieval error, metastable states and the β bifurcation.

Ramsauer et al. 2020 ("Hopfield networks is all you need"), continuous modern
Hopfield network ``E(ξ) = −β⁻¹ log Σ_μ exp(β x_μᵀξ) + ½ξᵀξ + const``, update
``ξ ← X softmax(β Xᵀξ)`` (:class:`memscape.ModernHopfield`). Three measurements:

* **one-step retrieval error** ``‖f(ξ) − x_i‖`` against β for memories with an
  exactly prescribed separation Δ (Def. 1), with the Theorem 5 bound
  ``2(K − 1) exp(−β(Δ − 2‖ξ − x_i‖M)) M`` (:func:`memscape.theory.hopfield_retrieval_bound`)
  drawn; checks: the bound holds for every query, and the error decays at the
  rate Δ in β;
* **metastable-state size** (softmax weights above a threshold at the fixed point
  reached from each stored pattern) against β: K (the global average) for small
  β, 1 (single memories) for large β;
* **the bifurcation of the global fixed point**: for centred memories ξ = 0 is a
  fixed point with Hessian ``I − β Cov``, which loses stability at
  ``β_c = 1/λ_max(Cov)`` (:func:`memscape.theory.critical_beta`). Measured by
  pseudo-arclength continuation in β (:func:`memscape.continuation`, the pitchfork
  location) and by the zero crossing of the smallest Hessian eigenvalue at the mean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_int, check_positive
from memscape.experiments._seeds import job_generator
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job, JobOutput
from memscape.theory import critical_beta, hopfield_retrieval_bound


@dataclass
class ModernHopfieldConfig:
    """Options of ``modern-hopfield`` (defaults: about a minute on 2 CPU cores)."""

    memories: int = field(default=16, metadata={"help": "K of the retrieval-error sweep"})
    dim: int = field(
        default=32, metadata={"help": "dimension d of the retrieval-error sweep (> K)"}
    )
    separations: tuple[float, ...] = field(
        default=(0.25, 0.5, 1.0),
        metadata={"help": "separations Δ in (0, 1] of unit-norm memories (pairwise xᵀy = 1 − Δ)"},
    )
    radii: tuple[float, ...] = field(
        default=(0.0, 0.05),
        metadata={"help": "distances ‖ξ − x_i‖ of the queries from their memory"},
    )
    betas: tuple[float, ...] = field(
        default=tuple(round(float(b), 4) for b in np.geomspace(0.5, 24.0, 16)),
        metadata={"help": "β of the retrieval-error sweep (keep β·Δ ≲ 25: float64 resolution)"},
    )
    data_points: int = field(
        default=24,
        metadata={"help": "K of the 2-D Gaussian data of the metastable and bifurcation sweeps"},
    )
    beta_factors: tuple[float, ...] = field(
        default=(0.25, 0.5, 0.9, 1.1, 1.5, 2, 3, 5, 8, 12, 20, 32, 50, 80),
        metadata={"help": "β/β_c of the metastable-size sweep"},
    )
    threshold: float = field(
        default=0.01, metadata={"help": "softmax weight counted in the metastable size"}
    )
    stop_factor: float = field(
        default=4.0, metadata={"help": "continuation runs to β = stop_factor·β_c"}
    )

    def validate(self) -> None:
        """Raise ``ValueError`` on an invalid option."""
        for name in ("separations", "radii", "betas", "beta_factors"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be non-empty")
        check_int(self.memories, "memories", minimum=2)
        check_int(self.dim, "dim", minimum=self.memories + 1)
        check_int(self.data_points, "data_points", minimum=3)
        for d in self.separations:
            check_positive(d, "separations")
            if d > 1:
                raise ValueError(f"separations must be in (0, 1], got {d}")
        for r in self.radii:
            check_positive(r, "radii", allow_zero=True)
        for name in ("betas", "beta_factors"):
            for b in getattr(self, name):
                check_positive(b, name)
        check_positive(self.threshold, "threshold")
        check_positive(self.stop_factor, "stop_factor")
        if self.stop_factor <= 1:
            raise ValueError(f"stop_factor must be > 1, got {self.stop_factor}")


def equiseparated_memories(
    K: int, d: int, delta: float, *, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``(K, d)`` unit-norm memories with ``x_μᵀx_ν = 1 − Δ`` for μ ≠ ν, so every separation is Δ.

    ``x_μ = √Δ e_μ + √(1 − Δ) e_K`` (e the standard basis): the separation
    ``Δ_i = x_iᵀx_i − max_{j≠i} x_iᵀx_j`` of Ramsauer et al. 2020, Def. 1, equals Δ
    for every i, and M = max ‖x_μ‖ = 1.

    Args:
        K: number of memories ≥ 2.
        d: dimension > K.
        delta: separation in (0, 1].
        dtype: of the returned memories.
    """
    check_int(K, "K", minimum=2)
    check_int(d, "d", minimum=K + 1)
    check_positive(delta, "delta")
    if delta > 1:
        raise ValueError(f"delta must be in (0, 1], got {delta!r}")
    x = torch.zeros(K, d, dtype=dtype)
    x[:, :K] = math.sqrt(delta) * torch.eye(K, dtype=dtype)
    x[:, K] = math.sqrt(1 - delta)
    return x


def retrieval_job(
    delta: float, radius: float, betas: list[float], K: int, d: int, seed: int
) -> dict[str, pd.DataFrame]:
    """One update from a query at distance ``radius`` of each memory, for every β.

    One row per (β, memory): error ``‖f(ξ) − x_i‖`` and the Theorem 5 bound
    (:meth:`memscape.ModernHopfield.retrieval_error_bound`).
    """
    from memscape import ModernHopfield

    g = job_generator(seed, "modern-retrieval", delta, radius)
    x = equiseparated_memories(K, d, delta)
    u = torch.randn(K, d, generator=g, dtype=torch.float64)
    xi = x + radius * u / u.norm(dim=1, keepdim=True)
    idx = torch.arange(K)
    rows = []
    for beta in betas:
        net = ModernHopfield(x, beta=beta)
        err = (net.update(xi) - x).norm(dim=1)
        bound = net.retrieval_error_bound(xi, idx)
        rows.append(
            pd.DataFrame(
                {
                    "delta": delta,
                    "radius": radius,
                    "beta": beta,
                    "memory": idx.numpy(),
                    "error": err.numpy(),
                    "bound": bound.numpy(),
                    "separation": net.separation().numpy(),
                }
            )
        )
    return {"retrieval": pd.concat(rows, ignore_index=True)}


def gaussian_data(seed: int, K: int) -> torch.Tensor:
    """``(K, 2)`` centred anisotropic Gaussian points (standard deviations 1 and 0.6)."""
    g = job_generator(seed, "modern-data", K)
    x = torch.randn(K, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [1.0, 0.6], dtype=torch.float64
    )
    return x - x.mean(0)


def metastable_job(factor: float, K: int, threshold: float, seed: int) -> dict[str, pd.DataFrame]:
    """Descend from each stored point at β = factor·β_c; metastable size at its fixed point."""
    from memscape import ModernHopfield, descend

    x = gaussian_data(seed, K)
    beta = factor * critical_beta(x)
    net = ModernHopfield(x, beta=beta)
    res = descend(net, x.clone(), method="update", tol=1e-12, max_steps=5000)
    return {
        "metastable": pd.DataFrame(
            {
                "beta_factor": factor,
                "beta": beta,
                "start": range(K),
                "size": net.metastable_size(res.x, threshold).numpy(),
                "norm": res.x.norm(dim=1).numpy(),
                "converged": res.converged.numpy(),
            }
        )
    }


def bifurcation_job(K: int, stop_factor: float, seed: int) -> dict[str, pd.DataFrame]:
    """Continuation from ξ = 0 over β, and λ_min of the Hessian at the mean across β."""
    import memscape as ms

    x = gaussian_data(seed, K)
    beta_c = critical_beta(x)
    diagram = ms.continuation(
        lambda beta: ms.ModernHopfield(x, beta=beta),
        "beta",
        start=0.5 * beta_c,
        stop=stop_factor * beta_c,
        starts=torch.zeros(1, 2, dtype=torch.float64),
        reseed=0,
    )
    betas = np.linspace(0.5, 1.5, 11) * beta_c
    mean = x.mean(0, keepdim=True)
    lam = [
        float(torch.linalg.eigvalsh(ms.ModernHopfield(x, beta=b).hessian(mean)[0])[0])
        for b in betas
    ]
    bif = diagram.bifurcations.drop(columns=["branches"], errors="ignore")
    return {
        "branches": diagram.branches,
        "bifurcations": bif,
        "hessian": pd.DataFrame({"beta": betas, "lambda_min": lam}),
    }


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
    },
)
def run(cfg: ModernHopfieldConfig, ctx: Context) -> None:
    """Retrieval, metastable and bifurcation sweeps; tables, figure and checks."""
    jobs = [
        Job(
            f"retrieval_delta={dl:g}_radius={r:g}",
            {
                "delta": dl,
                "radius": r,
                "betas": list(cfg.betas),
                "K": cfg.memories,
                "d": cfg.dim,
                "seed": ctx.seed,
            },
        )
        for dl in cfg.separations
        for r in cfg.radii
    ]
    jobs += [
        Job(
            f"metastable_factor={f:g}",
            {"factor": f, "K": cfg.data_points, "threshold": cfg.threshold, "seed": ctx.seed},
        )
        for f in cfg.beta_factors
    ]
    jobs.append(
        Job("bifurcation", {"K": cfg.data_points, "stop_factor": cfg.stop_factor, "seed": ctx.seed})
    )
    fns: dict[str, Callable[..., JobOutput]] = {
        "retrieval": retrieval_job,
        "metastable": metastable_job,
        "bifurcation": bifurcation_job,
    }
    out: dict = {}
    for prefix, fn in fns.items():
        out.update(
            ctx.sweep(
                fn, [j for j in jobs if j.key.startswith(prefix)], f"modern-hopfield: {prefix}"
            )
        )
    retrieval = pd.concat(
        [v["retrieval"] for k, v in out.items() if k.startswith("retrieval")], ignore_index=True
    )
    meta = pd.concat(
        [v["metastable"] for k, v in out.items() if k.startswith("metastable")], ignore_index=True
    )
    bif = out["bifurcation"]
    for name, table in (
        ("retrieval", retrieval),
        ("metastable", meta),
        ("branches", bif["branches"]),
        ("bifurcations", bif["bifurcations"]),
        ("hessian_scan", bif["hessian"]),
    ):
        ctx.folder.write_table(name, table)

    data = gaussian_data(ctx.seed, cfg.data_points)
    beta_c = critical_beta(data)
    axis = torch.linalg.eigh(data.T @ data).eigenvectors[:, -1].numpy()  # top principal axis
    _checks(ctx, cfg, retrieval, meta, bif, beta_c)
    ctx.folder.save_figure("modern_hopfield", _figure(retrieval, meta, bif, beta_c, axis, cfg))
    summary = retrieval.groupby(["delta", "radius", "beta"], as_index=False).agg(
        error=("error", "max"), bound=("bound", "min")
    )
    ctx.folder.add_section(
        "One-step retrieval error against β and Δ",
        f"K = {cfg.memories} unit-norm memories with every separation equal to Δ; queries at "
        "distance r from their memory; one update. Theorem 5 (Ramsauer et al. 2020): "
        "‖f(ξ) − x_i‖ ≤ 2(K − 1) exp(−β(Δ − 2rM)) M. Largest error and smallest bound per "
        "row:\n\n" + summary.to_markdown(index=False),
    )
    msum = meta.groupby("beta_factor", as_index=False).agg(
        beta=("beta", "first"),
        mean_size=("size", "mean"),
        min_size=("size", "min"),
        max_size=("size", "max"),
    )
    ctx.folder.add_section(
        "Metastable-state size against β",
        f"{cfg.data_points} centred 2-D Gaussian points; from each, the update is iterated to "
        f"its fixed point; size = number of softmax weights above {cfg.threshold}. "
        f"β_c = 1/λ_max(Cov) = {beta_c:.4f}.\n\n" + msum.to_markdown(index=False),
    )
    ctx.folder.add_section(
        "Bifurcation of the global fixed point",
        "Pseudo-arclength continuation in β from ξ = 0 (memscape.continuation). ξ = 0 loses "
        f"stability where an eigenvalue of I − β Cov crosses zero, β_c = {beta_c:.4f}. The "
        "data have no symmetry, so the crossing is generically transcritical (reported as "
        "'pitchfork': an eigenvalue through zero without a turn); a subcritical branch "
        "leaving it turns back at a fold below β_c, where a second minimum appears before "
        "the mean loses stability. Detected bifurcations:\n\n"
        + bif["bifurcations"].to_markdown(index=False),
    )


def _checks(
    ctx: Context,
    cfg: ModernHopfieldConfig,
    retrieval: pd.DataFrame,
    meta: pd.DataFrame,
    bif: dict,
    beta_c: float,
) -> None:
    ok = retrieval["bound"] >= retrieval["error"]
    ctx.folder.add_check(
        "fraction of queries within the Theorem 5 bound", float(ok.mean()), 1.0, 0.0, relative=False
    )
    for delta, grp in retrieval[retrieval["radius"] == 0].groupby("delta"):
        # error → (K−1)e^{−βΔ}·const once (K−1)e^{−βΔ} ≪ 1: fit there, above float64 noise
        fit = grp[(grp["beta"] * delta >= 6) & (grp["error"] > 1e-12)]
        if fit["beta"].nunique() >= 3:
            slope = np.polyfit(fit["beta"], np.log(fit["error"]), 1)[0]
            ctx.folder.add_check(
                f"decay rate of the error in β, Δ = {delta:g}", -slope, delta, 0.02
            )
    below = meta[meta["beta_factor"] < 1]
    if len(below):
        ctx.folder.add_check(
            "metastable size / K below β_c (global average)",
            float(below["size"].mean()) / cfg.data_points,
            1.0,
            0.0,
            relative=False,
        )
    forks = bif["bifurcations"]
    forks = forks[forks["kind"] == "pitchfork"]
    if len(forks):
        ctx.folder.add_check(
            "β of the first pitchfork (continuation) vs 1/λ_max(Cov)",
            float(forks["parameter"].min()),
            beta_c,
            0.01,
        )
    else:
        ctx.folder.add_check(
            "β of the first pitchfork (continuation) vs 1/λ_max(Cov)", math.nan, beta_c, 0.01
        )
    scan = bif["hessian"]
    lam, b = scan["lambda_min"].to_numpy(), scan["beta"].to_numpy()
    i = int(np.flatnonzero(lam < 0)[0])
    zero = b[i - 1] + lam[i - 1] * (b[i] - b[i - 1]) / (lam[i - 1] - lam[i])
    ctx.folder.add_check(
        "β where λ_min(Hessian at the mean) = 0 vs 1/λ_max(Cov)", zero, beta_c, 0.01
    )


def _figure(
    retrieval: pd.DataFrame,
    meta: pd.DataFrame,
    bif: dict,
    beta_c: float,
    axis: np.ndarray,
    cfg: ModernHopfieldConfig,
):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    i = 0
    for (delta, radius), grp in retrieval.groupby(["delta", "radius"]):
        s = grp.groupby("beta", as_index=False).agg(error=("error", "max"))
        c = f"C{i}"
        i += 1
        ax.semilogy(
            s["beta"],
            s["error"].clip(lower=1e-17),
            "o",
            c=c,
            ms=3,
            label=f"Δ = {delta:g}, r = {radius:g}",
        )
        b = np.geomspace(float(s["beta"].min()), float(s["beta"].max()), 100)
        bound = hopfield_retrieval_bound(torch.from_numpy(b), delta, cfg.memories, 1.0, radius)
        ax.semilogy(b, bound.numpy(), "--", c=c, lw=1)
    ax.plot([], [], "k--", lw=1, label="Theorem 5 bound")
    ax.set(
        xlabel="β",
        ylabel="one-step error ‖f(ξ) − x_i‖",
        title=f"Retrieval error (K = {cfg.memories})",
    )
    ax.legend(fontsize=7)

    ax = axes[1]
    m = meta.groupby("beta", as_index=False).agg(
        mean=("size", "mean"), lo=("size", "min"), hi=("size", "max")
    )
    ax.fill_between(m["beta"], m["lo"], m["hi"], alpha=0.2)
    ax.loglog(m["beta"], m["mean"], "o-", ms=4, label="mean over starts (band: min–max)")
    ax.axvline(beta_c, c="k", ls="--", lw=1, label=f"β_c = 1/λ_max = {beta_c:.3f}")
    ax.axhline(cfg.data_points, c="gray", ls=":", lw=1)
    ax.set(
        xlabel="β",
        ylabel=f"metastable size (weights > {cfg.threshold})",
        title=f"Metastable states ({cfg.data_points} points in 2-D)",
    )
    ax.legend(fontsize=7)

    ax = axes[2]
    br = bif["branches"]
    cols = [c for c in br.columns if re.fullmatch(r"x_?\d+", c)]
    for _, grp in br.groupby("branch"):
        proj = grp[cols].to_numpy() @ axis
        stable = grp["stable"].to_numpy()
        for flag, style in ((True, "-"), (False, "--")):
            y = np.where(stable == flag, proj, np.nan)
            ax.plot(grp["parameter"], y, style, c="C0" if flag else "C3", lw=1.5)
    ax.plot([], [], "C0-", label="minimum")
    ax.plot([], [], "C3--", label="saddle")
    forks = bif["bifurcations"]
    ax.plot(
        forks["parameter"], forks[cols].to_numpy() @ axis, "ko", ms=5, label="detected bifurcation"
    )
    ax.axvline(beta_c, c="k", ls=":", lw=1, label="β_c = 1/λ_max(Cov)")
    ax.set(
        xlabel="β",
        ylabel="critical point along the top principal axis",
        title="Bifurcation of the global fixed point",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
