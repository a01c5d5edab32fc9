"""User files: ``.npy`` / ``.npz`` arrays and folders of same-size images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from memscape._validation import check_choice
from memscape.datasets._core import Dataset, register

__all__ = ["from_file", "image_folder", "npy", "npz"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _existing(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise ValueError(f"the {what} loader needs path=")
    p = Path(path)
    if not p.exists():
        raise ValueError(f"data path does not exist: {p}")
    return p


def _from_array(arr: np.ndarray, name: str) -> Dataset:
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"{name}: expected an array (N, *event_shape), got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    lo, hi = (
        (float(x.min()), float(x.max())) if x.numel() and bool(torch.isfinite(x).all()) else (0, 0)
    )
    return Dataset(x, name, (lo, hi))


@register("npy")
def npy(path: str | Path | None = None) -> Dataset:
    """A ``.npy`` array ``(N, *event_shape)`` as float32 (loaded with ``allow_pickle=False``)."""
    p = _existing(path, "npy")
    return _from_array(np.load(p, allow_pickle=False), str(p))


@register("npz")
def npz(path: str | Path | None = None, key: str | None = None) -> Dataset:
    """One array of a ``.npz`` file: ``key``, else the only array, else ``"x"`` if present."""
    p = _existing(path, "npz")
    with np.load(p, allow_pickle=False) as f:
        keys = list(f.keys())
        if key is None:
            key = keys[0] if len(keys) == 1 else ("x" if "x" in keys else None)
        if key is None or key not in keys:
            raise ValueError(f"{p}: choose the array with key=, one of {keys}")
        return _from_array(f[key], f"{p}:{key}")


@register("folder")
def image_folder(path: str | Path | None = None, mode: str | None = None) -> Dataset:
    """All images in a folder (sorted by name), scaled to ``[−1, 1]``: ``(N, C, H, W)``.

    Args:
        path: the folder; it must hold at least one image, all of the same size.
        mode: PIL mode to convert to (``"L"`` grey, ``"RGB"``); default: the first image's
            mode if it is ``"L"``, else ``"RGB"``.
    """
    from PIL import Image

    p = _existing(path, "folder")
    if not p.is_dir():
        raise ValueError(f"path must be a folder of images, got file {p}")
    if mode is not None:
        check_choice(mode, ("L", "RGB"), "mode")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {p} is empty (no {'/'.join(IMAGE_SUFFIXES)} files)")
    arrays, size0 = [], None
    for f in files:
        with Image.open(f) as im:
            if mode is None:
                mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
            if size0 is None:
                size0 = (im.size, f.name)
            elif im.size != size0[0]:
                raise ValueError(
                    f"images in {p} differ in size: {size0[1]} is {size0[0]}, {f.name} is {im.size}"
                )
            arrays.append(np.asarray(im.convert(mode), dtype=np.float32))
    x = torch.from_numpy(np.stack(arrays))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return Dataset(x / 127.5 - 1.0, str(p), (-1.0, 1.0), meta={"files": len(files), "mode": mode})


@register("file")
def from_file(path: str | Path | None = None, **options: Any) -> Dataset:
    """A ``.npy`` or ``.npz`` file or an image folder, chosen by what ``path`` is."""
    p = _existing(path, "file")
    if p.is_dir():
        return image_folder(p, **options)
    if p.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"cannot load {p}: expected a .npy/.npz file or an image folder")
    return (npy if p.suffix.lower() == ".npy" else npz)(p, **options)
