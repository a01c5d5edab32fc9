"""Atomic file writes (a temp name, then ``os.replace``) for models, checkpoints, run folders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["load_tensors", "read_json", "save_tensors", "write_json"]


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    tmp = _tmp(path)
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a dict of tensors as safetensors to ``path`` atomically (CPU, contiguous copies)."""
    tmp = _tmp(path)
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def read_json(path: Path, what: str) -> Any:
    """Read JSON, turning a missing or corrupt file into a ``ValueError`` naming ``what``."""
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: corrupt JSON in {path}: {err}") from err


def load_tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle), turning errors into a ``ValueError``."""
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{what}: cannot read safetensors file {path}: {err}") from err
