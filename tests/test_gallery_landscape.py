"""Gallery: landscape, symmetry-breaking and morse-smale experiments and their science helpers.

Fast tests check the new science functions against independent formulas (the
x-space Gaussian mixture of the forward process, the SDE coefficients of VE/VP/OU,
the drift-potential closed form); slow tests run each experiment in quick mode and
read its tables.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from memscape import EmpiricalDiffusion, ModernHopfield, theory
from memscape.diffusion.processes import VP, get_process
from memscape.experiments import run_experiment
from memscape.experiments.recipes.landscape import LandscapeConfig, synthetic_points
from memscape.experiments.recipes.morse_smale import MorseSmaleConfig, snapshot_values
from memscape.experiments.recipes.symmetry_breaking import (
    ProcessLandscape,
    SymmetryBreakingConfig,
    process_coefficients,
)
from memscape.protocol import jacobian_of

DATA = torch.tensor([[1.0, 0.2], [-0.8, 0.5], [0.1, -1.1]], dtype=torch.float64)


# ----------------------------------------------------------------------------- fast
@pytest.mark.parametrize("t", [0.05, 0.4, 1.3])
def test_process_coefficients_match_the_sde_closed_forms(t):
    vp = VP()
    beta = vp.beta_min + vp.beta_d * t  # VP: f = −½β(t)x, g² = β(t) (Song et al. 2021)
    for name, rate, g2 in (("vp", -0.5 * beta, beta), ("ou", -1.0, 2.0), ("ve", 0.0, 2 * t)):
        proc = get_process(name)
        s, sig, r, g = process_coefficients(name, t)
        assert s == pytest.approx(float(proc.scale(t)))
        assert sig == pytest.approx(float(proc.sigma(t)))
        assert r == pytest.approx(rate, rel=1e-9, abs=1e-12)
        assert g == pytest.approx(g2, rel=1e-9)


def _mixture_energy(x: torch.Tensor, s: float, sig: float) -> torch.Tensor:
    """−log p_t(x) of (1/K) Σ N(x; s·y_k, s²σ² I), written directly (no σ-space rescaling)."""
    comp = torch.distributions.MultivariateNormal(
        s * DATA, covariance_matrix=(s * sig) ** 2 * torch.eye(2, dtype=torch.float64)
    )
    logp = comp.log_prob(x[:, None, :]).logsumexp(1) - math.log(DATA.shape[0])
    return -logp


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
def test_process_landscape_density_is_the_x_space_mixture(process):
    t = 0.3
    m = ProcessLandscape(EmpiricalDiffusion(DATA), process, t, "density")
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.energy(x), _mixture_energy(x, m.s, m.sigma))
    # closed-form score and Hessian against autograd of the independent formula
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_mixture_energy(xg, m.s, m.sigma).sum(), xg)
    torch.testing.assert_close(m.score(x), -grad)
    hess = -jacobian_of(lambda z: -torch.autograd.grad(
        _mixture_energy(z, m.s, m.sigma).sum(), z, create_graph=True)[0], x)  # fmt: skip
    torch.testing.assert_close(m.hessian(x), hess)


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
def test_drift_potential_gradient_is_the_reverse_sde_drift(process):
    # −∇U must equal −f + g²∇log p_t with f = (ṡ/s)x (independent: autograd of log p_t).
    t = 0.45
    m = ProcessLandscape(EmpiricalDiffusion(DATA), process, t, "drift")
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    xg = x.clone().requires_grad_(True)
    (grad_e,) = torch.autograd.grad(_mixture_energy(xg, m.s, m.sigma).sum(), xg)
    drift = -m.rate * x + m.g2 * (-grad_e)
    torch.testing.assert_close(m.score(x), drift)
    xu = x.clone().requires_grad_(True)
    (grad_u,) = torch.autograd.grad(m.energy(xu).sum(), xu)
    torch.testing.assert_close(-grad_u, drift)
    torch.testing.assert_close(m.hessian(x), -jacobian_of(m.score, x))


@pytest.mark.parametrize("process", ["ve", "vp", "ou"])
@pytest.mark.parametrize("a", [0.5, 2.0])
def test_drift_potential_loses_its_central_minimum_at_the_closed_form_time(process, a):
    model = EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    t_c = theory.drift_potential_breaking_time(a, process)
    origin = torch.zeros(1, 1, dtype=torch.float64)

    def curvature(t: float) -> float:
        return float(ProcessLandscape(model, process, t, "drift").hessian(origin)[0, 0, 0])

    assert curvature(0.97 * t_c) < 0 < curvature(1.03 * t_c)
    # the density breaks at σ = a, the drift potential no later in generation (t_c ≥)
    assert t_c >= theory.symmetry_breaking_time(a, process) * (1 - 1e-12)
    if process != "ve":
        assert t_c > theory.symmetry_breaking_time(a, process)


def test_process_landscape_rejects_bad_input():
    with pytest.raises(TypeError, match="noise-conditioned"):
        ProcessLandscape(ModernHopfield(DATA), "ve", 0.5)
    with pytest.raises(ValueError, match="kind"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "ve", 0.5, "force")
    with pytest.raises(ValueError, match="process"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "cosine", 0.5)
    with pytest.raises(ValueError, match="t must be"):
        ProcessLandscape(EmpiricalDiffusion(DATA), "vp", -0.1)


def test_synthetic_points():
    tri = synthetic_points("triangle")
    assert tri.shape == (3, 2) and tri.dtype == torch.float64
    torch.testing.assert_close(tri.norm(dim=1), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(tri.mean(0), torch.zeros(2, dtype=torch.float64))
    assert torch.cdist(tri, tri).fill_diagonal_(0).max() == pytest.approx(math.sqrt(3))
    circ = synthetic_points("circle", 6)
    torch.testing.assert_close(circ.norm(dim=1), torch.ones(6, dtype=torch.float64))
    assert synthetic_points("grid", 9).shape == (9, 2)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(
        synthetic_points("mixture", 8, generator=g1), synthetic_points("mixture", 8, generator=g2)
    )
    with pytest.raises(ValueError, match="data"):
        synthetic_points("spiral", 4)


def test_snapshot_values_lie_between_consecutive_events():
    v = snapshot_values(2.0, 0.1, [0.5, 1.0, 5.0], log=True)  # 5.0 is outside the range
    assert v == pytest.approx([math.sqrt(2.0), math.sqrt(0.5), math.sqrt(0.05)])
    assert snapshot_values(0.0, 1.0, [], log=False) == [0.5]


def test_configs_name_the_bad_option():
    with pytest.raises(ValueError, match="model"):
        LandscapeConfig(model="hopfield").validate()
    with pytest.raises(ValueError, match="sigma"):
        LandscapeConfig(sigma=0.0).validate()
    with pytest.raises(ValueError, match="processes"):
        SymmetryBreakingConfig(processes=("edm2",)).validate()
    with pytest.raises(ValueError, match="sigma_max"):
        SymmetryBreakingConfig(sigma_min=1.0, sigma_max=0.5).validate()
    with pytest.raises(ValueError, match="height"):
        MorseSmaleConfig(height_start=1.0, height_stop=1.0).validate()


# ----------------------------------------------------------------------------- slow
def _euler(points: pd.DataFrame) -> int:
    idx = points.loc[points["converged"], "morse_index"]
    return int(((-1) ** idx).sum())


@pytest.mark.slow
def test_symmetry_breaking_quick_matches_closed_forms(tmp_path):
    folder = run_experiment("symmetry-breaking", tmp_path / "sb", quick=True, progress=False)
    crit = folder.read_table("critical_times")
    assert len(crit) == 6  # a = 1 × {ve, vp, ou} × {density, drift}
    for r in crit.itertuples():
        theory_fn = (theory.symmetry_breaking_time if r.object == "density"
                     else theory.drift_potential_breaking_time)  # fmt: skip
        assert r.t_c == pytest.approx(theory_fn(r.a, r.process), rel=0.01)  # t_c within 1 %
        assert r.kind == "pitchfork"
        if r.object == "density":
            assert r.sigma_c == pytest.approx(r.a, rel=0.01)  # σ_c within 1 %
    dens = crit[crit.object == "density"].set_index("process")["t_c"]
    drift = crit[crit.object == "drift"].set_index("process")["t_c"]
    assert drift["vp"] > 1.05 * dens["vp"] and drift["ou"] > 1.05 * dens["ou"]
    # triangle diagram: the centred data's mean changes index at σ² = λ_max(Cov) = 1/2
    bif = folder.read_table("diagram_bifurcations")
    at_mean = bif[(bif["x0"].abs() < 1e-6) & (bif["x1"].abs() < 1e-6)]
    assert at_mean["parameter"].max() == pytest.approx(math.sqrt(0.5), rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize(("options", "n_minima"), [
    ({}, 3), ({"model": "modern", "data": "circle", "k": 5}, 5),
])  # fmt: skip
def test_landscape_quick_census_basins_and_graph(tmp_path, options, n_minima):
    folder = run_experiment("landscape", tmp_path / "ls", quick=True, progress=False, **options)
    pts = folder.read_table("critical_points")
    assert _euler(pts) == 1
    conv = pts[pts["converged"]]
    assert int((conv["morse_index"] == 0).sum()) == n_minima
    basins = folder.read_table("basins")
    assert basins["fraction"].sum() == pytest.approx(1.0)
    mins = basins[basins["point"] >= 0]  # every minimum attracts a share inside its interval
    assert len(mins) == n_minima and (mins["fraction"] > 0.05).all()
    assert (mins["ci_low"] <= mins["fraction"]).all()
    assert (mins["fraction"] <= mins["ci_high"]).all()
    edges = folder.read_table("edges")
    minima = set(conv.loc[conv["morse_index"] == 0, "point"].astype(str))
    for _, e in edges.groupby("saddle"):  # each saddle joins two different minima
        assert len(e) == 2 and set(e["end"]) <= minima and e["end"].nunique() == 2


@pytest.mark.slow
def test_morse_smale_quick_events_and_censuses(tmp_path):
    folder = run_experiment("morse-smale", tmp_path / "ms", quick=True, progress=False)
    snaps = folder.read_table("snapshots")
    census = folder.read_table("census")
    for (system, snap), pts in census.groupby(["system", "snapshot"]):
        assert _euler(pts) == 1, (system, snap)
    bif = folder.read_table("bifurcations")
    for system in ("exact", "hopfield"):
        s = snaps[snaps["system"] == system].sort_values("snapshot")
        events = int(bif[bif["system"] == system]["kind"].isin(["fold", "pitchfork"]).sum())
        assert events == int(s["n_points"].diff().abs().sum()) // 2
        assert events >= 1
    exact = snaps[snaps["system"] == "exact"]
    assert int(exact.loc[exact["value"].idxmin(), "n_minima"]) == 4  # one per centroid
    assert int(exact.loc[exact["value"].idxmax(), "n_points"]) == 1  # one attractor at large σ
