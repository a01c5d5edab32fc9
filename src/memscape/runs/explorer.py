"""``explorer.html``: one self-contained, offline page rendered from ``explorer.json``.

The page embeds plotly.js (:func:`plotly.offline.get_plotlyjs`), its own script and the
data, so it needs no server and makes no network request: it opens from ``file://``
after being moved or mailed. It shows, per family, the landscape at the value of a
slider and, beside it, the bifurcation diagram of the family or (a family with
``curves``) curves against the slider's parameter with error bars, e.g. the class
fractions against the training-set size K; a cursor there follows the slider and a click
there moves the slider. Opened with ``#selftest`` it moves the slider itself and writes
the outcome into ``<pre id="selftest" data-result="pass|fail">``.

This module knows no science: it checks the JSON's shape and renders it (the data are
computed by :mod:`memscape.landscape.explorer`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from memscape._version import __version__
from memscape.io import atomic_write, read_json
from memscape.runs.results import template

__all__ = [
    "FORMAT",
    "VERSION",
    "check_explorer_data",
    "json_number",
    "json_numbers",
    "render_explorer",
    "write_explorer",
]

FORMAT = "memscape-explorer"  #: the ``format`` field of ``explorer.json``
VERSION = 1  #: the ``version`` field of ``explorer.json`` this renderer reads


def json_number(v: Any, digits: int = 6) -> float | None:
    """A JSON number with ``digits`` significant digits (``None`` for NaN and ±inf)."""
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def json_numbers(a: Any, digits: int = 6) -> list[Any]:
    """A (nested) list of :func:`json_number` of an array."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        return [json_number(arr, digits)]
    return [json_numbers(r, digits) if arr.ndim > 1 else json_number(r, digits) for r in arr]


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


def _is_num(v: Any, *, null: bool = False) -> bool:
    """A JSON number (``bool`` is not one); ``None`` too when ``null``."""
    return (v is None and null) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _numbers(obj: Any, where: str, n: int | None = None, *, null: bool = True) -> list[Any]:
    """A list of ``n`` numbers (``None`` allowed when ``null``: a missing value)."""
    shown = "numbers or null" if null else "numbers"
    expected = f"a list of {n} {shown}" if n is not None else f"a non-empty list of {shown}"
    ok = isinstance(obj, list) and (len(obj) == n if n is not None else bool(obj))
    if not ok or not all(_is_num(v, null=null) for v in obj):
        raise _fail(where, expected, obj)
    return obj


def _check_curves(curves: Any, at: str) -> None:
    """The ``curves`` block of a family: labels, axis type, series with optional bars."""
    if not isinstance(curves, Mapping):
        raise _fail(at, "an object", curves)
    for key in ("x_label", "y_label") + (("title",) if "title" in curves else ()):
        if not isinstance(curves.get(key), str):
            raise _fail(f"{at}.{key}", "a string", curves.get(key))
    if not isinstance(curves.get("log"), bool):
        raise _fail(f"{at}.log", "true or false (a log x-axis)", curves.get("log"))
    if "y_range" in curves:
        _numbers(curves["y_range"], f"{at}.y_range (low, high)", 2, null=False)
    for i, s in enumerate(_list(curves.get("series"), f"{at}.series")):
        where = f"{at}.series[{i}]"
        if not isinstance(s, Mapping):
            raise _fail(where, "an object", s)
        for key in ("name", "color"):
            if not isinstance(s.get(key), str):
                raise _fail(f"{where}.{key}", "a string", s.get(key))
        n = len(_numbers(s.get("x"), f"{where}.x", null=False))
        _numbers(s.get("y"), f"{where}.y (as many as x)", n)
        for lo, hi in (("low", "high"), ("min", "max")):  # error bars; a band
            if (lo in s) != (hi in s):
                raise _fail(f"{where}.{hi if lo in s else lo}", f"given with {lo}/{hi}", None)
            for key in (lo, hi) if lo in s else ():
                _numbers(s[key], f"{where}.{key} (as many as x)", n)


def _check_markers(markers: Any, where: str) -> None:
    """Extra points of a frame: ``x0``, ``x1``, ``label``, ``color`` (``energy`` optional)."""
    for k, m in enumerate(_list(markers, where, nonempty=False)):
        at = f"{where}[{k}]"
        if not isinstance(m, Mapping):
            raise _fail(at, "an object", m)
        for key in ("x0", "x1"):
            if not _is_num(m.get(key)):
                raise _fail(f"{at}.{key}", "a number", m.get(key))
        for key in ("label", "color"):
            if not isinstance(m.get(key), str):
                raise _fail(f"{at}.{key}", "a string", m.get(key))
        if not _is_num(m.get("energy"), null=True):
            raise _fail(f"{at}.energy", "a number or null", m.get("energy"))


def check_explorer_data(data: Any) -> None:
    """Check the shape of explorer data (``explorer.json``), naming the first bad field.

    Expected: ``format`` = :data:`FORMAT`, ``version`` = :data:`VERSION`, ``title``, and
    ``families``, each with ``name``, ``symbol``, ``log``, ``x``, ``y`` (grid axes),
    ``frames`` (each ``value``, ``z`` of ``len(y)`` rows of ``len(x)`` numbers,
    ``points``, ``edges``, ``patterns``; optional ``basins``: ``len(y)`` rows of ``len(x)``
    positions in ``points`` or ``null``; optional ``markers``: points with ``x0``,
    ``x1``, ``label``, ``color`` and optional ``energy``, ``symbol``, ``text``, and an
    optional ``title``) and ``diagram`` (``branches``, ``events``) or ``curves``
    (``x_label``, ``y_label``, ``log``, ``series``: each ``name``, ``color``, ``x``,
    ``y`` and optional error bars ``low``/``high`` and band ``min``/``max``, as many as
    ``x``, optional ``dash``; optional ``title`` and ``y_range``), optional
    ``patterns_label``.

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
        for key in ("name", "symbol") + (("patterns_label",) if "patterns_label" in fam else ()):
            if not isinstance(fam.get(key), str):
                raise _fail(f"{at}.{key}", "a string", fam.get(key))
        nx, ny = len(_list(fam.get("x"), f"{at}.x")), len(_list(fam.get("y"), f"{at}.y"))
        for j, fr in enumerate(_list(fam.get("frames"), f"{at}.frames")):
            where = f"{at}.frames[{j}]"
            if not isinstance(fr, Mapping) or not _is_num(fr.get("value")):
                raise _fail(f"{where}.value", "a number", None if not isinstance(fr, Mapping)
                            else fr.get("value"))  # fmt: skip
            z = _list(fr.get("z"), f"{where}.z")
            if len(z) != ny or any(not isinstance(r, list) or len(r) != nx for r in z):
                raise _fail(f"{where}.z", f"{ny} rows of {nx} numbers (len(y) × len(x))", z)
            for key in ("points", "edges", "patterns"):
                _list(fr.get(key), f"{where}.{key}", nonempty=False)
            if "markers" in fr:
                _check_markers(fr["markers"], f"{where}.markers")
            if "basins" in fr:  # per node: the position in points of its minimum, or null
                rows = _list(fr["basins"], f"{where}.basins")
                n_pts = len(fr.get("points", []))
                ok = len(rows) == ny and all(
                    isinstance(r, list) and len(r) == nx and all(
                        v is None or (type(v) is int and 0 <= v < n_pts) for v in r)
                    for r in rows
                )  # fmt: skip
                if not ok:
                    raise _fail(f"{where}.basins", f"{ny} rows of {nx} indices into points "
                                f"(0 … {n_pts - 1}) or null", rows)  # fmt: skip
            if "title" in fr and not isinstance(fr["title"], str):
                raise _fail(f"{where}.title", "a string", fr["title"])
        if "curves" in fam:  # drawn instead of the diagram
            _check_curves(fam["curves"], f"{at}.curves")
        if "curves" not in fam or "diagram" in fam:
            diagram = fam.get("diagram")
            if not isinstance(diagram, Mapping):
                raise _fail(f"{at}.diagram", "an object (or a curves block)", diagram)
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
            "morse-smale, symmetry-breaking and, on 2-D data, memorization write one)"
        )
    page = render_explorer(read_json(source, "explorer.json"))
    return atomic_write(folder / "explorer.html", lambda p: p.write_text(page, encoding="utf-8"))
