"""Tracing every branch once: seeds, the test "already on a traced branch", branch switching.

Each seed (a census point, a given start, or a point on a branch leaving a pitchfork) is
followed unless it lies on a branch already traced, so no branch is traced twice; the
events found on several branches (the pitchfork on its through and its turning branch)
are one event listing all of them.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from functools import partial

import torch
from scipy.optimize import brentq

from memscape.landscape.continuation.corrector import Config, Path, chord, follow
from memscape.landscape.continuation.events import Event, examine
from memscape.landscape.continuation.family import Family
from memscape.landscape.continuation.options import LOCATE_XTOL, SAME_POINT_TOL, STALL_SAME_TOL
from memscape.landscape.continuation.stall import fold_at_stall

__all__ = ["Seed", "attach", "on_path", "trace"]


@dataclass
class Seed:
    """A point to follow in the directions ``refs``; ``parent``: the branch point it leaves."""

    u: torch.Tensor
    refs: tuple[torch.Tensor, ...]
    parent: Event | None = None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).norm()) <= SAME_POINT_TOL * (1.0 + float(b.norm()))


def _twins(a: Event, b: Event) -> bool:
    """One event found twice (on two branches, or at two stops next to one fold)."""
    if a.stalled and b.stalled:
        return float((a.u - b.u).norm()) <= STALL_SAME_TOL
    return _same(a.u, b.u)


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


def _stall(
    fam: Family, followed: tuple[Path, list[Event]], cfg: Config
) -> tuple[Path, list[Event]]:
    """``(path, events)``, with the fold next to the point where ``path`` stopped, if any."""
    path, found = followed
    if not path.stalled:
        return path, found
    last = path.u[-1]
    ev = fold_at_stall(fam, last, cfg, max(float(e.abs().max()) for e in path.eig))
    where = f"{fam.p(float(last[-1])):.6g}"
    if ev is None:
        warnings.warn(f"continuation: a branch stopped at {where}, before the range end (no "
                      "step verified, even the smallest)", RuntimeWarning, stacklevel=4)  # fmt: skip
        return path, found
    warnings.warn(
        f"continuation: a branch stopped at {where} next to a fold it could not step past "
        "(branches closer than round-off: an imperfect pitchfork); the fold was solved for "
        "directly and reported, the branches beyond it may be cut short",
        RuntimeWarning,
        stacklevel=4,
    )
    path.pieces.append(chord(last, ev.u))
    path.add(ev.u, path.tan[-1], fam.eigvals(ev.u[:-1], float(ev.u[-1])), True)
    return path, [*found, ev]


def _crossing(ev: Event, u: torch.Tensor) -> Seed:
    """A point merging at ``ev``, followed away from it and through it (:func:`attach`)."""
    d = (u - ev.u) / (u - ev.u).norm()
    return Seed(u, (d, -d))


def trace(
    fam: Family, seeds: list[Seed], cfg: Config, forward: float, switching: bool,
    paths: list[Path] | None = None, events: list[Event] | None = None,
) -> tuple[list[Path], list[Event], int]:  # fmt: skip
    """Follow every seed not on a traced branch: ``(paths, events, new branches)``.

    Branches leaving a branch point are queued first (``switching``), those crossing it
    (the points merging there, :mod:`.unfolding`) before those turning there.
    ``paths`` / ``events``: what earlier rounds traced (extended in place). A branch that
    stops short is looked at for a fold next to it (:mod:`.stall`).
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
        halves = [_stall(fam, follow(fam, seed.u, ref, cfg, look), cfg) for ref in seed.refs]
        bid = len(paths)
        if seed.parent is not None:
            seed.parent.children.append(bid)
        paths.append(_merge(halves, seed.parent, fam))
        new += 1
        for _, found in halves:
            for ev in found:
                twin = next((o for o in events if _twins(ev, o)), None)
                if twin is not None:
                    if twin.branch != bid and bid not in twin.children:
                        twin.children.append(bid)
                    continue
                ev.branch = bid
                events.append(ev)
                if switching and ev.kind != "fold":
                    queue.extendleft(Seed(u, (d,), ev) for u, d in ev.switched)
                    queue.extendleft(_crossing(ev, u) for u in ev.nearby if bool((u != ev.u).any()))
    return paths, events, new


def attach(fam: Family, events: list[Event], paths: list[Path], cfg: Config) -> None:
    """List with each branch point every traced branch through the points merging there.

    A branch crossing a branch point transversally (a transcritical crossing) shows no
    event of its own, so it is found through the critical points the local census
    (:mod:`.unfolding`) found beside the event.
    """
    for ev in events:
        for u in ev.nearby:
            for bid, path in enumerate(paths):
                if bid != ev.branch and bid not in ev.children and on_path(fam, u, path, cfg):
                    ev.children.append(bid)
