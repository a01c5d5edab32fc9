"""The softmax kernels: the chunk rule, the streamed merge and the attention (SDPA) path.

Truth: one materialized float64 softmax of ``a_k − β‖x − y_k‖²/2`` with every distance
formed directly (``torch.cdist`` without the matmul expansion), closed-form gradients
(``∂ lse/∂x = β · mean`` for dot-product logits), and invariance under translating data
and queries together.
"""

from __future__ import annotations

import pytest
import torch

import memscape as ms
from memscape import kernels
from memscape.kernels import (
    centre_memories,
    chunk_size_for,
    streamed_distance_softmax,
    streamed_softmax,
)

F64 = torch.float64
OFFSET = 1000.0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def direct(x: torch.Tensor, y: torch.Tensor, beta, log_w=None):
    """``(lse, mean, cov)`` of ``a − β‖x − y‖²/2`` in float64, distances formed directly."""
    x, y = x.double(), y.double()
    sq = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()
    b = beta.double()[:, None] if isinstance(beta, torch.Tensor) else beta
    ell = -0.5 * b * sq + (0 if log_w is None else log_w.double())
    w = torch.softmax(ell, 1)
    mean = w @ y
    cov = torch.einsum("bk,ki,kj->bij", w, y, y) - mean[:, :, None] * mean[:, None, :]
    return torch.logsumexp(ell, 1), mean, cov


def problem(k: int = 300, d: int = 5, b: int = 12, seed: int = 0, dtype=F64):
    g = gen(seed)
    y = torch.randn(k, d, generator=g, dtype=F64) * 2
    x = y[:b] + 0.4 * torch.randn(b, d, generator=g, dtype=F64)
    beta = torch.rand(b, generator=g, dtype=F64) * 8 + 0.5
    a = torch.randn(k, generator=g, dtype=F64)
    return y.to(dtype), x.to(dtype), beta.to(dtype), a.to(dtype)


# ---------------------------------------------------------------- the chunk rule
def test_chunk_rule_direct_when_the_working_set_fits():
    """K = 1000 at B = 256, d = 64 (float32 and float64) is one direct pass; K = 2·10⁵
    is chunked, in equal chunks that are multiples of 64 and at least _MIN_CHUNK."""
    assert chunk_size_for(256, 1000, 64, 4) == 1000
    assert chunk_size_for(256, 1000, 64, 8) == 1000
    assert chunk_size_for(1, 1, 3, 8) == 1
    for b, k, d, e in [(256, 200_000, 64, 4), (16, 20_000, 784, 4), (2048, 20_000, 64, 8),
                       (256, 5_000, 3072, 4), (256, 8_000, 64, 4)]:  # fmt: skip
        c = chunk_size_for(b, k, d, e)
        assert c < k and c % 64 == 0 and c >= kernels._MIN_CHUNK, (b, k, d, c)
        weight = min(1.0, kernels._REUSE_BATCH / b)  # the memories' share of the working set
        budget = max(kernels._MIN_CHUNK, kernels._CHUNK_BYTES // int((b + weight * d) * e))
        assert c < budget + 64  # the working set stays within the budget (up to alignment)
        n, n_budget = -(-k // c), -(-k // budget)
        assert n <= n_budget  # evening out never adds a chunk …
        assert n < n_budget or k - (n - 1) * c > c - 64 * n  # … nor leaves a short last one


def test_chunk_size_is_validated_before_any_work():
    y, x, _, _ = problem()
    mem = centre_memories(y)
    for bad in (-1, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="chunk_size"):
            streamed_distance_softmax(x, mem, 1.0, chunk_size=bad)
    with pytest.raises(ValueError, match="method"):
        streamed_distance_softmax(x, mem, 1.0, method="flash")
    with pytest.raises(ValueError, match="method"):
        ms.EmpiricalDiffusion(y, method="cuda").denoise(x, 1.0)


# ---------------------------------------------------------------- the streamed kernel
@pytest.mark.parametrize("chunk", [0, 1, 7, 64, 299, 300, 10_000])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("per_row", [False, True])
def test_streamed_merge_matches_one_materialized_softmax(chunk, weights, per_row):
    """Every output, any chunking (direct, several chunks, chunk of 1), shared or per-query
    β, with or without log-weights, data away from the origin (centred)."""
    y, x, beta, a = problem(seed=1)
    y, x = y + 7.0, x + 7.0
    b = beta if per_row else 3.0
    log_w = a if weights else None
    st = streamed_distance_softmax(
        x, centre_memories(y), b, log_w, chunk_size=chunk, covariance=True
    )
    lse, mean, cov = direct(x, y, b, log_w)
    torch.testing.assert_close(st.lse, lse, rtol=1e-12, atol=1e-11)
    torch.testing.assert_close(st.mean, mean, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(st.drift, mean - x, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(st.cov, cov, rtol=1e-9, atol=1e-10)
    fast = streamed_distance_softmax(x, centre_memories(y), b, log_w, chunk_size=chunk,
                                     need_lse=False)  # fmt: skip
    assert fast.lse is None
    torch.testing.assert_close(fast.mean, mean, rtol=1e-11, atol=1e-11)


def test_chunk_merge_with_a_dominant_late_chunk():
    """At small σ the nearest memory sits in the last chunk, e^200 above every earlier
    one: the merge weights underflow to exactly 0/1 without losing the mean or lse."""
    g = gen(2)
    y = torch.randn(1000, 3, generator=g, dtype=F64)
    x = y[-3:] + 1e-3 * torch.randn(3, 3, generator=g, dtype=F64)
    for dtype, beta in ((F64, 4e4), (torch.float32, 4e3)):
        mem = centre_memories(y.to(dtype))
        st = streamed_distance_softmax(x.to(dtype), mem, beta, chunk_size=64)
        lse, mean, _ = direct(x, y, beta)
        torch.testing.assert_close(
            st.mean.double(), mean, rtol=0, atol=1e-12 if dtype == F64 else 1e-5
        )
        # the expanded logits' rounding, 4u·β(‖x'‖ + R)²/2 (exact_lse re-evaluates it away)
        scale = beta * (float(mem.shift(x.to(dtype)).norm(dim=1).max()) + mem.radius) ** 2 / 2
        torch.testing.assert_close(
            st.lse.double(), lse, rtol=0, atol=4 * torch.finfo(dtype).eps * scale
        )


def test_dot_product_lse_gradient_is_beta_times_the_mean():
    """ℓ = β(xᵀy + c): ∂ lse/∂x = β · mean (autograd through the chunk merge and its maxima)."""
    g = gen(3)
    y = torch.randn(200, 4, generator=g, dtype=F64)
    c = torch.randn(200, generator=g, dtype=F64)
    x = torch.randn(6, 4, generator=g, dtype=F64, requires_grad=True)
    beta = torch.rand(6, generator=g, dtype=F64) + 0.5
    for chunk in (200, 37):
        st = streamed_softmax(x, y, beta, c, chunk_size=chunk)
        (grad,) = torch.autograd.grad(st.lse.sum(), x)
        logits = beta[:, None] * (x.detach() @ y.T + c)
        torch.testing.assert_close(st.lse, torch.logsumexp(logits, 1), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad, beta[:, None] * (torch.softmax(logits, 1) @ y),
                                   rtol=1e-10, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("chunk", [0, 96])
def test_subnormal_weights_are_flushed_without_changing_the_statistics(chunk):
    """float32, d = 64, σ = 1: ~6 % of the weights fall below 2⁻¹²⁶ (subnormal; the kernel
    flushes them to 0 on the calling thread, numeric.flush_denormals). Mean, covariance and
    lse agree with the float64 softmax to float32 rounding, and the caller's thread is left
    not flushing."""
    from memscape.numeric import flushing_denormals

    g = gen(7)
    y = torch.randn(400, 64, generator=g)
    x = y[:16] + torch.randn(16, 64, generator=g)
    lse, mean, cov = direct(x, y, 1.0)
    ell = -0.5 * torch.cdist(x.double(), y.double()).square()
    w = torch.softmax(ell, 1)
    tiny = torch.finfo(torch.float32).tiny
    assert float(((w > 0) & (w < tiny)).double().mean()) > 0.01  # the case is real
    st = streamed_distance_softmax(x, centre_memories(y), 1.0, chunk_size=chunk, covariance=True,
                                   exact_lse=True)  # fmt: skip
    assert not flushing_denormals()
    torch.testing.assert_close(st.mean.double(), mean, rtol=0, atol=2e-5)
    torch.testing.assert_close(st.cov.double(), cov, rtol=0, atol=2e-5)
    torch.testing.assert_close(st.lse.double(), lse, rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------- peaked posteriors
def _peaked_weights(b: int, k: int, peaked: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rows of weights summing to 1: where ``peaked``, three memories hold all but 1e-9 of
    the mass (below float32's eps, 1.2e-7); elsewhere a spread softmax."""
    g = gen(seed)
    p = torch.softmax(torch.randn(b, k, generator=g, dtype=F64), 1)
    tail = torch.full((k,), 1e-9 / (k - 3), dtype=F64)
    head = torch.tensor([0.6, 0.3, 0.1 - 1e-9], dtype=F64)
    for r in peaked.nonzero().squeeze(1).tolist():
        row = tail.clone()
        row[torch.randperm(k, generator=g)[:3]] = head
        p[r] = row
    return p


def test_peaked_rows_sum_over_their_leading_weights_only():
    """d = 256, float32: rows whose 8 largest weights leave < eps of the mass are summed over
    those alone. Truth, computed here in float64: Σ over the leading weights for those rows
    (the memories outside them are set to 10⁶, so reading any of them would show), the full
    product for the spread rows and for rows led by one weight of 0.9 with 0.1 spread (the
    10⁶ entries included)."""
    b, k, d = 64, 500, 256
    peaked = torch.arange(b) % 4 != 3  # the probe (every 8th row) sees 8 of 8 peaked
    p64 = _peaked_weights(b, k, peaked)
    p64[3::8] *= 0.1  # rows with one weight of 0.9 and 0.1 spread: candidates, not qualifying
    p64[3::8, 7] += 0.9
    y64 = torch.randn(k, d, generator=gen(1), dtype=F64)
    lead = torch.zeros(k, dtype=torch.bool)
    lead[(p64[peaked] > 1e-6).nonzero()[:, 1]] = True
    y64[~lead] = 1e6
    p, y = p64.float(), y64.float()
    out = kernels._posterior_sum(p, y).double()
    top = torch.where(p64 > 1e-6, p64, 0.0)
    torch.testing.assert_close(out[peaked], (top @ y64)[peaked], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(out[~peaked], (p64 @ y64)[~peaked], rtol=1e-5, atol=0)


def test_peaked_rows_take_the_matmul_when_the_probe_says_it_does_not_pay():
    """The probe (every 8th row, here rows 0, 8, …) sees no qualifying row, so q·d = 0 <
    _SPARSE_PAYBACK: every row is the full product, tail included, although one row in 8
    (rows 1, 9, …) is peaked. Truth: the float64 product, with the tail memories at 10⁶
    (the shortcut would drop ~10⁻³ there)."""
    b, k, d = 64, 500, 256
    peaked = torch.arange(b) % 8 == 1
    p64 = _peaked_weights(b, k, peaked, seed=2)
    y64 = torch.randn(k, d, generator=gen(3), dtype=F64)
    lead = torch.zeros(k, dtype=torch.bool)
    lead[(p64[peaked] > 1e-6).nonzero()[:, 1]] = True
    y64[~lead] = 1e6
    out = kernels._posterior_sum(p64.float(), y64.float()).double()
    full = p64 @ y64
    torch.testing.assert_close(out, full, rtol=1e-5, atol=2e-5)  # float32 sums of 500 terms
    top = torch.where(p64 > 1e-6, p64, 0.0) @ y64  # what the shortcut would give: not that
    assert float((top - full)[peaked].abs().max()) > 1e-4


@pytest.mark.parametrize("chunk", [0, 256])
@pytest.mark.parametrize("sigma", [1.0, 4.0])
def test_exact_denoiser_at_image_scale_is_exact_for_peaked_posteriors(chunk, sigma):
    """d = 784, float32: at σ = 1 every posterior is peaked (the sparse sum serves all rows),
    at σ = 4 part of them (measured: most of the rows). The denoiser equals the float64
    softmax with distances formed directly, to float32 rounding of the data's scale."""
    g = gen(4)
    y = torch.randn(1000, 784, generator=g)
    x = y[:32] + sigma * torch.randn(32, 784, generator=g)
    _, mean, _ = direct(x, y, 1 / sigma**2)
    top = torch.softmax(-torch.cdist(x, y).square() / (2 * sigma**2), 1).topk(8, 1).values
    qualify = float((1 - top.sum(1) <= torch.finfo(torch.float32).eps).double().mean())
    assert qualify * 784 >= kernels._SPARSE_PAYBACK  # the peaked path is taken
    model = ms.EmpiricalDiffusion(y, chunk_size=chunk)
    torch.testing.assert_close(model.denoise(x, sigma).double(), mean, rtol=0, atol=5e-5)


# ---------------------------------------------------------------- the attention path
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("offset", [0.0, OFFSET])
def test_sdpa_mean_equals_the_streamed_kernel(weights, per_row, offset):
    """``method="sdpa"`` against the streamed kernel and the direct float64 softmax, in
    float64 and float32, with data and queries translated by 1000 (both run in the
    centred coordinates, so float32 keeps its digits: the mean is off by the rounding
    of the translated inputs, ~6e-5 at 1000, not by ‖x‖²/σ²)."""
    y, x, beta, a = problem(k=700, d=6, b=20, seed=4)
    b = beta if per_row else 2.5
    log_w = a if weights else None
    _, mean, _ = direct(x, y, b, log_w)
    for dtype, tol in ((F64, 1e-12), (torch.float32, 2e-6)):
        yt, xt = (y + offset).to(dtype), (x + offset).to(dtype)
        bt = b.to(dtype) if isinstance(b, torch.Tensor) else b
        wt = None if log_w is None else log_w.to(dtype)
        mem = centre_memories(yt)
        kw = {"need_lse": False, "chunk_size": 128}
        att = streamed_distance_softmax(xt, mem, bt, wt, method="sdpa", **kw)
        st = streamed_distance_softmax(xt, mem, bt, wt, method="streamed", **kw)
        assert att.lse is None and att.cov is None
        scale = 1 + offset * (dtype == torch.float32)  # the translated inputs' rounding
        torch.testing.assert_close(att.mean_centred, st.mean_centred, rtol=0, atol=tol * 10)
        torch.testing.assert_close(att.mean.double() - offset, mean, rtol=0, atol=tol * scale * 60)
        torch.testing.assert_close(att.drift.double(), mean - x, rtol=0, atol=tol * scale * 60)


def test_sdpa_float32_without_centring_would_lose_the_digits():
    """The control for the test above: the same float32 attention on uncentred
    coordinates at offset 1000 is off by orders of magnitude more (so centring matters)."""
    y, x, _, _ = problem(k=400, d=6, b=10, seed=5)
    _, mean, _ = direct(x, y, 4.0)
    yt, xt = (y + OFFSET).float(), (x + OFFSET).float()
    raw = centre_memories(yt)._replace(centre=None, points=yt, half_sq=0.5 * yt.pow(2).sum(1))
    bad = streamed_distance_softmax(xt, raw, 4.0, need_lse=False, method="sdpa").mean
    good = streamed_distance_softmax(xt, centre_memories(yt), 4.0, need_lse=False,
                                     method="sdpa").mean  # fmt: skip
    err_bad = float((bad.double() - OFFSET - mean).abs().max())
    err_good = float((good.double() - OFFSET - mean).abs().max())
    assert err_good < 1e-3 < err_bad, (err_good, err_bad)


def test_sdpa_gradient_equals_the_streamed_gradient():
    """Autograd through the attention mean (float64) equals autograd through the stream."""
    y, x, beta, _ = problem(k=150, d=4, b=7, seed=6)
    mem = centre_memories(y)
    grads = []
    for method in ("sdpa", "streamed"):
        xg = x.clone().requires_grad_(True)
        st = streamed_distance_softmax(xg, mem, beta, need_lse=False, method=method, chunk_size=40)
        (g,) = torch.autograd.grad((st.mean * torch.arange(4.0, dtype=F64)).sum(), xg)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_method_auto_streams_on_cpu_and_sdpa_is_one_attention(monkeypatch):
    """On CPU ``"auto"`` never calls SDPA; ``"sdpa"`` calls it once per query block and
    energies (which need the lse) stream whatever the method."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    y, x, _, _ = problem(k=90, d=3, b=5, seed=7)
    auto = ms.EmpiricalDiffusion(y)
    sdpa = ms.EmpiricalDiffusion(y, method="sdpa")
    d_auto = auto.denoise(x, 0.5)
    assert calls == []
    torch.testing.assert_close(sdpa.denoise(x, 0.5), d_auto, rtol=1e-12, atol=1e-12)
    assert calls == [torch.Size([1, 1, 5, 8])]  # q = [βx', β] padded to 8 columns
    torch.testing.assert_close(sdpa.energy(x, 0.5), auto.energy(x, 0.5), rtol=0, atol=0)
    torch.testing.assert_close(sdpa.hessian(x, 0.5), auto.hessian(x, 0.5), rtol=0, atol=0)
    assert len(calls) == 1


def test_sdpa_query_blocks_bound_the_logits(monkeypatch):
    """With a small ``_SDPA_BYTES`` the queries go in blocks, and the result is the same."""
    y, x, beta, _ = problem(k=64, d=3, b=10, seed=8)
    mem = centre_memories(y)
    whole = streamed_distance_softmax(x, mem, beta, need_lse=False, method="sdpa").mean
    monkeypatch.setattr(kernels, "_SDPA_BYTES", 3 * 64 * 8)  # 3 queries per block
    blocks = streamed_distance_softmax(x, mem, beta, need_lse=False, method="sdpa").mean
    torch.testing.assert_close(blocks, whole, rtol=0, atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_auto_takes_sdpa_and_matches_the_cpu_stream(monkeypatch):
    """float32 on CUDA: the default attention path (per-query σ; a mixture's log-weights)
    against the float64 softmax, where each query's nearest memory dominates."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or real(*a, **k))  # fmt: skip
    y, x, beta, a = problem(k=5000, d=64, b=300, seed=9, dtype=torch.float32)
    _, mean, _ = direct(x, y, beta)
    model = ms.EmpiricalDiffusion(y.cuda())
    got = model.denoise(x.cuda(), (1 / beta.sqrt()).cuda()).cpu()
    torch.testing.assert_close(got.double(), mean, rtol=0, atol=1e-4)
    xm = y[:50] + 0.05 * torch.randn(50, 64, generator=gen(10))  # each near its own mean
    mix = ms.GaussianMixtureDiffusion(y[:50].cuda(), 0.1, a[:50].exp().cuda())
    ref = ms.GaussianMixtureDiffusion(y[:50].double(), 0.1, a[:50].exp().double())
    got = mix.denoise(xm.cuda(), 0.3).cpu().double()
    torch.testing.assert_close(got, ref.denoise(xm.double(), 0.3), rtol=0, atol=1e-4)
    assert len(calls) == 2


def test_exact_model_refuses_an_unknown_method_when_built():
    import memscape as ms

    with pytest.raises(ValueError, match="method"):
        ms.EmpiricalDiffusion(torch.zeros(3, 2), method="flash")
