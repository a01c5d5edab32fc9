"""``memscape run memorization``: from memorization to generalization as the training set grows.

Reproduces, on laptop-sized data, the central result of Pham et al. 2025 ("Memorization to
Generalization: Emergence of Diffusion Models from Associative Memory", arXiv:2505.21777): a
diffusion model trained on K samples stores them as attractors when K is small; spurious
attractors appear at the transition; at large K new attractors form on the data manifold.

Per (K, seed) a job trains a model (EDM) on K points of a pool, samples it deterministically from
noise shared across K and measures (:func:`memscape.memorization.measure_model`) each sample's d₁,
d₂, the ratio criterion d₁/d₂ < 1/3 (Yoon et al. 2023; Gu et al. 2023) and its class: memorized /
spurious / generalized, or off-data — d₁ above the 0.99 quantile of held-out real samples and above
``resolution``·√χ²_d(0.99), the spread of data at the noise level the model resolves; fresh real
samples through the same rule; the attractors at a small σ and (energy models: the exact one) their
disconnectivity graph (Becker & Karplus 1997), paths and certified saddles to each one's nearest;
the critical σ of a few samples (censored at the top probe level: a bound); and Kadkhodaie et al.
2024's twin test (a model on a disjoint set, same noise) against the agreement of two independent
samples of one model. :func:`memscape.memorization.reduce_sweep` gives K_A (memorization ends), K_S
(spurious peak), K_B (generalization begins) as grid intervals from medians over seeds with Wilson
intervals; the exact model is the theory baseline. Training: 1500 steps (circle, 3 seeds: the loss
then within 0.7–3.4 % of its 3000-step value, the classes at K = 2 and 1024 within their Wilson
intervals; at K = 8 the memorized fraction still grows by 0.05–0.1). A re-run resumes from
``models/`` bit-identically. 2-D data: ``explorer.html`` (landscapes, class fractions).

**Checked against:** memorizes at the smallest K, not at the largest; K_A ≤ K_S ≤ K_B; twins
agree more with K, above their reference; fresh real samples rarely off-data; exact memorizes.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lazy_loader as lazy
import numpy as np

import memscape as ms
from memscape._validation import check_device
from memscape.experiments.registry import Context, option, register
from memscape.progress import report
from memscape.runs.sweep import grid_jobs, job_seed

pd = lazy.load("pandas")
torch = lazy.load("torch")

SYNTHETIC = ("circle", "gmm", "mixture", "manifold")  # drawn as a pool of `pool` points
CHECKPOINT_EVERY = 250  # training steps between checkpoints (what an interruption can lose)
MAKE_MODEL_OPTIONS = ("width", "layers", "energy", "steps", "batch", "lr", "precision", "device")


@dataclass
class MemorizationConfig:
    """Options of ``memorization`` (defaults: the circle toy, a few minutes on 2 CPU cores)."""

    data: str = option("circle", "data set (circle, mixture, manifold, digits, …) or .npy/.npz")
    pool: int = option(4096, "points drawn for synthetic datasets", ge=2)
    sizes: tuple[int, ...] = option((2, 8, 16, 32, 64, 1024), "training-set sizes K", ge=2)
    seeds: int = option(3, "seeds (training subsets) per K", ge=1)
    samples: int = option(256, "generated samples per model", ge=2)
    held_out: int = option(1024, "held-out real samples (reference; as many fresh)", ge=0)
    off_data_quantile: float = option(0.99, "off-data: d1 above this held-out quantile", gt=0, lt=1)
    resolution: float = option(0.02, "σ the model resolves: off-data d1 ≥ σ·√χ²_d(q)", ge=0)
    width: int = option(256, "MLP width", ge=1)
    layers: int = option(4, "MLP layers", ge=1)
    energy: bool = option(False, "train an energy network E_θ(x, σ)")
    steps: int = option(1500, "training steps per model", ge=1)
    batch: int = option(256, "training batch size", ge=1)
    lr: float = option(2e-3, "Adam learning rate", gt=0)
    precision: str = option("float32", "training: float32 or bfloat16 (mixed)", choices=("float32", "bfloat16"))  # fmt: skip
    sampler: str = option("heun", "deterministic sampler", choices=("heun", "euler", "ddim"))
    sampler_steps: int = option(18, "sampler steps", ge=1)
    ratio_threshold: float = option(1 / 3, "memorized when d1/d2 < this", gt=0)
    delta_m: float | None = option(None, "memorized within this of a training point", gt=0)
    delta_s: float | None = option(None, "spurious within this of another sample", gt=0)
    census_sigma: float = option(0.02, "σ of the attractor census", gt=0)
    census_starts: int = option(128, "starts of the attractor census", ge=1)
    probe_points: int = option(4, "samples per class in the basin probe", ge=0)
    probe_trials: int = option(16, "noise draws per level in the probe", ge=1)
    atlas_neighbors: int = option(3, "disconnectivity graph of the attractors: paths to the "
                                  "nearest n of each (energy models; 0: none)", ge=0)  # fmt: skip
    pairs: bool = option(True, "Kadkhodaie test: also train on a disjoint set of the same size")
    exact_baseline: bool = option(True, "run the exact empirical model as the theory baseline")
    device: str = option("cpu", "torch device of training and sampling")
    trained: bool = option(True, "train diffusion models (off: only the exact baseline)")

    def validate(self) -> None:
        """Relations between options, the device, the data set (torch loads only if needed)."""
        if self.device != "cpu":  # exists on this machine (before any file is written)
            check_device(self.device, "option device")
        if not (self.trained or self.exact_baseline):
            raise ValueError("trained and exact_baseline are both off: nothing to run")
        if self.energy and self.precision == "bfloat16":  # train's rule, restated torch-free
            raise ValueError("precision='bfloat16' is not available for energy models (energy)")
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
    """Train (or build the exact model) on K points, sample, measure; the twin model.

    Per seed the pool's permutation holds the training set (nested across K), the twin's set,
    then fresh real samples and the held-out reference last; noise from ``(run_seed, seed)``.
    """
    mz, c = ms.memorization, MemorizationConfig(**cfg)
    n = len(pool := load_pool(c, seed=run_seed))
    train_a, held, fresh, h = mz.measure.split_pool(pool, K, seed, held_out=c.held_out,
                                                    largest=max(c.sizes), twin=c.pairs)  # fmt: skip

    def gen(*tag: Any) -> Any:
        return torch.Generator().manual_seed(job_seed(run_seed, *tag))

    def make(train: Any, tag: str) -> Any:  # models/…/tag: a finished training loads, else resumes
        out = None if models is None else Path(models) / f"K={K}_seed={seed}" / tag
        return mz.measure.make_model(kind, train, seed=job_seed(run_seed, "model", K, seed, tag) % 2**31,
            out=out, checkpoint_every=CHECKPOINT_EVERY, **{k: cfg[k] for k in MAKE_MODEL_OPTIONS})  # fmt: skip

    def draw(model: Any, what: str = "") -> Any:
        report("sample", what=what)
        return mz.measure.draw_samples(model, c.samples, tuple(train_a.shape[1:]), sampler=c.sampler,
            steps=c.sampler_steps, exact=kind == "exact", generator=gen("noise", seed))  # fmt: skip

    samples = draw(model := make(train_a, "a"))
    model = model.cpu() if isinstance(model, torch.nn.Module) else model  # census, probe: CPU
    opts = ("ratio_threshold", "census_sigma", "census_starts", "probe_points", "probe_trials",
            "sampler_steps", "atlas_neighbors")  # fmt: skip
    m = mz.measure_model(model, samples, train_a, held_out=held, fresh=fresh,
                         classify={k: cfg[k] for k in ("delta_m", "delta_s", "off_data_quantile",
                                                       "resolution")}, trained=kind == "trained",
                         generators=(gen("census", K, seed), gen("probe", K, seed)),
                         **{k: cfg[k] for k in opts})  # fmt: skip
    tag = {"K": K, "seed": seed, "model": kind}
    rows, summary = m.samples.assign(**tag), {**tag, **m.summary, "held_out": h}
    if c.pairs and kind == "trained" and 2 * K + 2 * h <= n:
        twin = draw(make(pool.subset(K, seed, start=K).x, "b"), "twin")
        mean = pool.x.reshape(n, -1).mean(0).to(samples)  # cosines about the data mean
        sim = mz.twin_similarity(samples, twin, mean)
        rows = pd.concat([rows, sim], axis=1)
        summary |= sim.mean().add_prefix("mean_").to_dict()
    return {"samples": rows, "summary": pd.DataFrame([summary]), "attractors": m.attractors.assign(**tag),
            "probe": m.probe.assign(**tag), "generated": samples, "train": train_a.to(torch.float32),
            "atlas": m.atlas.assign(**tag), "atlas_edges": m.atlas_edges.assign(**tag),
            "reference_d1": m.classes.reference_d1.float(), "attractor_points": m.points.float()}  # fmt: skip


QUICK = {"sizes": (2, 16, 256), "seeds": 1, "samples": 128, "census_starts": 96,
         "probe_points": 2, "probe_trials": 8}  # fmt: skip


@register(
    "memorization",
    config=MemorizationConfig,
    quick=QUICK,
    summary="Memorized / spurious / generalized / off-data samples and attractors against "
    "training-set size K: K_A ≤ K_S ≤ K_B, the exact-model baseline, a twin-model test.",
    paper="Pham et al. 2025 (arXiv:2505.21777); Yoon et al. 2023; Kadkhodaie et al. 2024",
    figures={
        "class_fractions": "sample classes against K (median, seed band, Wilson bars, K_A/K_B); twins",
        "d1_histogram": "d₁ of generated and held-out real samples, δ_m and the off-data threshold",
        "samples_vs_nearest": "samples next to their nearest training point",
        "landscapes": "the trained landscape at each K (written for 2-D data only)",
        "disconnectivity": "disconnectivity graph of the attractors at each K, leaves by class",
    },
)
def run(cfg: MemorizationConfig, ctx: Context) -> None:
    """Sweep (model, K, seed) as jobs ``<model>_K=<K>_seed=<s>``; tables, checks, figures."""
    mz = ms.memorization
    kinds = [k for k, on in (("trained", cfg.trained), ("exact", cfg.exact_baseline)) if on]
    points = {"K": cfg.sizes, "seed": range(cfg.seeds)}  # `seed`: the subset index
    jobs = [job for kind in kinds for job in grid_jobs(kind, points, kind=kind, run_seed=ctx.seed,
            cfg=asdict(cfg), models=str(ctx.folder.path / "models") if kind == "trained" else None)]  # fmt: skip
    res = ctx.sweep(memorization_job, jobs, "memorization")
    tables = {n: ctx.table(n, res.table(n))
              for n in ("samples", "summary", "attractors", "probe", "atlas", "atlas_edges")}  # fmt: skip
    red = mz.reduce_sweep(tables["summary"], tables["samples"], kinds, cfg.off_data_quantile)
    ctx.table("fractions", pd.concat([f.assign(model=k) for k, f in red.fractions.items()]))
    ctx.table("transition", red.transition_table())
    mem, small, large = mz.fraction_column("memorized"), min(cfg.sizes), max(cfg.sizes)
    if cfg.trained:
        fr, t = red.fractions["trained"], red.transitions["trained"]
        ctx.check(f"trained, K = {small}: memorized, median seed, Wilson 95 % low (memorizes: ≥ 90 %)",
                  fr[f"{mem}_low"].iloc[0], 1.0, 0.1, relative=False)  # fmt: skip
        ctx.check(f"trained, K = {large}: memorized, median seed, Wilson 95 % high (≤ 10 %)",
                  fr[f"{mem}_high"].iloc[-1], 0.0, 0.1, relative=False)  # fmt: skip
        ctx.check(f"trained: K_A ≤ K_S ≤ K_B (Pham et al.): K_A {t.k_a}, K_S {t.k_s_text()}, K_B "
                  f"{t.k_b}", float(t.ordered), 1.0, 0.0, relative=False)  # fmt: skip
    if red.twin is not None and len(red.twin) >= 2:
        ctx.check(f"twin cosine rises from K = {small} to {large}: Welch one-sided p (< 0.001)",
                  red.twin_rise_p, 0.0, 1e-3, relative=False)  # fmt: skip
        ctx.check(f"twin cosine at K = {large} above its reference (2 samples of 1 model): Welch p",
                  red.twin["p_above_reference"].iloc[-1], 0.0, 1e-3, relative=False)  # fmt: skip
    if (real := red.real_off_data)[1]:
        ctx.check(f"fresh real samples off-data ({real[0]} of {real[1]}): Wilson 95 % low ≤ the "
                  "expected ((1−q)H + q)/(H + 1)", real[2], 0.0, real[3], relative=False)  # fmt: skip
    if cfg.exact_baseline:
        ctx.check("exact model memorizes at every K (≥ 95 %): smallest Wilson 95 % high (median "
                  "seed)", red.fractions["exact"][f"{mem}_high"].min(), 1.0, 0.05, relative=False)  # fmt: skip
    _figures(cfg, ctx, res, red, kinds[0])
    if len(atlas := tables["atlas"][tables["atlas"]["seed"] == 0]):  # one panel per (model, K)
        n = atlas.groupby(["model", "K"]).ngroups
        rows, cols = -(-n // 3), min(n, 3)  # a grid of at most three panels a row
        with ctx.figure("disconnectivity", rows, cols, figsize=(4.4 * cols, 3.8 * rows)) as fa:
            ms.landscape.plot_disconnectivity_panels(atlas, tables["atlas_edges"],
                np.ravel(fa[1]), by=("model", "K", "seed"), label="class")  # fmt: skip
    for section in red.sections(kinds[0], asdict(cfg)):
        ctx.section(*section)
    outs = {k: {K: res[f"{k}_K={K}_seed=0"] for K in cfg.sizes} for k in kinds}  # 2-D: explorer
    if page := mz.write_memorization_explorer(ctx.folder.path, outs, red.fractions, cfg.census_sigma):  # fmt: skip
        ctx.section("Explorer", f"`{page.name}` (one offline page): {mz.EXPLORER_TEXT}")


def _figures(cfg: MemorizationConfig, ctx: Context, res: Any, red: Any, primary: str) -> None:
    mz, twin = ms.memorization, red.twin is not None
    with ctx.figure("class_fractions", 1, 1 + twin, figsize=(6 + 5 * twin, 4)) as (_, axes):
        base = red.fractions.get("exact") if primary != "exact" else None
        mz.plot_class_fractions(red.fractions[primary], np.atleast_1d(axes)[0], baseline=base,
                                transition=red.transitions[primary])  # fmt: skip
        if twin:
            mz.plot_pair_similarity(red.twin, axes[1])
    ks = sorted({min(cfg.sizes), sorted(cfg.sizes)[len(cfg.sizes) // 2], max(cfg.sizes)})
    outs, n = [res[f"{primary}_K={k}_seed=0"] for k in ks], len(ks)
    titles = [f"{primary}, K={k}, seed 0" for k in ks]
    with ctx.figure("d1_histogram", 1, n, figsize=(4.5 * n, 3.6)) as (_, axes):
        mz.plot_d1_panels(outs, np.atleast_1d(axes), titles)
    two_d = tuple(outs[0]["generated"].shape[1:]) == (2,)
    rows, cols = (1, n) if two_d else (min(6, cfg.samples), 2 * n)
    size = (4 * n, 4) if two_d else (2.2 * n, 1.1 * rows)
    with ctx.figure("samples_vs_nearest", rows, cols, figsize=size) as (_, axes):
        mz.plot_sample_panels(outs, np.asarray(axes).reshape(rows, cols), [f"K={k}" for k in ks])
    if not two_d:
        return
    with ctx.figure("landscapes", 2, n, figsize=(4.2 * n, 8.4)) as (_, axes):
        mz.plot_landscape_panels(ctx.folder.path, outs, cfg.census_sigma, axes)
