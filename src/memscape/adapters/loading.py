"""One entry point for every model folder: :func:`load` dispatches on what the folder holds.

* a memscape model or :func:`memscape.train` run folder (``model.json`` +
  ``model.safetensors``) → :meth:`memscape.ScoreModel.load`;
* a diffusers folder (``model_index.json``, ``unet/`` + ``scheduler/``) →
  :func:`memscape.adapters.load_diffusers`;
* a Python path ``"package.module:function"`` → ``function()``, which returns a memscape
  model (e.g. one built with :func:`memscape.adapters.from_denoiser`).

Every command and analysis that takes a model can so take any of them.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import torch

from memscape._validation import check_device, check_dtype
from memscape.adapters.diffusers import diffusers_layout, load_diffusers
from memscape.diffusion.model import ScoreModel
from memscape.protocol import is_model

__all__ = ["load"]

_PYTHON_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load(path: str | Path, *, dtype: torch.dtype | None = None, device: Any = None) -> Any:
    """Load a memscape, diffusers or Python-path model (module docstring) for analysis.

    Args:
        path: a model folder, or ``"module:function"``.
        dtype: the network's dtype (default: as saved).
        device: where to put it (default: the CPU).

    Returns:
        a memscape model: a :class:`memscape.ScoreModel`, a
        :class:`memscape.adapters.DiffusersModel` or what ``function()`` returned.

    Raises:
        ValueError: a missing path, a folder that holds no model (naming what was looked
            for), an unfinished training run, or any error of the loader it dispatches to.
        TypeError: ``function()`` returned something that is not a model.
    """
    if dtype is not None:
        check_dtype(dtype)
    dev = check_device(device) if device is not None else None
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a folder or 'module:function', got {type(path).__name__}")
    if isinstance(path, str) and _PYTHON_PATH.match(path) and not Path(path).exists():
        return _move(_from_python(path), dtype, dev)
    folder = Path(path)
    if not folder.exists():
        raise ValueError(f"load: no such model folder {folder}")
    if not folder.is_dir():
        raise ValueError(f"load: {folder} is a file; a model is a folder (or 'module:function')")
    if (folder / "model.json").is_file():
        return _move(ScoreModel.load(folder), dtype, dev)
    if diffusers_layout(folder) is not None:
        return load_diffusers(folder, dtype=dtype, device=dev)
    if (folder / "checkpoint").is_dir():
        raise ValueError(
            f"load: {folder} is an unfinished memscape.train run (checkpoint/ but no model.json): "
            "resume the training to finish it"
        )
    raise ValueError(
        f"load: {folder} holds no model: expected model.json (a memscape model or training run), "
        "model_index.json or unet/ + scheduler/ (a diffusers save_pretrained folder)"
    )


def _from_python(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"load: cannot import {module_name!r} of {spec!r}: {err}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"load: {module_name!r} has no {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    if callable(obj) and not is_model(obj):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise TypeError(
                f"load: {spec} must name a function taking no arguments that returns a "
                "memscape model"
            ) from None
        except ValueError:  # no signature (some builtins): let the call decide
            pass
        obj = obj()
    model = obj
    if not (is_model(model) and getattr(model, "event_shape", None)):
        raise TypeError(
            f"load: {spec} returned a {type(model).__name__}, not a memscape model with an "
            "event_shape; wrap a bare denoiser with "
            "memscape.adapters.from_denoiser(fn, event_shape=...)"
        )
    return model


def _move(model: Any, dtype: torch.dtype | None, device: torch.device | None) -> Any:
    if (dtype is not None or device is not None) and isinstance(model, torch.nn.Module):
        model = model.to(device=device, dtype=dtype)
    return model
