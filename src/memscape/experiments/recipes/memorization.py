"""``memscape run memorization``: from memorization to generalization as the training set grows.

Reproduces, on laptop-sized data, the central result of Pham et al. 2025 ("Memorization to
generalization: emergence of diffusion models from associative memory", seed 002): a diffusion
model trained on K samples stores them as attractors when K is small (memorization); spurious
attractors appear at the transition; at large K new attractors form on the data manifold.

For every (K, seed) a job trains a model (EDM preconditioning), samples it with a
deterministic sampler from noise shared across K, and measures (:mod:`memscape.memorization`)

* per sample: d₁, d₂ to the training set, the ratio criterion d₁/d₂ < 1/3 (Yoon et al.
  2023; Gu et al. 2023) and the Pham et al. class (memorized / spurious / generalized);
* the classes of the model's attractors at a small σ, and the critical σ of a few samples;
* Kadkhodaie et al. 2024's threshold-free test: a second model trained on a disjoint
  set of the same size, sampled from the same noise; paired similarity.

The exact empirical model (the optimal denoiser of the training set) runs through
the same pipeline as the theory baseline: it memorizes at every K. Trained models are
kept in ``models/`` with a checkpoint every 250 steps: a re-run after an interruption
continues each training from its last checkpoint (bit-identical to an uninterrupted
run) and loads finished ones. ``config.json`` pins a fingerprint of the data pool, so
a changed ``--data`` file at the same path is refused. The ``landscapes`` figure is
drawn for 2-D data.

**Checked against:** a trained model memorizes at the smallest K and not at the
largest; the exact empirical model memorizes at every K.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape.experiments.registry import Context, option, register
from memscape.runs.sweep import grid_jobs, job_seed
from memscape.progress import report

pd = lazy.load("pandas")
torch = lazy.load("torch")

SYNTHETIC = ("circle", "gmm", "mixture", "manifold")  # drawn as a pool of `pool` points
CHECKPOINT_EVERY = 250  # training steps between checkpoints (what an interruption can lose)


@dataclass
class MemorizationConfig:
    """Options of ``memorization`` (defaults: the circle toy, < 10 min on 2 CPU cores)."""

    data: str = option("circle", "data set (circle, mixture, manifold, digits, …) or .npy/.npz")
    pool: int = option(4096, "points drawn for synthetic datasets", ge=2)
    sizes: tuple[int, ...] = option((2, 8, 32, 128, 1024), "training-set sizes K", ge=2)
    seeds: int = option(2, "seeds (training subsets) per K", ge=1)
    samples: int = option(256, "generated samples per model", ge=2)
    width: int = option(256, "MLP width", ge=1)
    layers: int = option(4, "MLP layers", ge=1)
    energy: bool = option(False, "train an energy network E_θ(x, σ)")
    steps: int = option(3000, "training steps per model", ge=1)
    batch: int = option(256, "training batch size", ge=1)
    lr: float = option(2e-3, "Adam learning rate", gt=0)
    sampler: str = option("heun", "deterministic sampler", choices=("heun", "euler", "ddim"))
    sampler_steps: int = option(18, "sampler steps", ge=1)
    ratio_threshold: float = option(1 / 3, "memorized when d1/d2 < this", gt=0)
    delta_m: float | None = option(None, "memorized within this of a training point", gt=0)
    delta_s: float | None = option(None, "spurious within this of another sample", gt=0)
    census_sigma: float = option(0.02, "σ of the attractor census", gt=0)
    census_starts: int = option(256, "starts of the attractor census", ge=1)
    probe_points: int = option(4, "samples per class in the basin probe", ge=0)
    probe_trials: int = option(16, "noise draws per level in the probe", ge=1)
    pairs: bool = option(True, "Kadkhodaie test: also train on a disjoint set of the same size")
    exact_baseline: bool = option(True, "run the exact empirical model as the theory baseline")
    device: str = option("cpu", "torch device of training and sampling")
    trained: bool = option(True, "train diffusion models (off: only the exact baseline)")

    def validate(self) -> None:
        """Relations between options, the device, the data set (torch loads only if needed)."""
        if self.device != "cpu":  # exists on this machine (before any file is written)
            from memscape._validation import check_device

            check_device(self.device, "option device")
        if not (self.trained or self.exact_baseline):
            raise ValueError("trained and exact_baseline are both off: nothing to run")
        n = self.pool if self.data in SYNTHETIC else len(load_pool(self, seed=0))
        if max(self.sizes) > n:
            raise ValueError(f"sizes: K = {max(self.sizes)} is larger than the dataset ({n})")

    def data_fingerprint(self, seed: int) -> dict[str, str]:
        """SHA-256 (16 hex digits) of the pool the training sets are drawn from, for config.json."""
        x = load_pool(self, seed=seed).x.detach().cpu().contiguous()
        digest = hashlib.sha256(f"{x.dtype}{tuple(x.shape)}".encode())
        digest.update(x.numpy().tobytes())
        return {"data": digest.hexdigest()[:16]}


def load_pool(cfg: MemorizationConfig, seed: int) -> Any:
    """The dataset the training sets are drawn from (synthetic sets drawn with ``seed``)."""
    opts = {"size": cfg.pool, "data_seed": seed} if cfg.data in SYNTHETIC else {}
    return ms.datasets.load(cfg.data, **opts)


def memorization_job(
    kind: str, K: int, seed: int, run_seed: int, cfg: dict[str, Any], models: str | None
) -> dict[str, Any]:
    """Train (or build the exact model) on K points, sample, classify, census, probe.

    ``seed`` indexes the training subset (nested across K). The sampling noise comes from
    ``(run_seed, seed)`` alone: shared across K and models, so samples are paired.
    """
    mz, c = ms.memorization, MemorizationConfig(**cfg)
    pool = load_pool(c, seed=run_seed)
    train_a = pool.subset(K, seed=seed).x

    def gen(*tag: Any) -> Any:
        return torch.Generator().manual_seed(job_seed(run_seed, *tag))

    def make(train: Any, tag: str) -> Any:
        if kind == "exact":
            return ms.EmpiricalDiffusion(train.to(torch.float64))
        # models/…/tag: a finished run is loaded, an interrupted one continues from its checkpoint
        out = None if models is None else Path(models) / f"K={K}_seed={seed}" / tag
        s = job_seed(run_seed, "model", K, seed, tag) % 2**31
        net = ms.ScoreModel.mlp(dim=train[0].numel(), width=c.width, layers=c.layers,
                                energy=c.energy, seed=s)  # fmt: skip
        ms.train(net, train.reshape(len(train), -1).float(), steps=c.steps, batch=c.batch,
                 lr=c.lr, seed=s, out=out, device=c.device, progress=False, resume=True,
                 checkpoint_every=CHECKPOINT_EVERY if out is not None else None)  # fmt: skip
        return net

    def draw(model: Any, what: str = "") -> Any:
        report("sample", what=what)
        # the exact score is stiff (Lipschitz ~ 1/σ²): 4x the steps; σ_min 1e-4 resolves close points
        ex = kind == "exact"
        x = ms.sample(model, n=c.samples, shape=tuple(train_a.shape[1:]), sampler=c.sampler,
                      steps=c.sampler_steps * (4 if ex else 1), sigma_min=1e-4 if ex else 0.002,
                      generator=gen("noise", seed))  # fmt: skip
        return x.detach().to(torch.float32)

    model = make(train_a, "a")
    samples = draw(model)
    model = model.cpu() if isinstance(model, torch.nn.Module) else model  # census, probe: CPU
    cls = mz.classify_samples(samples, train_a, delta_m=c.delta_m, delta_s=c.delta_s)
    rows = cls.table.rename(columns={"train_index": "nearest_train"}).assign(
        K=K, seed=seed, model=kind, sample=np.arange(len(samples)))  # fmt: skip
    rows["ratio_memorized"] = rows["ratio"] < c.ratio_threshold
    summary = {"K": K, "seed": seed, "model": kind, "delta_m": cls.delta_m,
               "delta_s": cls.delta_s, "ratio_memorized_fraction": rows["ratio_memorized"].mean()}  # fmt: skip
    # A trained network's score is smooth only to its training error: looser tolerance,
    # and points of one flat attracting manifold closer than δ_m/2 count once.
    loose = kind == "trained"
    report("census")
    attractors = mz.classify_attractors(
        model, c.census_sigma, train_a, delta_m=cls.delta_m, n_starts=c.census_starts,
        tol=1e-5 if loose else None, dedupe_tol=cls.delta_m / 2 if loose else None,
        generator=gen("census", K, seed)).assign(K=K, seed=seed, model=kind)  # fmt: skip
    labels = rows["class"].to_numpy()
    picks = [int(i) for n in mz.CLASSES for i in np.flatnonzero(labels == n)[: c.probe_points]]
    probe = pd.DataFrame({"sample": picks, "class": labels[picks], "critical_sigma": np.nan})
    if picks:
        report("probe")
        probe["critical_sigma"] = mz.critical_sigma(
            model, samples[picks], cls.delta_m, n_trials=c.probe_trials,
            sampler_steps=c.sampler_steps, generator=gen("probe", K, seed)).radius  # fmt: skip
    for n in mz.CLASSES:
        summary[f"{n}_fraction"] = (rows["class"] == n).mean()
        summary[f"attractors_{n}"] = int((attractors["class"] == n).sum())
        summary[f"critical_sigma_{n}"] = probe.loc[probe["class"] == n, "critical_sigma"].mean()
    if c.pairs and kind == "trained" and 2 * K <= len(pool):
        twin = draw(make(pool.complement(K, seed=seed).x[:K], "b"), "twin")
        mean = pool.x.reshape(len(pool), -1).mean(0).to(samples)  # cosine about the data mean
        a, b = (x.reshape(len(x), -1) - mean for x in (samples, twin))
        sim = mz.paired_similarity(a, b, center=False)
        summary.update(pair_cosine=float(sim.cosine.mean()), pair_l2=float(sim.l2.mean()))
    return {"samples": rows, "summary": pd.DataFrame([summary]), "attractors": attractors,
            "probe": probe, "generated": samples, "train": train_a.to(torch.float32)}  # fmt: skip


QUICK = {"sizes": (2, 16, 256), "seeds": 1, "samples": 128, "steps": 1500,
         "census_starts": 96, "probe_points": 2, "probe_trials": 8}  # fmt: skip


@register(
    "memorization",
    config=MemorizationConfig,
    quick=QUICK,
    summary="Memorized / spurious / generalized samples and attractors against training-set "
    "size K, with the exact-model baseline and a threshold-free twin-model test.",
    paper="Pham et al. 2025; Yoon et al. 2023; Kadkhodaie et al. 2024",
    figures={
        "class_fractions": "memorized / spurious / generalized fraction of samples and of "
        "attractors against K",
        "samples_vs_nearest": "samples next to their nearest training point",
        "landscapes": "the trained landscape at each K (written for 2-D data only)",
    },
)
def run(cfg: MemorizationConfig, ctx: Context) -> None:
    """Sweep (model, K, seed) as jobs ``<model>_K=<K>_seed=<s>``; tables, checks, figures."""
    kinds = [k for k, on in (("trained", cfg.trained), ("exact", cfg.exact_baseline)) if on]
    points = {"K": cfg.sizes, "seed": range(cfg.seeds)}  # `seed`: the subset index
    jobs = [job for kind in kinds for job in grid_jobs(kind, points, kind=kind, run_seed=ctx.seed,
            cfg=asdict(cfg), models=str(ctx.folder.path / "models") if kind == "trained" else None)]  # fmt: skip
    res = ctx.sweep(memorization_job, jobs, "memorization")
    tables = {n: ctx.table(n, res.table(n)) for n in ("samples", "summary", "attractors", "probe")}
    summary, primary = tables["summary"], "trained" if cfg.trained else "exact"
    main = summary[summary["model"] == primary]
    by_k = main.groupby("K")["ratio_memorized_fraction"].mean()
    small, large = min(cfg.sizes), max(cfg.sizes)
    if cfg.trained:
        ctx.check(f"trained: drop of the memorized fraction from K = {small} to K = {large} "
                  "(d1/d2 < 1/3; a full transition is 1)", by_k[small] - by_k[large], 1.0, 0.5,
                  relative=False)  # fmt: skip
        ctx.check(f"trained: memorized fraction at K = {large} (d1/d2 < 1/3)", by_k[large],
                  0.0, 0.2, relative=False)  # fmt: skip
    if len(exact := summary[summary["model"] == "exact"]):
        # δ_m, not d1/d2: it counts the exact model's average of two unresolved points as a copy
        ctx.check("exact model memorizes at every K (smallest fraction within δ_m over K and "
                  "seeds)", exact["memorized_fraction"].min(), 1.0, 0.02, relative=False)  # fmt: skip
    _figures(cfg, ctx, res, summary, primary)
    cap = ms.memorization.effective_capacity(by_k.index.to_numpy(), by_k.to_numpy(), level=0.9)
    fractions = ["ratio_memorized_fraction", *[f"{c}_fraction" for c in ms.memorization.CLASSES]]
    cols = [f"{p}_{c}" for p in ("attractors", "critical_sigma") for c in ms.memorization.CLASSES]
    cols = ["K", *fractions, *cols, *[c for c in ("pair_cosine", "pair_l2") if c in main]]
    capacity = (f"K ≈ {cap.interpolated:.3g} (grid: {cap.grid:g})" if cap.grid == cap.grid
                else "none: no K of the grid reached 90 %")  # fmt: skip
    ctx.section(
        "Memorization → generalization",
        f"Data `{cfg.data}`, {cfg.samples} samples per {primary} model ({cfg.sampler}, "
        f"{cfg.sampler_steps} steps): means over seeds, then each seed. Attractors at σ = "
        f"{cfg.census_sigma}; critical σ: the largest noise level a sample is recovered from (p ≥ "
        f"½). Capacity (largest K with ≥ 90 % d₁/d₂ < {cfg.ratio_threshold:.3g}): {capacity}. A "
        "small δ_m at small K: two close training points (maybe one spurious attractor between).",
        main[cols].groupby("K").mean().reset_index().round(4),
        main[["K", "seed", "delta_m", *fractions]].round(4),
    )


def _figures(cfg: MemorizationConfig, ctx: Context, res: Any, summary: Any, primary: str) -> None:
    # class fractions; samples and landscapes at the smallest, a middle and the largest K
    mz = ms.memorization
    pairs = "pair_cosine" in summary and bool(summary["pair_cosine"].notna().any())
    with ctx.figure("class_fractions", 1, 1 + pairs, figsize=(6 + 5 * pairs, 4)) as (_, axes):
        axes = np.atleast_1d(axes)
        mz.plot_class_fractions(summary, axes[0], model=primary)
        if pairs:
            mz.plot_pair_similarity(summary, axes[1], model=primary)
    ks = sorted({min(cfg.sizes), sorted(cfg.sizes)[len(cfg.sizes) // 2], max(cfg.sizes)})
    outs = [res[f"{primary}_K={k}_seed=0"] for k in ks]
    n, rows = len(ks), min(6, cfg.samples)
    if tuple(outs[0]["generated"].shape[1:]) != (2,):
        with ctx.figure("samples_vs_nearest", rows, 2 * n, figsize=(2.2 * n, 1.1 * rows)) as f:
            axes = np.asarray(f[1]).reshape(rows, 2 * n)
            for j, (k, o) in enumerate(zip(ks, outs, strict=True)):
                mz.plot_nearest(o["generated"], o["train"], axes[:, 2 * j : 2 * j + 2], f"K={k}")
        return
    with ctx.figure("samples_vs_nearest", 1, n, figsize=(4 * n, 4)) as (_, axes):
        for ax, k, o in zip(np.atleast_1d(axes), ks, outs, strict=True):
            mz.plot_samples(o["generated"], o["train"], o["samples"]["class"], ax, f"K={k}")
        np.atleast_1d(axes)[0].legend(fontsize=7)
    with ctx.figure("landscapes", 2, n, figsize=(4.2 * n, 8.4)) as (_, axes):
        axes = np.asarray(axes).reshape(2, n)
        for j, (k, o) in enumerate(zip(ks, outs, strict=True)):
            m = float(o["train"].abs().max()) * 1.4 + 0.2
            lim = (-m, m)
            if (
                saved := ctx.folder.path / "models" / f"K={k}_seed=0" / "a" / "model.json"
            ).exists():
                net = ms.ScoreModel.load(saved.parent).double()
                ms.plot_landscape(net, cfg.census_sigma, ax=axes[0, j], xlim=lim, ylim=lim)
            exact = ms.EmpiricalDiffusion(o["train"].to(torch.float64))
            ms.plot_landscape(exact, cfg.census_sigma, ax=axes[1, j], xlim=lim, ylim=lim)
            axes[0, j].set_title(f"trained, K={k}")
            axes[1, j].set_title(f"exact empirical, K={k}")
