"""Every memorization measurement of one model on one training set (Pham et al. 2025).

:func:`measure_model` runs, for a model and its generated samples, the measurements of
Pham et al. 2025 ("Memorization to Generalization: Emergence of Diffusion Models from
Associative Memory", arXiv:2505.21777, §3–4): the sample classes
(:func:`memscape.memorization.classify_samples`, with a held-out reference and fresh real
samples through the same rule), the d₁/d₂ ratio criterion of Yoon et al. 2023 / Gu et al.
2023, the attractor census at a small σ (:func:`memscape.memorization.classify_attractors`)
the critical σ of a few samples per class (:func:`memscape.memorization.critical_sigma`) and,
for energy models, the disconnectivity graph of the attractors
(:func:`memscape.memorization.attractors.attractor_atlas`; Becker & Karplus 1997).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape._validation import check_int
from memscape.memorization.attractors import (
    ATLAS_COLUMNS,
    FLATNESS,
    _attractor_census,
    attractor_atlas,
    attractor_summary,
    critical_sigma,
)
from memscape.memorization.classes import CLASSES, SampleClasses, classify_samples
from memscape.memorization.neighbors import nearest_neighbors
from memscape.progress import report

__all__ = ["Measurement", "draw_samples", "make_model", "measure_model", "split_pool"]


@dataclass
class Measurement:
    """What :func:`measure_model` returns: tables, and the classes of the samples."""

    samples: pd.DataFrame  #: one row per sample: d1, d2, ratio, class, ratio_memorized, …
    summary: dict[str, Any]  #: one summary row (fractions, thresholds, counts, critical σ)
    attractors: pd.DataFrame  #: :func:`classify_attractors` table
    probe: pd.DataFrame  #: probed samples: ``sample``, ``class``, ``critical_sigma``
    classes: SampleClasses  #: the classes of the samples
    #: :func:`attractor_atlas` minima (empty: no atlas) and the merge tree's edges
    atlas: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ATLAS_COLUMNS))
    atlas_edges: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["i", "j", "energy", "verified"])
    )
    #: ``(A, *event_shape)`` the attractors' positions, in the order of ``attractors``
    points: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


def measure_model(
    model: Any,
    samples: torch.Tensor,
    train: torch.Tensor,
    *,
    held_out: torch.Tensor | None = None,
    fresh: torch.Tensor | None = None,
    classify: dict[str, Any] | None = None,
    ratio_threshold: float = 1 / 3,
    census_sigma: float = 0.02,
    census_starts: int = 128,
    trained: bool = True,
    probe_points: int = 4,
    probe_trials: int = 16,
    sampler_steps: int = 18,
    atlas_neighbors: int = 0,
    generators: tuple[torch.Generator | None, torch.Generator | None] = (None, None),
) -> Measurement:
    """Classes, ratio criterion, attractors and basin probe of one model (module docstring).

    Args:
        model: the model that drew ``samples`` (on the CPU for the census).
        samples: ``(M, ...)`` its samples.
        train: ``(K, ...)`` its training set.
        held_out: real samples never trained on: the off-data reference (``None``:
            leave-one-out within ``train``).
        fresh: other real samples never trained on; their off-data count is
            ``real_off_data`` of ``n_real`` in the summary (``≤ 1 − q`` expected).
        classify: further keywords of :func:`classify_samples` (``delta_m``, ``delta_s``,
            ``off_data_quantile``, ``resolution``).
        ratio_threshold: ``d₁/d₂`` below this is memorized by the ratio criterion.
        census_sigma: σ of the attractor census.
        census_starts: random starts of the census.
        trained: a trained network: census gradient tolerance 1e-5 and census points of one
            flat manifold closer than δ_m/2 counted once (its score is smooth only to its
            training error); else the defaults of :func:`classify_attractors`.
        probe_points: samples per class probed by :func:`critical_sigma` (0: none).
        probe_trials: noise draws per level of the probe.
        sampler_steps: Heun steps of each probe run.
        atlas_neighbors: for an energy model, the attractors' disconnectivity graph
            (:func:`attractor_atlas`) joining each to this many nearest (0: none).
        generators: randomness of the census and of the probe.
    """
    check_int(atlas_neighbors, "atlas_neighbors", minimum=0)
    kw = dict(classify or {})
    cls = classify_samples(samples, train, held_out=held_out, **kw)
    rows = cls.table.rename(columns={"train_index": "nearest_train"})
    rows["ratio_memorized"] = rows["ratio"] < ratio_threshold
    rows["sample"] = np.arange(len(samples))
    spacing = nearest_neighbors(train, train, 1, exclude_self=True)[0]
    summary = {**cls.summary(), "ratio_memorized_fraction": float(rows["ratio_memorized"].mean()),
               "closest_pair": float(spacing.min())}  # fmt: skip
    if fresh is not None:
        real = classify_samples(fresh, train, held_out=held_out, **kw)
        summary |= {"real_off_data": int((real.labels == CLASSES.index("off-data")).sum()),
                    "n_real": len(fresh)}  # fmt: skip
    report("census")
    attractors, points = _attractor_census(
        model, census_sigma, train, delta_m=cls.delta_m, n_starts=census_starts,
        flatness=FLATNESS, max_seeds=64, tol=1e-5 if trained else None,
        dedupe_tol=cls.delta_m / 2 if trained else None, generator=generators[0])  # fmt: skip
    labels = rows["class"].to_numpy()
    picks = [int(i) for name in CLASSES for i in np.flatnonzero(labels == name)[:probe_points]]
    probe = pd.DataFrame({"sample": picks, "class": labels[picks], "critical_sigma": np.nan})
    if picks:
        report("probe")
        probe["critical_sigma"] = critical_sigma(
            model, samples[picks], cls.delta_m, n_trials=probe_trials,
            sampler_steps=sampler_steps, generator=generators[1]).radius  # fmt: skip
    summary |= attractor_summary(attractors, probe)
    out = Measurement(rows, summary, attractors, probe, cls, points=points)
    from memscape.landscape._fields import has_energy  # the landscape layer loads when used

    if atlas_neighbors > 0 and has_energy(model) and len(points):
        report("atlas", minima=len(points))
        out.atlas, out.atlas_edges = attractor_atlas(
            model, census_sigma, points, attractors["class"].tolist(), neighbors=atlas_neighbors
        )
    return out


def split_pool(
    pool: Any, k: int, seed: int, *, held_out: int, largest: int, twin: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, int]:
    """One seed's training set, held-out reference and fresh real samples from a pool.

    One seeded permutation of ``pool`` (a :class:`memscape.datasets.Dataset`) holds the
    training set first (its first ``k``: nested across K), then the twin's set (Kadkhodaie
    et al. 2024), then ``h`` fresh real samples and ``h`` held-out ones last: ``h`` is
    ``held_out`` capped at half of what the ``largest`` K (and, with ``twin``, its twin
    set) leave, and 0 below 2 (the classes need two reference samples).

    Returns:
        ``(train, held, fresh, h)``; ``held`` and ``fresh`` are ``None`` when ``h == 0``.
    """
    n = len(pool)
    rest = n - 2 * largest if twin and n - 2 * largest >= 2 else n - largest
    h = min(held_out, rest // 2)
    h = h if h >= 2 else 0
    held, fresh = (pool.subset(h, seed, start=n - i * h).x if h else None for i in (1, 2))
    return pool.subset(k, seed=seed).x, held, fresh, h


def draw_samples(
    model: Any,
    n: int,
    shape: tuple[int, ...],
    *,
    sampler: str,
    steps: int,
    exact: bool,
    generator: torch.Generator,
) -> torch.Tensor:
    """``n`` deterministic samples (float32) of a trained or exact model (:func:`memscape.sample`).

    The exact score is stiff (Lipschitz ~ 1/σ² near the data): it gets four times the
    ``steps`` and a smallest level σ_min = 10⁻⁴ (which resolves close training points);
    a trained model σ_min = 0.002 (Karras et al. 2022).
    """
    from memscape.diffusion.samplers import sample

    x = sample(model, n=n, shape=shape, sampler=sampler, steps=steps * (4 if exact else 1),
               sigma_min=1e-4 if exact else 0.002, generator=generator)  # fmt: skip
    return x.detach().to(torch.float32)


def make_model(
    kind: str,
    train: torch.Tensor,
    *,
    seed: int,
    out: Any = None,
    checkpoint_every: int | None = None,
    width: int = 256,
    layers: int = 4,
    energy: bool = False,
    steps: int = 1500,
    batch: int = 256,
    lr: float = 2e-3,
    precision: str = "float32",
    device: str = "cpu",
) -> Any:
    """The exact model of ``train`` (``kind="exact"``, float64), or an MLP trained on it.

    ``kind="trained"``: a :meth:`memscape.ScoreModel.mlp` (EDM preconditioning; Karras et
    al. 2022) of ``width`` × ``layers`` (an energy network E_θ(x, σ) with ``energy``),
    initialized and trained (:func:`memscape.train`, Adam, at ``precision``) with ``seed``.
    With ``out`` a finished training there is loaded and an interrupted one continues from
    its last checkpoint (every ``checkpoint_every`` steps).
    """
    from memscape.diffusion.empirical import EmpiricalDiffusion
    from memscape.diffusion.model import ScoreModel
    from memscape.diffusion.training import train as fit

    if kind == "exact":
        return EmpiricalDiffusion(train.to(torch.float64))
    if kind != "trained":
        raise ValueError(f"kind must be 'exact' or 'trained', got {kind!r}")
    net = ScoreModel.mlp(dim=train[0].numel(), width=width, layers=layers, energy=energy,
                         seed=seed)  # fmt: skip
    fit(net, train.reshape(len(train), -1).float(), steps=steps, batch=batch, lr=lr, seed=seed,
        out=out, device=device, progress=False, resume=True, precision=precision,
        checkpoint_every=checkpoint_every if out is not None else None)  # fmt: skip
    return net
