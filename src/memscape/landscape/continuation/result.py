"""The result of a continuation: :class:`BifurcationDiagram` and its two tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from memscape._validation import check_positive
from memscape.landscape.continuation.corrector import Path
from memscape.landscape.continuation.events import Event
from memscape.landscape.continuation.family import Family
from memscape.landscape.critical import MAX_TABLE_COORDS
from memscape.landscape.morse import morse_index

__all__ = ["BifurcationDiagram", "tables"]


@dataclass
class BifurcationDiagram:
    """Branches of critical points over a parameter range, and their bifurcations.

    Attributes:
        parameter: name of the continued parameter.
        log: whether continuation ran in ``log p``.
        branches: tidy table, one row per continuation point: ``branch``, ``point``
            (order along the branch), ``parameter``, ``x0..x{d-1}`` (one array column
            ``x`` when d > 32, as in the census table), ``energy``
            (NaN for score-only models), ``bifurcation`` (the row is a located
            bifurcation point), ``morse_index``, ``stable`` (index 0),
            ``lambda0..`` (the smallest Hessian eigenvalues, ascending).
        bifurcations: tidy table, one row per bifurcation: ``parameter``, ``kind``
            (``fold``, ``pitchfork``, ``transcritical``, ``branch_point``,
            ``saddle_connection``), ``branch`` (where found),
            ``branches`` (tuple: that branch and the branches leaving it),
            ``index_before``, ``index_after`` (a fold: the indices of the branches
            arriving at and leaving the turn, along the traced direction; a pitchfork:
            the through branch's index on the ``start`` side and on the ``stop`` side),
            ``grad_norm`` (``‖∇E‖`` at the located point) and ``eigenvalue`` (the Hessian
            eigenvalue through zero there), ``multiplicity`` (how many eigenvalues vanish
            there), ``points_before`` / ``points_after`` (the critical points that merge
            at it on the ``start`` / ``stop`` side: a fold 2 and 0, a pitchfork 3 and 1,
            a transcritical as many on both sides, 4 and 4 where three branches cross a
            ``D₃``-symmetric one; −1 when not resolved), ``stalled`` (a fold where
            branches stopped, closer than round-off to a pitchfork: solved for directly,
            the branches beyond it may be cut short; a warning says so), ``x0..``,
            ``energy``.
    """

    parameter: str
    log: bool
    branches: pd.DataFrame
    bifurcations: pd.DataFrame

    @property
    def coordinates(self) -> list[str]:
        """Names of the coordinate columns ``x0..x{d-1}``."""
        return [c for c in self.branches.columns if c[0] == "x" and c[1:].isdigit()]

    def at(self, value: float) -> pd.DataFrame:
        """Critical points at parameter ``value``, one row per branch crossing.

        Coordinates and energy are linearly interpolated between the two continuation
        points that bracket ``value``; ``morse_index`` is the nearer one's, or the
        other one's when the nearer is a bifurcation point (so it is exact on each
        side of a located bifurcation).
        """
        if self.log:
            check_positive(value, "value")
        cols = [*self.coordinates, *(["x"] if "x" in self.branches else []), "energy"]
        rows = []
        for bid, br in self.branches.groupby("branch", sort=True):
            p = br["parameter"].to_numpy()
            lo, hi = np.minimum(p[:-1], p[1:]), np.maximum(p[:-1], p[1:])
            for k in np.flatnonzero((lo <= value) & (value <= hi) & (lo < hi)):
                if p[k + 1] == value and k + 2 < len(p):
                    continue  # the next piece starts at this very point
                w = (value - p[k]) / (p[k + 1] - p[k])
                a, b = br.iloc[k], br.iloc[k + 1]
                row = {"branch": bid, "parameter": value}
                for c in cols:
                    row[c] = (1 - w) * a[c] + w * b[c]
                near = b if a["bifurcation"] else a if b["bifurcation"] or w < 0.5 else b
                row["morse_index"] = int(near["morse_index"])
                row["stable"] = row["morse_index"] == 0
                rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Bifurcation diagram; see :func:`memscape.landscape.plot.plot_bifurcation`."""
        from memscape.landscape.plot import plot_bifurcation

        return plot_bifurcation(self, ax=ax, **kwargs)


def _coordinates(x: np.ndarray) -> dict[str, Any]:
    """Columns ``x0..x{d-1}`` up to ``MAX_TABLE_COORDS`` coordinates, else one ``x`` array."""
    if x.shape[0] <= MAX_TABLE_COORDS:
        return {f"x{i}": float(v) for i, v in enumerate(x)}
    return {"x": x}


def tables(
    fam: Family, paths: list[Path], events: list[Event]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``branches`` and ``bifurcations`` tables of :class:`BifurcationDiagram`."""
    d = int(np.prod(fam.event_shape)) if fam.event_shape else 1
    n_eig = min(d, 4)
    rows = []
    for bid, path in enumerate(paths):
        for k, (u, eig, mark) in enumerate(zip(path.u, path.eig, path.mark, strict=True)):
            q = float(u[-1])
            x = (fam.scale * u[:-1]).cpu().numpy()
            row: dict[str, Any] = {"branch": bid, "point": k, "parameter": fam.p(q)}
            row["bifurcation"] = mark
            row.update(_coordinates(x))
            row["energy"] = fam.energy(u[:-1], q)
            row["morse_index"] = int(morse_index(eig))
            row["stable"] = row["morse_index"] == 0
            row.update({f"lambda{i}": float(eig[i]) for i in range(n_eig)})
            rows.append(row)
    brows = []
    for ev in sorted(events, key=lambda e: fam.p(float(e.u[-1]))):
        q = float(ev.u[-1])
        row = {
            "parameter": fam.p(q),
            "kind": ev.kind,
            "branch": ev.branch,
            "branches": (ev.branch, *ev.children),
            "index_before": ev.index_before,
            "index_after": ev.index_after,
            "grad_norm": ev.grad_norm,
            "eigenvalue": ev.eigenvalue,
            "multiplicity": ev.multiplicity,
            "points_before": ev.points_before,
            "points_after": ev.points_after,
            "stalled": ev.stalled,
        }
        row.update(_coordinates((fam.scale * ev.u[:-1]).cpu().numpy()))
        row["energy"] = fam.energy(ev.u[:-1], q)
        brows.append(row)
    cols = ["parameter", "kind", "branch", "branches", "index_before", "index_after"]
    cols += ["grad_norm", "eigenvalue", "multiplicity", "points_before", "points_after"]
    cols += ["stalled"]
    cols += [*_coordinates(np.zeros(d)), "energy"]
    return pd.DataFrame(rows), pd.DataFrame(brows, columns=cols)
