"""Where memorization ends, spurious states peak and generalization begins (Pham et al. 2025).

Pham et al. 2025 ("Memorization to Generalization: Emergence of Diffusion Models from
Associative Memory", arXiv:2505.21777, §4) describe the training-set size K of a diffusion
model as the load of an associative memory: below a capacity the samples are copies of
training points, past it spurious attractors appear, and at large K the attractors form
on the data manifold. On a K grid, from the per-(K, seed) fractions of the sample classes
of :func:`memscape.memorization.classify_samples`:

* ``K_A`` — memorization ends: the first grid K whose memorized fraction is below 90 %
  (the effective capacity level of Gu et al. 2023), bracketed by the grid point before it
  (the largest K still ≥ 90 %): ``K_A ∈ (K_before, K_first]``;
* ``K_S`` — the K of the spurious peak, with the interval of grid K whose spurious
  fraction cannot be told from the peak's (their Wilson intervals overlap);
* ``K_B`` — generalization begins: the first grid K with ≥ 50 % generalized samples,
  ``K_B ∈ (K_before, K_first]``;

and Pham et al.'s ordering ``K_A ≤ K_S ≤ K_B`` holds when values in the three intervals can
be so ordered. Fractions are the **median over seeds** (one training set per seed: a seed
whose training set has two nearly coincident points cannot memorize both and should not
move the headline) with the seed range and the Wilson interval of the median seed's M
samples. A value censored by the grid is a bound: ``K_A > 1024`` (``high = inf``),
``K_B ≤ 2`` (``low = 0``).

The twin test (Kadkhodaie et al. 2024, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations", §2) gets a reference level: the agreement of
two *independent* samples of one model (different noise), which a pair of models driven by
the same noise exceeds once both generalize.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import torch

from memscape.memorization.classes import CLASSES, expected_off_data_fraction, fraction_column

__all__ = [
    "GENERALIZED_LEVEL",
    "MEMORIZED_LEVEL",
    "GridInterval",
    "SweepReduction",
    "Transition",
    "fraction_text",
    "median_fractions",
    "one_sided_p",
    "reduce_sweep",
    "transition",
    "twin_agreement",
    "twin_similarity",
]

#: memorized fraction below which memorization has ended (Gu et al. 2023's 90 %)
MEMORIZED_LEVEL = 0.9
#: generalized fraction from which generalization has begun
GENERALIZED_LEVEL = 0.5


@dataclass(frozen=True)
class GridInterval:
    """``low < K ≤ high`` on the grid (``low = 0``: censored below; ``high = inf``: above)."""

    low: float
    high: float

    def __str__(self) -> str:
        if math.isinf(self.high):
            return f"> {self.low:g}"
        if self.low == 0:
            return f"≤ {self.high:g}"
        return f"({self.low:g}, {self.high:g}]"


def _first_crossing(ks: np.ndarray, hit: np.ndarray) -> GridInterval:
    idx = np.flatnonzero(hit)
    if not len(idx):
        return GridInterval(float(ks[-1]), math.inf)
    i = int(idx[0])
    return GridInterval(float(ks[i - 1]) if i else 0.0, float(ks[i]))


def median_fractions(summary: pd.DataFrame, model: str, confidence: float = 0.95) -> pd.DataFrame:
    """Per K: each class's median fraction over seeds, seed range and Wilson interval.

    Args:
        summary: one row per (model, K, seed) with ``K``, ``model``, ``n_samples`` and the
            class fractions (:func:`memscape.memorization.fraction_column`).
        model: the ``model`` rows to reduce.
        confidence: of the Wilson (1927) score interval
            (:func:`memscape.landscape.basins.wilson_interval`) of the median seed's
            fraction, ``n = n_samples``.

    Returns:
        One row per K (ascending): ``K``, ``seeds``, and per class ``c`` (column stem
        ``s = fraction_column(c)``) ``s`` (median), ``s_min``, ``s_max``, ``s_low``, ``s_high``.
    """
    from memscape.landscape.basins import wilson_interval  # the one Wilson rule

    rows = summary[summary["model"] == model]
    if not len(rows):
        raise ValueError(f"summary has no rows of model {model!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    out = []
    for k, grp in rows.groupby("K"):
        n = int(grp["n_samples"].min())
        row: dict[str, Any] = {"K": k, "seeds": len(grp)}
        for c in CLASSES:
            s = fraction_column(c)
            med = float(grp[s].median())
            low, high = (float(v) for v in wilson_interval(torch.tensor(round(med * n)), n, z))
            row |= {s: med, f"{s}_min": grp[s].min(), f"{s}_max": grp[s].max(),
                    f"{s}_low": low, f"{s}_high": high}  # fmt: skip
        out.append(row)
    return pd.DataFrame(out).sort_values("K").reset_index(drop=True)


@dataclass(frozen=True)
class Transition:
    """``K_A``, ``K_S``, ``K_B`` of one model on its grid (:func:`transition`)."""

    k_a: GridInterval  #: memorization ends: first K below 90 % memorized
    k_s: float  #: grid K of the spurious peak (NaN: no spurious sample anywhere)
    k_s_interval: GridInterval  #: grid K compatible with the peak (closed; censored at the ends)
    spurious_peak: float  #: median spurious fraction at ``k_s``
    k_b: GridInterval  #: generalization begins: first K with ≥ 50 % generalized

    @property
    def resolved(self) -> bool:
        """A spurious peak whose interval does not span the whole grid."""
        s = self.k_s_interval
        return not math.isnan(self.k_s) and not (s.low == 0 and math.isinf(s.high))

    @property
    def ordered(self) -> bool:
        """Pham et al.'s ``K_A ≤ K_S ≤ K_B`` for some values in the three intervals (False
        when the peak is not :attr:`resolved`: an ordering that was not measured)."""
        if not self.resolved:
            return False
        a, s, b = self.k_a.low, self.k_s_interval, self.k_b.high
        return max(a, s.low) <= min(s.high, b)

    def k_s_text(self) -> str:
        """``K_S`` as ``peak [low, high]``, or a bound where the interval meets the grid's end."""
        s = self.k_s_interval
        if math.isnan(self.k_s):
            return "none (no spurious sample)"
        if s.low == 0 and math.isinf(s.high):
            return "unresolved (every K compatible with the peak)"
        if math.isinf(s.high):
            return f"≥ {s.low:g} (peak at {self.k_s:g}; the largest K is compatible)"
        if s.low == 0:
            return f"≤ {s.high:g} (peak at {self.k_s:g}; the smallest K is compatible)"
        return f"{self.k_s:g} [{s.low:g}, {s.high:g}]"

    def row(self) -> dict[str, Any]:
        """The ``transition`` table row: text and numeric bounds of each K (``ordered`` is
        None without a spurious peak: nothing to order)."""
        return {"K_A": str(self.k_a), "K_A_low": self.k_a.low, "K_A_high": self.k_a.high,
                "K_S": self.k_s_text(), "K_S_peak": self.k_s, "K_S_low": self.k_s_interval.low,
                "K_S_high": self.k_s_interval.high, "spurious_peak": self.spurious_peak,
                "K_B": str(self.k_b), "K_B_low": self.k_b.low, "K_B_high": self.k_b.high,
                "ordered": None if math.isnan(self.k_s) else self.ordered}  # fmt: skip


def transition(
    fractions: pd.DataFrame,
    memorized_level: float = MEMORIZED_LEVEL,
    generalized_level: float = GENERALIZED_LEVEL,
) -> Transition:
    """``K_A``, ``K_S``, ``K_B`` (module docstring) from a :func:`median_fractions` table."""
    ks = fractions["K"].to_numpy(float)
    mem = fractions[fraction_column("memorized")].to_numpy(float)
    gen = fractions[fraction_column("generalized")].to_numpy(float)
    s = fraction_column("spurious")
    spur = fractions[s].to_numpy(float)
    k_a = _first_crossing(ks, mem < memorized_level)
    k_b = _first_crossing(ks, gen >= generalized_level)
    if not (spur > 0).any():
        return Transition(k_a, math.nan, GridInterval(math.nan, math.nan), 0.0, k_b)
    i = int(np.argmax(spur))
    # grid K whose Wilson interval reaches the peak's: not distinguishable from the peak
    compatible = np.flatnonzero(fractions[f"{s}_high"].to_numpy(float)
                                >= float(fractions[f"{s}_low"].iloc[i]))  # fmt: skip
    lo, hi = int(compatible.min()), int(compatible.max())
    interval = GridInterval(0.0 if lo == 0 else float(ks[lo]),
                            math.inf if hi == len(ks) - 1 else float(ks[hi]))  # fmt: skip
    return Transition(k_a, float(ks[i]), interval, float(spur[i]), k_b)


def one_sided_p(larger: Any, smaller: Any) -> float:
    """p-value of Welch's t test that ``mean(larger) > mean(smaller)`` (NaN values dropped)."""
    from scipy.stats import ttest_ind

    a, b = (np.asarray(v, float) for v in (larger, smaller))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def twin_agreement(samples: pd.DataFrame, model: str = "trained") -> pd.DataFrame:
    """Per K: twin and reference cosine (median over seeds of the per-seed means) and p-values.

    ``*_min``/``*_max``: the range over seeds of the per-seed means (the band drawn by
    :func:`memscape.memorization.plot_pair_similarity`).

    ``samples`` has one row per generated sample with ``K``, ``seed``, ``model``,
    ``twin_cosine`` (sample i of the model against sample i of its twin, trained on a
    disjoint set, same noise) and ``reference_cosine`` (sample i against the same model's
    sample i + 1: independent noise). ``p_above_reference`` is Welch's one-sided p that the
    twin agreement exceeds the reference at that K (all seeds' pairs pooled).
    """
    rows = samples[(samples["model"] == model) & samples["twin_cosine"].notna()]
    out = []
    for k, grp in rows.groupby("K"):
        per_seed = grp.groupby("seed")[["twin_cosine", "reference_cosine"]].mean()
        out.append({"K": k, "twin_cosine": per_seed["twin_cosine"].median(),
                    "twin_cosine_min": per_seed["twin_cosine"].min(),
                    "twin_cosine_max": per_seed["twin_cosine"].max(),
                    "reference_cosine": per_seed["reference_cosine"].median(),
                    "reference_cosine_min": per_seed["reference_cosine"].min(),
                    "reference_cosine_max": per_seed["reference_cosine"].max(),
                    "p_above_reference": one_sided_p(grp["twin_cosine"],
                                                     grp["reference_cosine"])})  # fmt: skip
    return pd.DataFrame(out, columns=["K", "twin_cosine", "twin_cosine_min", "twin_cosine_max",
                                      "reference_cosine", "reference_cosine_min",
                                      "reference_cosine_max", "p_above_reference"])  # fmt: skip


def twin_similarity(samples: Any, twin: Any, center: Any) -> pd.DataFrame:
    """Per-sample agreement of a model with its twin, and the reference level (Kadkhodaie et al.).

    ``twin_cosine``/``twin_l2``: sample ``i`` against the twin's sample ``i`` (same noise);
    ``reference_cosine``/``reference_l2``: sample ``i`` against the same model's sample
    ``i + 1`` (cyclically): two independent samples of one model, the agreement that the
    data distribution alone gives. Cosines are taken about ``center`` (e.g. the data mean).

    Args:
        samples: ``(M, ...)`` samples of the model, ``M ≥ 2``.
        twin: ``(M, ...)`` samples of the twin from the same noise.
        center: ``(d,)`` (or broadcastable) point the cosines are taken about.
    """
    from memscape.memorization.metrics import paired_similarity

    a, b = (x.reshape(len(x), -1) - center for x in (samples, twin))
    pair = paired_similarity(a, b, center=False)
    ref = paired_similarity(a, a.roll(1, 0), center=False)
    return pd.DataFrame({"twin_cosine": pair.cosine.numpy(), "twin_l2": pair.l2.numpy(),
                         "reference_cosine": ref.cosine.numpy(), "reference_l2": ref.l2.numpy()})  # fmt: skip


def fraction_text(fractions: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A :func:`median_fractions` table as text: ``median [Wilson low, high] (seeds min–max)``."""
    out = {"K": fractions["K"], "seeds": fractions["seeds"]}
    for c in CLASSES:
        s = fraction_column(c)
        out[c] = [f"{r[s]:.{digits}f} [{r[f'{s}_low']:.{digits}f}, {r[f'{s}_high']:.{digits}f}]"
                  + (f" ({r[f'{s}_min']:.{digits}f}–{r[f'{s}_max']:.{digits}f})"
                     if r["seeds"] > 1 else "")
                  for _, r in fractions.iterrows()]  # fmt: skip
    return pd.DataFrame(out)


@dataclass
class SweepReduction:
    """A (model, K, seed) sweep reduced (:func:`reduce_sweep`)."""

    summary: pd.DataFrame  #: the per-(model, K, seed) summary table
    fractions: dict[str, pd.DataFrame]  #: per model: :func:`median_fractions`
    transitions: dict[str, Transition]  #: per model: :func:`transition`
    twin: pd.DataFrame | None  #: :func:`twin_agreement` of the trained model (None: no twins)
    twin_rise_p: float  #: Welch one-sided p that twin cosine at the largest K > at the smallest
    #: fresh real samples: off-data count, n, Wilson 95 % low, the expected fraction
    #: (:func:`memscape.memorization.expected_off_data_fraction`)
    real_off_data: tuple[int, int, float, float]

    def transition_table(self) -> pd.DataFrame:
        """One row per model: :meth:`Transition.row`."""
        return pd.DataFrame([{"model": k, **t.row()} for k, t in self.transitions.items()])

    def sections(self, model: str, run: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Report sections ``(title, markdown, *tables)`` for ``model``.

        ``run`` (the run's options) names what the text cites: ``data, samples, sampler,
        sampler_steps, off_data_quantile, resolution, census_sigma, census_starts``.
        """
        from memscape.memorization.attractors import ATTRACTOR_CLASSES, PROBE_LEVELS

        main, t = self.summary[self.summary["model"] == model], self.transitions[model]
        floor, h = float(main["off_data_floor"].max()), int(main["held_out"].min())
        close = main[(main["closest_pair"] < floor) & (3 * main["delta_m"] >= floor)]
        note = "; ".join(f"K = {r.K} seed {r.seed} (closest pair {r.closest_pair:.3g})"
                         for r in close.itertuples()) or "none"  # fmt: skip
        ref = f"{h} held-out real samples" if h else "leave-one-out distances (no held-out part)"
        count, n, low, expect = self.real_off_data
        real = (f" Fresh real samples off-data: {count} of {n} (Wilson low {low:.3g}; expected "
                f"at most {expect:.3g})." if n else "")  # fmt: skip
        per_seed = ["K", "seed", "delta_m", "closest_pair", "off_data_threshold",
                    "ratio_memorized_fraction", *[fraction_column(c) for c in CLASSES]]  # fmt: skip
        top = max(PROBE_LEVELS)
        cols = [f"attractors_{c}" for c in ATTRACTOR_CLASSES]
        cols += [f"critical_sigma_{c.replace('-', '_')}{s}" for c in CLASSES
                 for s in ("", "_censored")]  # fmt: skip
        out: list[tuple[Any, ...]] = [
            ("Memorization → generalization",
             f"Data `{run['data']}`, {run['samples']} samples per {model} model ({run['sampler']}"
             f", {run['sampler_steps']} steps). Each cell: median over seeds [Wilson 95 % interval"
             " of the median seed] (seed range). Off-data: d₁ above the "
             f"{run['off_data_quantile']:g} quantile of the d₁ of {ref}, and at least σ·√χ²_d(q) ="
             f" {floor:.3g} (σ = {run['resolution']:g}, the resolution of the model).{real} Seeds "
             "whose two closest training points lie within that resolution (a model cannot "
             f"separate them: samples between them count spurious): {note}.",
             fraction_text(self.fractions[model]), main[per_seed].round(4)),
            ("Transition: K_A, K_S, K_B",
             f"K_A: memorization ends — the first K below {MEMORIZED_LEVEL:.0%} memorized, after "
             "the largest K still above (the effective capacity lies in that interval); K_S: the "
             "spurious peak, with the K whose Wilson interval reaches the peak's; K_B: "
             f"generalization begins — the first K with ≥ {GENERALIZED_LEVEL:.0%} generalized. "
             f"A bound (> K, ≤ K) is censored by the grid. {model}: K_A {t.k_a}, K_S "
             f"{t.k_s_text()}, K_B {t.k_b}; K_A ≤ K_S ≤ K_B: {t.ordered}.",
             self.transition_table()[["model", "K_A", "K_S", "spurious_peak", "K_B", "ordered"]]),
            ("Attractors and basins",
             f"Minima at σ = {run['census_sigma']} ({run['census_starts']} census starts), median "
             "over seeds; critical σ: the largest noise level a sample is recovered from (p ≥ ½),"
             " mean over uncensored samples; `_censored`: samples recovered up to the top probe "
             f"level (σ* ≥ {top:g}, a bound).",
             main.groupby("K")[cols].median().reset_index().round(4)),
        ]  # fmt: skip
        if self.twin is not None:
            out.append(("Twin models (Kadkhodaie et al. 2024)", "Mean cosine (about the data "
                        "mean) between samples of two models trained on disjoint sets, from the "
                        "same noise, median over seeds, against the reference level: two "
                        f"independent samples of one model. Rise with K: p = {self.twin_rise_p:.3g}.",
                        self.twin.round(4).assign(p_above_reference=[
                            f"{v:.2g}" for v in self.twin["p_above_reference"]])))  # fmt: skip
        return out


def reduce_sweep(
    summary: pd.DataFrame, samples: pd.DataFrame, models: list[str], quantile: float = 0.99
) -> SweepReduction:
    """Medians, transitions, twin agreement and the fresh-real-sample count of a sweep.

    ``summary``: one row per (model, K, seed) (:func:`memscape.memorization.measure_model`'s
    summary plus ``K``, ``seed``, ``model``, ``held_out``); ``samples``: one row per sample
    (with ``twin_cosine``/``reference_cosine`` where twins were trained). The fresh real
    samples are those of ``models[0]`` (each model sees the same ones); ``quantile`` is the
    off-data quantile they were classified with.
    """
    from memscape.landscape.basins import wilson_interval  # the one Wilson rule

    fractions = {k: median_fractions(summary, k) for k in models}
    twin = rise = None
    if "twin_cosine" in samples and samples["twin_cosine"].notna().any():
        twin = twin_agreement(samples)
        rows = samples[samples["model"] == "trained"]
        rise = one_sided_p(*(rows.loc[rows["K"] == k, "twin_cosine"]
                             for k in (twin["K"].max(), twin["K"].min())))  # fmt: skip
    main = summary[summary["model"] == models[0]]
    count = n = 0
    if "n_real" in main:
        count, n = int(main["real_off_data"].fillna(0).sum()), int(main["n_real"].fillna(0).sum())
    low = float(wilson_interval(torch.tensor(count), n)[0]) if n else math.nan
    expect = expected_off_data_fraction(int(main["held_out"].min()), quantile) if n else math.nan
    return SweepReduction(summary, fractions, {k: transition(f) for k, f in fractions.items()},
                          twin, math.nan if rise is None else rise, (count, n, low, expect))  # fmt: skip
