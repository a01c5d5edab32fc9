"""Translation-stable, dtype-aware numerics of the exact models (issue 11, item 4).

Truth: mpmath at 50 digits (``−log p`` written from the Gaussian pdf), float64 references
with every distance ``‖x − y_k‖²`` formed directly, and the invariance of the exact
models under a common translation of data and queries.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch

import memscape as ms
from memscape import kernels
from memscape.kernels import EXACT_TOP, centre_memories, streamed_distance_softmax

F64 = torch.float64
OFFSET = 1000.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def direct_energy(x: torch.Tensor, y: torch.Tensor, sigma: float, log_w=None) -> torch.Tensor:
    """−log Σ_k w_k N(x; y_k, σ²I) in float64 from direct distances (w uniform by default)."""
    x, y = x.double().reshape(len(x), -1), y.double().reshape(len(y), -1)
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    log_w = torch.full((len(y),), -math.log(len(y)), dtype=F64) if log_w is None else log_w
    d = x.shape[1]
    return -torch.logsumexp(log_w - sq / (2 * sigma**2), 1) + 0.5 * d * math.log(
        2 * math.pi * sigma**2
    )


def mp_energy(x: torch.Tensor, y: torch.Tensor, var: float, weights=None) -> list:
    """−log Σ_k w_k N(x; y_k, var·I) at 50 digits from the exact binary values."""
    with mpmath.workdps(50):
        k, d = y.shape
        w = [mpmath.mpf(1) / k] * k if weights is None else [mpmath.mpf(float(v)) for v in weights]
        out = []
        for row in x.tolist():
            total = mpmath.mpf(0)
            for wk, yk in zip(w, y.tolist(), strict=True):
                sq = sum((mpmath.mpf(a) - mpmath.mpf(b)) ** 2 for a, b in zip(row, yk, strict=True))
                total += wk * mpmath.exp(-sq / (2 * mpmath.mpf(var)))
            out.append(-mpmath.log(total) + mpmath.mpf(d) / 2 * mpmath.log(2 * mpmath.pi * var))
        return out


def rel_err(got: torch.Tensor, want) -> float:
    want_t = torch.tensor([float(v) for v in want], dtype=F64)
    return float(((got.double() - want_t).abs() / want_t.abs().clamp(min=1.0)).max())


# ---------------------------------------------------------------- translation (float64)
TRIANGLE = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.12, 0.26]], dtype=F64)


def test_translation_by_1000_keeps_the_census():
    """Three points, σ = 0.05: the same minima, saddles and maximum before and after a
    translation by 1000, at locations shifted by exactly the offset (to 1e-8)."""
    found = []
    for off in (0.0, OFFSET):
        cps = ms.critical_points(
            ms.EmpiricalDiffusion(TRIANGLE + off), 0.05, n_starts=200, generator=gen(0)
        )
        ok = cps.converged
        pts = cps.points[ok] - off
        idx = cps.morse_index[ok]
        found.append((idx, pts))
        counts = torch.bincount(idx, minlength=3).tolist()
        assert counts == [3, 3, 1], (off, counts)  # 3 minima, 3 saddles, 1 maximum
    (i0, p0), (i1, p1) = found
    for k in range(3):
        a, b = p0[i0 == k], p1[i1 == k]
        dist = torch.cdist(a, b)
        assert bool((dist.min(1).values < 1e-8).all()), (k, dist.min(1).values)
        assert bool((dist.min(0).values < 1e-8).all()), (k, dist.min(0).values)


@pytest.mark.parametrize("sigma", [0.01, 0.05, 1.0])
def test_translated_exact_diffusion_energy_matches_mpmath(sigma):
    x = torch.tensor([[0.15, 0.0], [0.14, 0.09], [0.05, 0.02], [0.3, 0.01]], dtype=F64)
    base = ms.EmpiricalDiffusion(TRIANGLE).energy(x, sigma)
    for off in (0.0, OFFSET):
        y, q = TRIANGLE + off, x + off
        got = ms.EmpiricalDiffusion(y).energy(q, sigma)
        assert rel_err(got, mp_energy(q, y, sigma**2)) < 1e-12
        torch.testing.assert_close(got, base, rtol=1e-10, atol=0)


def test_translated_large_set_energy_score_and_hessian():
    """K = 200 > EXACT_TOP in 3-D (streamed with leading terms direct): energy invariant to
    1e-10 relative, score and Hessian invariant to the rounding of the translated inputs."""
    y = torch.randn(200, 3, generator=gen(1), dtype=F64)
    x = torch.cat([y[:10] + 0.05 * torch.randn(10, 3, generator=gen(2), dtype=F64),
                   0.5 * (y[10:20] + y[20:30])])  # fmt: skip
    for sigma in (0.02, 0.3):
        m0, m1 = ms.EmpiricalDiffusion(y, chunk_size=32), ms.EmpiricalDiffusion(y + OFFSET)
        e0, e1 = m0.energy(x, sigma), m1.energy(x + OFFSET, sigma)
        torch.testing.assert_close(e1, e0, rtol=1e-10, atol=0)
        torch.testing.assert_close(e0, direct_energy(x, y, sigma), rtol=1e-12, atol=1e-12)
        s0, s1 = m0.score(x, sigma), m1.score(x + OFFSET, sigma)
        ulp = 2 * OFFSET * torch.finfo(F64).eps / sigma**2  # input rounding / σ²
        torch.testing.assert_close(s1, s0, rtol=1e-9, atol=10 * ulp)
        h0, h1 = m0.hessian(x, sigma), m1.hessian(x + OFFSET, sigma)
        torch.testing.assert_close(h1, h0, rtol=1e-8, atol=10 * ulp / sigma)
        d1 = m1.denoise(x + OFFSET, sigma) - OFFSET
        torch.testing.assert_close(d1, m0.denoise(x, sigma), rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_attention_denoiser_is_translation_stable(dtype):
    """``method="sdpa"`` (one scaled_dot_product_attention) runs in the centred
    coordinates: translating data and queries by 1000 moves the denoiser by exactly the
    offset, to the rounding of the translated inputs (float64), and in float32 it stays
    within 1e-4 of the float64 truth for the same (rounded) inputs near the data, where
    the uncentred expanded form errs by u·‖x‖²/σ² ≈ 450 in the logits."""
    g = gen(10)
    y = torch.randn(200, 3, generator=g, dtype=F64)
    x = torch.cat([y[:10] + 0.05 * torch.randn(10, 3, generator=g, dtype=F64),
                   0.5 * (y[10:20] + y[20:30])])  # fmt: skip
    for sigma in (0.02, 0.3):
        yt, xt = (y + OFFSET).to(dtype), (x + OFFSET).to(dtype)
        got = ms.EmpiricalDiffusion(yt, method="sdpa").denoise(xt, sigma)
        sq = torch.cdist(xt.double(), yt.double(), compute_mode="donot_use_mm_for_euclid_dist")
        want = torch.softmax(-sq.square() / (2 * sigma**2), 1) @ yt.double()
        if dtype == F64:
            torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
        else:  # midpoints are ill-conditioned: u·β·spread² ≈ 6e-4 moves their two weights
            torch.testing.assert_close(got[:10].double(), want[:10], rtol=0, atol=1e-4)
            torch.testing.assert_close(got[10:].double(), want[10:], rtol=0, atol=1e-2)
        if dtype == F64:
            base = ms.EmpiricalDiffusion(y, method="sdpa").denoise(x, sigma)
            torch.testing.assert_close(got - OFFSET, base, rtol=0, atol=1e-9)


def test_translated_gaussian_mixture_energy_matches_mpmath():
    means = torch.tensor([[0.0, 0.0], [0.4, 0.1], [0.1, 0.5]], dtype=F64)
    w = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    x = torch.tensor([[0.2, 0.05], [0.1, 0.3], [0.0, 0.01]], dtype=F64)
    v, sigma = 0.02**2, 0.01
    for off in (0.0, OFFSET):
        model = ms.GaussianMixtureDiffusion(means + off, variance=v, weights=w)
        got = model.energy(x + off, sigma)
        assert rel_err(got, mp_energy(x + off, means + off, v + sigma**2, w)) < 1e-12
    s0 = ms.GaussianMixtureDiffusion(means, v, w).score(x, sigma)
    s1 = ms.GaussianMixtureDiffusion(means + OFFSET, v, w).score(x + OFFSET, sigma)
    torch.testing.assert_close(s1, s0, rtol=1e-9, atol=1e-6)


def test_translated_modern_hopfield_matches_mpmath():
    """Eq. 2 and eq. 3 of Ramsauer et al. at β = 400 with memories near 1000 (where ½‖ξ‖²
    and the log-sum-exp cancel to ~10 digits) against mpmath: energy to 1e-12 relative
    (the expanded form: 2.4e-10), update to 1e-11."""
    mem = TRIANGLE + OFFSET
    xi = torch.tensor([[0.15, 0.0], [0.14, 0.09], [0.01, 0.02]], dtype=F64) + OFFSET
    beta = 400.0
    model = ms.ModernHopfield(mem, beta=beta)
    with mpmath.workdps(50):
        b = mpmath.mpf(beta)
        rows = [[mpmath.mpf(a) for a in row] for row in mem.tolist()]
        big_m2 = max(sum(a * a for a in row) for row in rows)
        for q, e, u in zip(xi.tolist(), model.energy(xi), model.update(xi), strict=True):
            q = [mpmath.mpf(a) for a in q]
            logits = [b * sum(a * c for a, c in zip(q, row, strict=True)) for row in rows]
            lse = mpmath.log(sum(mpmath.exp(v) for v in logits))
            want = -lse / b + sum(a * a for a in q) / 2 + mpmath.log(3) / b + big_m2 / 2
            assert abs(float(e) - want) < 1e-12 * abs(want)
            w = [mpmath.exp(v - lse) for v in logits]
            for i in range(2):
                upd = sum(wk * row[i] for wk, row in zip(w, rows, strict=True))
                assert abs(float(u[i]) - upd) < 1e-11


# ---------------------------------------------------------------- float32 accuracy
def _queries(data: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    n, d = 16, data.shape[1]
    return torch.cat(
        [
            data[:n] + sigma * torch.randn(n, d, generator=g),  # near the data
            torch.rand(n, d, generator=g) * 2 - 1,  # anywhere in the cube
            0.5 * (data[:n] + data[n : 2 * n]),  # between two points
        ]
    )


@pytest.mark.parametrize("sigma", [1e-3, 1e-2, 0.1, 1.0, 10.0])
def test_float32_energy_tracks_float64_on_the_cube(sigma):
    """Data in [−1, 1]^64, float32: |E − E_ref| ≤ 1e-4 (1 + |E|) (the expanded form was
    off by 1.6e-2 relative at σ = 1e-3)."""
    g = gen(3)
    data = torch.rand(300, 64, generator=g) * 2 - 1
    model = ms.EmpiricalDiffusion(data, chunk_size=64)  # several chunks
    x = _queries(data, sigma, g)
    e = model.energy(x, sigma)
    assert e.dtype == torch.float32
    ref = direct_energy(x, data, sigma)
    assert float(((e.double() - ref).abs() / (1 + ref.abs())).max()) < 1e-4
    # the score near the data and in the cube (not between two points, where float32
    # weights of two equidistant points decide D) follows −∇ of the reference
    xg = x[:32].double().requires_grad_(True)
    (grad,) = torch.autograd.grad(direct_energy(xg, data, sigma).sum(), xg)
    err = (model.score(x[:32], sigma).double() + grad).norm(dim=1)
    assert float((err / (1 + grad.norm(dim=1))).max()) < 1e-5


@pytest.mark.parametrize("sigma", [1e-3, 0.1, 10.0])
def test_float32_energy_tracks_float64_in_one_direct_pass(sigma):
    """The same bound with the default chunk rule, where K = 300 is one direct pass."""
    g = gen(3)
    data = torch.rand(300, 64, generator=g) * 2 - 1
    model = ms.EmpiricalDiffusion(data)
    assert kernels.chunk_size_for(48, 300, 64, 4) == 300
    x = _queries(data, sigma, g)
    ref = direct_energy(x, data, sigma)
    assert float(((model.energy(x, sigma).double() - ref).abs() / (1 + ref.abs())).max()) < 1e-4
    # the denoiser near the data and in the cube (between two points float32 decides)
    sq = torch.cdist(x[:32].double(), data.double(), compute_mode="donot_use_mm_for_euclid_dist")
    want = torch.softmax(-sq.square() / (2 * sigma**2), 1) @ data.double()
    assert float((model.denoise(x[:32], sigma).double() - want).abs().max()) < 1e-4


def test_float32_energy_with_a_cluster_beyond_exact_top():
    """More than EXACT_TOP memories within σ of each other at σ = 1e-3: their weights are
    comparable, so those queries are redone with every distance direct."""
    g = gen(4)
    data = torch.rand(100, 64, generator=g) * 2 - 1
    data = torch.cat([data, data[0] + 1e-4 * torch.randn(2 * EXACT_TOP, 64, generator=g)])
    sigma = 1e-3
    x = torch.cat([data[0] + sigma * torch.randn(6, 64, generator=g), _queries(data, sigma, g)])
    e = ms.EmpiricalDiffusion(data, chunk_size=32).energy(x, sigma)
    ref = direct_energy(x, data, sigma)
    assert float(((e.double() - ref).abs() / (1 + ref.abs())).max()) < 1e-5


def test_distance_kernel_against_materialized_softmax():
    """Every output of the kernel, chunked, per-query β and log-weights, against one
    materialized float64 softmax of a_k − β‖x − y_k‖²/2 with direct distances."""
    g = gen(5)
    y = torch.randn(50, 4, generator=g) * 3 + 7.0  # away from the origin: centred
    x = y[:9] + 0.3 * torch.randn(9, 4, generator=g)
    beta = torch.rand(9, generator=g) * 30 + 0.5
    a = torch.randn(50, generator=g)
    mem = centre_memories(y)
    assert float(mem.centre.norm()) > 10  # centring applied
    st = streamed_distance_softmax(x, mem, beta, a, chunk_size=7, covariance=True, exact_lse=True)
    ell = a.double() - 0.5 * beta.double()[:, None] * ((x[:, None] - y[None]).double() ** 2).sum(-1)
    w = torch.softmax(ell, 1)
    mean = w @ y.double()
    cov = torch.einsum("bk,ki,kj->bij", w, y.double(), y.double()) - mean[:, :, None] * mean[
        :, None, :
    ]  # fmt: skip
    kw = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(st.lse.double(), torch.logsumexp(ell, 1), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(st.mean.double(), mean, **kw)
    torch.testing.assert_close(st.drift.double(), mean - x.double(), **kw)
    torch.testing.assert_close(st.cov.double(), cov, rtol=1e-4, atol=1e-4)


def test_energy_gradient_through_the_exact_terms_is_the_score():
    """Autograd through the streamed-plus-direct energy (K > EXACT_TOP, small σ) equals
    −∇ of the naive float64 density."""
    g = gen(6)
    y = torch.randn(40, 3, generator=g, dtype=F64)
    x = y[:5] + 0.02 * torch.randn(5, 3, generator=g, dtype=F64)
    model = ms.EmpiricalDiffusion(y, chunk_size=16)
    xg = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(model.energy(xg, 0.05).sum(), xg)
    xr = x.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(direct_energy(xr, y, 0.05).sum(), xr)
    torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_and_returned_in_float32(half):
    """float16 gave NaN for σ ≤ 3e-3 (σ² underflows); now float32 inside and out."""
    g = gen(7)
    data = (torch.rand(40, 8, generator=g) * 2 - 1).to(half)
    x = (data[:6].float() + 1e-3 * torch.randn(6, 8, generator=g)).to(half)
    for model in (ms.EmpiricalDiffusion(data), ms.EmpiricalDiffusion(data.float())):
        for sigma in (1e-3, 0.5):
            e = model.energy(x, sigma)
            outs = (e, model.score(x, sigma), model.denoise(x, sigma), model.hessian(x, sigma))
            assert all(o.dtype == torch.float32 and bool(torch.isfinite(o).all()) for o in outs)
            ref = direct_energy(x, data, sigma)
            assert float(((e.double() - ref).abs() / (1 + ref.abs())).max()) < 1e-5
    mix = ms.GaussianMixtureDiffusion(data[:3], variance=1e-6)
    assert mix.energy(x, 1e-3).dtype == torch.float32
    hop = ms.ModernHopfield(data, beta=1e5)
    assert bool(torch.isfinite(hop.energy(x)).all()) and hop.update(x).dtype == torch.float32


def test_integer_queries_are_cast_to_the_data_dtype():
    y = torch.tensor([[0.0, 0.0], [2.0, 1.0], [1.0, 3.0]], dtype=F64)
    q = torch.tensor([[1, 1], [2, 2]])
    for model, want in (
        (ms.EmpiricalDiffusion(y), direct_energy(q, y, 0.7)),
        (ms.GaussianMixtureDiffusion(y, variance=0.01), direct_energy(q, y, math.sqrt(0.5))),
    ):
        e = model.energy(q, 0.7)
        assert e.dtype == F64
        if isinstance(model, ms.EmpiricalDiffusion):
            torch.testing.assert_close(e, want, rtol=1e-12, atol=0)
        assert model.score(q, 0.7).dtype == F64
    assert ms.ModernHopfield(y, beta=2.0).update(q).dtype == F64


# ---------------------------------------------------------------- σ the dtype cannot hold
@pytest.mark.parametrize(
    "dtype,sigma",
    [(F64, 1e-160), (F64, 1e160), (torch.float32, 1e-20), (torch.float32, 1e20)],
)
def test_unrepresentable_sigma_is_a_clear_error(dtype, sigma):
    y = torch.randn(5, 3, generator=gen(8), dtype=dtype)
    x = y + 0.1
    model = ms.EmpiricalDiffusion(y)
    for fn in (model.energy, model.score, model.denoise, model.hessian):
        with pytest.raises(ValueError, match="sigma"):
            fn(x, sigma)
    with pytest.raises(ValueError, match="sigma"):
        model.energy(x, torch.tensor([0.5, 0.5, 0.5, 0.5, sigma], dtype=F64))
    if sigma > 1:
        with pytest.raises(ValueError, match="sigma"):
            ms.GaussianMixtureDiffusion(y, variance=1.0).energy(x, sigma)


def test_sigma_at_the_edge_of_the_dtype_stays_finite():
    """σ = 1e-150 (float64) and 1e-15 (float32) still work: each query denoises to its
    nearest point and the energy is ‖x − y_*‖²/2σ² + log K + (d/2) log 2πσ²."""
    for dtype, sigma in ((F64, 1e-150), (torch.float32, 1e-15)):
        y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype)
        x = torch.tensor([[0.1, 0.2], [0.9, -0.1]], dtype=dtype) * 1e-1 + y[:2]
        model = ms.EmpiricalDiffusion(y)
        torch.testing.assert_close(model.denoise(x, sigma), y[:2])
        sq = (x - y[:2]).double().pow(2).sum(1)
        want = sq / (2 * sigma**2) + math.log(3) + math.log(2 * math.pi) + 2 * math.log(sigma)
        torch.testing.assert_close(model.energy(x, sigma).double(), want, rtol=1e-6, atol=0)
    # a mixture with variance v > 0 is well defined as σ → 0: D(x, σ) → x
    mix = ms.GaussianMixtureDiffusion(torch.eye(2, dtype=F64), variance=0.1)
    torch.testing.assert_close(mix.denoise(x.double(), 1e-200), x.double())


def test_attention_at_the_edge_of_the_dtype_stays_finite():
    """σ = 1e-150 (float64, β = 1e300 in the queries) and 1e-15 (float32) through SDPA:
    each query denoises to its nearest point, as in the streamed kernel."""
    for dtype, sigma in ((F64, 1e-150), (torch.float32, 1e-15)):
        y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype)
        x = torch.tensor([[0.1, 0.2], [0.9, -0.1]], dtype=dtype) * 1e-1 + y[:2]
        got = ms.EmpiricalDiffusion(y, method="sdpa").denoise(x, sigma)
        torch.testing.assert_close(got, y[:2])


def test_logits_beyond_the_dtype_are_a_clear_error():
    y = torch.randn(20, 4, generator=gen(9)) * 100  # float32, large spread
    with pytest.raises(ValueError, match="sigma"):
        ms.EmpiricalDiffusion(y).energy(y[:2] + 1.0, 1e-18)
    with pytest.raises(ValueError, match="beta"):
        ms.ModernHopfield(y, beta=1e36).energy(y[:2])
    with pytest.raises(ValueError, match="beta"):
        ms.ModernHopfield(y, beta=1e39).update(y[:2])  # β itself overflows float32


def test_centred_copy_follows_in_place_edits_of_the_data():
    """The centred memories are cached per data tensor and its version counter."""
    y = TRIANGLE + OFFSET
    model = ms.EmpiricalDiffusion(y.clone())
    x = torch.tensor([[0.2, 0.1]], dtype=F64) + OFFSET
    before = model.energy(x, 0.1)
    model.data[0] += 0.05
    after = model.energy(x, 0.1)
    torch.testing.assert_close(after, direct_energy(x, model.data, 0.1), rtol=1e-12, atol=0)
    assert not torch.allclose(before, after)
