"""Checkpoint folders of :func:`memscape.train` and :func:`memscape.train_stacked`.

A checkpoint folder holds the weights, the EMA, the Adam state, the generator state,
the loss buffer, the step and the loss-table rows (safetensors + JSON, never pickle),
written into a temporary folder and swapped in whole.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memscape.io import load_tensors, read_json, save_tensors, write_json

__all__ = ["Checkpoint", "read_checkpoint", "write_checkpoint"]

_CKPT = "checkpoint"


def write_checkpoint(
    path: Path,
    model_state: dict[str, torch.Tensor],
    ema: list[torch.Tensor],
    opt_state: dict[str, Any],
    rng: torch.Tensor,
    loss_buffer: torch.Tensor,
    step: int,
    rows: list,
) -> None:
    """Write ``path/checkpoint`` whole (into a temp folder, then swapped in).

    Holds the weights, the EMA (one tensor per trainable parameter, in order), the Adam
    state (``opt_state``: an ``Optimizer.state_dict()``), the generator state, the loss
    buffer, the step and the loss-table rows. Shared by :func:`memscape.train` and
    :func:`memscape.diffusion.stacked.train_stacked`, so either resumes the other's runs.
    """
    tmp, final, old = path / (_CKPT + ".tmp"), path / _CKPT, path / (_CKPT + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "model.safetensors", model_state)
    save_tensors(tmp / "ema.safetensors", {str(i): e for i, e in enumerate(ema)})
    tensors = {"rng": rng, "loss_buffer": loss_buffer}
    for i, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"adam.{i}.{k}"] = v
    save_tensors(tmp / "optimizer.safetensors", tensors)
    groups = [{k: v for k, v in g.items()} for g in opt_state["param_groups"]]
    write_json(tmp / "state.json", {"step": step, "param_groups": groups, "rows": rows})
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.replace(old)
    tmp.replace(final)
    shutil.rmtree(old, ignore_errors=True)


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` loads: the fields :func:`write_checkpoint` wrote."""

    model: dict[str, torch.Tensor]
    ema: list[torch.Tensor]
    adam: dict[int, dict[str, torch.Tensor]]
    param_groups: list[dict[str, Any]]
    rng: torch.Tensor
    loss_buffer: torch.Tensor
    rows: list
    step: int


def read_checkpoint(ckpt: Path, dev: torch.device, log_every: int) -> Checkpoint:
    """Load a checkpoint folder written by :func:`write_checkpoint` (Adam moments on ``dev``)."""
    state = read_json(ckpt / "state.json", "resume")
    ema = load_tensors(ckpt / "ema.safetensors", "resume")
    tensors = load_tensors(ckpt / "optimizer.safetensors", "resume")
    adam: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("adam."):
            _, idx, k = key.split(".", 2)
            adam.setdefault(int(idx), {})[k] = v if k == "step" else v.to(dev)
    # a call's final row averages a partial interval: drop it so the table matches an
    # uninterrupted run (the loss buffer still holds those steps)
    rows = [tuple(r) for r in state["rows"] if r[0] % log_every == 0]
    return Checkpoint(
        model=load_tensors(ckpt / "model.safetensors", "resume"),
        ema=[ema[str(i)] for i in range(len(ema))],
        adam=adam,
        param_groups=state["param_groups"],
        rng=tensors["rng"],
        loss_buffer=tensors["loss_buffer"],
        rows=rows,
        step=int(state["step"]),
    )
