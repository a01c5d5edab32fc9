"""Associative-memory gallery experiments: hopfield-capacity, dense-capacity, modern-hopfield.

Fast tests check the science helpers against closed forms and brute force; the slow
tests run each experiment's quick mode and compare its written tables with theory.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from memscape import ModernHopfield
from memscape.experiments import run_experiment
from memscape.experiments.recipes.dense_capacity import (
    fixed_fraction,
    predicted_capacity,
)
from memscape.experiments.recipes.hopfield_capacity import crossing, half_fixed_load
from memscape.experiments.recipes.modern_hopfield import equiseparated_memories, gaussian_data
from memscape.experiments.registry import EXPERIMENTS, build_config
from memscape.theory import (
    ags_overlap,
    critical_beta,
    dense_bit_error,
    exponential_capacity,
    fixed_point_probability,
)


# ----------------------------------------------------------------------------- fast
@pytest.mark.parametrize("n", [100, 500, 2000, 4000])
def test_half_fixed_load_solves_the_signal_to_noise_estimate_in_closed_form(n):
    # exp(−N Φ(−1/√α)) = ½  ⇔  α = 1 / Φ⁻¹(ln 2 / N)²
    expected = 1.0 / special.ndtri(math.log(2) / n) ** 2
    assert half_fixed_load(n) == pytest.approx(expected, rel=1e-9)
    assert fixed_point_probability(n, half_fixed_load(n)).probability == pytest.approx(0.5)


def test_crossing_interpolates_linearly_and_reports_nan_when_never_below():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert crossing(x, np.array([1.0, 0.8, 0.2, 0.0]), 0.5) == pytest.approx(1.5)
    assert math.isnan(crossing(x, np.array([1.0, 0.9, 0.8, 0.7]), 0.5))


@pytest.mark.parametrize(
    ("N", "n", "f"), [(64, 2, 0.5), (200, 2, 0.9), (32, 3, 0.5), (24, 4, 0.99)]
)
def test_predicted_capacity_matches_the_closed_form_inversion(N, n, f):
    # N·Φ(−z) = −ln f with z² = N^(n−1)/((2n−3)!! K)  ⇒  K = N^(n−1)/((2n−3)!! z²)
    z = -special.ndtri(-math.log(f) / N)
    expected = N ** (n - 1) / (special.factorial2(2 * n - 3) * z**2)
    k = predicted_capacity(N, n, f)
    assert k == pytest.approx(expected, rel=1e-8)
    assert math.exp(-N * dense_bit_error(N, n, k)) == pytest.approx(f, rel=1e-8)
    if n == 2:  # the classical estimate: same K from fixed_point_probability
        assert fixed_point_probability(N, k / N).probability == pytest.approx(f, rel=1e-8)


def _brute_force_fixed(patterns: torch.Tensor, n: int) -> torch.Tensor:
    """A pattern is fixed iff flipping any single bit does not lower E = −Σ_μ (ξ_μ·σ)ⁿ."""

    def energy(s):
        return -((patterns @ s) ** n).sum()

    out = []
    for s in patterns:
        e0 = energy(s)
        stable = True
        for i in range(s.numel()):
            t = s.clone()
            t[i] = -t[i]
            stable &= bool(energy(t) >= e0)
        out.append(stable)
    return torch.tensor(out)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_fixed_fraction_agrees_with_brute_force_single_flip_energies(n):
    g = torch.Generator().manual_seed(n)
    patterns = (torch.randint(0, 2, (14, 12), generator=g) * 2 - 1).double()
    truth = _brute_force_fixed(patterns, n).double().mean().item()
    assert 0.0 < truth < 1.0  # the test must be able to fail in both directions
    keep = patterns.clone()
    assert fixed_fraction(patterns, n, g) == pytest.approx(truth)
    assert torch.equal(patterns, keep)


@pytest.mark.parametrize("delta", [0.2, 0.5, 1.0])
def test_equiseparated_memories_one_step_error_has_the_closed_form(delta):
    k, d = 8, 12
    x = equiseparated_memories(k, d, delta)
    assert torch.allclose(x.norm(dim=1), torch.ones(k, dtype=x.dtype))
    gram = x @ x.T
    off = gram[~torch.eye(k, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, 1 - delta))
    for beta in (0.5, 3.0, 12.0):
        net = ModernHopfield(x, beta=beta)
        assert torch.allclose(net.separation(), torch.full((k,), delta, dtype=x.dtype))
        err = (net.update(x) - x).norm(dim=1)
        # p_j = e^{−βΔ}/(1 + (K−1)e^{−βΔ}) for j ≠ i and ‖Σ_{j≠i}(x_j − x_i)‖² = K(K−1)Δ
        q = math.exp(-beta * delta)
        exact = q * math.sqrt(k * (k - 1) * delta) / (1 + (k - 1) * q)
        assert torch.allclose(err, torch.full_like(err, exact), rtol=1e-9, atol=1e-15)
        assert bool((net.retrieval_error_bound(x, torch.arange(k)) >= err).all())


def test_gaussian_data_is_centred_and_has_the_critical_beta_of_its_covariance():
    x = gaussian_data(3, 24)
    assert x.shape == (24, 2)
    assert torch.allclose(x.mean(0), torch.zeros(2, dtype=x.dtype), atol=1e-12)
    lam = torch.linalg.eigvalsh(x.T @ x / 24)[-1]
    assert critical_beta(x) == pytest.approx(1 / float(lam))


@pytest.mark.parametrize(
    ("name", "bad", "match"),
    [
        ("hopfield-capacity", {"rules": ("hebbian", "oja")}, "rules"),
        ("hopfield-capacity", {"fixed_alphas": ()}, "fixed_alphas"),
        ("dense-capacity", {"fraction": 1.5}, "fraction"),
        ("dense-capacity", {"min_patterns": 50, "max_patterns": 10}, "min_patterns"),
        ("modern-hopfield", {"separations": (0.5, 2.0)}, "separations"),
        ("modern-hopfield", {"memories": 16, "dim": 8}, "dim"),
    ],
)
def test_configs_reject_bad_options_naming_them(name, bad, match):
    with pytest.raises(ValueError, match=match):
        build_config(EXPERIMENTS[name], overrides=bad)


def test_equiseparated_memories_validates_its_arguments():
    with pytest.raises(ValueError, match="d"):
        equiseparated_memories(8, 8, 0.5)
    with pytest.raises(ValueError, match="delta"):
        equiseparated_memories(4, 8, 1.5)


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_hopfield_capacity_quick_run_matches_ags_and_the_fixed_point_estimate(tmp_path):
    folder = run_experiment("hopfield-capacity", out=tmp_path / "hc", quick=True, progress=False)
    summary = folder.read_table("summary")
    heb = summary[
        (summary["rule"] == "hebbian") & (summary["N"] == 2000) & (summary["alpha"] <= 0.1 + 1e-12)
    ]
    assert len(heb) >= 2
    gap = (heb["overlap"] - ags_overlap(heb["alpha"].to_numpy())).abs()
    assert gap.max() <= 0.01  # the tolerance at N = 2000
    above = summary[
        (summary["rule"] == "hebbian") & (summary["N"] == 2000) & (summary["alpha"] >= 0.2)
    ]
    assert (above["overlap"] < 0.9).all()  # retrieval has collapsed above α_c ≈ 0.138
    fixed = (
        folder.read_table("fixed_points").groupby(["N", "alpha"], as_index=False)["fraction"].mean()
    )
    for n, grp in fixed.groupby("N"):
        grp = grp.sort_values("alpha")
        measured = crossing(grp["alpha"].to_numpy(), grp["fraction"].to_numpy(), 0.5)
        assert measured == pytest.approx(half_fixed_load(int(n)), rel=2 / math.sqrt(n))
    rules = summary[summary["N"] == 200].set_index(["rule", "alpha"])["overlap"]
    assert rules[("pseudoinverse", 0.5)] == pytest.approx(1.0)  # capacity α = 1
    assert rules[("hebbian", 0.5)] < 0.8


@pytest.mark.slow
def test_dense_capacity_quick_run_scales_as_n_to_the_n_minus_1(tmp_path):
    folder = run_experiment("dense-capacity", out=tmp_path / "dc", quick=True, progress=False)
    cap = folder.read_table("capacity")
    assert set(cap["n"]) == {2, 3, 4}
    for _, row in cap.iterrows():
        theory = predicted_capacity(int(row["N"]), int(row["n"]), 0.5)
        assert row["K"] == pytest.approx(theory, rel=0.25)
    for n, grp in cap.groupby("n"):
        logn = np.log(grp["N"].to_numpy(float))
        k = grp["K"].to_numpy(float)
        z2 = np.array(
            [
                grp["N"].iloc[i] ** (n - 1)
                / (
                    special.factorial2(2 * n - 3)
                    * predicted_capacity(int(grp["N"].iloc[i]), int(n), 0.5)
                )
                for i in range(len(grp))
            ]
        )
        slope = np.polyfit(logn, np.log(k * z2), 1)[0]
        assert slope == pytest.approx(n - 1, rel=0.1)
    ret = folder.read_table("retrieval")
    exp = ret[ret["interaction"] == "exponential"]
    assert (exp["K"] > exp["N"]).all()
    for _, row in exp.iterrows():
        assert row["K"] <= exponential_capacity(int(row["N"]), 0.1).K
        assert row["retrieved"] >= 0.95
    hebb = ret[(ret["interaction"] == "polynomial") & (ret["n"] == 2)]
    assert (hebb["retrieved"] < 0.1).all()  # K ≥ 2N ≫ N/(2 ln N): the classical net fails


@pytest.mark.slow
def test_modern_hopfield_quick_run_bound_rate_and_critical_beta(tmp_path):
    folder = run_experiment("modern-hopfield", out=tmp_path / "mh", quick=True, progress=False)
    ret = folder.read_table("retrieval")
    assert (ret["error"] <= ret["bound"]).all()
    for delta, grp in ret[ret["radius"] == 0].groupby("delta"):
        fit = grp[grp["beta"] * delta >= 6]
        slope = np.polyfit(fit["beta"], np.log(fit["error"]), 1)[0]
        assert -slope == pytest.approx(delta, rel=0.02)
    beta_c = critical_beta(gaussian_data(0, 24))
    forks = folder.read_table("bifurcations")
    first = forks[forks["kind"] == "pitchfork"]["parameter"].min()
    assert first == pytest.approx(beta_c, rel=0.01)
    scan = folder.read_table("hessian_scan")
    lam, b = scan["lambda_min"].to_numpy(), scan["beta"].to_numpy()
    assert crossing(b, lam, 0.0) == pytest.approx(beta_c, rel=0.01)
    meta = folder.read_table("metastable")
    assert (meta[meta["beta"] < beta_c]["size"] == 24).all()
    assert meta[meta["beta_factor"] == meta["beta_factor"].max()]["size"].mean() < 1.5
