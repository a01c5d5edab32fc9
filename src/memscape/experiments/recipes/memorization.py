"""``memscape run memorization``: from memorization to generalization as the training set grows.

Reproduces, on laptop-sized data, the central result of Pham et al. 2025
("Memorization to generalization: emergence of diffusion models from associative
memory", seed 002): a diffusion model trained on K samples stores them as
attractors when K is small (memorization); spurious attractors appear at the
transition; at large K new attractors form on the data manifold (generalization).

For every (K, seed) a job trains a model (EDM preconditioning), samples it with a
deterministic sampler from noise shared across K, and measures

* per generated sample: d₁, d₂ to the training set, the ratio criterion d₁/d₂ < 1/3
  (Yoon et al. 2023; Gu et al. 2023) and the Pham et al. class
  (memorized / spurious / generalized);
* the attractor census of the trained model at a small σ (memscape.landscape);
* the basin radius (critical σ) of a few samples of each class;
* Kadkhodaie et al. 2024's threshold-free test: a second model trained on a disjoint
  set of the same size, sampled from the same noise; paired similarity.

The exact empirical model (the optimal denoiser of the training set) runs through
the same pipeline as the theory baseline: it memorizes at every K.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_choice, check_int, check_positive
from memscape.experiments._seeds import job_generator, job_seed
from memscape.experiments.registry import Context, register
from memscape.experiments.sweep import Job

CLASSES = ("memorized", "spurious", "generalized")


@dataclass
class MemorizationConfig:
    """Options of ``memorization`` (defaults: the circle toy, < 10 min on 2 CPU cores)."""

    data: str = field(
        default="circle",
        metadata={
            "help": "dataset name (circle, mixture, manifold, digits, mnist1d) or a .npy/.npz path"
        },
    )
    pool: int = field(default=4096, metadata={"help": "points drawn for synthetic datasets"})
    sizes: tuple[int, ...] = field(
        default=(2, 8, 32, 128, 1024), metadata={"help": "training-set sizes K"}
    )
    seeds: int = field(default=2, metadata={"help": "seeds (training subsets) per K"})
    samples: int = field(default=256, metadata={"help": "generated samples per model"})
    width: int = field(default=256, metadata={"help": "MLP width"})
    layers: int = field(default=4, metadata={"help": "MLP layers"})
    energy: bool = field(default=False, metadata={"help": "train an energy network E_θ(x, σ)"})
    steps: int = field(default=3000, metadata={"help": "training steps per model"})
    batch: int = field(default=256, metadata={"help": "training batch size"})
    lr: float = field(default=2e-3, metadata={"help": "Adam learning rate"})
    sampler: str = field(
        default="heun", metadata={"help": "deterministic sampler: heun, euler, ddim"}
    )
    sampler_steps: int = field(default=18, metadata={"help": "sampler steps"})
    ratio_threshold: float = field(default=1 / 3, metadata={"help": "memorized when d1/d2 < this"})
    delta_m: float | None = field(
        default=None,
        metadata={
            "help": "memorized within this distance of a training point (default: from data scale)"
        },
    )
    delta_s: float | None = field(
        default=None,
        metadata={
            "help": "spurious within this distance of another sample (default: from data scale)"
        },
    )
    census_sigma: float = field(default=0.02, metadata={"help": "σ of the attractor census"})
    census_starts: int = field(default=256, metadata={"help": "starts of the attractor census"})
    probe_points: int = field(default=4, metadata={"help": "samples per class in the basin probe"})
    probe_trials: int = field(default=16, metadata={"help": "noise draws per level in the probe"})
    pairs: bool = field(
        default=True,
        metadata={"help": "Kadkhodaie test: also train on a disjoint set of the same size"},
    )
    exact_baseline: bool = field(
        default=True, metadata={"help": "run the exact empirical model as the theory baseline"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device of training and sampling"})
    trained: bool = field(
        default=True, metadata={"help": "train diffusion models (off: only the exact baseline)"}
    )

    def validate(self) -> None:
        """Raise ``ValueError`` on an invalid option (before any job starts)."""
        if not self.sizes:
            raise ValueError("sizes must name at least one training-set size K")
        for k in self.sizes:
            check_int(k, "sizes", minimum=2)
        for name in (
            "seeds",
            "samples",
            "width",
            "layers",
            "steps",
            "batch",
            "sampler_steps",
            "census_starts",
            "probe_trials",
            "pool",
        ):
            check_int(getattr(self, name), name)
        check_int(self.probe_points, "probe_points", minimum=0)
        check_positive(self.lr, "lr")
        check_positive(self.census_sigma, "census_sigma")
        check_positive(self.ratio_threshold, "ratio_threshold")
        for name in ("delta_m", "delta_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or omitted for the default), got {value}")
        check_choice(self.sampler, ("heun", "euler", "ddim"), "sampler")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must name a torch device, got {self.device!r}") from None
        if not (self.trained or self.exact_baseline):
            raise ValueError("trained and exact_baseline are both off: nothing to run")
        n = len(load_pool(self, seed=0))
        if max(self.sizes) > n:
            raise ValueError(
                f"sizes: K = {max(self.sizes)} is larger than the dataset ({n} samples)"
            )


SYNTHETIC = ("circle", "gmm", "mixture", "manifold")


def load_pool(cfg: MemorizationConfig, seed: int):
    """The dataset the training sets are drawn from (synthetic sets drawn with ``seed``)."""
    from memscape import datasets

    opts = {"size": cfg.pool, "data_seed": seed} if cfg.data in SYNTHETIC else {}
    return datasets.load(cfg.data, **opts)


def memorization_job(
    kind: str, k: int, seed: int, run_seed: int, cfg: dict[str, Any], model_dir: str | None
) -> dict[str, Any]:
    """Train (or build the exact model) on K points, sample, classify, census, probe."""
    from memscape import EmpiricalDiffusion, sample
    from memscape.memorization import classify_samples, paired_similarity

    c = MemorizationConfig(**cfg)
    pool = load_pool(c, seed=run_seed)
    train_a, train_b = _training_sets(pool, k, seed, c.pairs and kind == "trained")
    noise_seed = job_seed(run_seed, "noise", seed)  # shared across K: paired samples

    def make(train: torch.Tensor, tag: str):
        if kind == "exact":
            return EmpiricalDiffusion(train.to(torch.float64))
        return _train_model(
            c,
            train,
            job_seed(run_seed, "model", k, seed, tag),
            None if model_dir is None else Path(model_dir) / tag,
        )

    def draw(model) -> torch.Tensor:
        g = torch.Generator().manual_seed(noise_seed)
        # The exact score is stiff (Lipschitz ~ 1/σ²): its baseline gets 4x the steps so
        # that samples land on training points instead of between them.
        # Its σ_min is also lower, to resolve training points closer than 0.002.
        exact = kind == "exact"
        x = sample(
            model,
            n=c.samples,
            shape=tuple(train_a.shape[1:]),
            sampler=c.sampler,
            steps=c.sampler_steps * (4 if exact else 1),
            sigma_min=1e-4 if exact else 0.002,
            generator=g,
        )
        return x.detach().to(torch.float32)

    model = make(train_a, "a")
    gen = draw(model)
    if isinstance(model, torch.nn.Module):
        model = model.cpu()  # the census and the probe run on the CPU, in float64
    cls = classify_samples(gen, train_a, delta_m=c.delta_m, delta_s=c.delta_s)
    rows = _class_table(cls).assign(K=k, seed=seed, model=kind, sample=np.arange(len(gen)))
    rows["ratio_memorized"] = rows["ratio"] < c.ratio_threshold
    summary: dict[str, Any] = {
        "K": k,
        "seed": seed,
        "model": kind,
        "ratio_memorized_fraction": float(rows["ratio_memorized"].mean()),
        **{f"{name}_fraction": float((rows["class"] == name).mean()) for name in CLASSES},
        "delta_m": cls.delta_m,
        "delta_s": cls.delta_s,
    }
    attractors = _census(model, c, train_a, job_generator(run_seed, "census", k, seed), cls)
    attractors = attractors.assign(K=k, seed=seed, model=kind)
    for name in CLASSES:
        summary[f"attractors_{name}"] = int((attractors["class"] == name).sum())
    probe = _probe(model, c, gen, rows, job_generator(run_seed, "probe", k, seed), cls.delta_m)
    for name in CLASSES:
        sel = probe[probe["class"] == name]["critical_sigma"] if len(probe) else pd.Series([])
        summary[f"critical_sigma_{name}"] = float(sel.mean()) if len(sel) else float("nan")
    if train_b is not None:
        gen_b = draw(make(train_b, "b"))
        mean = pool.x.reshape(len(pool), -1).mean(0).to(gen)  # cosine about the data mean
        flat_a, flat_b = gen.reshape(len(gen), -1) - mean, gen_b.reshape(len(gen_b), -1) - mean
        sim = paired_similarity(flat_a, flat_b, center=False)
        summary["pair_cosine"] = float(sim.cosine.mean())
        summary["pair_l2"] = float(sim.l2.mean())
    out: dict[str, Any] = {
        "samples": rows,
        "summary": pd.DataFrame([summary]),
        "attractors": attractors,
        "probe": probe,
        "generated": gen,
        "train": train_a.to(torch.float32),
    }
    return out


def _class_table(cls) -> pd.DataFrame:
    """One row per sample: distances to the training set and the Pham et al. class."""
    return pd.DataFrame(
        {
            "d1": cls.d1.numpy(),
            "d2": cls.d2.numpy(),
            "ratio": cls.ratio.numpy(),
            "nearest_generated": cls.nearest_generated.numpy(),
            "nearest_train": cls.train_index.numpy(),
            "class": cls.names,
        }
    )


def _training_sets(pool, k: int, seed: int, pair: bool):
    """Nested training set of size K for ``seed`` and, when asked and possible, a disjoint twin."""
    train_a = pool.subset(k, seed=seed).x
    if not pair or 2 * k > len(pool):
        return train_a, None
    return train_a, pool.complement(k, seed=seed).x[:k]


def _train_model(c: MemorizationConfig, train: torch.Tensor, seed: int, out: Path | None):
    from memscape import ScoreModel
    from memscape import train as fit

    if out is not None and (out / "config.json").exists():
        return ScoreModel.load(out)
    dim = int(np.prod(train.shape[1:]))
    model = ScoreModel.mlp(
        dim=dim, width=c.width, layers=c.layers, energy=c.energy, seed=seed % 2**31
    )
    flat = train.reshape(len(train), -1).to(torch.float32)
    run = fit(
        model,
        flat,
        steps=c.steps,
        batch=c.batch,
        lr=c.lr,
        seed=seed % 2**31,
        out=out,
        device=c.device,
        progress=False,
    )
    return getattr(run, "model", model)


FLATNESS = 0.05  # λ_min/λ_max below this: the attractor lies on a (near-)flat manifold


def _census(
    model, c: MemorizationConfig, train: torch.Tensor, g: torch.Generator, cls
) -> pd.DataFrame:
    """Attractors (minima) of the model at σ = census_sigma, one row each.

    An attractor is ``memorized`` within δ_m of a training point; otherwise
    ``generalized`` when its Hessian is nearly flat along some direction
    (λ_min/λ_max < FLATNESS: a point of an attracting manifold, Pham et al.'s
    generalization), else ``spurious`` (an isolated attractor that is no training point).
    """
    from memscape.landscape import critical_points
    from memscape.memorization import nearest_neighbors

    flat = train.reshape(len(train), -1).to(torch.float64)
    if isinstance(model, torch.nn.Module):  # analysis runs in float64 (Newton tolerances)
        model = copy.deepcopy(model).double()
    # A trained network's score is smooth only to its training error: looser tolerance,
    # and points of one flat attracting manifold closer than δ_m/2 count once.
    loose = isinstance(model, torch.nn.Module)
    cps = critical_points(
        model,
        sigma=c.census_sigma,
        n_starts=c.census_starts,
        generator=g,
        patterns=flat,
        n_newton_starts=0,
        max_seeds=64,
        tol=1e-5 if loose else None,
        dedupe_tol=cls.delta_m / 2 if loose else None,
    )
    is_min = ((cps.morse_index == 0) & cps.converged).numpy()
    minima = cps.table[is_min]
    pts = cps.points[torch.as_tensor(is_min)].reshape(int(is_min.sum()), -1)
    if len(minima) == 0:
        return pd.DataFrame({"class": pd.Series([], dtype=str)})
    d1 = nearest_neighbors(pts, flat, k=1)[0][:, 0].numpy()
    eig = cps.eigenvalues[torch.as_tensor(is_min)]
    flatness = (eig[:, 0] / eig[:, -1]).numpy()
    label = np.where(
        d1 <= cls.delta_m, "memorized", np.where(flatness < FLATNESS, "generalized", "spurious")
    )
    return pd.DataFrame(
        {
            "energy": minima["energy"].to_numpy(),
            "basin_fraction": minima["basin_fraction"].to_numpy(),
            "flatness": flatness,
            "d1": d1,
            "class": label,
        }
    )


def _probe(model, c: MemorizationConfig, gen, rows, g, delta) -> pd.DataFrame:
    """Pham et al.'s critical σ: the largest noise level a sample is recovered from (p ≥ ½)."""
    from memscape.landscape import basin_radius

    if c.probe_points == 0:
        return pd.DataFrame({"class": pd.Series([], dtype=str), "critical_sigma": []})
    picks = []
    for name in CLASSES:
        idx = np.flatnonzero(rows["class"].to_numpy() == name)[: c.probe_points]
        picks += [(i, name) for i in idx]
    if not picks:
        return pd.DataFrame({"class": pd.Series([], dtype=str), "critical_sigma": []})
    rows_idx = torch.as_tensor([i for i, _ in picks])
    levels = np.geomspace(0.005, 2.0, 10)

    def reverse(x: torch.Tensor, gen_: torch.Generator | None) -> torch.Tensor:
        # Rows are ordered (point, level, trial): run the sampler from each level down to 0.
        from memscape.diffusion.samplers import karras_sigmas, sample_heun

        xs = x.reshape(len(rows_idx), len(levels), c.probe_trials, -1)
        out = torch.empty_like(xs)
        for j, level in enumerate(levels):
            sig = karras_sigmas(c.sampler_steps, min(0.002, level / 2), float(level))
            xj = xs[:, j].reshape(-1, *gen.shape[1:]).to(torch.float32)
            out[:, j] = sample_heun(model, xj, sig).reshape(xs[:, j].shape).to(x)
        return out.reshape(x.shape)

    res = basin_radius(
        model,
        gen[rows_idx].to(torch.float64),
        c.census_sigma,
        levels.tolist(),
        c.probe_trials,
        delta,
        reverse=reverse,
        generator=g,
    )
    return pd.DataFrame(
        {"sample": rows_idx.numpy(), "class": [n for _, n in picks], "critical_sigma": res.radius}
    )


QUICK = {
    "sizes": (2, 16, 256),
    "seeds": 1,
    "samples": 128,
    "steps": 1500,
    "census_starts": 96,
    "probe_points": 2,
    "probe_trials": 8,
}


@register(
    "memorization",
    config=MemorizationConfig,
    quick=QUICK,
    summary="Memorized / spurious / generalized samples and attractors against training-set "
    "size K, with the exact-model baseline and a threshold-free twin-model test.",
    paper="Pham et al. 2025; Yoon et al. 2023; Kadkhodaie et al. 2024",
)
def run(cfg: MemorizationConfig, ctx: Context) -> None:
    """Sweep (model, K, seed); tables, figures and the report."""
    from dataclasses import asdict

    models_root = ctx.folder.path / "models"
    kinds = [kind for kind, on in (("trained", cfg.trained), ("exact", cfg.exact_baseline)) if on]
    jobs = [
        Job(
            f"{kind}_K={k}_seed={s}",
            {
                "kind": kind,
                "k": k,
                "seed": s,
                "run_seed": ctx.seed,
                "cfg": asdict(cfg),
                "model_dir": str(models_root / f"K={k}_seed={s}") if kind == "trained" else None,
            },
        )
        for kind in kinds
        for k in cfg.sizes
        for s in range(cfg.seeds)
    ]
    outputs = ctx.sweep(memorization_job, jobs, "memorization")
    tables = {
        name: pd.concat([o[name] for o in outputs.values() if name in o], ignore_index=True)
        for name in ("samples", "summary", "attractors", "probe")
    }
    for name, table in tables.items():
        ctx.folder.write_table(name, table)
    _report(cfg, ctx, tables, outputs)


def _report(cfg: MemorizationConfig, ctx: Context, tables, outputs) -> None:
    from memscape.experiments.recipes import _memorization_figures as figs
    from memscape.memorization import effective_capacity

    primary = "trained" if cfg.trained else "exact"
    summary = tables["summary"]
    main = summary[summary["model"] == primary]
    by_k = main.groupby("K")["ratio_memorized_fraction"].mean()
    cap = effective_capacity(by_k.index.to_numpy(), by_k.to_numpy(), level=0.9)
    ctx.folder.save_figure("class_fractions", figs.class_fractions(summary, primary))
    ctx.folder.save_figure("samples_vs_nearest", figs.sample_grid(outputs, primary))
    if figs.is_planar(outputs):
        ctx.folder.save_figure(
            "landscapes", figs.landscapes(cfg, ctx.folder.path, outputs, primary)
        )
    if cfg.trained:
        small, large = min(cfg.sizes), max(cfg.sizes)
        ctx.folder.add_check(
            f"trained: drop of the memorized fraction from K = {small} to K = {large} "
            "(d1/d2 < 1/3; a full transition is 1)",
            by_k.loc[small] - by_k.loc[large],
            1.0,
            0.5,
            relative=False,
        )
        ctx.folder.add_check(
            f"trained: memorized fraction at K = {large} (d1/d2 < 1/3)",
            by_k.loc[large],
            0.0,
            0.2,
            relative=False,
        )
    exact = summary[summary["model"] == "exact"]
    if len(exact):
        # Pham et al.'s δ_m rather than d1/d2: two training points closer than the
        # sampler resolves send the exact model to their (memorized) average, which the
        # ratio criterion counts as not memorized.
        ctx.folder.add_check(
            "exact model memorizes at every K (smallest fraction within δ_m over K and seeds)",
            exact["memorized_fraction"].min(),
            1.0,
            0.02,
            relative=False,
        )
    cols = [
        "K",
        "ratio_memorized_fraction",
        *[f"{c}_fraction" for c in CLASSES],
        *[f"attractors_{c}" for c in CLASSES],
        *[f"critical_sigma_{c}" for c in CLASSES],
    ]
    cols += [c for c in ("pair_cosine", "pair_l2") if c in main]
    agg = main[cols].groupby("K").mean().reset_index()
    ctx.folder.add_section(
        "Memorization → generalization",
        f"Dataset `{cfg.data}`, {cfg.seeds} seed(s) per K, {cfg.samples} samples per model"
        + (f", {cfg.steps} training steps" if cfg.trained else " (exact model only)")
        + f", {cfg.sampler} sampler with {cfg.sampler_steps} steps. Means over seeds of the "
        f"{primary} models; attractors counted at σ = {cfg.census_sigma}; critical σ is the "
        "largest noise level from which a sample is recovered with probability ≥ ½.\n\n"
        f"Effective memorization capacity (largest K with ≥ 90 % memorized by d₁/d₂ < "
        f"{cfg.ratio_threshold:.3g}, mean over seeds): "
        + (
            f"K ≈ {cap.interpolated:.3g} (grid: {cap.grid:g}).\n\n"
            if cap.grid == cap.grid
            else "no K of the grid reached 90 %.\n\n"
        )
        + _markdown(agg)
        + "\n\nPer seed (δ_m scales with the training set's own spacing: a small δ_m at "
        "small K means two training points lie close together, where a model may form one "
        "spurious attractor between them):\n\n"
        + _markdown(
            main[
                ["K", "seed", "ratio_memorized_fraction", "delta_m"]
                + [f"{c}_fraction" for c in CLASSES]
            ]
        ),
    )


def _markdown(table: pd.DataFrame) -> str:
    """A Markdown table with integer columns kept as integers."""
    ints = [c for c in ("K", "seed") if c in table]
    return table.astype({c: str for c in ints}).to_markdown(index=False, floatfmt=".3g")
