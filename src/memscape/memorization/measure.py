"""Every memorization measurement of one model on one training set (Pham et al. 2025).

:func:`measure_model` runs, for a model and its generated samples, the measurements of
Pham et al. 2025 ("Memorization to Generalization: Emergence of Diffusion Models from
Associative Memory", arXiv:2505.21777, §3–4): the sample classes
(:func:`memscape.memorization.classify_samples`, with a held-out reference and fresh real
samples through the same rule), the d₁/d₂ ratio criterion of Yoon et al. 2023 / Gu et al.
2023, the attractor census at a small σ (:func:`memscape.memorization.classify_attractors`)
and the critical σ of a few samples per class (:func:`memscape.memorization.critical_sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape.memorization.attractors import attractor_summary, classify_attractors, critical_sigma
from memscape.memorization.classes import CLASSES, SampleClasses, classify_samples
from memscape.memorization.neighbors import nearest_neighbors
from memscape.progress import report

__all__ = ["Measurement", "measure_model"]


@dataclass
class Measurement:
    """What :func:`measure_model` returns: tables, and the classes of the samples."""

    samples: pd.DataFrame  #: one row per sample: d1, d2, ratio, class, ratio_memorized, …
    summary: dict[str, Any]  #: one summary row (fractions, thresholds, counts, critical σ)
    attractors: pd.DataFrame  #: :func:`classify_attractors` table
    probe: pd.DataFrame  #: probed samples: ``sample``, ``class``, ``critical_sigma``
    classes: SampleClasses  #: the classes of the samples


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
        generators: randomness of the census and of the probe.
    """
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
    attractors = classify_attractors(
        model, census_sigma, train, delta_m=cls.delta_m, n_starts=census_starts,
        tol=1e-5 if trained else None, dedupe_tol=cls.delta_m / 2 if trained else None,
        generator=generators[0])  # fmt: skip
    labels = rows["class"].to_numpy()
    picks = [int(i) for name in CLASSES for i in np.flatnonzero(labels == name)[:probe_points]]
    probe = pd.DataFrame({"sample": picks, "class": labels[picks], "critical_sigma": np.nan})
    if picks:
        report("probe")
        probe["critical_sigma"] = critical_sigma(
            model, samples[picks], cls.delta_m, n_trials=probe_trials,
            sampler_steps=sampler_steps, generator=generators[1]).radius  # fmt: skip
    summary |= attractor_summary(attractors, probe)
    return Measurement(rows, summary, attractors, probe, cls)
