"""``explorer.html``: one self-contained, offline page rendered from ``explorer.json``.

The page embeds plotly.js (:func:`plotly.offline.get_plotlyjs`), its own script and the
data, so it needs no server and makes no network request: it opens from ``file://``
after being moved or mailed. It shows, per family, the landscape at the value of a
slider and the bifurcation diagram with a cursor at that value; opened with
``#selftest`` it moves the slider itself and writes the outcome into
``<pre id="selftest" data-result="pass|fail">``.

This module knows no science: it checks the JSON's shape and renders it (the data are
computed by :mod:`memscape.landscape.explorer`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memscape._version import __version__
from memscape.io import atomic_write, read_json
from memscape.runs.results import template

__all__ = ["FORMAT", "VERSION", "check_explorer_data", "render_explorer", "write_explorer"]

FORMAT = "memscape-explorer"  #: the ``format`` field of ``explorer.json``
VERSION = 1  #: the ``version`` field of ``explorer.json`` this renderer reads


def _fail(where: str, expected: str, got: Any) -> ValueError:
    shown = repr(got) if not isinstance(got, (list, dict)) else type(got).__name__
    return ValueError(f"explorer data: {where} must be {expected}, got {shown}")


def _list(obj: Any, where: str, *, nonempty: bool = True) -> list[Any]:
    if not isinstance(obj, list) or (nonempty and not obj):
        raise _fail(where, "a non-empty list" if nonempty else "a list", obj)
    return obj


def _compact(data: Mapping[str, Any]) -> str:
    """Compact JSON (grids of numbers); NaN and ±inf are refused: write them as ``null``."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError as err:
        raise ValueError(f"explorer data: {err} (write NaN and ±inf as None)") from err


def check_explorer_data(data: Any) -> None:
    """Check the shape of explorer data (``explorer.json``), naming the first bad field.

    Expected: ``format`` = :data:`FORMAT`, ``version`` = :data:`VERSION`, ``title``, and
    ``families``, each with ``name``, ``symbol``, ``log``, ``x``, ``y`` (grid axes),
    ``frames`` (each ``value``, ``z`` of ``len(y)`` rows of ``len(x)`` numbers,
    ``points``, ``edges``, ``patterns``) and ``diagram`` (``branches``, ``events``).

    Raises:
        ValueError: a field is missing or has the wrong type or shape.
    """
    if not isinstance(data, Mapping):
        raise _fail("the data", "a JSON object", data)
    if data.get("format") != FORMAT:
        raise _fail("format", repr(FORMAT), data.get("format"))
    if data.get("version") != VERSION:
        raise _fail("version", str(VERSION), data.get("version"))
    if not isinstance(data.get("title"), str):
        raise _fail("title", "a string", data.get("title"))
    for i, fam in enumerate(_list(data.get("families"), "families")):
        at = f"families[{i}]"
        if not isinstance(fam, Mapping):
            raise _fail(at, "an object", fam)
        for key in ("name", "symbol"):
            if not isinstance(fam.get(key), str):
                raise _fail(f"{at}.{key}", "a string", fam.get(key))
        nx, ny = len(_list(fam.get("x"), f"{at}.x")), len(_list(fam.get("y"), f"{at}.y"))
        for j, fr in enumerate(_list(fam.get("frames"), f"{at}.frames")):
            where = f"{at}.frames[{j}]"
            if not isinstance(fr, Mapping) or not isinstance(fr.get("value"), (int, float)):
                raise _fail(f"{where}.value", "a number", None if not isinstance(fr, Mapping)
                            else fr.get("value"))  # fmt: skip
            z = _list(fr.get("z"), f"{where}.z")
            if len(z) != ny or any(not isinstance(r, list) or len(r) != nx for r in z):
                raise _fail(f"{where}.z", f"{ny} rows of {nx} numbers (len(y) × len(x))", z)
            for key in ("points", "edges", "patterns"):
                _list(fr.get(key), f"{where}.{key}", nonempty=False)
        diagram = fam.get("diagram")
        if not isinstance(diagram, Mapping):
            raise _fail(f"{at}.diagram", "an object", diagram)
        for key in ("branches", "events"):
            _list(diagram.get(key), f"{at}.diagram.{key}", nonempty=False)


def render_explorer(data: Mapping[str, Any]) -> str:
    """The explorer page of ``data`` (checked by :func:`check_explorer_data`) as HTML text."""
    check_explorer_data(data)
    from plotly.offline import get_plotlyjs

    # "</" inside a <script> block would end it early: JSON allows the escaped form.
    text = _compact(data).replace("</", "<\\/")
    families = ", ".join(f"{f['name']} ({len(f['frames'])} values of {f['symbol']})"
                         for f in data["families"])  # fmt: skip
    surfaces = {f.get("surface", "energy") for f in data["families"]}
    surface_help = "; ".join(
        "energy E minus its minimum" if s == "energy" else f"{s} (a score-only model)"
        for s in sorted(surfaces)
    )
    return template("explorer.html.j2").render(
        title=data["title"], subtitle=f"memscape {__version__} explorer · {families}",
        surface_help=surface_help, plotly_js=get_plotlyjs(), data_json=text,
        version=__version__,
    )  # fmt: skip


def write_explorer(results_dir: str | Path, data: Mapping[str, Any] | None = None) -> Path:
    """(Re)write ``explorer.html`` of a results folder from its ``explorer.json``; its path.

    Args:
        results_dir: a results folder holding ``explorer.json`` (or receiving ``data``;
            then created if missing).
        data: explorer data (:func:`memscape.landscape.explorer.explorer_data`); when
            given, first written as ``explorer.json``.

    Raises:
        ValueError: ``results_dir`` is not a folder, has no ``explorer.json``, or its
            data have the wrong shape (the field is named).
    """
    folder = Path(results_dir)
    if not folder.is_dir() and (folder.exists() or data is None):
        raise ValueError(f"results_dir must be an existing results folder, got {str(folder)!r}")
    source = folder / "explorer.json"
    if data is not None:
        check_explorer_data(data)
        text = _compact(data)
        atomic_write(source, lambda p: p.write_text(text, encoding="utf-8"))
    elif not source.is_file():
        raise ValueError(
            f"results_dir {str(folder)!r} has no explorer.json (runs of landscape, "
            "morse-smale and symmetry-breaking write one)"
        )
    page = render_explorer(read_json(source, "explorer.json"))
    return atomic_write(folder / "explorer.html", lambda p: p.write_text(page, encoding="utf-8"))
