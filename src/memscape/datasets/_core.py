"""The :class:`Dataset` container, the loader registry and :func:`load`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memscape._validation import check_int, check_tensor

__all__ = ["Dataset", "available", "load", "register"]


@dataclass
class Dataset:
    """Training data plus what a diffusion model needs to know about it.

    Attributes:
        x: float tensor ``(N, *event_shape)``; checked finite and non-empty.
        name: where it came from (registry name or path).
        value_range: ``(low, high)`` the values are scaled to (e.g. ``(-1, 1)`` for images),
            or ``None`` when unbounded (synthetic Gaussian data).
        sigma_data: standard deviation of all coordinates (EDM's σ_data; measured if
            not given).
        labels: optional ``(N,)`` integer class labels.
        meta: free-form details of how the data were made (options, seeds, source).
    """

    x: torch.Tensor
    name: str = "data"
    value_range: tuple[float, float] | None = None
    sigma_data: float = float("nan")
    labels: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = check_tensor(self.x, f"data {self.name!r}", min_ndim=2)
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        self.x = x
        if self.labels is not None and self.labels.shape[0] != x.shape[0]:
            raise ValueError(
                f"labels must have {x.shape[0]} entries, got {tuple(self.labels.shape)}"
            )
        if self.sigma_data != self.sigma_data:  # NaN: measure
            self.sigma_data = float(x.double().std()) if x.numel() > 1 else 1.0

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``."""
        return tuple(self.x.shape[1:])

    @property
    def dim(self) -> int:
        """Number of coordinates of one sample."""
        return self.x[0].numel()

    def subset(self, k: int, seed: int = 0, *, start: int = 0) -> Dataset:
        """Points ``perm[start : start + k]`` of one seeded permutation of the data.

        Subsets of one seed are nested (the K = 64 subset contains the K = 32 one);
        ``start`` gives disjoint subsets of the same seed (Kadkhodaie et al. 2024).
        σ_data is re-measured on the subset.
        """
        check_int(k, "k")
        check_int(seed, "seed", minimum=0)
        check_int(start, "start", minimum=0)
        if start + k > len(self):
            raise ValueError(
                f"k={k} (from start={start}) is larger than the data set {self.name!r} "
                f"of {len(self)} points"
            )
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        idx = perm[start : start + k].to(self.x.device)
        meta = {**self.meta, "subset": {"k": k, "seed": seed, "start": start, "of": len(self)}}
        labels = None if self.labels is None else self.labels[idx.to(self.labels.device)]
        return Dataset(self.x[idx], self.name, self.value_range, labels=labels, meta=meta)

    def complement(self, k: int, seed: int = 0) -> Dataset:
        """The points not in ``subset(k, seed)`` (a disjoint set, in permutation order)."""
        check_int(k, "k")
        if k >= len(self):
            raise ValueError(f"k={k} leaves no points of the {len(self)} in {self.name!r}")
        return self.subset(len(self) - k, seed, start=k)


_REGISTRY: dict[str, Callable[..., Dataset]] = {}


def register(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator adding a loader ``fn(**options) -> Dataset`` to the registry under ``name``."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names :func:`load` accepts (besides paths to ``.npy``/``.npz`` files and image folders)."""
    return sorted(_REGISTRY)


def load(name: str | Path, n: int | None = None, seed: int = 0, **options: Any) -> Dataset:
    """Load a data set by registry name or path, optionally a seeded subset of ``n`` points.

    Args:
        name: a name from :func:`available` (``"circle"``, ``"gmm"``, ``"manifold"``,
            ``"digits"``, ``"mnist1d"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``,
            ``"npy"``/``"npz"``/``"folder"`` with ``path=``), or a path to a ``.npy`` /
            ``.npz`` file or an image folder.
        n: size of the subset (:meth:`Dataset.subset`; nested across ``n`` for one seed);
            ``None`` returns the whole set.
        seed: subset seed.
        **options: loader options (see each loader).

    Raises:
        ValueError: unknown name, missing path, ``n`` larger than the data, bad data.
    """
    if n is not None:
        check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    if isinstance(name, Path) or (isinstance(name, str) and name not in _REGISTRY):
        path = Path(name)
        if path.exists():
            data = _REGISTRY["file"](path=path, **options)
        elif isinstance(name, Path) or "/" in str(name) or path.suffix:
            raise ValueError(f"data path does not exist: {path}")
        else:
            raise ValueError(
                f"unknown data set {name!r}; expected one of {', '.join(available())} "
                "or a path to a .npy/.npz file or an image folder"
            )
    else:
        data = _REGISTRY[name](**options)
    return data if n is None else data.subset(n, seed)
