"""Closed-form Hessian operators (memscape.curvature, the models' ``hessian_operator``).

Independent truth: the Hessian of ``−log p_σ`` written out here from posterior weights
computed in float64 by ``cdist`` (``∇²E = β(I − β Σ_k w_k (y_k − μ)(y_k − μ)ᵀ)``, an
einsum over the K points), and ``torch.autograd.functional.hessian`` of the model's
energy; the direct distances of the exact log-sum-exp against ``cdist`` without the
matmul expansion.
"""

from __future__ import annotations

import pytest
import torch

import memscape as ms
from memscape import curvature, kernels
from memscape.landscape import _fields

F64 = torch.float64


def hessian_truth(y: torch.Tensor, x: torch.Tensor, beta: torch.Tensor, log_w=None):
    """``β(I − β Cov_w(y))`` ``(B, d, d)`` from float64 weights ``softmax(a − β‖x − y‖²/2)``."""
    y, x, beta = y.double(), x.double(), beta.double().reshape(-1, 1)
    logits = -0.5 * beta * torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    if log_w is not None:
        logits = logits + log_w.double()
    w = torch.softmax(logits, dim=1)
    dev = y[None] - (w @ y)[:, None]  # (B, K, d)
    cov = torch.einsum("bk,bki,bkj->bij", w, dev, dev)
    eye = torch.eye(x.shape[1], dtype=F64)
    return beta[:, :, None] * (eye - beta[:, :, None] * cov)


def clustered(k: int, d: int, seed: int) -> torch.Tensor:
    """``k`` well-separated points (unit-scale Gaussian in ℝᵈ times 3)."""
    return 3 * torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def queries(y: torch.Tensor, seed: int) -> torch.Tensor:
    """Near a point, at pair midpoints (two weights of ½), and far from every point."""
    g = torch.Generator().manual_seed(seed)
    d = y.shape[1]
    near = y[:3] + 0.05 * torch.randn(3, d, generator=g, dtype=F64)
    mid = 0.5 * (y[3:6] + y[6:9]) + 0.01 * torch.randn(3, d, generator=g, dtype=F64)
    centre = y.mean(0, keepdim=True) + 0.1 * torch.randn(2, d, generator=g, dtype=F64)
    return torch.cat([near, mid, centre])


def apply_dense(h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (h @ v[:, :, None])[:, :, 0]


@pytest.mark.parametrize("k", [20, 120, 400])  # dense only; peaked rows sparse from K ≥ 64
@pytest.mark.parametrize("sigma", [0.3, 3.0])  # peaked and spread posteriors
def test_exact_model_operator_equals_the_dense_hessian(k, sigma):
    d = 16
    y = clustered(k, d, seed=k)
    x = queries(y, seed=1)
    model = ms.EmpiricalDiffusion(y)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    hv = model.hessian_operator(x, sigma)(v)
    want = apply_dense(hessian_truth(y, x, torch.full((x.shape[0],), sigma**-2, dtype=F64)), v)
    scale = float(want.abs().max())
    torch.testing.assert_close(hv, want, rtol=1e-9, atol=1e-11 * scale)
    # and against the model's own closed-form matrix (the dense and the operator path
    # share only the weights' definition)
    torch.testing.assert_close(hv, apply_dense(model.hessian(x, sigma), v), rtol=1e-9,
                               atol=1e-11 * scale)  # fmt: skip


def test_mixed_rows_per_query_sigma_and_float32():
    """Peaked and spread rows in one batch (the two paths' rows put back in place), σ per query."""
    d, k = 12, 200
    y = clustered(k, d, seed=3)
    x = queries(y, seed=4)
    sigma = torch.tensor([0.2, 0.3, 5.0, 0.25, 0.4, 6.0, 0.3, 8.0], dtype=F64)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    want = apply_dense(hessian_truth(y, x, sigma**-2), v)
    model = ms.EmpiricalDiffusion(y)
    p = model.posterior(x, sigma)
    peaked = 1 - p.topk(8, dim=1).values.sum(1) <= torch.finfo(F64).eps
    assert 0 < int(peaked.sum()) < x.shape[0]  # both kinds present
    hv = model.hessian_operator(x, sigma)(v)
    torch.testing.assert_close(hv, want, rtol=1e-9, atol=1e-11 * float(want.abs().max()))
    model32 = ms.EmpiricalDiffusion(y.float())
    hv32 = model32.hessian_operator(x.float(), sigma.float())(v.float())
    assert hv32.dtype == torch.float32
    err = float((hv32.double() - want).abs().max() / want.abs().max())
    assert err < 1e-4


def full_sum(w: torch.Tensor, pts: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Σ_k w_bk (y_k − μ_b)(y_k − μ_b)ᵀ v_b`` by einsum, in float64."""
    w, pts, v = w.double(), pts.double(), v.double()
    dev = pts[None] - (w @ pts)[:, None]
    return torch.einsum("bk,bki,bkj,bj->bi", w, dev, dev, v)


@pytest.mark.parametrize(
    ("rows", "lead", "k"),
    [(4, 8, 100), (9, 8, 100), (9, 20, 1400), (2, 60, 500)],  # bmm, slot loop, bmm, bmm
)
def test_compact_rows_read_only_their_leading_points(rows, lead, k):
    """A row whose weights ≥ eps/K are ``lead`` points is applied over those only: moving
    the others far changes nothing, where the full sum would move by ~1e-8."""
    d = 8
    y = clustered(k, d, seed=6)
    p = torch.full((rows, k), 1e-20, dtype=F64)  # the tail: below eps/K, under eps in all
    w = torch.linspace(2.0, 1.0, lead, dtype=F64)
    w = w / w.sum()
    p[:, :lead] = w - float(p[0, lead:].sum()) / lead
    v = torch.randn(rows, d, generator=torch.Generator().manual_seed(7), dtype=F64)
    far = y.clone()
    far[lead + 2 :] += 1e6
    got = curvature.covariance_operator(p, far)(v)
    torch.testing.assert_close(got, full_sum(w.expand(rows, lead), y[:lead], v), rtol=1e-12,
                               atol=1e-12)  # fmt: skip
    assert float((full_sum(p, far, v) - got).abs().max()) > 1e-9  # a dense read would show


@pytest.mark.parametrize("k", [2, 100])  # two matmuls, and the peaked rows' 8 points
def test_operator_keeps_its_digits_far_from_the_origin(k):
    """A close pair (distance 1e-3) 1e3 from the origin, each weight ½: ``Cov v`` is formed
    from deviations, not as the difference of two ``μ μᵀ v`` of size 1e6 (which would
    leave an error of ~1e-10 on a result of ~2.5e-7)."""
    g = torch.Generator().manual_seed(15)
    d = 6
    base = 1e3 * torch.randn(d, generator=g, dtype=F64)
    step = 1e-3 * torch.randn(d, generator=g, dtype=F64)
    y = torch.cat(
        [torch.stack([base, base + step]), 1e3 * torch.randn(k - 2, d, generator=g, dtype=F64)]
    )
    p = torch.zeros(3, k, dtype=F64)
    p[:, :2] = 0.5
    v = torch.randn(3, d, generator=g, dtype=F64)
    got = curvature.covariance_operator(p, y)(v)
    want = full_sum(p, y, v)
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8 * float(want.abs().max()))


@pytest.mark.parametrize("bias", [False, True])
def test_modern_hopfield_operator_equals_autograd_hessian(bias):
    d, k = 10, 90
    mem = clustered(k, d, seed=8) / 3
    c = torch.linspace(-0.5, 0.5, k, dtype=F64) if bias else None
    model = ms.ModernHopfield(mem, beta=4.0, bias=c)
    g = torch.Generator().manual_seed(9)
    x = mem[:5] + 0.05 * torch.randn(5, d, generator=g, dtype=F64)
    v = torch.randn(5, d, generator=g, dtype=F64)
    hv = model.hessian_operator(x)(v)
    for b in range(5):
        h = torch.autograd.functional.hessian(lambda z: model.energy(z[None])[0], x[b])
        torch.testing.assert_close(hv[b], h @ v[b], rtol=1e-9, atol=1e-10)


def test_mixture_operator_equals_autograd_hessian():
    g = torch.Generator().manual_seed(10)
    means = torch.randn(70, 6, generator=g, dtype=F64)
    weights = torch.rand(70, generator=g, dtype=F64) + 0.1
    model = ms.GaussianMixtureDiffusion(means, variance=0.05, weights=weights)
    x = means[:4] + 0.1 * torch.randn(4, 6, generator=g, dtype=F64)
    v = torch.randn(4, 6, generator=g, dtype=F64)
    hv = model.hessian_operator(x, 0.1)(v)
    for b in range(4):
        h = torch.autograd.functional.hessian(lambda z: model.energy(z[None], 0.1)[0], x[b])
        torch.testing.assert_close(hv[b], h @ v[b], rtol=1e-9, atol=1e-9)


def test_landscape_hvp_takes_the_closed_form_and_keeps_autograd_for_others():
    """``_fields.hvp_of``: the model's operator (no graph) where defined, autograd elsewhere."""
    y = clustered(80, 12, seed=11)
    model = ms.EmpiricalDiffusion(y)
    x = queries(y, seed=12)
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(13), dtype=F64)
    want = apply_dense(hessian_truth(y, x, torch.full((x.shape[0],), 1 / 0.5**2, dtype=F64)), v)
    closed = ms.EmpiricalDiffusion(y)

    def no_autograd_path(*args, **kwargs):
        raise AssertionError("the closed form should need neither score nor energy")

    closed.score = closed.energy = no_autograd_path  # type: ignore[method-assign]
    hv = _fields.hvp_of(closed, x, 0.5, (12,))(v)
    torch.testing.assert_close(hv, want, rtol=1e-9, atol=1e-11 * float(want.abs().max()))
    # half-precision states: computed in float32 (the model's rule), returned as given
    hv16 = _fields.hvp_of(ms.EmpiricalDiffusion(y.float()), x.half(), 0.5, (12,))(v.half())
    assert hv16.dtype == torch.float16
    assert float((hv16.double() - want).abs().max() / want.abs().max()) < 1e-2

    class EnergyOnly:  # the same energy, no closed forms: double backward through E
        event_shape = (12,)
        noise_conditioned = True

        def energy(self, z, sigma):
            return model.energy(z, sigma)

    hv_ag = _fields.hvp_of(EnergyOnly(), x, 0.5, (12,))(v)
    torch.testing.assert_close(hv_ag, want, rtol=1e-8, atol=1e-10 * float(want.abs().max()))

    class ScoreOnly:  # score s = −∇E of the same model: H = −∂s/∂x, symmetric part
        event_shape = (12,)
        noise_conditioned = True

        def score(self, z, sigma):
            return -torch.autograd.grad(model.energy(z, sigma).sum(), z, create_graph=True)[0]

    hv_s = _fields.hvp_of(ScoreOnly(), x, 0.5, (12,))(v)
    torch.testing.assert_close(hv_s, want, rtol=1e-8, atol=1e-10 * float(want.abs().max()))


@pytest.mark.parametrize("grad", [False, True])
def test_gathered_distances_in_blocks_equal_direct_distances(monkeypatch, grad):
    """The exact lse's direct distances, in several blocks, with and without autograd."""
    monkeypatch.setattr(kernels, "_GATHER_BYTES", 3 * 8 * 20 * 8)  # 3 queries per block
    g = torch.Generator().manual_seed(14)
    y = torch.randn(50, 20, generator=g, dtype=F64)
    x = torch.randn(11, 20, generator=g, dtype=F64, requires_grad=grad)
    idx = torch.randint(50, (11, 8), generator=g)
    with torch.set_grad_enabled(grad):
        sq = kernels._gathered_sq_dist(x, y, idx)
    want = torch.stack([((x[b] - y[idx[b]]) ** 2).sum(1) for b in range(11)])
    torch.testing.assert_close(sq, want, rtol=1e-14, atol=0)
    if grad:
        (gx,) = torch.autograd.grad(sq.sum(), x)
        (gw,) = torch.autograd.grad(want.sum(), x)
        torch.testing.assert_close(gx, gw)
    # the energy through it equals the float64 log-sum-exp of direct distances
    model = ms.EmpiricalDiffusion(y)
    xe = x.detach()
    e = model.energy(xe, 0.4)
    d2 = torch.cdist(xe, y, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    want_e = -torch.logsumexp(-d2 / (2 * 0.4**2), 1) + model.log_normalizer(xe, 0.4)
    torch.testing.assert_close(e, want_e, rtol=1e-13, atol=1e-12)
