"""Closed forms against published numbers, simulations, quadrature and autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from memscape import theory as T
from memscape.diffusion import EmpiricalDiffusion, get_process
from memscape.memories import ModernHopfield


# --------------------------------------------------------------------- AGS
def test_ags_published_critical_numbers():
    alpha_c, m_c = T.ags_critical_load()
    assert alpha_c == pytest.approx(0.138, abs=0.002)  # Amit, Gutfreund & Sompolinsky 1985
    assert m_c == pytest.approx(0.967, abs=0.005)


def test_ags_overlap_solves_the_original_equations():
    for alpha in (0.01, 0.05, 0.1, 0.13):
        m = T.ags_overlap(alpha)
        # Find r, C self-consistently from the unreduced AGS equations at this m.
        r = 1.0
        for _ in range(200):
            c = math.sqrt(2 / (math.pi * alpha * r)) * math.exp(-(m**2) / (2 * alpha * r))
            r = 1 / (1 - c) ** 2
        assert m == pytest.approx(special.erf(m / math.sqrt(2 * alpha * r)), abs=1e-9)


def test_ags_overlap_limits_and_arrays():
    assert T.ags_overlap(0.05) > 0.9999
    # Small-α asymptote: 1 − m ≈ √(2α/π) e^{−1/(2α)}.
    alpha = 0.02
    assert 1 - T.ags_overlap(alpha) == pytest.approx(
        math.sqrt(2 * alpha / math.pi) * math.exp(-1 / (2 * alpha)), rel=0.05
    )
    m = T.ags_overlap(np.array([0.05, 0.1, 0.137, 0.2]))
    assert m.shape == (4,) and np.all(np.diff(m[:3]) < 0) and m[3] == 0.0
    assert m[2] > 0.96  # the overlap jumps from ≈ 0.967 to 0 at α_c
    with pytest.raises(ValueError, match="alpha"):
        T.ags_overlap(0.0)
    with pytest.raises(ValueError, match="alpha"):
        T.ags_overlap([0.1, math.nan])


# --------------------------------------------------------------------- fixed points
def _hebbian_bit_error(n, k, trials, gen):
    errs = 0
    for _ in range(trials):
        xi = torch.randint(0, 2, (k, n), generator=gen, dtype=torch.float64) * 2 - 1
        w = xi.T @ xi / n
        w.fill_diagonal_(0)
        errs += int(((xi @ w) * xi <= 0).sum())
    return errs / (trials * k * n)


def test_fixed_point_bit_error_matches_hebbian_simulation():
    gen = torch.Generator().manual_seed(0)
    n, alpha = 400, 0.25
    measured = _hebbian_bit_error(n, int(alpha * n), 4, gen)
    fp = T.fixed_point_probability(n, alpha)
    assert fp.bit_error == pytest.approx(special.ndtr(-1 / math.sqrt(alpha)))
    assert measured == pytest.approx(fp.bit_error, rel=0.15)
    assert fp.probability == pytest.approx(math.exp(-n * fp.bit_error))


def test_fixed_point_bad_inputs():
    with pytest.raises(TypeError, match="N"):
        T.fixed_point_probability(10.5, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        T.fixed_point_probability(10, -0.1)


# --------------------------------------------------------------------- dense AM
def test_dense_reduces_to_classical_for_n2():
    n_neurons = 1000
    assert T.dense_bit_error(n_neurons, 2, 100) == pytest.approx(
        T.fixed_point_probability(n_neurons, 0.1).bit_error
    )
    assert T.dense_capacity(n_neurons, 2) == pytest.approx(n_neurons / (2 * math.log(n_neurons)))
    # (2n−3)!! = 3 for n = 3, 105 for n = 5 (Krotov & Hopfield 2016).
    assert T.dense_capacity(100, 3) == pytest.approx(100**2 / (6 * math.log(100)))
    assert T.dense_capacity(100, 5) == pytest.approx(100**4 / (210 * math.log(100)))


def test_dense_capacity_inverts_bit_error():
    for n in (2, 3, 4):
        k = T.dense_capacity(200, n, error=0.01)
        assert T.dense_bit_error(200, n, k) == pytest.approx(0.01, rel=1e-9)


@pytest.mark.parametrize(
    ("N", "n", "f"), [(64, 2, 0.5), (200, 2, 0.9), (32, 3, 0.5), (24, 4, 0.99), (512, 3, 0.1)]
)
def test_dense_capacity_at_a_fixed_fraction_matches_a_root_solve(N, n, f):
    # "a fraction f of the patterns are fixed points": exp(−N·P_bit(K)) = f, i.e. the
    # per-bit error −ln f / N; the closed form against a root solve of the estimate in K.
    from scipy import optimize

    log_k = optimize.brentq(
        lambda lk: N * T.dense_bit_error(N, n, math.exp(lk)) + math.log(f), -20, 200, xtol=1e-13
    )
    k = T.dense_capacity(N, n, error=-math.log(f) / N)
    assert k == pytest.approx(math.exp(log_k), rel=1e-8)
    # N·Φ(−z) = −ln f with z² = N^(n−1)/((2n−3)!! K)  ⇒  K = N^(n−1)/((2n−3)!! z²)
    z = -special.ndtri(-math.log(f) / N)
    assert k == pytest.approx(N ** (n - 1) / (special.factorial2(2 * n - 3) * z**2), rel=1e-8)
    assert math.exp(-N * T.dense_bit_error(N, n, k)) == pytest.approx(f, rel=1e-8)
    if n == 2:  # the classical estimate: same K from fixed_point_probability
        assert T.fixed_point_probability(N, k / N).probability == pytest.approx(f, rel=1e-8)


@pytest.mark.parametrize("n", [100, 500, 2000, 4000])
def test_half_fixed_load_is_the_n2_dense_capacity_at_bit_error_ln2_over_n(n):
    # exp(−N Φ(−1/√α)) = ½  ⇔  α = 1 / Φ⁻¹(ln 2 / N)²; root solve of the estimate in α
    from scipy import optimize

    half = T.dense_capacity(n, 2, error=math.log(2) / n) / n
    root = optimize.brentq(
        lambda a: T.fixed_point_probability(n, a).probability - 0.5, 1e-3, 1.0, xtol=1e-14
    )
    assert half == pytest.approx(root, rel=1e-9)
    assert half == pytest.approx(1.0 / special.ndtri(math.log(2) / n) ** 2, rel=1e-9)
    assert T.fixed_point_probability(n, half).probability == pytest.approx(0.5)


def test_dense_bit_error_matches_simulation_n3():
    # Flip each bit of stored patterns of E = −Σ_μ (ξ_μ·σ)³ and count energy decreases.
    gen = torch.Generator().manual_seed(1)
    n_neurons, n = 100, 3
    k = round(T.dense_capacity(n_neurons, n, error=0.05))
    xi = torch.randint(0, 2, (k, n_neurons), generator=gen, dtype=torch.float64) * 2 - 1
    targets = xi[:40]
    overlaps = targets @ xi.T  # (T, K): x_μ for each target pattern
    # Flipping bit i of target t changes x_μ by −2 ξ_μi t_i.
    shift = -2 * targets[:, None, :] * xi[None, :, :]  # (T, K, N)
    delta_e = -((overlaps[:, :, None] + shift) ** n - overlaps[:, :, None] ** n).sum(1)
    measured = float((delta_e <= 0).double().mean())
    assert measured == pytest.approx(0.05, rel=0.3)


def test_exponential_capacity():
    cap = T.exponential_capacity(20)
    assert cap.alpha == pytest.approx(math.log(2) / 2)  # Demircigil et al. 2017, ρ = 0
    assert cap.log_K == pytest.approx(20 * math.log(2) / 2) and cap.K == pytest.approx(2.0**10)
    rho = 0.1
    x = 1 - 2 * rho
    expected = 0.25 * ((1 + x) * math.log(1 + x) + (1 - x) * math.log(1 - x))
    assert T.exponential_capacity(10, rho).alpha == pytest.approx(expected)
    assert T.exponential_capacity(5000).K == math.inf
    with pytest.raises(ValueError, match="rho"):
        T.exponential_capacity(10, 0.5)


def test_dense_bad_inputs():
    with pytest.raises(ValueError, match="n must be >= 2"):
        T.dense_capacity(100, 1)
    with pytest.raises(ValueError, match="error"):
        T.dense_capacity(100, 3, error=0.5)
    with pytest.raises(ValueError, match="K"):
        T.dense_bit_error(100, 3, 0)


# --------------------------------------------------------------------- modern Hopfield
def test_retrieval_bound_holds_and_model_uses_it():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(10, 64, generator=gen, dtype=torch.float64)
    model = ModernHopfield(x, beta=0.5)
    xi = x[3:4] + 0.05 * torch.randn(1, 64, generator=gen, dtype=torch.float64)
    bound = model.retrieval_error_bound(xi, 3)
    big_m = float(x.norm(dim=1).max())
    delta = float(model.separation()[3])
    dist = float((xi - x[3]).norm())
    assert float(bound) == pytest.approx(T.hopfield_retrieval_bound(0.5, delta, 10, big_m, dist))
    actual = float((model.update(xi) - x[3]).norm())
    assert bound.item() < 1e-2  # the bound is informative here …
    assert actual <= bound.item()  # … and holds (Ramsauer et al. Theorem 5)


def test_critical_beta_is_where_the_mean_fixed_point_splits():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1, 1, 0.5])
    x = x - x.mean(0)
    beta_c = T.critical_beta(x)
    origin = torch.zeros(1, 4, dtype=torch.float64)
    for factor, sign in ((0.98, 1), (1.02, -1)):
        model = ModernHopfield(x, beta=factor * beta_c)
        torch.testing.assert_close(model.update(origin), origin)  # 0 is a fixed point
        assert sign * float(torch.linalg.eigvalsh(model.hessian(origin))[0, 0]) > 0
    with pytest.raises(ValueError, match="centred"):
        T.critical_beta(x + 1.0)


# --------------------------------------------------------------------- diffusion times
@pytest.mark.parametrize("process", ["ve", "ou", "vp"])
def test_symmetry_breaking_time_matches_exact_hessian(process):
    a = 1.5
    t_c = T.symmetry_breaking_time(a, process)
    proc = get_process(process)
    model = EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    origin = torch.zeros(1, 1, dtype=torch.float64)
    for dt, sign in ((-0.01, -1), (0.01, 1)):  # after t_c (larger σ) the origin is a minimum
        sigma = float(proc.sigma(t_c + dt))
        assert sign * float(model.hessian(origin, sigma)[0, 0, 0]) > 0
    if process == "ou":
        assert t_c == pytest.approx(0.5 * math.log(1 + a**2))
    if process == "ve":
        assert t_c == a


@pytest.mark.parametrize("process", ["ve", "ou", "vp"])
def test_drift_potential_breaking_time(process):
    # U''(0) = g²·(−log p_t)''(0) + ṡ/s changes sign at t_c (derivatives by autograd).
    a = 1.2
    proc = get_process(process)
    t_c = T.drift_potential_breaking_time(a, process)
    model = EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=torch.float64))
    origin = torch.zeros(1, 1, dtype=torch.float64)

    def u_second(t):
        tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
        s, sig = proc.scale(tt), proc.sigma(tt)
        ds = torch.autograd.grad(s, tt, retain_graph=True)[0] if s.requires_grad else 0.0
        (dsig,) = torch.autograd.grad(sig, tt)
        s, sig = float(s.detach()), float(sig.detach())
        g2 = 2 * s**2 * sig * float(dsig)
        return g2 * float(model.hessian(origin, sig)[0, 0, 0]) / s**2 + float(ds) / s

    assert u_second(t_c - 0.01) < 0 < u_second(t_c + 0.01)
    assert abs(u_second(t_c)) < 1e-6 * abs(u_second(t_c + 0.01)) / 0.01 + 1e-9


def test_speciation_and_collapse():
    a = 3.0
    data = torch.tensor([[a, 0.0], [-a, 0.0]])
    assert T.speciation_time(data) == pytest.approx(0.5 * math.log(a**2))
    assert T.speciation_time(9.0) == pytest.approx(math.log(3.0))
    n, d, var = 1000, 20, 2.0
    t_c = T.collapse_time(n, d, var)
    # Defining condition (e^{−2t}σ² + Δ_t)/Δ_t = n^{2/d}, Δ_t = 1 − e^{−2t}.
    delta = 1 - math.exp(-2 * t_c)
    assert (math.exp(-2 * t_c) * var + delta) / delta == pytest.approx(n ** (2 / d))
    assert T.collapse_time(10 * n, d, var) < t_c  # more data: collapse later in generation
    with pytest.raises(ValueError, match="n must be >= 2"):
        T.collapse_time(1, d)
    with pytest.raises(ValueError, match="data_or_eigenvalue"):
        T.speciation_time(0.0)
    with pytest.raises(ValueError, match="a must be"):
        T.symmetry_breaking_time(-1.0)


# --------------------------------------------------------------------- circle toy
@pytest.mark.parametrize("beta_pham", [0.5, 5.0, 50.0])
def test_circle_energy_matches_quadrature_of_the_mixture(beta_pham):
    # −β_P⁻¹ log ⟨exp(−β_P‖x − y‖²)⟩ over K equally spaced y on the circle (spectrally exact
    # trapezoid rule) through the exact diffusion energy at σ² = 1/(2β_P) (Pham et al.'s β_P).
    k = 4096
    theta = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    model = EmpiricalDiffusion(torch.stack([theta.cos(), theta.sin()], 1))
    radii = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.4], dtype=torch.float64)
    x = torch.stack([radii * math.cos(0.7), radii * math.sin(0.7)], 1)
    sigma = math.sqrt(1 / (2 * beta_pham))
    quad = (model.energy(x, sigma) - math.log(2 * math.pi * sigma**2)) / beta_pham
    np.testing.assert_allclose(
        T.circle_energy(radii.numpy(), sigma=sigma), quad.numpy(), rtol=1e-10
    )


def _ring_energy_by_quad(r: float, sigma: float) -> float:
    """2σ²(−log p_σ) + const at radius r: adaptive quadrature of the ring density over θ."""
    from scipy import integrate

    s2 = sigma**2
    # ‖x − y(θ)‖² = r² + 1 − 2r cos θ; the factor exp(r(cos θ − 1)/σ²) ≤ 1 is integrated
    val, _ = integrate.quad(
        lambda t: math.exp(r * (math.cos(t) - 1) / s2), -math.pi, math.pi,
        points=[0.0], epsabs=0.0, epsrel=1e-13, limit=200,
    )  # fmt: skip
    return r**2 + 1 - 2 * s2 * (r / s2 + math.log(val / (2 * math.pi)))


@pytest.mark.parametrize("sigma", [0.08, 0.3, 0.6, 1.5])
def test_circle_energy_is_the_ring_integral_and_the_pham_formula(sigma):
    radii = np.array([0.0, 0.2, 0.7, 0.95, 1.0, 1.3])
    energy = T.circle_energy(radii, sigma=sigma)
    by_quad = [_ring_energy_by_quad(float(r), sigma) for r in radii]
    np.testing.assert_allclose(energy, by_quad, rtol=1e-11, atol=1e-12)
    # Pham et al.'s form in their β_P = 1/(2σ²), written out with scipy's I₀
    beta_pham = 1 / (2 * sigma**2)
    z = 2 * beta_pham * radii
    if z.max() < 500:  # i0 overflows beyond ~700
        pham = radii**2 + 1 - np.log(special.i0(z)) / beta_pham
        np.testing.assert_allclose(energy, pham, rtol=1e-12, atol=1e-13)
    assert T.circle_energy(0.7, sigma=sigma) == pytest.approx(float(energy[2]), rel=1e-15)


def test_circle_energy_large_beta_does_not_overflow():
    e = T.circle_energy(1.0, sigma=math.sqrt(1 / (2 * 1e4)))  # β_P = 10⁴
    assert math.isfinite(e) and e == pytest.approx(0.0, abs=1e-3)


def test_circle_radius_exact_and_asymptotic():
    for beta_pham in (2.0, 10.0):
        sigma = math.sqrt(1 / (2 * beta_pham))
        r = T.circle_radius(sigma=sigma).exact
        grid = np.linspace(0, 1.2, 240001)
        assert r == pytest.approx(grid[np.argmin(T.circle_energy(grid, sigma=sigma))], abs=1e-5)
    # R = 1 − σ²/2 − 3σ⁴/8 + O(σ⁶) (= 1 − 1/(4β_P) − 3/(32β_P²)): the gap shrinks like σ⁴.
    for sigma in (math.sqrt(1 / 200), math.sqrt(1 / 2000)):
        exact, asym = T.circle_radius(sigma=sigma)
        assert asym == 1 - sigma**2 / 2
        assert (asym - exact) / sigma**4 == pytest.approx(3 / 8, rel=0.05)
    assert T.circle_radius(sigma=0.75).exact == 0.0  # one attractor at the centre for σ² ≥ ½
    assert T.circle_radius(sigma=0.69).exact > 0.0
    with pytest.raises(ValueError, match="sigma"):
        T.circle_radius(sigma=0.0)
    with pytest.raises(ValueError, match="R must be"):
        T.circle_energy(-0.5, sigma=0.5)
    with pytest.raises(TypeError):  # σ by name only: a positional β cannot slip in
        T.circle_radius(2.0)  # type: ignore[misc]


def test_circle_radius_minimizes_the_ring_integral():
    from scipy import optimize

    sigma = 0.4
    res = optimize.minimize_scalar(
        lambda r: _ring_energy_by_quad(r, sigma), bounds=(0.5, 1.0), method="bounded",
        options={"xatol": 1e-10},
    )  # fmt: skip
    assert T.circle_radius(sigma=sigma).exact == pytest.approx(res.x, abs=1e-6)


# --------------------------------------------------------------------- Gaussian data
def _gaussian_problem():
    gen = torch.Generator().manual_seed(4)
    a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(3, dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    return x, mean, cov


def test_gaussian_denoiser_is_tweedie_of_gaussian_energy():
    x, mean, cov = _gaussian_problem()
    sigma = torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(T.gaussian_energy(xg, sigma, mean, cov).sum(), xg)
    tweedie = x - sigma[:, None] ** 2 * grad
    torch.testing.assert_close(T.gaussian_denoiser(x, sigma, mean, cov), tweedie)


def test_gaussian_energy_is_negative_log_density():
    x, mean, cov = _gaussian_problem()
    dist = torch.distributions.MultivariateNormal(mean, cov + 0.49 * torch.eye(3, dtype=x.dtype))
    torch.testing.assert_close(T.gaussian_energy(x, 0.7, mean, cov), -dist.log_prob(x))


def test_gaussian_bad_inputs():
    x, mean, cov = _gaussian_problem()
    with pytest.raises(ValueError, match="mean must be"):
        T.gaussian_denoiser(x, 1.0, mean[:2], cov)
    with pytest.raises(ValueError, match="positive definite"):
        T.gaussian_energy(x, 0.1, mean, -10 * cov)
    with pytest.raises(ValueError, match="sigma"):
        T.gaussian_denoiser(x, 0.0, mean, cov)
