"""Tracing every branch once: seeds, the test "already on a traced branch", branch switching.

Each seed (a census point, a given start, or a point on a branch leaving a pitchfork) is
followed unless it lies on a branch already traced, so no branch is traced twice; the
events found on several branches (the pitchfork on its through and its turning branch)
are one event listing all of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial

import torch
from scipy.optimize import brentq

from memscape.landscape.continuation.corrector import Config, Path, chord, follow
from memscape.landscape.continuation.events import Event, examine
from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import LOCATE_XTOL, SAME_POINT_TOL

__all__ = ["Seed", "on_path", "trace"]


@dataclass
class Seed:
    """A point to follow in the directions ``refs``; ``parent``: the branch point it leaves."""

    u: torch.Tensor
    refs: tuple[torch.Tensor, ...]
    parent: Event | None = None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).norm()) <= SAME_POINT_TOL * (1.0 + float(b.norm()))


def on_path(fam: Family, u: torch.Tensor, path: Path, cfg: Config) -> bool:
    """Whether ``u`` lies on ``path``: its point at ``q(u)`` on each event-free piece.

    The point at ``q = q(u)`` is found by Brent on ``q(u(s))`` along the piece's own
    parameterization (the one the branch was followed with), so a nearby branch cannot
    stand in for it.
    """
    q = float(u[-1])
    for piece in path.pieces:
        qa, qb = float(piece.u0[-1]), float(piece.u1[-1])
        if not min(qa, qb) <= q <= max(qa, qb):
            continue
        w = (q - qa) / (qb - qa) if qb != qa else 0.5
        if float((piece.u0 + w * (piece.u1 - piece.u0) - u).norm()) > 0.5 * piece.s1 + 1e-9:
            continue  # an arc of length s1 strays less than s1/2 from its chord
        for end, qe in ((piece.u0, qa), (piece.u1, qb)):
            if qe == q:
                if _same(u, end):
                    return True
                break
        else:
            try:
                f = partial(_q_minus, fam, piece, cfg, q)
                s = brentq(f, 0.0, piece.s1, xtol=LOCATE_XTOL * piece.s1 + 1e-300)
                if _same(u, piece.point(fam, float(s), cfg.tol)):
                    return True
            except (ValueError, ArithmeticError):
                continue
    return False


def _q_minus(fam: Family, piece, cfg: Config, q: float, s: float) -> float:
    return float(piece.point(fam, s, cfg.tol)[-1]) - q


def _merge(halves: list[tuple[Path, list[Event]]], parent: Event | None, fam: Family) -> Path:
    """One path from one end to the other (a switched branch starts at its branch point)."""
    merged = Path()
    if parent is not None:
        merged.add(
            parent.u,
            torch.zeros_like(parent.u),
            fam.eigvals(parent.u[:-1], float(parent.u[-1])),
            True,
        )
        merged.pieces.append(chord(parent.u, halves[0][0].u[0]))
    for i, (half, _) in enumerate(halves):
        keep = slice(None, None, -1) if len(halves) == 2 and i == 0 else slice(i, None)
        merged.u += half.u[keep]
        merged.tan += half.tan[keep]
        merged.eig += half.eig[keep]
        merged.mark += half.mark[keep]
        merged.pieces += half.pieces
    return merged


def trace(
    fam: Family, seeds: list[Seed], cfg: Config, forward: float, switching: bool,
    paths: list[Path] | None = None, events: list[Event] | None = None,
) -> tuple[list[Path], list[Event], int]:  # fmt: skip
    """Follow every seed not on a traced branch: ``(paths, events, new branches)``.

    Branches leaving a pitchfork are queued first (``switching``). ``paths`` / ``events``:
    what earlier rounds traced (extended in place).
    """
    paths = [] if paths is None else paths
    events = [] if events is None else events
    queue: deque[Seed] = deque(seeds)
    look = partial(examine, fam, cfg, forward)
    new = 0
    while queue:
        seed = queue.popleft()
        if any(on_path(fam, seed.u, p, cfg) for p in paths):
            continue
        halves = [follow(fam, seed.u, ref, cfg, look) for ref in seed.refs]
        bid = len(paths)
        if seed.parent is not None:
            seed.parent.children.append(bid)
        paths.append(_merge(halves, seed.parent, fam))
        new += 1
        for _, found in halves:
            for ev in found:
                twin = next((o for o in events if _same(ev.u, o.u)), None)
                if twin is not None:
                    if twin.branch != bid and bid not in twin.children:
                        twin.children.append(bid)
                    continue
                ev.branch = bid
                events.append(ev)
                if switching and ev.kind != "fold":
                    queue.extendleft(Seed(u, (d,), ev) for u, d in ev.switched)
    return paths, events, new
