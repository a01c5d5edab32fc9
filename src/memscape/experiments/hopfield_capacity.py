"""``memscape run hopfield-capacity``: retrieval overlap of the classical Hopfield network against load α = K/N.

Reproduces the storage capacity α_c ≈ 0.138 of the Hebbian Hopfield network
(Amit, Gutfreund & Sompolinsky 1985): below α_c a stored pattern is retrieved
with overlap m ≈ 1 (m(α_c) ≈ 0.967); above it retrieval collapses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job
from memscape.experiments._seeds import job_generator

ALPHA_C = 0.138  # Amit, Gutfreund & Sompolinsky 1985


@dataclass
class HopfieldCapacityConfig:
    """Options of ``hopfield-capacity``."""

    sizes: tuple[int, ...] = field(default=(250, 500, 1000), metadata={"help": "network sizes N"})
    alphas: tuple[float, ...] = field(
        default=(0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.16, 0.2, 0.25),
        metadata={"help": "loads α = K/N"},
    )
    trials: int = field(default=2, metadata={"help": "independent pattern sets per (N, α)"})
    rules: tuple[str, ...] = field(default=("hebbian",), metadata={"help": "learning rules"})
    mode: str = field(default="async", metadata={"help": "update mode: async or sync"})
    flip: float = field(default=0.0, metadata={"help": "fraction of cue bits flipped"})
    max_sweeps: int = field(default=50, metadata={"help": "step cap (sweeps)"})

    def validate(self) -> None:
        """Raise ``ValueError`` on an invalid option."""
        if not self.sizes or not self.alphas or not self.rules:
            raise ValueError("sizes, alphas and rules must be non-empty")
        for n in self.sizes:
            check_int(n, "sizes", minimum=2)
        for a in self.alphas:
            check_positive(a, "alphas")
        for r in self.rules:
            check_choice(r, ("hebbian", "pseudoinverse", "storkey"), "rules")
        check_choice(self.mode, ("async", "sync"), "mode")
        check_int(self.trials, "trials")
        check_int(self.max_sweeps, "max_sweeps")
        if not 0.0 <= self.flip < 0.5:
            raise ValueError(f"flip must be in [0, 0.5), got {self.flip}")


def capacity_job(n: int, alpha: float, rule: str, trial: int, seed: int, mode: str,
                 flip: float, max_sweeps: int) -> dict[str, pd.DataFrame]:
    """Store ⌈αN⌉ random ±1 patterns, retrieve each from a (corrupted) copy; one row per pattern."""
    from memscape.memories import ClassicalHopfield

    g = job_generator(seed, "hopfield-capacity", n, alpha, rule, trial)
    k = max(1, round(alpha * n))
    patterns = torch.randint(0, 2, (k, n), generator=g, dtype=torch.int64) * 2 - 1
    patterns = patterns.to(torch.float32)
    net = ClassicalHopfield(patterns, rule=rule)
    cue = patterns.clone()
    if flip > 0:
        cue[torch.rand(cue.shape, generator=g) < flip] *= -1
    result = net.retrieve(cue, mode=mode, max_steps=max_sweeps, generator=g)
    final = getattr(result, "x", result)
    overlap = (final * patterns).sum(1) / n
    one_step = net.retrieve(patterns, mode="sync", max_steps=1, generator=g)
    fixed = (getattr(one_step, "x", one_step) == patterns).all(1)
    return {"patterns": pd.DataFrame({
        "N": n, "alpha": alpha, "K": k, "rule": rule, "trial": trial, "pattern": range(k),
        "overlap": overlap.numpy(), "fixed_point": fixed.numpy(),
    })}


@register("hopfield-capacity", config=HopfieldCapacityConfig,
          summary="Classical Hopfield retrieval overlap against load α = K/N; α_c ≈ 0.138.",
          paper="Amit, Gutfreund & Sompolinsky 1985 (Hopfield 1982)",
          quick={"sizes": (200, 400), "alphas": (0.05, 0.1, 0.14, 0.2), "trials": 1})
def run(cfg: HopfieldCapacityConfig, ctx: Context) -> None:
    """Sweep (N, α, rule, trial); write ``patterns`` and ``summary`` tables and the figure."""
    jobs = [
        Job(f"N={n}_alpha={a:g}_rule={r}_trial={t}",
            {"n": n, "alpha": a, "rule": r, "trial": t, "seed": ctx.seed, "mode": cfg.mode,
             "flip": cfg.flip, "max_sweeps": cfg.max_sweeps})
        for r in cfg.rules for n in cfg.sizes for a in cfg.alphas for t in range(cfg.trials)
    ]
    outputs = ctx.sweep(capacity_job, jobs, "hopfield-capacity")
    table = pd.concat([o["patterns"] for o in outputs.values()], ignore_index=True)
    ctx.folder.write_table("patterns", table)
    summary = (table.groupby(["rule", "N", "alpha"], as_index=False)
               .agg(K=("K", "first"), overlap=("overlap", "mean"),
                    overlap_std=("overlap", "std"), fixed_fraction=("fixed_point", "mean")))
    ctx.folder.write_table("summary", summary)
    ctx.folder.save_figure("overlap_vs_alpha", _figure(summary))
    ctx.folder.add_section(
        "Retrieval overlap against load",
        f"Mean final overlap m of each stored pattern retrieved from a cue with {cfg.flip:.0%} "
        f"flipped bits ({cfg.mode} updates). The dashed line marks α_c ≈ {ALPHA_C} "
        "(Amit, Gutfreund & Sompolinsky 1985).\n\n" + summary.to_markdown(index=False),
    )


def _figure(summary: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = list(summary["rule"].unique())
    fig, axes = plt.subplots(1, len(rules), figsize=(5 * len(rules), 3.8), squeeze=False)
    for ax, rule in zip(axes[0], rules, strict=True):
        for n, grp in summary[summary["rule"] == rule].groupby("N"):
            ax.errorbar(grp["alpha"], grp["overlap"], yerr=grp["overlap_std"].fillna(0),
                        marker="o", ms=3, capsize=2, label=f"N = {n}")
        ax.axvline(ALPHA_C, ls="--", c="k", lw=1, label="α_c ≈ 0.138")
        ax.set(xlabel="load α = K/N", ylabel="final overlap m", title=f"{rule} rule",
               ylim=(min(0.0, summary["overlap"].min()), 1.02))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
