"""Datasets: nested subsets, file and folder loaders, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import memscape as ms
from memscape.datasets import Dataset


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.reshape(len(x), -1).tolist()}


@pytest.mark.parametrize("name", ["circle", "gmm", "manifold", "digits"])
def test_subsets_are_nested_and_seeded(name):
    small = ms.datasets.load(name, n=32, seed=3)
    big = ms.datasets.load(name, n=64, seed=3)
    assert len(small) == 32 and len(big) == 64
    assert _rows(small.x) <= _rows(big.x)
    assert torch.equal(big.x[:32], small.x)  # a prefix of one permutation
    other = ms.datasets.load(name, n=32, seed=4)
    assert not torch.equal(other.x, small.x)


def test_complement_is_disjoint():
    d = ms.datasets.load("circle", size=100)
    a, b = d.subset(30, seed=1), d.complement(30, seed=1)
    assert len(b) == 70 and not (_rows(a.x) & _rows(b.x))


def test_circle_is_on_the_unit_circle_with_uniform_angles():
    d = ms.datasets.load("circle", size=20_000)
    assert torch.allclose(d.x.norm(dim=1), torch.ones(len(d)), atol=1e-6)
    theta = torch.atan2(d.x[:, 1], d.x[:, 0])
    hist = torch.histc(theta, bins=8, min=-math.pi, max=math.pi) / len(d)
    assert torch.allclose(hist, torch.full((8,), 1 / 8), atol=0.01)
    # σ_data of uniform angles: each coordinate has variance 1/2
    assert d.sigma_data == pytest.approx(math.sqrt(0.5), rel=0.02)


def test_gmm_weights_and_centres():
    c = [[-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]
    d = ms.datasets.load("gmm", size=30_000, centres=c, weights=[0.5, 0.3, 0.2], std=0.05)
    freq = torch.bincount(d.labels, minlength=3).double() / len(d)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.01)
    assert torch.allclose(d.x[d.labels == 2].mean(0), torch.tensor([0.0, 2.0]), atol=0.01)


def test_manifold_linear_has_rank_of_latent():
    d = ms.datasets.load("manifold", size=500, latent_dim=3, dim=10)
    sv = torch.linalg.svdvals(d.x.double())
    assert sv[3] < 1e-5 * sv[0] and sv[2] > 0.1 * sv[0]


def test_digits_scaled_to_unit_range_and_image_shape():
    d = ms.datasets.load("digits")
    assert d.x.shape == (1797, 64) and d.value_range == (-1.0, 1.0)
    assert float(d.x.min()) == -1.0 and float(d.x.max()) == 1.0
    assert ms.datasets.load("digits", flatten=False).event_shape == (1, 8, 8)


def test_npz_and_npy_roundtrip(tmp_path):
    a = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=a, y=np.arange(20))
    np.save(tmp_path / "d.npy", a)
    assert np.array_equal(ms.datasets.load(tmp_path / "d.npz").x.numpy(), a)
    assert np.array_equal(ms.datasets.load(str(tmp_path / "d.npy")).x.numpy(), a)
    assert np.array_equal(ms.datasets.load("npz", path=tmp_path / "d.npz", key="x").x.numpy(), a)
    np.savez(tmp_path / "two.npz", a=a, b=a)
    with pytest.raises(ValueError, match="key="):
        ms.datasets.load(tmp_path / "two.npz")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, size=(6, 5), dtype=np.uint8) for _ in range(3)]
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    d = ms.datasets.load(tmp_path)
    assert d.event_shape == (1, 6, 5)
    expected = np.stack(imgs)[:, None] / 127.5 - 1
    assert np.allclose(d.x.numpy(), expected, atol=1e-6)
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)).save(rgb / "a.png")
    assert ms.datasets.load(rgb).event_shape == (3, 4, 4)


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ms.datasets.load(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="unknown data set"):
        ms.datasets.load("no_such_set")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ms.datasets.load(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(mixed / "b.png")
    with pytest.raises(ValueError, match="differ in size"):
        ms.datasets.load(mixed)
    bad = np.ones((5, 2))
    bad[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="NaN"):
        ms.datasets.load(tmp_path / "nan.npy")
    with pytest.raises(ValueError, match="larger than the data set"):
        ms.datasets.load("circle", n=11, size=10)
    with pytest.raises(ValueError, match="NaN"):
        Dataset(torch.tensor([[0.0, float("nan")]]))


def test_mnist1d_when_installed():
    pytest.importorskip("mnist1d")
    d = ms.datasets.load("mnist1d", n=100, num_samples=200)
    assert d.event_shape == (40,) and float(d.x.abs().max()) <= 1.0


def test_torchvision_loader_needs_root_and_flag(tmp_path):
    with pytest.raises(ValueError, match="download=True"):
        ms.datasets.load("mnist", root=tmp_path / "nowhere")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="torchvision"):
            ms.datasets.load("mnist", root=tmp_path)
    else:
        with pytest.raises(ValueError, match="download=True"):
            ms.datasets.load("mnist", root=tmp_path)


# ----------------------------------------------------------------- associative-memory sets
def test_binary_patterns_are_seeded_uniform_signs():
    d = ms.datasets.load("binary_patterns", size=400, dim=250, data_seed=7)
    assert d.x.shape == (400, 250) and d.x.dtype == torch.float64
    assert set(d.x.unique().tolist()) == {-1.0, 1.0} and d.value_range == (-1.0, 1.0)
    assert abs(float(d.x.mean())) < 4 / math.sqrt(d.x.numel())  # ±1 equally likely
    overlaps = d.x @ d.x.T / 250  # independent patterns: off-diagonal overlaps ~ N(0, 1/N)
    off = overlaps[~torch.eye(400, dtype=torch.bool)]
    assert float(off.var()) == pytest.approx(1 / 250, rel=0.05)
    again = ms.datasets.load("binary_patterns", size=400, dim=250, data_seed=7)
    assert torch.equal(again.x, d.x)
    other = ms.datasets.load("binary_patterns", size=400, dim=250, data_seed=8)
    assert not torch.equal(other.x, d.x)


@pytest.mark.parametrize("delta", [0.2, 0.5, 1.0])
def test_equiseparated_memories_one_step_error_has_the_closed_form(delta):
    k, d = 8, 12
    x = ms.datasets.load("equiseparated", size=k, dim=d, delta=delta).x
    assert x.shape == (k, d) and x.dtype == torch.float64
    assert torch.allclose(x.norm(dim=1), torch.ones(k, dtype=x.dtype))
    gram = x @ x.T
    off = gram[~torch.eye(k, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, 1 - delta))
    for beta in (0.5, 3.0, 12.0):
        net = ms.ModernHopfield(x, beta=beta)
        assert torch.allclose(net.separation(), torch.full((k,), delta, dtype=x.dtype))
        err = (net.update(x) - x).norm(dim=1)
        # p_j = e^{−βΔ}/(1 + (K−1)e^{−βΔ}) for j ≠ i and ‖Σ_{j≠i}(x_j − x_i)‖² = K(K−1)Δ
        q = math.exp(-beta * delta)
        exact = q * math.sqrt(k * (k - 1) * delta) / (1 + (k - 1) * q)
        assert torch.allclose(err, torch.full_like(err, exact), rtol=1e-9, atol=1e-15)
        assert bool((net.retrieval_error_bound(x, torch.arange(k)) >= err).all())


def test_equiseparated_memories_validates_its_arguments():
    with pytest.raises(ValueError, match="d"):
        ms.datasets.load("equiseparated", size=8, dim=8, delta=0.5)
    with pytest.raises(ValueError, match="delta"):
        ms.datasets.load("equiseparated", size=4, dim=8, delta=1.5)


def test_gaussian_data_is_centred_and_has_the_critical_beta_of_its_covariance():
    x = ms.datasets.load("gaussian", size=24, data_seed=3).x
    assert x.shape == (24, 2) and x.dtype == torch.float64
    assert torch.allclose(x.mean(0), torch.zeros(2, dtype=x.dtype), atol=1e-12)
    lam = torch.linalg.eigvalsh(x.T @ x / 24)[-1]
    assert ms.theory.critical_beta(x) == pytest.approx(1 / float(lam))
    assert torch.equal(ms.datasets.load("gaussian", size=24, data_seed=3).x, x)  # seeded
    assert not torch.equal(ms.datasets.load("gaussian", size=24, data_seed=4).x, x)


def test_gaussian_data_has_the_requested_standard_deviations():
    x = ms.datasets.load("gaussian", size=40_000, data_seed=0, std=(2.0, 0.5, 1.0)).x
    assert x.shape == (40_000, 3)
    assert torch.allclose(x.std(0), torch.tensor([2.0, 0.5, 1.0], dtype=x.dtype), rtol=0.02)
    with pytest.raises(ValueError, match="std"):
        ms.datasets.load("gaussian", std=(1.0, -1.0))
