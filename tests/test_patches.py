"""The ``patches`` data set: genuine crops of scikit-learn's two sample photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.datasets import load_sample_images

import memscape as ms
from memscape.datasets.patches import LUMA


def test_patches_are_crops_of_the_photographs_scaled_to_unit_range():
    data = ms.datasets.load("patches", size=8, color=True, num_patches=6, data_seed=3)
    assert data.x.shape == (6, 3, 8, 8) and data.value_range == (-1.0, 1.0)
    assert float(data.x.min()) >= -1 and float(data.x.max()) <= 1
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    photos = load_sample_images().images
    for patch, src in zip(data.x.numpy(), data.labels.tolist(), strict=True):
        pixels = np.round((patch.transpose(1, 2, 0).astype(np.float64) + 1) * 127.5)
        windows = sliding_window_view(photos[src], (8, 8, 3))[:, :, 0]
        hits = np.argwhere((windows == pixels).all(axis=(2, 3, 4)))
        assert len(hits) >= 1  # found verbatim somewhere in its photograph


def test_grayscale_is_the_luma_of_the_colour_patches_and_subsets_nest():
    rgb = ms.datasets.load("patches", size=16, color=True, num_patches=20)
    gray = ms.datasets.load("patches", size=16, num_patches=20)
    assert gray.x.shape == (20, 1, 16, 16)
    luma = (
        (rgb.x.double() + 1) * 127.5 * torch.tensor(LUMA, dtype=torch.float64)[:, None, None]
    ).sum(1)
    assert torch.allclose(gray.x[:, 0].double(), luma / 127.5 - 1, atol=1e-6)
    small = ms.datasets.load("patches", n=5, seed=1, size=16, num_patches=20)
    big = ms.datasets.load("patches", n=10, seed=1, size=16, num_patches=20)
    assert torch.equal(small.x, big.x[:5])
    other = ms.datasets.load("patches", size=16, num_patches=20, data_seed=1)
    assert not torch.equal(other.x, gray.x)
    assert ms.datasets.load("patches", size=32, color=True, num_patches=2).x.shape == (2, 3, 32, 32)


def test_bad_options():
    with pytest.raises(ValueError, match="size must be one of 8, 16, 32"):
        ms.datasets.load("patches", size=12)
    with pytest.raises(TypeError, match="color"):
        ms.datasets.load("patches", color="yes")
    with pytest.raises(ValueError, match="num_patches"):
        ms.datasets.load("patches", num_patches=0)
    assert "patches" in ms.datasets.available()
