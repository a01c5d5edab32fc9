"""Closed-form predictions that experiments compare against.

Each function implements one published result, named in its docstring with the
equation. Capacity laws (Amit–Gutfreund–Sompolinsky 1985, Krotov & Hopfield
2016, Demircigil et al. 2017), the modern Hopfield retrieval bound (Ramsauer et
al. 2020), critical noise levels and times of diffusion (symmetry breaking,
Biroli et al. 2024), the large-K circle toy of Pham et al. 2025, and the exact
denoiser of Gaussian data.

Scalars in, floats out (numpy arrays broadcast where noted); the Gaussian
formulas and :func:`hopfield_retrieval_bound` also take tensors.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import optimize, special

from memscape._validation import as_sigma, check_int, check_positive, check_tensor
from memscape.diffusion.processes import NoiseProcess, get_process

__all__ = [
    "CircleRadius",
    "CriticalLoad",
    "ExponentialCapacity",
    "FixedPointProbability",
    "ags_critical_load",
    "ags_overlap",
    "circle_energy",
    "circle_radius",
    "clone_probability",
    "clone_probability_at_speciation",
    "clone_probability_crossing",
    "collapse_time",
    "critical_beta",
    "dense_bit_error",
    "dense_capacity",
    "drift_potential_breaking_time",
    "exponential_capacity",
    "fixed_point_probability",
    "gaussian_denoiser",
    "gaussian_energy",
    "hopfield_retrieval_bound",
    "speciation_time",
    "symmetry_breaking_time",
]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


# --------------------------------------------------------------------- classical Hopfield
def _ags_g(y: float) -> float:
    """``√(2α)`` as a function of ``y = m/√(2αr)`` on the AGS solution manifold."""
    return special.erf(y) / y - _TWO_OVER_SQRT_PI * math.exp(-(y**2))


class CriticalLoad(NamedTuple):
    """Result of :func:`ags_critical_load`."""

    alpha_c: float  #: critical load K/N
    m_c: float  #: retrieval overlap at α_c


def ags_critical_load() -> CriticalLoad:
    """Critical load α_c ≈ 0.138 and overlap m(α_c) ≈ 0.967 of the Hopfield model.

    Amit, Gutfreund & Sompolinsky 1985 (Phys. Rev. Lett. 55, 1530; Ann. Phys.
    173, 30 (1987); Hertz, Krogh & Palmer 1991 §2.5), replica-symmetric saddle
    point at T = 0::

        m = erf(m / √(2αr)),   C = √(2/(παr)) exp(−m²/(2αr)),   r = 1/(1 − C)².

    With ``y = m/√(2αr)`` they reduce to ``m = erf(y)`` and
    ``√(2α) = g(y) = erf(y)/y − (2/√π) e^{−y²}``; retrieval solutions exist while
    ``α ≤ α_c = max_y g(y)²/2``.
    """
    y_star = _ags_peak()
    return CriticalLoad(float(_ags_g(y_star) ** 2 / 2), float(special.erf(y_star)))


def _ags_peak() -> float:
    """The y maximizing g(y): the retrieval branch is y ≥ y*, and y* gives α_c."""
    res = optimize.minimize_scalar(
        lambda y: -_ags_g(y), bounds=(0.5, 4.0), method="bounded", options={"xatol": 1e-12}
    )
    return float(res.x)


def ags_overlap(alpha: Any) -> Any:
    """Retrieval overlap m(α) of the Hopfield model at T = 0 (Amit, Gutfreund & Sompolinsky 1985).

    Solves the replica-symmetric equations of :func:`ags_critical_load` on the
    retrieval branch (the largest ``y`` with ``g(y) = √(2α)``, continuous with
    m → 1 as α → 0; ``1 − m ≈ √(2α/π) e^{−1/(2α)}``). Above α_c only the
    non-retrieval solution m = 0 remains, and 0 is returned.

    Args:
        alpha: load K/N > 0, a float or array.

    Returns:
        m(α), a float (or array of the shape of ``alpha``).
    """
    a = np.asarray(alpha, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha!r}")
    y_star = _ags_peak()
    alpha_c = _ags_g(y_star) ** 2 / 2

    def solve(al: float) -> float:
        if al > alpha_c:
            return 0.0
        target = math.sqrt(2 * al)
        hi = max(1.0 / target, y_star) + 1.0  # g(y) < 1/y, so g(hi) < target
        y = optimize.brentq(lambda y: _ags_g(y) - target, y_star, hi, xtol=1e-14)
        return float(special.erf(y))

    out = np.vectorize(solve, otypes=[float])(a)
    return float(out) if out.ndim == 0 else out


class FixedPointProbability(NamedTuple):
    """Result of :func:`fixed_point_probability`."""

    probability: float  #: P(a stored pattern is an exact fixed point) ≈ exp(−N·bit_error)
    bit_error: float  #: P(one bit of a stored pattern is unstable) = Φ(−1/√α)


def fixed_point_probability(N: int, alpha: float) -> FixedPointProbability:
    """Probability that a stored pattern is an exact fixed point of the Hebbian Hopfield net.

    Signal-to-noise estimate (Hertz, Krogh & Palmer 1991, §2.2; McEliece et al.
    1987): with ``K = αN`` random ±1 patterns the crosstalk on one bit is
    approximately ``N(0, α)`` against a signal of 1, so a bit flips with
    probability ``Φ(−1/√α)``; treating the N bits as independent, the pattern is a
    fixed point with probability ``(1 − Φ(−1/√α))^N ≈ exp(−N Φ(−1/√α))``.
    """
    check_int(N, "N")
    check_positive(alpha, "alpha")
    p = float(special.ndtr(-1.0 / math.sqrt(alpha)))
    return FixedPointProbability(math.exp(-N * p), p)


# --------------------------------------------------------------------- dense memories
def _dense_moment(n: int) -> float:
    return float(special.factorial2(2 * n - 3, exact=True))


def dense_bit_error(N: int, n: int, K: float) -> float:
    """Per-bit error probability of a dense AM with ``F(x) = xⁿ`` storing K random patterns.

    Krotov & Hopfield 2016 ("Dense associative memory for pattern recognition",
    §2): flipping bit i of a stored pattern changes the energy by a signal
    ``2n N^(n−1)`` plus crosstalk of variance ``4n² (2n−3)!! K N^(n−1)``, so the bit
    is unstable with probability ``Φ(−√(N^(n−1) / ((2n−3)!! K)))``. For n = 2 this
    is the classical ``Φ(−1/√α)``.
    """
    check_int(N, "N", minimum=2)
    check_int(n, "n", minimum=2)
    check_positive(K, "K")
    return float(special.ndtr(-math.sqrt(N ** (n - 1) / (_dense_moment(n) * K))))


def dense_capacity(N: int, n: int, error: float | None = None) -> float:
    """Capacity K_max of the dense associative memory ``E = −Σ_μ (ξ_μ·σ)ⁿ``.

    Krotov & Hopfield 2016, §2: with ``error=None`` the no-error capacity::

        K_max = N^(n−1) / (2 (2n−3)!! ln N),

    (N/(2 ln N) for n = 2); with ``error = ε`` the load at which the per-bit error
    of :func:`dense_bit_error` equals ε: ``K = N^(n−1) / ((2n−3)!! z²)``,
    ``z = Φ⁻¹(1 − ε)`` — the ``α_n N^(n−1)`` scaling.
    """
    check_int(N, "N", minimum=2)
    check_int(n, "n", minimum=2)
    scale = N ** (n - 1) / _dense_moment(n)
    if error is None:
        return scale / (2 * math.log(N))
    check_positive(error, "error")
    if error >= 0.5:
        raise ValueError(f"error must be in (0, 0.5), got {error!r}")
    z = -float(special.ndtri(error))
    return scale / z**2


class ExponentialCapacity(NamedTuple):
    """Result of :func:`exponential_capacity`."""

    alpha: float  #: exponent α: K = exp(αN)
    log_K: float  #: α N
    K: float  #: exp(α N) (inf when it overflows a float)


def exponential_capacity(N: int, rho: float = 0.0) -> ExponentialCapacity:
    """Exponential storage capacity of the dense AM with ``F(x) = eˣ``.

    Demircigil, Heusel, Löwe, Upgang & Vermet 2017 ("On a model of associative
    memory with huge storage capacity", main theorem for F = exp): K = exp(αN) random patterns
    are retrieved w.h.p. from a start with a fraction ρ < ½ of corrupted bits if

        α < I(1 − 2ρ)/2,   I(x) = ½((1 + x) ln(1 + x) + (1 − x) ln(1 − x)),

    i.e. α < (ln 2)/2 ≈ 0.347 for ρ = 0. Returns the bound α and ``exp(αN)``.
    """
    check_int(N, "N")
    check_positive(rho, "rho", allow_zero=True)
    if rho >= 0.5:
        raise ValueError(f"rho must be in [0, 0.5), got {rho!r}")
    x = 1 - 2 * rho
    info = 0.5 * (special.xlogy(1 + x, 1 + x) + special.xlogy(1 - x, 1 - x))
    alpha = float(info) / 2
    log_k = alpha * N
    return ExponentialCapacity(alpha, log_k, math.exp(log_k) if log_k < 709 else math.inf)


# --------------------------------------------------------------------- modern Hopfield
def hopfield_retrieval_bound(beta: Any, delta: Any, K: int, M: Any, distance: Any) -> Any:
    """Ramsauer et al. 2020 Theorem 5 bound on the one-step retrieval error ``‖f(ξ) − x_i‖``::

        ‖f(ξ) − x_i‖ ≤ 2 (K − 1) exp(−β (Δ_i − 2 max{‖ξ − x_i‖, ‖x_i* − x_i‖} M)) M,

    with K patterns (N in the paper), separation Δ_i (Def. 1) and M = max_j ‖x_j‖.
    Pass ``distance = max{‖ξ − x_i‖, ‖x_i* − x_i‖}`` (``‖ξ − x_i‖`` is the usual
    choice: the fixed point ``x_i*`` lies exponentially close to ``x_i``).
    Tensors broadcast; all-float inputs give a float.
    """
    check_int(K, "K")
    if any(isinstance(v, torch.Tensor) for v in (beta, delta, M, distance)):
        return 2 * (K - 1) * torch.exp(-beta * (delta - 2 * distance * M)) * M
    return 2 * (K - 1) * math.exp(-beta * (delta - 2 * distance * M)) * M


def _top_covariance_eigenvalue(data: torch.Tensor, name: str, *, centred: bool) -> float:
    data = check_tensor(data, name, min_ndim=2)
    x = data.reshape(data.shape[0], -1).double()
    mean = x.mean(0)
    if centred:
        scale = x.abs().max().clamp_min(1e-300)
        if float(mean.abs().max() / scale) > 1e-8:
            raise ValueError(
                f"{name} must be centred (mean zero) for this formula; subtract its mean first"
            )
    xc = x - mean
    cov = xc.T @ xc / x.shape[0]
    return float(torch.linalg.eigvalsh(cov)[-1])


def critical_beta(memories: torch.Tensor) -> float:
    """Inverse temperature at which the global-average fixed point of a modern Hopfield net splits.

    Ramsauer et al. 2020 (§2, the global fixed point averaging all patterns): for
    centred memories ``ξ = 0`` is a fixed point at every β, with Hessian
    ``I − β Cov`` (Cov = (1/K) Σ x_μ x_μᵀ, uniform softmax weights). It is a
    minimum while β λ_max(Cov) < 1 and becomes a saddle at ``β_c = 1/λ_max(Cov)``.
    For the exact diffusion model β = 1/σ², i.e. ``σ_c² = λ_max``.

    Args:
        memories: ``(K, d)`` (or ``(K, ...)``, flattened), centred.
    """
    return 1.0 / _top_covariance_eigenvalue(memories, "memories", centred=True)


# --------------------------------------------------------------------- diffusion times
def symmetry_breaking_time(a: float, process: str | NoiseProcess = "ve") -> float:
    """Time at which the exact diffusion model of the two points ±a splits into two attractors.

    For data ``{+a, −a}`` (a = ‖a‖) the exact energy at the origin has Hessian
    ``(1 − a²/σ²)/σ²`` along a (the Hessian of :class:`EmpiricalDiffusion`), a
    pitchfork at σ_c = a. In process time: VE ``t_c = a``; OU
    ``t_c = ½ ln(1 + a²)``; VP ``t_c = t(σ = a)`` from the VP schedule
    (:meth:`memscape.diffusion.processes.VP.t_of_sigma`).
    """
    check_positive(a, "a")
    return float(get_process(process).t_of_sigma(a))


def drift_potential_breaking_time(a: float, process: str | NoiseProcess = "ve") -> float:
    """Time at which the reverse-SDE drift potential of the two points ±a loses its central minimum.

    Raya & Ambrogioni 2023, "Spontaneous symmetry breaking in generative diffusion
    models". The reverse SDE ``dx = (f − g²∇log p_t) dt + g dw̄`` (Song et al. 2021; Karras et
    al. 2022 eq. 4 with ``f = (ṡ/s)x``, ``g² = 2s²σσ̇``) has drift ``−∇U`` with
    ``U(x, t) = g²(−log p_t(x)) + ½(ṡ/s)‖x‖²``. At the origin, along a,
    ``U'' = g²(1 − a²/σ²)/(σ²s²) + ṡ/s``. VE (``s = 1``): ``σ_c = a``, as for the
    density. Variance-preserving processes (``s² = 1/(1 + σ²)``: VP, OU) have
    ``ṡ/s = −σσ̇/(1 + σ²)`` and ``U'' = 0`` reduces, for every β schedule, to
    ``σ⁴ + 2(1 − a²)σ² − 2a² = 0``::

        σ_c² = a² − 1 + √(1 + a⁴)   (> a²: earlier in generation than the density).
    """
    check_positive(a, "a")
    proc = get_process(process)
    probe = torch.tensor([0.3, 1.0], dtype=torch.float64)
    s, sig = proc.scale(probe), proc.sigma(probe)
    if torch.allclose(s, torch.ones_like(s)):
        sigma_c = a
    elif torch.allclose(s**2 * (1 + sig**2), torch.ones_like(s)):
        sigma_c = math.sqrt(a**2 - 1 + math.sqrt(1 + a**4))
    else:
        raise ValueError(
            f"process {proc.name!r} is neither variance exploding (s = 1) nor variance "
            "preserving (s² = 1/(1 + σ²)); no closed form"
        )
    return float(proc.t_of_sigma(sigma_c))


def speciation_time(data_or_eigenvalue: Any) -> float:
    """Speciation time ``t_S = ½ ln Λ`` (Biroli, Bonnaire, de Bortoli & Mézard 2024).

    Forward OU process ``x_t = e^{−t}x₀ + √(1 − e^{−2t}) z``; Λ is the largest
    eigenvalue of the data covariance. Before t_S (backward time) trajectories
    have not yet committed to a class. It is the large-Λ form of the
    criterion "signal variance e^{−2t}Λ equals noise variance 1 − e^{−2t}",
    ``½ ln(1 + Λ)``: for two points ±a, Λ = a² and the exact pitchfork is at
    ``½ ln(1 + a²)`` (:func:`symmetry_breaking_time`). Λ ≤ 1 gives t_S ≤ 0 (no
    speciation).

    Args:
        data_or_eigenvalue: Λ > 0, or data ``(K, ...)`` whose covariance gives Λ.
    """
    if isinstance(data_or_eigenvalue, torch.Tensor):
        lam = _top_covariance_eigenvalue(data_or_eigenvalue, "data", centred=False)
    else:
        check_positive(data_or_eigenvalue, "data_or_eigenvalue")
        lam = float(data_or_eigenvalue)
    return 0.5 * math.log(lam)


def collapse_time(n: int, d: int, variance: float = 1.0) -> float:
    """Collapse time ``t_C = ½ ln(1 + σ²/(n^{2/d} − 1))`` (Biroli et al. 2024).

    Assumptions: n training points drawn from the isotropic Gaussian
    ``N(0, σ² I_d)`` (``variance = σ²`` per coordinate), the exact empirical score,
    the OU process, and d → ∞ with ``(ln n)/d`` fixed (n = e^{αd}, so
    ``n^{2/d} = e^{2α}``). Derivation: collapse happens when the entropy of the
    noised data ``N(0, (e^{−2t}σ² + Δ_t) I)`` no longer exceeds that of n noise
    balls of variance ``Δ_t = 1 − e^{−2t}``: ``(e^{−2t}σ² + Δ_t)/Δ_t = n^{2/d}``.
    In σ-space this is ``σ_C² = σ²/(n^{2/d} − 1)``. For t < t_C (backward time)
    trajectories are attracted to single training points (memorization).
    """
    check_int(n, "n", minimum=2)
    check_int(d, "d")
    check_positive(variance, "variance")
    return 0.5 * math.log1p(variance / math.expm1(2 * math.log(n) / d))


def clone_probability(t: Any, mean_norm: float, variance: float = 1.0) -> Any:
    """Probability that two clones of one backward trajectory end in the same class.

    Cloning experiment of Biroli, Bonnaire, de Bortoli & Mézard 2024 (§2, "speciation")
    for data ``½ N(m, vI) + ½ N(−m, vI)`` under the OU process
    ``x_t = e^{−t}x₀ + √(1 − e^{−2t}) z``: run the exact backward dynamics to time t,
    copy the state and continue both copies independently; a copy ends in class
    ``sign(mᵀx₀)``. Only the coordinate ``q = mᵀx_t/‖m‖`` carries class information
    and the backward dynamics samples the posterior ``x₀ | x_t``, so (exact in any d)::

        φ(t) = E_q[P₊(q)² + P₋(q)²],   P₊(q) = Σ_{c=±a} w_c(q) Φ(μ_c(q)/s),

    with ``a = ‖m‖``, ``V = e^{−2t}v + 1 − e^{−2t}``, ``w_c ∝ exp(−(q − e^{−t}c)²/2V)``,
    ``μ_c = c + e^{−t}v(q − e^{−t}c)/V`` and ``s² = v − e^{−2t}v²/V``; q is drawn
    from the mixture of ``N(±e^{−t}a, V)`` (Gauss–Hermite quadrature, 96 nodes).
    For ``‖m‖² = dμ̃²`` and d → ∞ at t = t_S (:func:`speciation_time`),
    φ → :func:`clone_probability_at_speciation` ≈ 0.775.

    Args:
        t: OU time(s) > 0 of the cloning (float or array).
        mean_norm: ``‖m‖ > 0``.
        variance: per-coordinate variance v of each Gaussian.
    """
    check_positive(mean_norm, "mean_norm")
    check_positive(variance, "variance")
    tt = np.asarray(t, dtype=float)
    if tt.size == 0 or not np.all(np.isfinite(tt)) or np.any(tt <= 0):
        raise ValueError(f"t must be finite and > 0, got {t!r}")
    a, v = float(mean_norm), float(variance)
    nodes, weights = np.polynomial.hermite_e.hermegauss(96)
    weights = weights / weights.sum()
    e = np.exp(-tt)[..., None]
    big_v = e**2 * v + 1 - e**2
    q = e * a + np.sqrt(big_v) * nodes  # q | class + (the other class by symmetry)
    sd = np.sqrt(np.maximum(v - e**2 * v**2 / big_v, 1e-300))
    logit = 2 * e * a * q / big_v  # log w₊/w₋
    w_plus = special.expit(logit)
    p_plus = w_plus * special.ndtr((a + e * v * (q - e * a) / big_v) / sd) + (
        1 - w_plus
    ) * special.ndtr((-a + e * v * (q + e * a) / big_v) / sd)
    out = (weights * (p_plus**2 + (1 - p_plus) ** 2)).sum(-1)
    return float(out) if out.ndim == 0 else out


def clone_probability_at_speciation() -> float:
    """Large-d limit of :func:`clone_probability` at t = t_S, ≈ 0.7752.

    ``E_{q∼N(1,1)}[ς(2q)² + ς(−2q)²]``.

    Biroli, Bonnaire, de Bortoli & Mézard 2024: with ``‖m‖² = dμ̃²`` and unit
    variance, ``e^{−t_S}‖m‖ = ‖m‖/√(1 + ‖m‖²) → 1`` and the class posterior becomes
    ``P₊(q) = ς(2q)`` (ς the logistic function), so the same-class probability of
    two clones at the speciation time tends to this d-independent constant; at
    finite d it is smaller, approaching it as ``1/Λ``.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(96)
    p = special.expit(2 * (1 + nodes))
    return float((weights * (p**2 + (1 - p) ** 2)).sum() / weights.sum())


def clone_probability_crossing(mean_norm: float, level: float, variance: float = 1.0) -> float:
    """OU time at which the exact :func:`clone_probability` ``φ(t)`` falls through ``level``.

    Biroli, Bonnaire, de Bortoli & Mézard 2024: ``φ`` decreases from 1 (t → 0, the
    clones share their end point) to ½ (t → ∞, independent classes), so every level
    in (½, 1) is crossed once; at ``level`` = :func:`clone_probability_at_speciation`
    and ``‖m‖² = dμ̃²`` the crossing tends to t_S (:func:`speciation_time`) as d → ∞.
    Root of ``φ(t) = level`` by Brent's method (the bracket is doubled upward).

    Args:
        mean_norm: ``‖m‖ > 0`` of the mixture ``½ N(m, vI) + ½ N(−m, vI)``.
        level: in (½, 1).
        variance: per-coordinate variance v of each Gaussian.
    """
    check_positive(mean_norm, "mean_norm")
    check_positive(variance, "variance")
    if not 0.5 < level < 1:
        raise ValueError(f"level must be in (0.5, 1), got {level!r}")

    def gap(t: float) -> float:
        return float(clone_probability(t, mean_norm, variance)) - level

    lo, hi = 1e-6, 1.0
    if gap(lo) <= 0:
        return lo
    while gap(hi) > 0:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            raise ValueError(f"clone_probability stays above level {level!r}")
    return float(optimize.brentq(gap, lo, hi, xtol=1e-10))


# --------------------------------------------------------------------- circle toy
def circle_energy(R: Any, *, sigma: float) -> Any:
    """Large-K energy of points uniform on the unit circle at radius R (Pham et al. 2025).

    For training points y uniform on the unit circle and noise level σ, the exact
    diffusion energy ``−log p_σ(x) = −log ⟨exp(−‖x − y‖²/2σ²)⟩_y + const`` at
    ``‖x‖ = R`` is, in units of ``2σ²`` (Pham et al.'s normalization)::

        E(R) = 2σ² (−log p_σ) + const = R² + 1 − 2σ² log I₀(R/σ²).

    Pham et al. write it ``R² + 1 − β_P⁻¹ log I₀(2β_P R)`` with their
    ``β_P = 1/(2σ²)``; in memscape's ``β = 1/σ²`` it is ``R² + 1 − 2β⁻¹ log I₀(βR)``.
    Computed as ``log I₀(z) = log ive(0, z) + z`` so that large R/σ² does not overflow.

    Args:
        R: radius ``≥ 0`` (float or array).
        sigma: noise level ``σ > 0`` (keyword: not Pham et al.'s β).
    """
    check_positive(sigma, "sigma")
    r = np.asarray(R, dtype=float)
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError(f"R must be finite and >= 0, got {R!r}")
    s2 = float(sigma) ** 2
    z = r / s2
    out = r**2 + 1 - 2 * s2 * (np.log(special.ive(0, z)) + z)
    return float(out) if out.ndim == 0 else out


class CircleRadius(NamedTuple):
    """Result of :func:`circle_radius`."""

    exact: float  #: minimizer of :func:`circle_energy` (0 for σ² ≥ ½)
    asymptotic: float  #: 1 − σ²/2, the small-σ ring radius


def circle_radius(*, sigma: float) -> CircleRadius:
    """Radius of the ring of minima of :func:`circle_energy` (Pham et al. 2025 circle toy).

    ``dE/dR = 0`` gives ``R = I₁(R/σ²)/I₀(R/σ²)``; for σ² ≥ ½ the only solution is
    R = 0 (one attractor at the centre — σ² = ½ = λ_max of the circle's covariance,
    the :func:`critical_beta` transition β = 1/σ² = 2). For σ² < ½ the ring radius
    is found by root finding; at small σ, ``I₁/I₀(z) ≈ 1 − 1/(2z)`` gives
    ``R ≈ 1 − σ²/2`` (next term −3σ⁴/8). In Pham et al.'s ``β_P = 1/(2σ²)``:
    ``R = I₁(2β_P R)/I₀(2β_P R) ≈ 1 − 1/(4β_P)``.

    Args:
        sigma: noise level ``σ > 0`` (keyword: not Pham et al.'s β).
    """
    check_positive(sigma, "sigma")
    s2 = float(sigma) ** 2
    asym = 1 - s2 / 2
    if s2 >= 0.5:
        return CircleRadius(0.0, asym)

    def f(r: float) -> float:
        z = r / s2
        return float(special.ive(1, z) / special.ive(0, z)) - r

    lo = 1e-9
    if f(lo) <= 0:
        return CircleRadius(0.0, asym)
    return CircleRadius(float(optimize.brentq(f, lo, 1.0, xtol=1e-15, rtol=1e-15)), asym)


# --------------------------------------------------------------------- Gaussian data
def _gaussian_parts(x: torch.Tensor, sigma: Any, mean: torch.Tensor, cov: torch.Tensor):
    x = check_tensor(x, "x", ndim=2)
    d = x.shape[1]
    mean = check_tensor(mean, "mean", ndim=1).to(x)
    cov = check_tensor(cov, "cov", ndim=2).to(x)
    if mean.shape != (d,) or cov.shape != (d, d):
        raise ValueError(
            f"mean must be ({d},) and cov ({d}, {d}) for x of shape {tuple(x.shape)}, got "
            f"{tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    s2 = as_sigma(sigma, x) ** 2
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    noised = cov + s2[:, None, None] * eye  # (B, d, d)
    chol, info = torch.linalg.cholesky_ex(noised)
    if bool((info != 0).any()):
        raise ValueError("cov + sigma^2 I must be positive definite (cov symmetric PSD)")
    return x - mean, mean, cov, chol


def gaussian_denoiser(x: torch.Tensor, sigma: Any, mean: torch.Tensor, cov: torch.Tensor):
    """Exact denoiser of Gaussian data ``N(μ, S)``: ``D(x, σ) = μ + S (S + σ²I)⁻¹ (x − μ)``.

    The posterior mean E[x₀ | x₀ + σz = x] (Wiener filter), ``(B, d) -> (B, d)``.
    """
    xc, mean, cov, chol = _gaussian_parts(x, sigma, mean, cov)
    sol = torch.cholesky_solve(xc[:, :, None], chol)[:, :, 0]
    return mean + sol @ cov.T


def gaussian_energy(x: torch.Tensor, sigma: Any, mean: torch.Tensor, cov: torch.Tensor):
    """Exact energy ``−log p_σ(x)`` of Gaussian data, ``p_σ = N(μ, S + σ²I)``: ``(B, d) -> (B,)``.

    ``½ (x − μ)ᵀ(S + σ²I)⁻¹(x − μ) + ½ log det(2π(S + σ²I))``; its negative
    gradient times σ² plus x is :func:`gaussian_denoiser` (Tweedie).
    """
    xc, _, _, chol = _gaussian_parts(x, sigma, mean, cov)
    sol = torch.cholesky_solve(xc[:, :, None], chol)[:, :, 0]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
    d = x.shape[1]
    return 0.5 * (xc * sol).sum(1) + 0.5 * logdet + 0.5 * d * math.log(2 * math.pi)
