"""Memorization metrics against brute force and hand-built point sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import memscape as ms
from memscape.memorization import (
    classify_samples,
    disjoint_subsets,
    effective_capacity,
    faiss_available,
    is_memorized,
    memorized_fraction,
    nearest_neighbors,
    nn_ratio,
    paired_similarity,
)

BACKENDS = [
    "torch",
    pytest.param(
        "faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
    ),
]


def _brute(q, r, k, exclude_self=False):
    d = torch.cdist(q.double(), r.double())
    if exclude_self:
        d.fill_diagonal_(math.inf)
    return d.topk(k, dim=1, largest=False)


# --------------------------------------------------------------------- nearest neighbours
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [50, 77, 4096])  # divides M and N, does not, larger than both
@pytest.mark.parametrize("k", [1, 3])
def test_nearest_neighbors_matches_cdist(backend, chunk, k):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(300, 7, generator=g, dtype=torch.float64)
    r = torch.randn(500, 7, generator=g, dtype=torch.float64)
    dist, idx = nearest_neighbors(q, r, k, chunk_size=chunk, backend=backend)
    bd, bi = _brute(q, r, k)
    assert dist.shape == idx.shape == (300, k)
    assert dist.dtype == torch.float64 and idx.dtype == torch.long
    torch.testing.assert_close(dist, bd, atol=1e-12, rtol=0)
    assert torch.equal(idx, bi)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk", [40, 64, 1000])
def test_exclude_self_finds_nearest_other_sample(backend, chunk):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    dist, idx = nearest_neighbors(x, x, 2, chunk_size=chunk, exclude_self=True, backend=backend)
    bd, bi = _brute(x, x, 2, exclude_self=True)
    torch.testing.assert_close(dist, bd, atol=1e-12, rtol=0)
    assert torch.equal(idx, bi)
    assert not bool((idx == torch.arange(200)[:, None]).any())


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclude_self_keeps_duplicates_at_other_indices(backend):
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [9.0, 0.0]])
    dist, idx = nearest_neighbors(x, x, 1, exclude_self=True, chunk_size=3, backend=backend)
    assert idx[0, 0] == 2 and idx[2, 0] == 0
    assert dist[0, 0] == 0 and dist[2, 0] == 0


def test_near_duplicates_exact_despite_large_offset():
    # float32 data far from the origin: the expanded form alone would lose d1 to cancellation.
    g = torch.Generator().manual_seed(2)
    train = 1000.0 + torch.randn(400, 64, generator=g)
    gen = train[:50] + 1e-3 * torch.randn(50, 64, generator=g)
    dist, idx = nearest_neighbors(gen, train, 2, backend="torch", chunk_size=128)
    assert torch.equal(idx[:, 0], torch.arange(50))
    exact = (gen.double() - train[:50].double()).norm(dim=1)
    torch.testing.assert_close(dist[:, 0].double(), exact, rtol=1e-3, atol=1e-6)


def test_image_shaped_inputs_are_flattened():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(20, 1, 4, 4, generator=g)
    r = torch.randn(30, 1, 4, 4, generator=g)
    d_img, i_img = nearest_neighbors(q, r, 2, backend="torch")
    d_flat, i_flat = nearest_neighbors(q.flatten(1), r.flatten(1), 2, backend="torch")
    assert torch.equal(i_img, i_flat) and torch.equal(d_img, d_flat)


def test_integer_images_are_accepted():
    q = torch.tensor([[0, 0], [10, 10]], dtype=torch.uint8)
    r = torch.tensor([[0, 1], [10, 12], [200, 200]], dtype=torch.uint8)
    dist, idx = nearest_neighbors(q, r, 1, backend="torch")
    assert idx[:, 0].tolist() == [0, 1]
    assert dist[:, 0].tolist() == [1.0, 2.0]


def test_embed_is_applied_before_distances():
    g = torch.Generator().manual_seed(4)
    q, r = torch.randn(10, 3, generator=g), torch.randn(15, 3, generator=g)
    # Scaling one coordinate changes which neighbour is nearest; compare with brute force.
    w = torch.tensor([10.0, 1.0, 0.1])
    dist, idx = nearest_neighbors(q, r, 2, embed=lambda x: x * w, backend="torch")
    bd, bi = _brute(q * w, r * w, 2)
    assert torch.equal(idx, bi)
    torch.testing.assert_close(dist.double(), bd, rtol=1e-5, atol=1e-5)


def test_device_argument_and_dtype_follow_input():
    q = torch.randn(5, 3, dtype=torch.float64)
    dist, _ = nearest_neighbors(q, q, 1, device="cpu", exclude_self=True, backend="torch")
    assert dist.dtype == torch.float64 and dist.device == q.device


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"k": 11}, ValueError, "k must be <= 10"),
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"backend": "annoy"}, ValueError, "backend"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"exclude_self": True}, ValueError, "exclude_self"),
        ({"k": 2.0}, TypeError, "k must be an integer"),
    ],
)
def test_nearest_neighbors_bad_arguments(kwargs, err, match):
    q, r = torch.randn(4, 3), torch.randn(10, 3)
    with pytest.raises(err, match=match):
        nearest_neighbors(q, r, **{"k": 2, **kwargs})


def test_nearest_neighbors_bad_inputs():
    r = torch.randn(10, 3)
    with pytest.raises(ValueError, match="same number of features"):
        nearest_neighbors(torch.randn(4, 5), r)
    with pytest.raises(ValueError, match="finite"):
        nearest_neighbors(torch.full((4, 3), math.nan), r)
    with pytest.raises(TypeError, match="queries must be a torch"):
        nearest_neighbors([[0.0, 1.0, 2.0]], r)
    with pytest.raises(ValueError, match="empty"):
        nearest_neighbors(torch.randn(0, 3), r)
    with pytest.raises(ValueError, match="one feature row per input"):
        nearest_neighbors(torch.randn(4, 3), r, embed=lambda x: x[:1])
    with pytest.raises(TypeError, match="embed must be a callable"):
        nearest_neighbors(torch.randn(4, 3), r, embed="lpips")


@pytest.mark.slow
def test_nearest_neighbors_1e5_by_1e5_streams_within_memory():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(100_000, 64, generator=g)
    dist, idx = nearest_neighbors(x, x, 2, exclude_self=True, backend="torch")
    rows = torch.randint(0, 100_000, (200,), generator=g)
    bd, bi = _brute(x[rows], x, 3)
    assert torch.equal(idx[rows], bi[:, 1:])
    torch.testing.assert_close(dist[rows].double(), bd[:, 1:], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------- ratio criterion
TRAIN = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])


def test_nn_ratio_on_constructed_points():
    gen = torch.tensor([[0.1, 0.0], [5.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    ratio = nn_ratio(gen, TRAIN, backend="torch")
    expected = torch.tensor([0.1 / 9.9, 1.0, 0.0, 3.0 / 7.0])
    torch.testing.assert_close(ratio, expected)
    assert is_memorized(gen, TRAIN).tolist() == [True, False, True, False]
    assert memorized_fraction(gen, TRAIN) == 0.5
    # Threshold 1/2 admits 3/7 ≈ 0.43.
    assert memorized_fraction(gen, TRAIN, threshold=0.5) == 0.75


def test_nn_ratio_exact_copy_of_duplicated_training_point_is_memorized():
    train = torch.tensor([[1.0, 1.0], [1.0, 1.0], [4.0, 4.0]])
    assert nn_ratio(torch.tensor([[1.0, 1.0]]), train).item() == 0.0


def test_ratio_bad_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        nn_ratio(torch.randn(3, 2), torch.randn(1, 2))
    with pytest.raises(ValueError, match="threshold"):
        is_memorized(torch.randn(3, 2), TRAIN, threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        is_memorized(torch.randn(3, 2), TRAIN, threshold=1.5)


# --------------------------------------------------------------------- effective capacity
def _log_linear_curve(k_star=20.0):
    # fraction = 0.9 − 0.1·log2(K/K*), linear in log K, so log-K interpolation is exact.
    return [
        (2.0**j, min(1.0, max(0.0, 0.9 - 0.1 * math.log2(2.0**j / k_star)))) for j in range(1, 9)
    ]


def test_effective_capacity_interpolates_on_log_k():
    cap = effective_capacity(_log_linear_curve())
    assert cap.interpolated == pytest.approx(20.0, rel=1e-12)
    assert cap.grid == 16.0


def test_effective_capacity_accepts_mapping_and_dataframe_with_repeats():
    pairs = _log_linear_curve()
    assert effective_capacity(dict(pairs)).interpolated == pytest.approx(20.0)
    ks, fs = zip(*pairs, strict=True)
    assert effective_capacity(ks, fs, level=0.9).interpolated == pytest.approx(20.0)
    assert effective_capacity(np.array(pairs)).interpolated == pytest.approx(20.0)
    rows = [(k, f + s) for k, f in pairs for s in (-0.01, 0.01)]  # two "seeds" per K
    df = pd.DataFrame(rows, columns=["K", "memorized_fraction"])
    df["memorized_fraction"] = df["memorized_fraction"].clip(0.0, 1.0)
    cap = effective_capacity(df)
    assert cap.grid == 16.0 and 16.0 < cap.interpolated < 32.0


def test_effective_capacity_edge_cases():
    assert math.isnan(effective_capacity([(2, 0.5), (4, 0.1)]).interpolated)
    cap = effective_capacity([(2, 1.0), (4, 0.95)])
    assert cap == (4.0, 4.0)  # never drops below the level: the last grid point, a lower bound
    # A noisy dip: the largest K still above the level counts.
    assert effective_capacity([(2, 1.0), (4, 0.8), (8, 0.92), (16, 0.1)]).grid == 8.0


@pytest.mark.parametrize(
    ("table", "kwargs", "match"),
    [
        ([(2, 1.2)], {}, "fraction must be in"),
        ([(0, 0.5)], {}, "K must be finite"),
        ([(2, 0.5)], {"level": 0.0}, "level"),
        ([(2, 0.5)], {"level": 1.5}, "level"),
        ([], {}, "empty"),
        ([(2, 0.5, 1)], {}, "pairs"),
        (pd.DataFrame({"K": [2]}), {}, "no column"),
    ],
)
def test_effective_capacity_bad_inputs(table, kwargs, match):
    with pytest.raises(ValueError, match=match):
        effective_capacity(table, **kwargs)
    with pytest.raises(TypeError, match="table"):
        effective_capacity(3.0)
    with pytest.raises(ValueError, match="same length"):
        effective_capacity([2, 4], [1.0])


# --------------------------------------------------------------------- Pham et al. classes
def _lattice():
    xs = torch.arange(5, dtype=torch.float64)
    return torch.cartesian_prod(xs, xs)  # 5×5 grid, spacing 1: default δ = 1/3


def test_classify_samples_hand_built():
    train = _lattice()  # every leave-one-out distance is 1: off-data above d1 = 1
    copies = train[[0, 7, 7, 18]]  # exact copies, two of the same point
    cluster = torch.tensor([[2.5, 2.5]]) + 0.01 * torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]
    )
    novel = torch.tensor([[0.5, 1.5], [3.5, 0.5], [1.5, 3.5], [2.0, 5.0]])  # last: d1 = 1 exactly
    far = torch.tensor([[6.5, 2.0], [2.0, -1.5], [8.0, 8.0], [8.01, 8.0]])  # d1 > 1; a far pair
    generated = torch.cat([copies, cluster.double(), novel.double(), far.double()])
    res = classify_samples(generated, train, backend="torch")
    assert res.delta_m == pytest.approx(1 / 3) and res.delta_s == pytest.approx(1 / 3)
    assert res.reference == "leave_one_out" and res.off_data_quantile == 0.99
    assert res.off_data_threshold == pytest.approx(1.0)
    torch.testing.assert_close(res.reference_d1, torch.ones(25, dtype=torch.float64))
    expected = ["memorized"] * 4 + ["spurious"] * 4 + ["generalized"] * 4 + ["off-data"] * 4
    assert res.names == expected  # the far pair is off-data, not spurious
    assert res.train_index[:4].tolist() == [0, 7, 7, 18]
    assert res.fractions() == pytest.approx(
        {"memorized": 0.25, "spurious": 0.25, "generalized": 0.25, "off-data": 0.25}
    )
    torch.testing.assert_close(res.d1[8:11], torch.full((3,), math.sqrt(0.5), dtype=torch.float64))
    torch.testing.assert_close(res.d1[12:14], torch.tensor([2.5, 1.5], dtype=torch.float64))
    frame = res.table
    assert list(frame.columns) == [
        "d1",
        "d2",
        "ratio",
        "nearest_generated",
        "train_index",
        "class",
        "ratio_memorized",
    ]
    assert len(frame) == 16 and frame["class"].iloc[5] == "spurious"
    assert frame["ratio_memorized"].tolist() == [True] * 4 + [False] * 12
    row = res.summary()
    assert row["n_samples"] == 16 and row["reference"] == "leave_one_out"
    assert row["off_data_fraction"] == 0.25 and row["memorized_fraction"] == 0.25
    assert row["ratio_memorized_fraction"] == 0.25 and row["off_data_floor"] == 0.0


def test_classify_samples_held_out_quantile_has_a_known_value():
    train = _lattice()
    r = torch.linspace(0.1, 1.0, 10, dtype=torch.float64)
    held = torch.stack([-r, torch.full_like(r, 2.0)], 1)  # d1 = r exactly, to (0, 2)
    gen = torch.tensor([[-0.995, 2.0], [-0.98, 0.0], [-0.6, 4.0], [-0.5, 1.0]], dtype=torch.float64)
    res = classify_samples(gen, train, held_out=held)
    assert res.reference == "held_out"
    torch.testing.assert_close(res.reference_d1, r)
    # linear interpolation at 0.99·(10 − 1) = 8.91: 0.9 + 0.91·0.1
    assert res.off_data_threshold == pytest.approx(0.991, rel=1e-12)
    assert res.names == ["off-data", "generalized", "generalized", "generalized"]
    half = classify_samples(gen, train, held_out=held, off_data_quantile=0.5)
    assert half.off_data_threshold == pytest.approx(0.55, rel=1e-12)
    assert half.names == ["off-data", "off-data", "off-data", "generalized"]
    top = classify_samples(gen, train, held_out=held, off_data_quantile=1.0)
    assert top.off_data_threshold == pytest.approx(1.0) and top.names[0] == "generalized"


def test_classify_samples_leave_one_out_default_matches_brute_force():
    g = torch.Generator().manual_seed(7)
    train = torch.randn(300, 3, generator=g, dtype=torch.float64)
    gen = 1.3 * torch.randn(200, 3, generator=g, dtype=torch.float64)
    res = classify_samples(gen, train, chunk_size=64, backend="torch")
    dist = torch.cdist(train, train).fill_diagonal_(math.inf)
    loo = dist.min(1).values.numpy()
    assert res.off_data_threshold == pytest.approx(float(np.quantile(loo, 0.99)), rel=1e-12)
    d1 = torch.cdist(gen, train).min(1).values
    off = (d1 > res.off_data_threshold).tolist()
    assert [n == "off-data" for n in res.names] == off
    assert 0 < sum(off) < len(off)


def test_classify_samples_explicit_thresholds():
    train = _lattice()
    generated = torch.tensor([[0.2, 0.0], [2.5, 2.5], [2.6, 2.5]], dtype=torch.float64)
    res = classify_samples(generated, train, delta_m=0.0, delta_s=0.05)
    assert res.names == ["generalized", "generalized", "generalized"]
    res = classify_samples(generated, train, delta_m=0.25, delta_s=0.2)
    assert res.names == ["memorized", "spurious", "spurious"]


def test_classify_samples_embed_scales_distances_and_thresholds():
    train = _lattice()
    generated = torch.tensor([[0.0, 0.0], [2.5, 2.5], [2.51, 2.5], [0.5, 1.5]], dtype=torch.float64)
    plain = classify_samples(generated, train)
    scaled = classify_samples(generated, train, embed=lambda x: 3 * x)
    assert plain.names == scaled.names
    assert scaled.delta_m == pytest.approx(1.0)
    torch.testing.assert_close(scaled.d1, 3 * plain.d1)
    held = torch.tensor([[-0.2, 2.0], [-0.4, 1.0]], dtype=torch.float64)
    plain = classify_samples(generated, train, held_out=held)
    scaled = classify_samples(generated, train, held_out=held, embed=lambda x: 3 * x)
    assert scaled.off_data_threshold == pytest.approx(3 * plain.off_data_threshold)
    assert plain.names == scaled.names


def test_classify_samples_bad_inputs():
    train = _lattice()
    gen = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="delta_m"):
        classify_samples(gen, train, delta_m=-0.1)
    with pytest.raises(ValueError, match="delta_s"):
        classify_samples(gen, train, delta_s=-1.0)
    with pytest.raises(ValueError, match="generated must hold at least 2"):
        classify_samples(gen[:1], train)
    with pytest.raises(ValueError, match="train must hold at least 2"):
        classify_samples(gen, train[:1])
    with pytest.raises(ValueError, match="same number of features"):
        classify_samples(torch.randn(5, 3), train)
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="off_data_quantile"):
            classify_samples(gen, train, off_data_quantile=q)
    for q in ("0.9", True):
        with pytest.raises(TypeError, match="off_data_quantile"):
            classify_samples(gen, train, off_data_quantile=q)
    with pytest.raises(ValueError, match="held_out and train must have the same number"):
        classify_samples(gen, train, held_out=torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="held_out must hold real samples that are not in train"):
        classify_samples(gen, train, held_out=train[:5])
    with pytest.raises(TypeError, match="held_out"):
        classify_samples(gen, train, held_out=[[0.0, 1.0]])


# ------------------------------------------------- off-data against real models (digits)
@pytest.fixture(scope="module")
def digits_split():
    """Disjoint training (256), held-out reference (744) and fresh held-out (797) digits."""
    x = ms.datasets.load("digits").x.reshape(1797, -1).double()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:256]], x[perm[256:1000]], x[perm[1000:]]


def test_untrained_network_samples_are_off_data_and_exact_model_samples_memorized(digits_split):
    train, held, _ = digits_split
    # the output layer starts at zero: D = c_skip·x, noise of the data's scale (issue 13)
    net = ms.ScoreModel.mlp(dim=64, width=64, layers=2, sigma_data=float(train.std())).double()
    noise = ms.sample(net, n=256, steps=18, generator=torch.Generator().manual_seed(1))
    for ref in (held, None):
        assert classify_samples(noise, train, held_out=ref).fractions()["off-data"] >= 0.9
    exact = ms.EmpiricalDiffusion(train)
    copies = ms.sample(exact, n=256, steps=72, sigma_min=1e-4,
                       generator=torch.Generator().manual_seed(2))  # fmt: skip
    for ref in (held, None):
        assert classify_samples(copies, train, held_out=ref).fractions()["memorized"] >= 0.95


def test_held_out_real_samples_are_rarely_off_data(digits_split):
    train, held, fresh = digits_split
    # by construction: at most 1 % of the reference itself lies above its 0.99 quantile
    own = classify_samples(held, train, held_out=held).fractions()["off-data"]
    assert own <= 0.01 + 1 / len(held)
    # fresh real samples: binomial p = 0.01, three standard errors
    bound = 0.01 + 3 * math.sqrt(0.01 * 0.99 / len(fresh))
    for ref in (held, None):
        assert classify_samples(fresh, train, held_out=ref).fractions()["off-data"] <= bound


# --------------------------------------------------------------------- Kadkhodaie et al.
def test_paired_similarity_known_pairs():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(40, 1, 16, 16, generator=g, dtype=torch.float64)
    same = paired_similarity(a, a)
    torch.testing.assert_close(same.cosine, torch.ones(40, dtype=torch.float64))
    assert float(same.l2.abs().max()) == 0.0
    shifted = paired_similarity(a, a + 3.0)  # a brightness offset per sample
    torch.testing.assert_close(shifted.cosine, torch.ones(40, dtype=torch.float64))
    assert paired_similarity(a, a + 3.0, center=False).cosine.max() < 0.5
    torch.testing.assert_close(
        paired_similarity(a, -a).cosine, -torch.ones(40, dtype=torch.float64)
    )
    b = torch.randn(40, 1, 16, 16, generator=g, dtype=torch.float64)
    indep = paired_similarity(a, b)
    summary = indep.summary()
    assert abs(summary["cosine_mean"]) < 0.05  # independent: cos ~ N(0, 1/256)
    assert summary["l2_mean"] == pytest.approx(math.sqrt(2 * 256), rel=0.05)


def test_paired_similarity_constant_sample_gives_nan_and_bad_shapes():
    a = torch.ones(3, 4)
    res = paired_similarity(a, torch.randn(3, 4))
    assert bool(torch.isnan(res.cosine).all())
    assert math.isnan(res.summary()["cosine_mean"])
    with pytest.raises(ValueError, match="same shape"):
        paired_similarity(torch.randn(3, 4), torch.randn(4, 4))


def test_disjoint_subsets():
    a, b = disjoint_subsets(100, 50, generator=0)
    assert len(set(a.tolist()) | set(b.tolist())) == 100
    a2, b2 = disjoint_subsets(100, 50, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2) and torch.equal(b, b2)
    c, _ = disjoint_subsets(100, 50, generator=1)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="2k <= n_total"):
        disjoint_subsets(10, 6, generator=0)
    with pytest.raises(TypeError, match="generator"):
        disjoint_subsets(10, 2, generator="seed")
