"""Minimum-energy paths: climbing-image nudged elastic band and the simplified string method.

A minimum-energy path (MEP) joins two minima through the lowest col: along it the
gradient is parallel to the path, ``∇E⊥ = 0``. Both methods relax a chain of images
``R_0 = a, R_1, …, R_{N−1} = b`` (end points fixed) from the straight line:

- **Nudged elastic band** (Jónsson, Mills & Jacobsen 1998; improved tangent of
  Henkelman & Jónsson 2000, J. Chem. Phys. 113, 9978, eqs. 8–11): image ``i`` feels
  ``F_i = −∇E(R_i)⊥ + k(|R_{i+1} − R_i| − |R_i − R_{i−1}|) τ_i``, with the tangent
  ``τ_i`` pointing to the higher neighbour (an energy-weighted blend at extrema).
  **Climbing image** (Henkelman, Uberuaga & Jónsson 2000, J. Chem. Phys. 113, 9901,
  eq. 5): the highest image feels ``−∇E + 2(∇E·τ)τ`` and no spring, so it climbs to
  the saddle. It is chosen once the plain band has relaxed to ``10·tol`` (or after a
  quarter of ``max_iter``) and kept: re-choosing it every step makes two images that
  straddle a sharp col take turns, and FIRE then stalls. The band is relaxed by FIRE
  (Bitzek et al. 2006, Phys. Rev. Lett. 97, 170201; the parameters of the paper,
  ``N_min = 5``, ``f_inc = 1.1``, ``f_dec = 0.5``, ``α = 0.1``, ``f_α = 0.99``, and one
  addition: every uphill step also shrinks ``Δt_max`` by 0.8), the optimiser ASE and
  pele use for bands: the NEB force is not a gradient, so line-search methods
  (L-BFGS) do not apply as such. On rugged high-d landscapes (the exact model of
  image patches) the band can fold; the string is then the robust choice.
- **Simplified string method** (E, Ren & Vanden-Eijnden 2007, J. Chem. Phys. 126,
  164103, §II): each iteration moves every interior image by one steepest-descent
  step ``R ← R − Δt ∇E(R)`` and then redistributes the images at equal arc length
  (linear interpolation); it has converged when the string stops moving, ``max‖ΔR‖/Δt
  ≤ tol`` (the paper's criterion; the linear interpolation leaves the images
  ``O(h²)`` off the MEP). No climbing image: the highest images are refined below.

Every interior maximum of the energy profile is then refined to an index-1 saddle
by :func:`~memscape.landscape.saddles.refine_saddles` (eigenvector-following on
Hessian-vector products, certified by Lanczos), started from the highest point of
the polyline next to the maximal image (bisection on the directional derivative).
The barrier of a pair is the highest saddle energy minus ``E(a)``.

Score-only models: the forces are ``∇E = −s`` (:func:`memscape.score_of`), the
profile the tangents and the climbing image need is the trapezoidal line integral of
``∇E`` over the images, and the reported profile is the Gauss–Legendre line integral
``E(R_i) − E(a) = −∫ s·dR`` along the converged path
(:func:`~memscape.landscape.conservative.line_integral`), so ``energies[:, 0] = 0``.
(Energy models use their energies: the trapezoidal profile drifts when a band
crosses a sharp col with few images, and then misplaces the climbing image.)

Scales, per pair: the step sizes come from an estimate ``L`` of the largest ``|λ|``
of the Hessian over the pair's initial images (power iteration on Hessian-vector
products; the climbing image feels ``|λ₁|`` of the saddle it climbs to, so the band
is sampled): FIRE's ``Δt_max = 1/√L`` and the string's ``Δt = 1/L`` (the stability
limits are ``2/√L`` and ``2/L``), the spring ``k = L/10`` (its discrete Laplacian adds
at most ``4k`` of stiffness), the default force tolerance ``10⁻³ L |b − a|`` (the
saddles are refined after), and one image moves at most half a segment per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from memscape._validation import check_choice, check_int, check_positive, check_tensor
from memscape.landscape._fields import (
    check_model,
    check_sigma,
    event_shape,
    flat_score,
    has_energy,
    hvp_of,
    slice_sigma,
)
from memscape.landscape.conservative import line_integral
from memscape.landscape.saddles import refine_saddles
from memscape.protocol import ScoreOrDenoiser

__all__ = ["MinimumEnergyPath", "minimum_energy_path"]

# FIRE parameters (Bitzek et al. 2006, the values recommended in the paper)
FIRE_N_MIN, FIRE_F_INC, FIRE_F_DEC, FIRE_ALPHA, FIRE_F_ALPHA = 5, 1.1, 0.5, 0.1, 0.99
POWER_ITERATIONS = 20
FIRE_DT_MAX = 1.0  # Δt_max·√L
FIRE_DT_SHRINK = 0.8  # Δt_max shrinks by this on every uphill step
BISECTIONS = 40  # line search for the top of the path next to a maximal image
CLIMB_AFTER = 10.0  # the climbing image is chosen once the band's force is ≤ 10·tol


@dataclass
class MinimumEnergyPath:
    """Converged paths between ``P`` pairs of end points and the saddles on them.

    Attributes:
        path: ``(P, N, *event_shape)`` images, end points included.
        energies: ``(P, N)`` energy profile (score-only models: ``E − E(a)`` by line
            integral along the path, so the first column is 0).
        saddles: ``(S, *event_shape)`` one per interior maximum of a profile, refined
            (where refinement failed: the image itself, with ``saddle_index = −1``).
        saddle_energy: ``(S,)`` on the scale of ``energies``.
        saddle_pair: ``(S,)`` long, the pair each saddle belongs to.
        saddle_image: ``(S,)`` long, the image it was refined from.
        saddle_index: ``(S,)`` long, certified Morse index (−1 where not converged or
            not certified).
        barrier: ``(P,)`` highest saddle energy minus the energy of ``a`` (NaN for a
            pair whose profile has no interior maximum).
        converged: ``(P,)`` bool, largest image force ≤ ``tol``.
        iterations: ``(P,)`` long.
        max_force: ``(P,)`` largest image force at the end (the NEB force, or for the
            string its last displacement over ``Δt``).
        method: ``"neb"`` or ``"string"``.
    """

    path: torch.Tensor
    energies: torch.Tensor
    saddles: torch.Tensor
    saddle_energy: torch.Tensor
    saddle_pair: torch.Tensor
    saddle_image: torch.Tensor
    saddle_index: torch.Tensor
    barrier: torch.Tensor
    converged: torch.Tensor
    iterations: torch.Tensor
    max_force: torch.Tensor
    method: str

    def __len__(self) -> int:
        return self.path.shape[0]

    def __repr__(self) -> str:
        return (
            f"MinimumEnergyPath(pairs={len(self)}, images={self.path.shape[1]}, "
            f"method={self.method!r}, converged={int(self.converged.sum())}/{len(self)}, "
            f"saddles={self.saddles.shape[0]}, index-1={int((self.saddle_index == 1).sum())})"
        )


def _as_pairs(a: Any, b: Any, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = check_tensor(a, "a", min_ndim=1)
    b = check_tensor(b, "b", min_ndim=1)
    if not a.is_floating_point():
        raise TypeError(f"a must be a floating-point tensor, got {a.dtype}")
    shape = tuple(getattr(model, "event_shape", ()) or ())
    if (shape and tuple(a.shape) == shape) or (not shape and a.ndim == 1):
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if shape and tuple(a.shape[1:]) != shape:
        raise ValueError(
            f"a must have shape {shape} or (P, {', '.join(map(str, shape))}), got {tuple(a.shape)}"
        )
    return a, b.to(a)


def _per_point(sigma: Any, rows: torch.Tensor, m: int) -> Any:
    """σ of pairs ``rows``, repeated for their ``m`` images each (floats pass through)."""
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1:
        return slice_sigma(sigma, rows).repeat_interleave(m)
    return sigma


class _Band:
    """Forces and energies of the images of a batch of bands ``(n, N, d)``."""

    def __init__(self, model: Any, sigma: Any, shape: tuple[int, ...], ends: torch.Tensor):
        self.model, self.sigma, self.shape = model, sigma, shape
        self.energy = has_energy(model)
        p = ends.shape[0]
        rows = torch.arange(p)
        flat = ends.reshape(2 * p, -1)
        sig = _per_point(sigma, rows, 2)
        self.g_ends = -flat_score(model, flat, sig, shape).reshape(p, 2, -1)
        self.e_ends = (
            model.energy(flat.reshape(2 * p, *shape), sig).detach().reshape(p, 2)
            if self.energy
            else torch.zeros(p, 2, dtype=ends.dtype, device=ends.device)
        )

    def gradient(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Gradients ``∇E`` of the interior images ``(n, N−2, d)`` of the bands ``rows``."""
        n, big_n, d = x.shape
        m = big_n - 2
        inner = x[:, 1:-1].reshape(n * m, d)
        sig = _per_point(self.sigma, rows, m)
        return -flat_score(self.model, inner, sig, self.shape).reshape(n, m, d)

    def evaluate(self, x: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the interior images ``(n, N−2, d)`` and the profile ``(n, N)``.

        The profile is the energy of the images, or for score-only models the
        trapezoidal line integral of ``∇E`` over them (from ``E(a) = 0``); only the
        tangents and the climbing image use it (the string needs :meth:`gradient` only).
        """
        n, big_n, d = x.shape
        m = big_n - 2
        inner = x[:, 1:-1].reshape(n * m, d)
        sig = _per_point(self.sigma, rows, m)
        g = self.gradient(x, rows)
        ends = self.e_ends[rows]
        if self.energy:
            e_in = self.model.energy(inner.reshape(n * m, *self.shape), sig).detach()
            return g, torch.cat([ends[:, :1], e_in.reshape(n, m), ends[:, 1:]], dim=1)
        ga = self.g_ends[rows]
        full = torch.cat([ga[:, :1], g, ga[:, 1:]], dim=1)
        de = 0.5 * ((full[:, 1:] + full[:, :-1]) * (x[:, 1:] - x[:, :-1])).sum(-1)
        e = torch.cat([torch.zeros_like(de[:, :1]), de.cumsum(1)], dim=1)
        return g, e

    def profile(self, x: torch.Tensor) -> torch.Tensor:
        """The reported profile ``(P, N)``: energies, or Gauss–Legendre line integrals."""
        p, big_n, _ = x.shape
        rows = torch.arange(p)
        if self.energy:
            sig = _per_point(self.sigma, rows, big_n)
            flat = x.reshape(p * big_n, *self.shape)
            return self.model.energy(flat, sig).detach().reshape(p, big_n)
        seg = line_integral(
            self.model,
            x[:, :-1].reshape(-1, *self.shape),
            x[:, 1:].reshape(-1, *self.shape),
            _per_point(self.sigma, rows, big_n - 1),
        ).reshape(p, big_n - 1)
        return torch.cat([torch.zeros_like(seg[:, :1]), seg.cumsum(1)], dim=1)


def _tangents(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Improved tangents (Henkelman & Jónsson 2000, eqs. 8–11) of interior images: ``(n, N−2, d)``."""
    tp, tm = x[:, 2:] - x[:, 1:-1], x[:, 1:-1] - x[:, :-2]
    ei, ep, em = e[:, 1:-1], e[:, 2:], e[:, :-2]
    dp, dm = (ep - ei).abs(), (em - ei).abs()
    dmax, dmin = torch.maximum(dp, dm), torch.minimum(dp, dm)
    up = (ep > ei) & (ei > em)
    down = (ep < ei) & (ei < em)
    wp = torch.where(ep > em, dmax, dmin)  # at an extremum: weight the higher neighbour
    wm = torch.where(ep > em, dmin, dmax)
    wp = torch.where(up, 1.0, torch.where(down, 0.0, wp))
    wm = torch.where(up, 0.0, torch.where(down, 1.0, wm))
    tau = wp[..., None] * tp + wm[..., None] * tm
    bad = tau.norm(dim=-1, keepdim=True) == 0  # flat profile: the chord direction
    tau = torch.where(bad, tp + tm, tau)
    return tau / tau.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def _neb_force(
    x: torch.Tensor, g: torch.Tensor, e: torch.Tensor, spring: torch.Tensor, climb: torch.Tensor
) -> torch.Tensor:
    """NEB force on the interior images ``(n, N−2, d)``; image ``climb`` (≥ 1) climbs (HUJ eq. 5)."""
    tau = _tangents(x, e)
    gpar = (g * tau).sum(-1, keepdim=True)
    seg = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
    f = -(g - gpar * tau) + spring[:, None, None] * (seg[:, 1:] - seg[:, :-1])[..., None] * tau
    on = (climb >= 1).nonzero()[:, 0]
    c = climb[on] - 1
    f[on, c] = -g[on, c] + 2 * gpar[on, c] * tau[on, c]
    return f


def _reparametrize(x: torch.Tensor) -> torch.Tensor:
    """Images at equal arc length along the polyline (E, Ren & Vanden-Eijnden 2007): ``(n, N, d)``."""
    n, big_n, _ = x.shape
    seg = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
    s = torch.cat([torch.zeros_like(seg[:, :1]), seg.cumsum(1)], dim=1)
    s = s / s[:, -1:].clamp_min(1e-300)
    target = torch.linspace(0, 1, big_n, dtype=x.dtype, device=x.device).expand(n, big_n)
    j = (torch.searchsorted(s.contiguous(), target.contiguous(), right=True) - 1).clamp(
        0, big_n - 2
    )
    s0, s1 = s.gather(1, j), s.gather(1, j + 1)
    t = ((target - s0) / (s1 - s0).clamp_min(1e-300)).clamp(0, 1)[..., None]
    idx = j[..., None].expand(-1, -1, x.shape[2])
    out = x.gather(1, idx) + t * (x.gather(1, idx + 1) - x.gather(1, idx))
    out[:, 0], out[:, -1] = x[:, 0], x[:, -1]
    return out


def _curvature(model: Any, pts: torch.Tensor, sigma: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """Largest ``|λ|`` of the Hessian (symmetric part) at flat points ``(B, d)``: ``(B,)``, by power iteration."""
    hvp = hvp_of(model, pts, sigma, shape)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(pts.shape, generator=gen, dtype=torch.float64).to(pts)
    lam = torch.zeros(pts.shape[0], dtype=pts.dtype, device=pts.device)
    for _ in range(POWER_ITERATIONS):
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
        hv = hvp(v)
        lam = (v * hv).sum(1).abs()
        v = hv
    return lam.clamp_min(1e-12)


def minimum_energy_path(
    model: ScoreOrDenoiser,
    a: torch.Tensor,
    b: torch.Tensor,
    sigma: Any = None,
    *,
    images: int = 16,
    method: str = "neb",
    climbing: bool = True,
    spring: float | None = None,
    tol: float | None = None,
    max_iter: int = 2000,
    initial: torch.Tensor | None = None,
    refine: bool = True,
    saddle_tol: float | None = None,
) -> MinimumEnergyPath:
    """Minimum-energy paths from ``a`` to ``b`` and the index-1 saddles on them (module doc).

    All pairs and images are relaxed at once (one batched model call per iteration);
    a pair stops moving once it has converged.

    Args:
        model: any object following the protocol (energy, score-only or denoiser).
        a: start points ``(P, *event_shape)`` (or one ``event_shape``), ideally minima
            (e.g. from :func:`memscape.critical_points` or :func:`memscape.descend`).
        b: end points, same shape as ``a``.
        sigma: noise level (float or ``(P,)``), required for noise-conditioned models.
        images: number of images ``N`` including the two end points (≥ 3).
        method: ``"neb"`` (climbing-image NEB, FIRE) or ``"string"`` (simplified string).
        climbing: NEB only: the highest image climbs to the saddle.
        spring: NEB spring constant ``k`` (default ``L/10``, module doc).
        tol: converged when the largest image force is ≤ ``tol`` (default
            ``10⁻³ L |b − a|`` per pair, module doc).
        max_iter: iteration cap.
        initial: optional starting images ``(P, N, *event_shape)`` or ``(N, *event_shape)``
            (end points included; replaced by ``a`` and ``b``), default the straight line.
        refine: refine each interior maximum to a certified index-1 saddle.
        saddle_tol: gradient tolerance of the refinement (default 1e-8 in float64).

    Returns:
        :class:`MinimumEnergyPath`.
    """
    check_model(model)
    check_sigma(model, sigma)
    a, b = _as_pairs(a, b, model)
    images = check_int(images, "images", minimum=3)
    check_choice(method, ("neb", "string"), "method")
    if not isinstance(climbing, bool):
        raise TypeError(f"climbing must be a bool, got {type(climbing).__name__}")
    for name, val in (("spring", spring), ("tol", tol), ("saddle_tol", saddle_tol)):
        if val is not None:
            check_positive(val, name)
    check_int(max_iter, "max_iter")
    if isinstance(sigma, torch.Tensor) and sigma.ndim >= 1 and sigma.shape != (a.shape[0],):
        raise ValueError(
            f"sigma must be a float or a ({a.shape[0]},) tensor, got {tuple(sigma.shape)}"
        )
    shape = event_shape(model, a)
    p, d = a.shape[0], a[0].numel()
    fa, fb = a.reshape(p, 1, d), b.reshape(p, 1, d)
    if initial is None:
        t = torch.linspace(0, 1, images, dtype=a.dtype, device=a.device)[None, :, None]
        x = fa + t * (fb - fa)
        x[:, -1:] = fb  # exactly b (no round-off of a + 1·(b − a))
    else:
        initial = check_tensor(initial, "initial", min_ndim=2).to(a)
        x = initial.reshape(-1, images, d).expand(p, images, d).clone()
        if x.shape[0] != p:
            raise ValueError(
                f"initial must hold {images} images per pair, got {tuple(initial.shape)}"
            )
        x[:, :1], x[:, -1:] = fa, fb
    chord = (fb - fa).norm(dim=-1).squeeze(1)
    if bool((chord == 0).any()):
        raise ValueError("a and b must differ in every pair (a zero-length path has no saddle)")

    sig = _per_point(sigma, torch.arange(p), images)
    lip = _curvature(model, x.reshape(p * images, d), sig, shape).reshape(p, images).amax(1)
    k = 0.1 * lip if spring is None else torch.full_like(lip, float(spring))
    ftol = 1e-3 * lip * chord if tol is None else torch.full_like(lip, float(tol))

    band = _Band(model, sigma, shape, torch.cat([fa, fb], dim=1))
    seg0 = chord / (images - 1)
    if method == "neb":
        x, its, fmax = _relax_neb(band, x, k, climbing, ftol, max_iter, seg0, lip)
    else:
        x, its, fmax = _relax_string(band, x, ftol, max_iter, seg0, lip)
    e = band.profile(x)
    saddles = _saddles(model, sigma, shape, x, e, refine, saddle_tol)
    return MinimumEnergyPath(
        path=x.reshape(p, images, *shape),
        energies=e,
        saddles=saddles[0].reshape(-1, *shape),
        saddle_energy=saddles[1],
        saddle_pair=saddles[2],
        saddle_image=saddles[3],
        saddle_index=saddles[4],
        barrier=saddles[5],
        converged=fmax <= ftol,
        iterations=its,
        max_force=fmax,
        method=method,
    )


def _cap(dx: torch.Tensor, maxstep: torch.Tensor) -> torch.Tensor:
    """Shorten each image's displacement ``(n, M, d)`` to at most ``maxstep`` ``(n,)``."""
    norm = dx.norm(dim=-1, keepdim=True)
    return dx * torch.clamp(maxstep[:, None, None] / norm.clamp_min(1e-300), max=1.0)


def _relax_neb(
    band: _Band,
    x: torch.Tensor,
    spring: torch.Tensor,
    climbing: bool,
    ftol: torch.Tensor,
    max_iter: int,
    seg0: torch.Tensor,
    lip: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FIRE (Bitzek et al. 2006) on the NEB force, one FIRE state (and scale ``(P,)``) per band.

    Each uphill step (``P = F·v < 0``) also shrinks ``Δt_max`` by ``FIRE_DT_SHRINK``: a
    band that meets a region stiffer than its initial images (a sharp col next to an
    end point) otherwise settles into a limit cycle between ``Δt`` growth and reset.
    """
    p = x.shape[0]
    dt_max = FIRE_DT_MAX * lip**-0.5
    dt = 0.1 * dt_max
    alpha = torch.full_like(dt, FIRE_ALPHA)
    n_pos = torch.zeros(p, dtype=torch.long, device=x.device)
    v = torch.zeros_like(x[:, 1:-1])
    its = torch.zeros(p, dtype=torch.long)
    fmax = torch.full((p,), float("inf"), dtype=x.dtype, device=x.device)
    climb = torch.full((p,), -1 if climbing else 0, dtype=torch.long)
    rows = torch.arange(p)
    for it in range(max_iter + 1):
        xa = x[rows]
        g, e = band.evaluate(xa, rows)
        f = _neb_force(xa, g, e, spring[rows], climb[rows])
        fm = f.norm(dim=-1).amax(1)
        fmax[rows] = fm
        start = (climb[rows] < 0) & ((fm <= CLIMB_AFTER * ftol[rows]) | (it >= max_iter // 4))
        if bool(start.any()):  # the highest image starts climbing: fixed, FIRE restarts
            new = rows[start]
            climb[new] = e[start, 1:-1].argmax(1) + 1
            v[new], dt[new], alpha[new], n_pos[new] = 0.0, 0.1 * dt_max[new], FIRE_ALPHA, 0
            f[start] = _neb_force(xa[start], g[start], e[start], spring[new], climb[new])
            fm = f.norm(dim=-1).amax(1)
            fmax[rows] = fm
        keep = (fm > ftol[rows]) | (climb[rows] < 0)
        if it == max_iter or not bool(keep.any()):
            break
        rows, f = rows[keep], f[keep]
        its[rows] += 1
        vr = v[rows]
        power = (f * vr).sum((1, 2))
        fn = f.flatten(1).norm(dim=1).clamp_min(1e-300)[:, None, None]
        vn = vr.flatten(1).norm(dim=1)[:, None, None]
        al = alpha[rows][:, None, None]
        downhill = power >= 0
        vr = torch.where(downhill[:, None, None], (1 - al) * vr + al * vn * f / fn, 0.0)
        n_pos[rows] = torch.where(downhill, n_pos[rows] + 1, 0)
        dt_max[rows] = torch.where(downhill, dt_max[rows], dt_max[rows] * FIRE_DT_SHRINK)
        grow = downhill & (n_pos[rows] > FIRE_N_MIN)
        dt[rows] = torch.where(
            grow,
            torch.minimum(dt[rows] * FIRE_F_INC, dt_max[rows]),
            torch.where(downhill, dt[rows], dt[rows] * FIRE_F_DEC),
        )
        alpha[rows] = torch.where(
            grow, alpha[rows] * FIRE_F_ALPHA, torch.where(downhill, alpha[rows], FIRE_ALPHA)
        )
        step = dt[rows][:, None, None]
        vr = vr + step * f
        x[rows, 1:-1] += _cap(step * vr, 0.5 * seg0[rows])
        v[rows] = vr
    return x, its, fmax


def _relax_string(
    band: _Band,
    x: torch.Tensor,
    ftol: torch.Tensor,
    max_iter: int,
    seg0: torch.Tensor,
    lip: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Simplified string: a steepest-descent step, then equal-arc-length reparametrization."""
    p = x.shape[0]
    dt = (1.0 / lip)[:, None, None]
    its = torch.zeros(p, dtype=torch.long)
    fmax = torch.full((p,), float("inf"), dtype=x.dtype, device=x.device)
    rows = torch.arange(p)
    for _ in range(max_iter):
        xa = x[rows]
        g = band.gradient(xa, rows)
        moved = xa.clone()
        moved[:, 1:-1] -= _cap(dt[rows] * g, 0.5 * seg0[rows])
        moved = _reparametrize(moved)
        fm = (moved - xa).norm(dim=-1).amax(1) / dt[rows, 0, 0]
        x[rows], fmax[rows] = moved, fm
        its[rows] += 1
        rows = rows[fm > ftol[rows]]
        if rows.numel() == 0:
            break
    return x, its, fmax


def _line_maxima(
    model: Any,
    sigma: Any,
    shape: tuple[int, ...],
    x: torch.Tensor,
    pair: torch.Tensor,
    img: torch.Tensor,
) -> torch.Tensor:
    """The highest point of the polyline next to each maximal image ``(S, d)``.

    The maximum lies on the segment behind or ahead of image ``i`` (the sign of the
    directional derivative of ``E`` there says which); it is found by bisection on the
    derivative along that segment. The refinement starts there: near a sharp col (the
    exact model at small σ) an image a segment away sits in a convex well whose lowest
    Hessian mode says nothing about the col.
    """
    xi, xf, xb = x[pair, img], x[pair, img + 1], x[pair, img - 1]
    grad = lambda z: -flat_score(model, z, sigma, shape)  # noqa: E731
    gi = grad(xi)
    ahead = (gi * (xf - xi)).sum(1) > 0
    start = torch.where(ahead[:, None], xi, xb)
    end = torch.where(ahead[:, None], xf, xi)
    u = end - start
    slope = lambda t: (grad(start + t[:, None] * u) * u).sum(1)  # noqa: E731
    lo = torch.zeros(u.shape[0], dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    ok = (slope(lo) > 0) & (slope(hi) <= 0)
    for _ in range(BISECTIONS):
        mid = 0.5 * (lo + hi)
        up = slope(mid) > 0
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    t = torch.where(ok, 0.5 * (lo + hi), torch.where(ahead, 0.0, 1.0))
    return start + t[:, None] * u


def _saddles(
    model: Any,
    sigma: Any,
    shape: tuple[int, ...],
    x: torch.Tensor,
    e: torch.Tensor,
    refine: bool,
    saddle_tol: float | None,
) -> tuple[torch.Tensor, ...]:
    """Interior maxima of each profile, refined: points, energies, pair, image, index, barrier."""
    p = x.shape[0]
    mid = e[:, 1:-1]
    is_max = (mid > e[:, :-2]) & (mid >= e[:, 2:])
    pair, img = is_max.nonzero(as_tuple=True)
    img = img + 1
    pts = x[pair, img].clone()
    energy = e[pair, img].clone()
    index = torch.full((pair.shape[0],), -1, dtype=torch.long)
    if refine and pair.numel():
        seg = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
        trust = 2 * torch.maximum(seg[pair, img - 1], seg[pair, img])
        sig = slice_sigma(sigma, pair)
        start = _line_maxima(model, sig, shape, x, pair, img)
        res = refine_saddles(model, start.reshape(-1, *shape), sig, tol=saddle_tol, max_step=trust)
        ok = res.converged.to(pts.device)
        new = res.x.reshape(pts.shape)
        if has_energy(model):
            new_e = res.energy
        else:  # along the straight segment from the image to the saddle
            start = pts.reshape(-1, *shape)
            new_e = energy + line_integral(model, start, res.x, sig)
        pts[ok], energy[ok] = new[ok], new_e[ok]
        cert = res.certificate
        good = (ok & cert.certified.to(ok.device)).cpu()
        index[good] = cert.morse_index[good]
    barrier = torch.full((p,), float("nan"), dtype=e.dtype, device=e.device)
    if pair.numel():
        top = torch.full((p,), float("-inf"), dtype=e.dtype, device=e.device)
        top = top.scatter_reduce(0, pair.to(e.device), energy, reduce="amax")
        barrier = torch.where(torch.isfinite(top), top - e[:, 0], barrier)
    return pts, energy, pair, img, index, barrier
