"""The one I/O module: atomic writes, JSON, safetensors, and the environment record.

Every file memscape writes (results tables, figures, reports, models, checkpoints,
job folders) goes through :func:`atomic_write`: the content is written under a
temporary name in the target's folder and renamed into place with ``os.replace``,
so an interrupted run never leaves a half-written file. Files get the permissions
the user's umask gives a new file (``0644`` under umask ``022``), not the ``0600``
of a temporary file. Tensors are stored as safetensors only (never pickle).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memscape._version import __version__

__all__ = [
    "atomic_write",
    "cpu_name",
    "cpu_vendor",
    "environment",
    "load_tensors",
    "make_readable",
    "read_json",
    "save_tensors",
    "write_json",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(path: Path, *, folder: bool = False) -> None:
    """Give ``path`` the mode a new file (``0666``) or folder (``0777``) gets under the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it into place.

    Args:
        path: the final file; its parent folders are created.
        write: writes the content to the path it is given.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        make_readable(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (non-JSON values as strings)."""
    text = json.dumps(obj, indent=2, default=str) + "\n"
    return atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | Path, what: str) -> Any:
    """Read JSON, turning a missing or corrupt file into a ``ValueError`` naming ``what``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: corrupt JSON in {path}: {err}") from err


def save_tensors(path: str | Path, tensors: dict[str, Any]) -> Path:
    """Write a dict of tensors as safetensors to ``path`` atomically (CPU, contiguous copies)."""
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    return atomic_write(path, lambda p: save_file(cpu, str(p)))


def load_tensors(path: str | Path, what: str) -> dict[str, Any]:
    """Read a safetensors file (never pickle), turning errors into a ``ValueError``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{what}: cannot read safetensors file {path}: {err}") from err


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` of ``/proc/cpuinfo`` (Linux), or ``None``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), for benchmark and run records."""
    return _cpuinfo("model name") or platform.processor() or "unknown"


def cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, …; ``""`` if unknown):
    ``vendor_id`` of ``/proc/cpuinfo`` on Linux, else the end of ``platform.processor()``
    (Windows names it there)."""
    vendor = _cpuinfo("vendor_id")
    if vendor is not None:
        return vendor
    words = platform.processor().split()
    return words[-1] if words and words[-1] in ("GenuineIntel", "AuthenticAMD") else ""


def environment() -> dict[str, Any]:
    """Versions of Python, memscape and the main libraries, and the machine and its threads."""
    from importlib import metadata

    import torch

    versions: dict[str, str | None] = {}
    for package in ("numpy", "scipy", "pandas", "matplotlib", "safetensors", "scikit-learn"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "memscape": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        **versions,
        "platform": platform.platform(),
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_vendor": cpu_vendor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
