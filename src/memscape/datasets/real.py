"""Real data sets: scikit-learn digits, MNIST-1D, torchvision MNIST / Fashion-MNIST / CIFAR-10.

All are scaled to ``[−1, 1]``. Nothing is downloaded unless ``download=True`` is passed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from memscape._validation import check_int
from memscape.datasets._core import Dataset, register

__all__ = ["cifar10", "digits", "fashion_mnist", "mnist", "mnist1d"]


@register("digits")
def digits(flatten: bool = True) -> Dataset:
    """scikit-learn's 1797 8×8 digits (bundled, no download), ``x/8 − 1 ∈ [−1, 1]``.

    Shape ``(1797, 64)`` (``flatten=True``) or ``(1797, 1, 8, 8)``; labels are the digits.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.data.astype(np.float32) / 8.0 - 1.0)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return Dataset(
        x, "digits", (-1.0, 1.0), labels=torch.from_numpy(d.target), meta={"flatten": flatten}
    )


@register("mnist1d")
def mnist1d(num_samples: int = 5000, data_seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated procedurally by the ``mnist1d`` package: ``(N, 40)``.

    Scaled by the largest absolute value to ``[−1, 1]``. Needs ``pip install mnist1d``
    (the ``memscape[mnist1d]`` extra); numpy's global random state is restored afterwards.
    """
    check_int(num_samples, "num_samples", minimum=10)
    check_int(data_seed, "data_seed", minimum=0)
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:
        raise ImportError(
            "the 'mnist1d' data set needs the mnist1d package: pip install mnist1d "
            "(or pip install 'memscape[mnist1d]')"
        ) from err
    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    state = np.random.get_state()  # noqa: NPY002 (mnist1d seeds the global state)
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    arr = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
    y = np.concatenate([d["y"], d["y_test"]])
    x = torch.from_numpy(arr / np.abs(arr).max()).float()
    meta = {"num_samples": num_samples, "data_seed": data_seed}
    return Dataset(x, "mnist1d", (-1.0, 1.0), labels=torch.from_numpy(y), meta=meta)


def _torchvision(cls_name: str, root: str | Path | None, train: bool, download: bool) -> Dataset:
    if root is None:
        raise ValueError(f"the {cls_name} data set needs root= (a folder holding it)")
    root = Path(root)
    if not download and not root.is_dir():
        raise ValueError(f"data path does not exist: {root} (pass download=True to fetch it)")
    try:
        import torchvision.datasets as tvd
    except ImportError as err:
        raise ImportError(
            f"the {cls_name} loader needs torchvision: pip install torchvision "
            "(or pip install 'memscape[vision]')"
        ) from err
    try:
        ds = getattr(tvd, cls_name)(str(root), train=train, download=download)
    except RuntimeError as err:
        raise ValueError(f"{cls_name} not found under {root}: {err} (pass download=True)") from err
    except (OSError, EOFError, ValueError, IndexError, pickle.UnpicklingError) as err:
        # corrupt or truncated files under root (torchvision reads raw bytes and pickles)
        raise ValueError(f"cannot read {cls_name} under {root}: {err}") from None
    x = torch.as_tensor(np.asarray(ds.data))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(ds.targets))
    meta = {"root": str(root), "train": train}
    return Dataset(x.float() / 127.5 - 1.0, cls_name.lower(), (-1.0, 1.0), labels=labels, meta=meta)


@register("mnist")
def mnist(root: str | Path | None = None, train: bool = True, download: bool = False) -> Dataset:
    """torchvision MNIST from ``root``: ``(N, 1, 28, 28)`` in ``[−1, 1]``; download if asked."""
    return _torchvision("MNIST", root, train, download)


@register("fashion_mnist")
def fashion_mnist(
    root: str | Path | None = None, train: bool = True, download: bool = False
) -> Dataset:
    """torchvision Fashion-MNIST from ``root``: ``(N, 1, 28, 28)`` in ``[−1, 1]``."""
    return _torchvision("FashionMNIST", root, train, download)


@register("cifar10")
def cifar10(root: str | Path | None = None, train: bool = True, download: bool = False) -> Dataset:
    """torchvision CIFAR-10 from ``root``: ``(N, 3, 32, 32)`` in ``[−1, 1]``."""
    return _torchvision("CIFAR10", root, train, download)
