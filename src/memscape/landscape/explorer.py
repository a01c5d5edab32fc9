"""The data of the browser explorer: a 2-D landscape along a one-parameter family.

For each value of the family's parameter (σ, β, a pattern's height, ...) on a slider:
the energy ``E(x, p)`` on a grid, the critical points with their Morse index, energy
and label, and the Morse–Smale graph saddle → minimum; beside them, the bifurcation
diagram of the family (branches of critical points by pseudo-arclength continuation,
Keller 1977; folds and pitchforks, Kuznetsov 2004). Along a generic family the flow is
Morse–Smale except at isolated bifurcation values (Ambrogioni 2023), so moving the
slider across an event shows critical points being born or dying in pairs.

The critical points at each value are those of the bifurcation diagram
(:meth:`BifurcationDiagram.at`), refined by Newton and analysed there
(:func:`memscape.landscape.critical_points` with ``seeds=False``): the points drawn on
the landscape are the branches the diagram shows. The result is plain JSON
(:func:`explorer_data`); :func:`memscape.runs.explorer.write_explorer` renders it as
one self-contained HTML page.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from memscape._validation import check_int
from memscape.landscape._fields import event_shape, flat_score, has_energy
from memscape.landscape.basins import basin_map
from memscape.landscape.continuation import BifurcationDiagram, continuation
from memscape.landscape.critical import critical_points, default_patterns
from memscape.landscape.morse_smale import morse_smale_graph
from memscape.runs.explorer import FORMAT, VERSION
from memscape.runs.explorer import json_number as _num
from memscape.runs.explorer import json_numbers as _nums

__all__ = [
    "explorer_data",
    "explorer_family",
    "explorer_values",
    "landscape_frame",
    "pair_family",
    "surface_name",
]

SYMBOLS = {"sigma": "σ", "beta": "β"}  #: how the page writes a parameter's name


def explorer_values(
    start: float, stop: float, n: int, *, log: bool, include: Iterable[float] = ()
) -> list[float]:
    """``n`` slider values from ``start`` to ``stop`` (geometric when ``log``), plus ``include``.

    Values of ``include`` inside the range (e.g. the parameter of a report's snapshot)
    are added, values within 10⁻⁹ (relative) of another dropped; the list runs from
    ``start`` to ``stop``.

    Args:
        start: first value.
        stop: last value.
        n: evenly spaced values (≥ 2; in ``log p`` when ``log``).
        log: space them geometrically (σ, β).
        include: extra values kept when inside ``[start, stop]``.
    """
    check_int(n, "n", minimum=2)
    for name, v in (("start", start), ("stop", stop)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
        if log and v <= 0:
            raise ValueError(f"{name} must be positive for log spacing, got {v!r}")
    if start == stop:
        raise ValueError(f"start and stop must differ, got {start!r}")
    grid = np.geomspace(start, stop, n) if log else np.linspace(start, stop, n)
    lo, hi = sorted((start, stop))
    out: list[float] = []
    for v in sorted([*map(float, grid), *(float(e) for e in include if lo <= e <= hi)]):
        if not out or abs(v - out[-1]) > 1e-9 * max(abs(v), 1e-300):
            out.append(v)
    return out[::-1] if start > stop else out


def _box(
    diagram: BifurcationDiagram, values: Sequence[float], patterns: list[np.ndarray]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The patterns and the branch points inside the slider's range, padded by 25 % (≥ 0.5)."""
    br = diagram.branches
    lo, hi = min(values), max(values)
    inside = br[(br["parameter"] >= lo) & (br["parameter"] <= hi)]
    pts = [inside[["x0", "x1"]].to_numpy(), *patterns]
    xy = np.concatenate([p.reshape(-1, 2) for p in pts if len(p)])
    a, b = xy.min(0), xy.max(0)
    pad = np.maximum(0.25 * (b - a), 0.5)
    return (float(a[0] - pad[0]), float(b[0] + pad[0])), (
        float(a[1] - pad[1]),
        float(b[1] + pad[1]),
    )


def surface_name(model: Any) -> str:
    """What the explorer colours: ``"energy"``, or ``"log(1 + |s|)"`` for a score-only model."""
    return "energy" if has_energy(model) else "log(1 + |s|)"


def _surface_frame(model: Any, sigma: Any, value: float, pats: Any, grid: torch.Tensor,
                   shape2: tuple[int, int]) -> dict[str, Any]:  # fmt: skip
    """A frame without critical points: the surface (minus its minimum) and the patterns."""
    shape = event_shape(model)
    if has_energy(model):
        surface = model.energy(grid.reshape(-1, *shape), sigma).detach()
    else:
        surface = torch.log1p(flat_score(model, grid, sigma, shape).norm(dim=1))
    z = surface.detach().cpu().double().numpy().reshape(shape2)
    shown = [] if pats is None else _nums(pats.detach().cpu().double().reshape(-1, 2))
    return {"value": _num(value, 10), "z": _nums(z - np.nanmin(z), 5), "points": [],
            "edges": [], "patterns": shown}  # fmt: skip


def landscape_frame(
    model: Any, sigma: Any, value: float, x_axis: Sequence[float] | np.ndarray,
    y_axis: Sequence[float] | np.ndarray, *,
    patterns: torch.Tensor | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One frame of :func:`explorer_family` without a census: the surface on a grid.

    For families whose critical points come from elsewhere (e.g. a trained model's
    attractors, drawn as the frame's ``markers``). The surface is the energy minus its
    minimum on the grid, or ``log(1 + ‖s(x, σ)‖)`` for a score-only model
    (:func:`surface_name`), as :func:`explorer_family`'s frames.

    Args:
        model: a 2-D model following the protocol.
        sigma: its noise level (``None`` for a model that is not noise-conditioned).
        value: the frame's slider value.
        x_axis: grid nodes along x0 (the columns).
        y_axis: grid nodes along x1 (the rows).
        patterns: ``(K, 2)`` points shown as the frame's ``patterns`` (``None``: none).

    Returns:
        A frame: ``value``, ``z`` (``len(y_axis)`` rows of ``len(x_axis)``), empty ``points`` and
        ``edges``, ``patterns``.
    """
    xs, ys = (torch.as_tensor(list(a), dtype=torch.float64) for a in (x_axis, y_axis))
    if min(len(xs), len(ys)) < 2:
        raise ValueError(f"x_axis and y_axis must hold at least 2 grid nodes each, got "
                         f"{len(xs)}, {len(ys)}")  # fmt: skip
    param = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    device = param.device if param is not None else getattr(patterns, "device", "cpu")
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)
    return _surface_frame(model, sigma, value, patterns, grid, (len(ys), len(xs)))


def _basins(model: Any, cps: Any, sigma: Any, axes: tuple[torch.Tensor, torch.Tensor],
            shown: Sequence[int]) -> list[list[int | None]]:  # fmt: skip
    """Per grid node, the position in ``shown`` (census rows drawn) of the minimum its
    gradient flow reaches (:func:`memscape.landscape.basin_map`), ``None`` for none."""
    xs, ys = axes
    bmap = basin_map(model, cps, sigma, xlim=(float(xs[0]), float(xs[-1])),
                     ylim=(float(ys[0]), float(ys[-1])), resolution=len(xs))  # fmt: skip
    where = {row: i for i, row in enumerate(shown)}
    return [[where.get(int(v)) for v in r] for r in bmap.labels.tolist()]


def _frame(model: Any, sigma: Any, value: float, starts: np.ndarray, pats: Any,
           grid: torch.Tensor, axes: tuple[torch.Tensor, torch.Tensor], edges: bool,
           basins: bool) -> dict[str, Any]:  # fmt: skip
    """One slider position: the surface on the grid, critical points, Morse–Smale edges,
    basins."""
    resolution = len(axes[0])
    frame = _surface_frame(model, sigma, value, pats, grid, (resolution, resolution))
    if not len(starts):
        return frame
    with warnings.catch_warnings():  # a branch point that Newton loses is simply not drawn
        warnings.simplefilter("ignore", RuntimeWarning)
        x = torch.tensor(starts, dtype=torch.float64, device=grid.device)
        cps = critical_points(model, sigma, starts=x, seeds=False, patterns=pats)
    table = cps.table.reset_index(names="point")
    conv = table[table["converged"]]
    frame["points"] = [
        {"x0": _num(r.x0), "x1": _num(r.x1), "energy": _num(r.energy),
         "morse_index": int(r.morse_index), "kind": str(r.kind), "label": str(r.label)}
        for r in conv.itertuples()
    ]  # fmt: skip
    if basins and (conv["morse_index"] == 0).any():
        frame["basins"] = _basins(model, cps, sigma, axes, conv["point"].tolist())
    if edges and (conv["morse_index"] == 1).any():
        graph = morse_smale_graph(model, cps, sigma)
        xy = {int(r.point): (_num(r.x0), _num(r.x1)) for r in conv.itertuples()}
        frame["edges"] = [[xy[s], xy[e]] for s, e in graph.edges() if s in xy and e in xy]
    return frame


def _diagram(diagram: BifurcationDiagram) -> dict[str, Any]:
    """Branches (parameter, x0, x1, energy, Morse index per point) and events, as lists."""
    branches = []
    for bid, br in diagram.branches.groupby("branch", sort=True):
        branches.append({"branch": int(bid), "parameter": _nums(br["parameter"], 8),
                         **{c: _nums(br[c]) for c in ("x0", "x1", "energy")},
                         "morse_index": [int(i) for i in br["morse_index"]]})  # fmt: skip
    events = [
        {"parameter": _num(r.parameter, 8), "kind": str(r.kind), "x0": _num(r.x0),
         "x1": _num(r.x1), "energy": _num(r.energy), "index_before": int(r.index_before),
         "index_after": int(r.index_after)}
        for r in diagram.bifurcations.itertuples()
    ]  # fmt: skip
    return {"branches": branches, "events": events}


def explorer_family(
    build: Callable[[float], tuple[Any, Any]],
    diagram: BifurcationDiagram,
    values: Sequence[float],
    *,
    patterns: torch.Tensor | None = None,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    resolution: int = 60,
    edges: bool = True,
    basins: bool = True,
    name: str = "family",
    description: str = "",
) -> dict[str, Any]:
    """One family of the explorer: the landscape at each slider value, and its diagram.

    Args:
        build: ``build(value) -> (model, σ)``, the 2-D landscape at one parameter value
            (σ ``None`` when the model is not noise-conditioned).
        diagram: the family's :class:`BifurcationDiagram` (from
            :func:`memscape.landscape.continuation`) over a range holding ``values``.
        values: the slider's parameter values (e.g. :func:`explorer_values`).
        patterns: ``(K, 2)`` stored / training points, drawn and used for the labels
            (default each model's own, e.g. a moving pattern of a Hopfield family).
        xlim: the landscape's box (default: patterns and branch points, padded).
        ylim: the landscape's box (default: patterns and branch points, padded).
        resolution: grid nodes per axis (≥ 4).
        edges: also trace the Morse–Smale graph saddle → minimum at each value.
        basins: also map, per grid node, the minimum its gradient flow reaches
            (:func:`memscape.landscape.basin_map`; the page colours the basins on request).
        name: the family's name on the page.
        description: a sentence shown under its name.

    Returns:
        A JSON-ready dict: ``name``, ``description``, ``parameter``, ``symbol``, ``log``,
        ``surface`` (``"energy"``, or ``"log(1 + |s|)"`` for a score-only model), ``x``,
        ``y`` (grid axes), ``frames`` (per value: ``value``, ``z`` — the surface minus
        its minimum, rows along ``y`` — ``points`` with ``x0``, ``x1``, ``energy``,
        ``morse_index``, ``kind``, ``label``, ``edges`` as coordinate pairs,
        ``patterns`` and, with ``basins``, ``basins``: rows like ``z`` of the position in
        ``points`` of the minimum each node flows to, ``None`` for none) and ``diagram``
        (``branches``, ``events``).
    """
    if not isinstance(diagram, BifurcationDiagram):
        raise TypeError(f"diagram must be a BifurcationDiagram, got {type(diagram).__name__}")
    if diagram.coordinates != ["x0", "x1"]:
        raise ValueError(f"diagram must have 2 coordinates x0, x1, got {diagram.coordinates}")
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be a non-empty sequence of finite numbers, got {values}")
    check_int(resolution, "resolution", minimum=4)
    for arg, lim in (("xlim", xlim), ("ylim", ylim)):
        if lim is not None and not (len(lim) == 2 and lim[1] > lim[0]):
            raise ValueError(f"{arg} must be (low, high) with high > low, got {lim!r}")
    models = [build(v) for v in values]
    pats = [patterns if patterns is not None else default_patterns(m) for m, _ in models]
    if xlim is None or ylim is None:
        shown = [p.detach().cpu().double().numpy() for p in pats if p is not None]
        bx, by = _box(diagram, values, shown)
        xlim, ylim = xlim or bx, ylim or by
    xs = torch.linspace(float(xlim[0]), float(xlim[1]), resolution, dtype=torch.float64)
    ys = torch.linspace(float(ylim[0]), float(ylim[1]), resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    device = next((p.device for p in pats if p is not None), torch.device("cpu"))
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(device)  # the models' device
    frames = []
    for v, (model, sigma), p in zip(values, models, pats, strict=True):
        at = diagram.at(v)
        starts = at[["x0", "x1"]].to_numpy() if len(at) else np.zeros((0, 2))
        frames.append(_frame(model, sigma, v, starts, p, grid, (xs, ys), edges, basins))
    return {
        "name": str(name),
        "description": str(description),
        "parameter": diagram.parameter,
        "symbol": SYMBOLS.get(diagram.parameter, diagram.parameter),
        "log": bool(diagram.log),
        "surface": surface_name(models[0][0]),
        "x": _nums(xs),
        "y": _nums(ys),
        "frames": frames,
        "diagram": _diagram(diagram),
    }


def pair_family(
    a: float,
    process: str,
    kind: str = "density",
    *,
    frames: int = 16,
    steps: int = 25,
    n_starts: int = 100,
    resolution: int = 60,
    seed: int = 0,
) -> dict[str, Any]:
    """The explorer family of two points ``(±a, 0)`` along forward time t of a process.

    The landscape is :class:`memscape.diffusion.ProcessLandscape` of the exact model of
    the two points (``kind`` ``"density"``: ``−log p_t``; ``"drift"``: the reverse-SDE
    drift potential), over t from ``t(3a)`` down to ``t(0.3a)`` (generation), continued
    by pseudo-arclength in log t (Keller 1977). The density's central minimum splits into
    two minima and a saddle at σ(t_c) = a, the drift potential's at
    ``σ_c² = a² − 1 + √(1 + a⁴)`` for VP and OU (Raya & Ambrogioni 2023): the slider
    crosses the pitchfork. Along x1 the energy is ``x1²/(2 s²σ²)`` plus a constant
    (density), so every critical point lies on the x0 axis with the 1-D Morse index.

    Args:
        a: half-distance of the two points (> 0).
        process: ``"ve"``, ``"vp"``, ``"ou"`` or ``"edm"``.
        kind: ``"density"`` or ``"drift"``.
        frames: slider values (≥ 2), geometric in t.
        steps: initial continuation steps over the range (≥ 4).
        n_starts: random starts of each census (≥ 1).
        resolution: grid nodes per axis (≥ 4).
        seed: seed of the continuation's census.

    Returns:
        :func:`explorer_family` of the family, named ``"±a, PROCESS, kind"``.
    """
    from memscape.diffusion import EmpiricalDiffusion, ProcessLandscape, get_process

    if isinstance(a, bool) or not isinstance(a, (int, float)) or not (math.isfinite(a) and a > 0):
        raise ValueError(f"a must be a positive finite number, got {a!r}")
    check_int(frames, "frames", minimum=2)
    check_int(steps, "steps", minimum=4)
    check_int(n_starts, "n_starts", minimum=1)
    proc = get_process(process)
    model = EmpiricalDiffusion(torch.tensor([[a, 0.0], [-a, 0.0]], dtype=torch.float64))

    def build(t: float) -> ProcessLandscape:
        return ProcessLandscape(model, proc, t, kind)

    start, stop = (float(proc.t_of_sigma(f * a)) for f in (3.0, 0.3))
    bd = continuation(build, "t", log=True, start=start, stop=stop, steps=steps,
                      census_kwargs={"n_starts": n_starts},
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip
    values = explorer_values(start, stop, frames, log=True)
    what = "−log p_t" if kind == "density" else "the reverse-drift potential U"
    return explorer_family(
        lambda t: (build(t), None), bd, values, resolution=resolution,
        name=f"±{a:g}, {proc.name.upper()}, {kind}",
        description=f"{what} of two points (±{a:g}, 0) over forward time t ({proc.name})",
    )  # fmt: skip


def explorer_data(title: str, families: Sequence[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    """The content of ``explorer.json``: a title, families (:func:`explorer_family`), metadata.

    Args:
        title: the page's title.
        families: one or more families, each shown with its own slider.
        **meta: JSON-ready extra fields (e.g. the experiment, the config).
    """
    if not families:
        raise ValueError("families must hold at least one explorer_family(...)")
    return {"format": FORMAT, "version": VERSION, "title": str(title),
            "families": list(families), **meta}  # fmt: skip
