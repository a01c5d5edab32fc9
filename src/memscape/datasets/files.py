"""User files: ``.npy`` / ``.npz`` arrays and folders of same-size images."""

from __future__ import annotations

import pickle
import zipfile
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from memscape._validation import check_choice
from memscape.datasets._core import Dataset, register

__all__ = ["from_file", "image_folder", "npy", "npz"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# what numpy and PIL raise for unreadable, corrupt or truncated files
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    SyntaxError,  # PIL: "broken PNG file"
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
)
T = TypeVar("T")


def _read(
    what: str, path: Path, read: Callable[[], T], extra: tuple[type[BaseException], ...] = ()
) -> T:
    """``read()``, turning any read error into one ``ValueError`` naming the file."""
    try:
        return read()
    except (*_READ_ERRORS, *extra) as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from None


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
    arr = _read(".npy array", p, lambda: _load_npy(p))
    return _from_array(arr, str(p))


def _load_npy(p: Path) -> np.ndarray:
    arr = np.load(p, allow_pickle=False)
    if not isinstance(arr, np.ndarray):  # a .npz archive under a .npy name
        arr.close()
        raise ValueError("it is a .npz archive, not a .npy array (load it as npz)")
    return arr


@register("npz")
def npz(path: str | Path | None = None, key: str | None = None) -> Dataset:
    """One array of a ``.npz`` file: ``key``, else the only array, else ``"x"`` if present."""
    p = _existing(path, "npz")
    f = _read(".npz archive", p, lambda: np.load(p, allow_pickle=False))
    if isinstance(f, np.ndarray):
        raise ValueError(f"cannot read .npz archive {p}: it is a .npy array (load it as npy)")
    with f:
        keys = list(f.keys())
        if key is None:
            key = keys[0] if len(keys) == 1 else ("x" if "x" in keys else None)
        if key is None or key not in keys:
            raise ValueError(f"{p}: choose the array with key=, one of {keys}")
        chosen = key
        arr = _read(f"array {chosen!r} of .npz archive", p, lambda: f[chosen])
    return _from_array(arr, f"{p}:{key}")


@register("folder")
def image_folder(path: str | Path | None = None, mode: str | None = None) -> Dataset:
    """All images in a folder (sorted by name), scaled to ``[−1, 1]``: ``(N, C, H, W)``.

    Args:
        path: the folder; it must hold at least one image, all of the same size.
        mode: PIL mode to convert to (``"L"`` grey, ``"RGB"``); default: the first image's
            mode if it is ``"L"``, else ``"RGB"``.
    """
    from PIL import Image

    bomb = (Image.DecompressionBombError,)  # too many pixels: refused, named like the rest
    p = _existing(path, "folder")
    if not p.is_dir():
        raise ValueError(f"path must be a folder of images, got file {p}")
    if mode is not None:
        check_choice(mode, ("L", "RGB"), "mode")
    listed = _read("image folder", p, lambda: list(p.iterdir()))
    files = sorted(f for f in listed if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image folder {p} is empty (no {'/'.join(IMAGE_SUFFIXES)} files)")
    arrays, size0 = [], None
    for f in files:
        size, mode, arr = _read("image", f, partial(_load_image, f, mode), bomb)
        if size0 is None:
            size0 = (size, f.name)
        elif size != size0[0]:
            raise ValueError(
                f"images in {p} differ in size: {size0[1]} is {size0[0]}, {f.name} is {size}"
            )
        arrays.append(arr)
    x = torch.from_numpy(np.stack(arrays))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return Dataset(x / 127.5 - 1.0, str(p), (-1.0, 1.0), meta={"files": len(files), "mode": mode})


def _load_image(f: Path, mode: str | None) -> tuple[tuple[int, int], str, np.ndarray]:
    """Decode one image fully (a truncated file fails here): ``(size, mode, float32 array)``.

    ``mode=None`` picks ``"L"`` for grey images, else ``"RGB"``.
    """
    from PIL import Image

    with Image.open(f) as im:
        im.load()
        if mode is None:
            mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
        return im.size, mode, np.asarray(im.convert(mode), dtype=np.float32)


@register("file")
def from_file(path: str | Path | None = None, **options: Any) -> Dataset:
    """A ``.npy`` or ``.npz`` file or an image folder, chosen by what ``path`` is."""
    p = _existing(path, "file")
    if p.is_dir():
        return image_folder(p, **options)
    if p.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"cannot load {p}: expected a .npy/.npz file or an image folder")
    return (npy if p.suffix.lower() == ".npy" else npz)(p, **options)
