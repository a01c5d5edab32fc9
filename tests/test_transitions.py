"""K_A, K_S, K_B on a K grid (Pham et al. 2025), their intervals and bounds, Wilson intervals,
the twin reference level and the off-data rule's finite-sample and resolution terms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import memscape as ms
from memscape.landscape.basins import wilson_interval
from memscape.memorization import (
    CLASSES,
    GridInterval,
    classify_samples,
    expected_off_data_fraction,
    fraction_column,
    median_fractions,
    off_data_floor,
    one_sided_p,
    transition,
    twin_agreement,
    twin_similarity,
)


# ------------------------------------------------------------------------------- Wilson
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe 1998 (Stat. Med. 17, 857), Table I, method 3 (Wilson score, no correction)
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(k, n, low, high):
    lo, hi = wilson_interval(torch.tensor(k), n)
    assert float(lo) == pytest.approx(low, abs=6e-5) and float(hi) == pytest.approx(high, abs=6e-5)


def test_wilson_interval_at_zero_successes_is_the_closed_form():
    z = 1.959964
    _, hi = wilson_interval(torch.tensor(0), 48)
    assert float(hi) == pytest.approx(z * z / (48 + z * z), rel=1e-12)


# --------------------------------------------------------------------- median fractions
def _summary(rows: list[tuple[int, int, dict[str, float]]], n: int = 100) -> pd.DataFrame:
    out = []
    for k, seed, fr in rows:
        row = {"model": "trained", "K": k, "seed": seed, "n_samples": n}
        row |= {fraction_column(c): fr.get(c, 0.0) for c in CLASSES}
        out.append(row)
    return pd.DataFrame(out)


def test_median_fractions_takes_the_median_seed_and_its_wilson_interval():
    rows = [(8, s, {"memorized": m, "generalized": 1 - m}) for s, m in enumerate((0.2, 0.9, 0.81))]
    fr = median_fractions(_summary(rows, n=263), "trained")
    mem = fraction_column("memorized")
    assert fr[mem].iloc[0] == pytest.approx(0.81)
    assert (fr[f"{mem}_min"].iloc[0], fr[f"{mem}_max"].iloc[0]) == (0.2, 0.9)
    lo, hi = wilson_interval(torch.tensor(round(0.81 * 263)), 263)
    assert fr[f"{mem}_low"].iloc[0] == pytest.approx(float(lo))
    assert fr[f"{mem}_high"].iloc[0] == pytest.approx(float(hi))
    assert fraction_column("off-data") == "off_data_fraction" and "off_data_fraction" in fr
    with pytest.raises(ValueError, match="no rows of model 'exact'"):
        median_fractions(_summary(rows), "exact")


def _grid(mem, spur, gen, ks=(2, 4, 8, 16, 32), n=1000):
    rows = [(k, 0, {"memorized": m, "spurious": s, "generalized": g})
            for k, m, s, g in zip(ks, mem, spur, gen, strict=True)]  # fmt: skip
    return median_fractions(_summary(rows, n=n), "trained")


def test_transition_on_a_textbook_curve():
    t = transition(_grid(mem=(1.0, 0.95, 0.5, 0.1, 0.0), spur=(0, 0.05, 0.4, 0.2, 0),
                         gen=(0, 0, 0.1, 0.7, 1.0)))  # fmt: skip
    assert t.k_a == GridInterval(4, 8) and str(t.k_a) == "(4, 8]"  # last ≥ 90 %: 4
    assert t.k_s == 8 and t.k_s_interval == GridInterval(8, 8) and t.spurious_peak == 0.4
    assert t.k_s_text() == "8 [8, 8]"
    assert t.k_b == GridInterval(8, 16) and t.ordered
    row = t.row()
    assert row["K_A"] == "(4, 8]" and row["K_B_high"] == 16 and row["ordered"] is True


def test_censored_values_are_bounds():
    always = transition(_grid(mem=(1,) * 5, spur=(0,) * 5, gen=(0,) * 5))
    assert str(always.k_a) == "> 32" and math.isinf(always.k_a.high)
    assert str(always.k_b) == "> 32" and math.isnan(always.k_s)
    assert always.k_s_text().startswith("none") and not always.ordered
    assert always.row()["ordered"] is None  # nothing to order without a spurious peak
    never = transition(_grid(mem=(0.5, 0.1, 0, 0, 0), spur=(0,) * 5, gen=(0.5, 0.9, 1, 1, 1)))
    assert str(never.k_a) == "≤ 2" and never.k_a.low == 0 and str(never.k_b) == "≤ 2"


def test_spurious_interval_holds_every_k_whose_wilson_interval_reaches_the_peak():
    # n = 100: 0.30 and 0.31 cannot be told apart, 0.05 can
    fr = _grid(mem=(0.7, 0.69, 0.95, 0.0, 0.0), spur=(0.30, 0.31, 0.05, 0.0, 0.0),
               gen=(0, 0, 0, 1, 1), n=100)  # fmt: skip
    t = transition(fr)
    assert t.k_s == 4 and t.k_s_interval == GridInterval(0, 4)
    assert t.k_s_text().startswith("≤ 4") and t.resolved
    flat = transition(_grid(mem=(1, 0.97, 0.5, 0, 0), spur=(0.0, 0.01, 0.0, 0.0, 0.0),
                            gen=(0, 0.02, 0.5, 1, 1), n=100))  # fmt: skip
    # a peak of 1 in 100 is compatible with every K: an ordering that was not measured
    assert flat.k_s_text().startswith("unresolved") and not flat.resolved and not flat.ordered
    top = transition(_grid(mem=(1, 1, 1, 0.5, 0), spur=(0, 0, 0, 0, 0.6), gen=(0, 0, 0, 0.5, 0.4)))
    assert top.k_s == 32 and math.isinf(top.k_s_interval.high) and top.k_s_text().startswith("≥ 32")
    # K_S above K_B: Pham et al.'s ordering fails
    assert top.k_b == GridInterval(8, 16) and not top.ordered


# ----------------------------------------------------------------------------- twins
def _welch_p(a, b):
    from scipy.stats import t as student

    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    stat = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(student.sf(stat, dof))


def test_one_sided_p_is_welchs_test():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 1.0, 40), rng.normal(0.0, 2.0, 25)
    assert one_sided_p(a, b) == pytest.approx(_welch_p(a, b), rel=1e-10)
    assert one_sided_p(b, a) == pytest.approx(1 - _welch_p(a, b), rel=1e-10)
    assert math.isnan(one_sided_p([1.0], [0.0, 1.0]))


def test_twin_similarity_and_its_reference_level():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    sim = twin_similarity(x, x.clone(), torch.zeros(2))
    assert sim["twin_cosine"].tolist() == pytest.approx([1.0] * 4) and sim["twin_l2"].max() == 0
    # sample i against sample i + 1 (cyclic): quarter turns, cosine 0, distance √2
    assert sim["reference_cosine"].tolist() == pytest.approx([0.0] * 4, abs=1e-7)
    assert sim["reference_l2"].tolist() == pytest.approx([math.sqrt(2)] * 4)
    shifted = twin_similarity(x + 5, x + 5, torch.full((2,), 5.0))  # about the data mean
    assert shifted["reference_cosine"].tolist() == pytest.approx([0.0] * 4, abs=1e-6)


def test_twin_agreement_per_k_medians_and_p_against_the_reference():
    rng = np.random.default_rng(1)
    rows = []
    for k, mu in ((2, 0.0), (64, 0.9)):
        for seed in range(3):
            rows.append(pd.DataFrame({"model": "trained", "K": k, "seed": seed,
                                      "twin_cosine": rng.normal(mu + 0.01 * seed, 0.05, 50),
                                      "reference_cosine": rng.normal(0.0, 0.05, 50)}))  # fmt: skip
    agree = twin_agreement(pd.concat(rows))
    assert agree["K"].tolist() == [2, 64]
    assert agree["twin_cosine"].iloc[1] == pytest.approx(0.91, abs=0.02)
    assert agree["twin_cosine_min"].iloc[1] < agree["twin_cosine_max"].iloc[1]
    assert agree["p_above_reference"].iloc[1] < 1e-10 < agree["p_above_reference"].iloc[0]
    # the reference band: the range over seeds of each seed's mean, computed here by hand
    for j in range(2):  # K = 2, 64
        means = [rows[3 * j + s]["reference_cosine"].mean() for s in range(3)]
        assert agree["reference_cosine_min"].iloc[j] == pytest.approx(min(means), abs=1e-12)
        assert agree["reference_cosine_max"].iloc[j] == pytest.approx(max(means), abs=1e-12)
        assert agree["reference_cosine"].iloc[j] == pytest.approx(sorted(means)[1], abs=1e-12)


# -------------------------------------------------------------- the off-data threshold
def test_expected_off_data_fraction_matches_order_statistics_by_simulation():
    g = torch.Generator().manual_seed(0)
    for h, q in ((50, 0.99), (224, 0.99), (20, 0.9)):
        ref = torch.rand(20000, h, generator=g, dtype=torch.float64)
        # uniform reference: a fresh draw exceeds threshold t with probability 1 − t
        exceed = 1 - torch.quantile(ref, q, dim=1)
        se = float(exceed.std()) / math.sqrt(len(exceed))
        assert float(exceed.mean()) == pytest.approx(expected_off_data_fraction(h, q), abs=4 * se)
    assert expected_off_data_fraction(224, 0.99) == pytest.approx(0.01436, abs=1e-5)


def test_off_data_floor_is_the_chi_quantile():
    # d = 2: Rayleigh, σ√(−2 ln(1 − q))
    assert off_data_floor(0.02, 0.99, 2) == pytest.approx(0.02 * math.sqrt(-2 * math.log(0.01)))
    assert off_data_floor(0.0, 0.99, 5) == 0.0
    g = torch.Generator().manual_seed(3)
    norms = torch.randn(200_000, 5, generator=g, dtype=torch.float64).norm(dim=1)
    assert float((norms <= off_data_floor(1.0, 0.9, 5)).double().mean()) == pytest.approx(
        0.9, abs=0.003
    )
    with pytest.raises(ValueError, match="quantile"):
        off_data_floor(0.1, 1.0, 2)


def test_resolution_floor_on_the_lattice():
    xs = torch.arange(5, dtype=torch.float64)
    train = torch.cartesian_prod(xs, xs)  # leave-one-out threshold 1
    gen = torch.tensor([[-1.5, 0.0], [-1.6, 4.0], [-0.9, 2.0]], dtype=torch.float64)
    plain = classify_samples(gen, train)
    assert plain.names == ["off-data", "off-data", "generalized"] and plain.off_data_floor == 0
    res = classify_samples(gen, train, resolution=0.5)  # floor 0.5·√(−2 ln 0.01) = 1.517
    assert res.off_data_floor == pytest.approx(0.5 * math.sqrt(-2 * math.log(0.01)))
    assert res.off_data_threshold == pytest.approx(res.off_data_floor)
    assert res.names == ["generalized", "off-data", "generalized"]
    with pytest.raises(ValueError, match="resolution"):
        classify_samples(gen, train, resolution=-0.1)
    with pytest.raises(ValueError, match="off_data_quantile < 1"):
        classify_samples(gen, train, resolution=0.1, off_data_quantile=1.0)


def test_a_model_precise_to_its_resolution_is_not_off_data_at_large_k():
    """The cause of "55 % off-data at K = 1024": the held-out d₁ on a curve shrink like 1/K.

    Samples on the unit circle with radial error N(0, 0.015²) (a trained MLP's, measured)
    against K = 1024 training points: the held-out 0.99 quantile (≈ 4.6·π/K = 0.014) is
    below the radial error of half the samples; the floor at σ = 0.02 (0.061) is above
    nearly all of it (P(|ε| > 0.061) ≈ 5·10⁻⁵).
    """
    pool = ms.datasets.load("circle", size=4096, data_seed=0)
    train, held = pool.subset(1024, seed=0).x, pool.subset(1024, seed=0, start=3072).x
    g = torch.Generator().manual_seed(0)
    theta = 2 * math.pi * torch.rand(512, generator=g)
    r = 1 + 0.015 * torch.randn(512, generator=g)
    gen = torch.stack([r * theta.cos(), r * theta.sin()], 1)
    plain = classify_samples(gen, train, held_out=held)
    assert plain.off_data_threshold == pytest.approx(4.6 * math.pi / 1024, rel=0.3)
    assert plain.fractions()["off-data"] > 0.3
    floored = classify_samples(gen, train, held_out=held, resolution=0.02)
    assert floored.fractions()["off-data"] <= 0.01
    assert floored.fractions()["generalized"] >= 0.95
