"""Natural-image patches cut from the two photographs scikit-learn ships (no download).

``sklearn.datasets.load_sample_images`` holds ``china.jpg`` and ``flower.jpg``
(427 × 640, RGB). Patches of ``size × size`` are cut at seeded uniform positions,
alternating between the two photographs — the classic source of natural-image
statistics for sparse coding and associative memories (Olshausen & Field 1996 cut
theirs from natural scenes the same way) — and scaled to ``[−1, 1]``.
"""

from __future__ import annotations

import numpy as np
import torch

from memscape._validation import check_int
from memscape.datasets._core import Dataset, register

__all__ = ["SIZES", "patches"]

SIZES = (8, 16, 32)
#: ITU-R BT.601 luma weights (R, G, B) for grayscale patches
LUMA = (0.299, 0.587, 0.114)


@register("patches")
def patches(
    size: int = 8, color: bool = False, num_patches: int = 5000, data_seed: int = 0
) -> Dataset:
    """Natural-image patches ``(num_patches, C, size, size)`` in ``[−1, 1]`` (C = 3 or 1).

    Patch ``i`` comes from photograph ``i mod 2`` (its label: 0 china, 1 flower), at a
    top-left corner drawn uniformly with ``numpy.random.default_rng(data_seed)``;
    values are ``v/127.5 − 1`` (grayscale: the BT.601 luma of the RGB values).

    Args:
        size: patch side, one of 8, 16, 32 (d = C·size²: 64 … 3072).
        color: RGB patches (C = 3) instead of grayscale (C = 1).
        num_patches: how many patches to cut (use ``load(..., n=K)`` for nested subsets).
        data_seed: seed of the patch positions.
    """
    check_int(size, "size")
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(map(str, SIZES))}, got {size}")
    if not isinstance(color, bool):
        raise TypeError(f"color must be a bool, got {type(color).__name__}")
    check_int(num_patches, "num_patches")
    check_int(data_seed, "data_seed", minimum=0)
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(im, dtype=np.float64) for im in load_sample_images().images]
    rng = np.random.default_rng(data_seed)
    source = np.arange(num_patches) % len(photos)
    out = np.empty((num_patches, size, size, 3), dtype=np.float64)
    for i, s in enumerate(source):
        h, w, _ = photos[s].shape
        r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[i] = photos[s][r : r + size, c : c + size]
    if not color:
        out = out @ np.asarray(LUMA)[:, None]
    x = torch.from_numpy(out / 127.5 - 1.0).permute(0, 3, 1, 2).float().contiguous()
    meta = {
        "size": size,
        "color": color,
        "num_patches": num_patches,
        "data_seed": data_seed,
        "source": "sklearn.datasets.load_sample_images (china.jpg, flower.jpg)",
    }
    return Dataset(x, "patches", (-1.0, 1.0), labels=torch.from_numpy(source), meta=meta)
