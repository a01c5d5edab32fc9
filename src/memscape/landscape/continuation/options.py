"""Options of :func:`memscape.landscape.continuation.continuation` and its named thresholds.

Every number the continuation decides by is a constant here, with the reason for its
value; :class:`ContinuationOptions` holds what a user may change, validated when built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memscape._validation import check_int, check_positive

__all__ = [
    "BRANCH_POINT_RTOL",
    "CONTINUATION_DEFAULTS",
    "ContinuationOptions",
]

# ---------------------------------------------------------------- step control (Allgower & Georg §6)
#: largest step, in units of the initial step ``|q_stop − q_start| / steps``.
H_MAX_FACTOR = 2.5
#: smallest step before a branch is given up, in units of the initial step.
H_MIN_FACTOR = 1e-7
#: step growth after a corrector that converged in ≤ FAST_ITERS iterations.
GROW = 1.5
#: step shrink after a corrector that needed > SLOW_ITERS iterations.
SHRINK = 0.6
#: Newton iterations regarded as fast convergence (the step may grow).
FAST_ITERS = 3
#: Newton iterations regarded as slow convergence (the step shrinks).
SLOW_ITERS = 6
#: Newton iterations of one correction before it is declared failed.
MAX_CORRECTOR_ITER = 15
#: a Newton iterate this far (scaled units: the data's spread, one e-fold in a log
#: parameter) from its prediction has diverged; the corrector stops before evaluating the
#: family there (where σ = e^q may underflow to 0). Accepted corrections move ≤ 0.25·h ≪ 1.
MAX_CORRECTOR_TRAVEL = 1.0
#: accepted corrections move at most this fraction of the step (distance criterion): a
#: corrector that travels farther has likely landed on a neighbouring branch.
MAX_CORRECTION = 0.25
#: consecutive unit tangents have cosine ≥ this (angle criterion, ≈ 20° per step).
MIN_TANGENT_COS = 0.94
#: relative step of the central difference for ``∂_qG`` (error ~1e-10, round-off ~1e-11).
FD_STEP = 1e-5

# ---------------------------------------------------------------- event location and verification
#: Brent's absolute tolerance on the arc parameter, relative to the arc piece; the parameter
#: error is at most this (|dq/ds| ≤ 1), well below the 1e-10 relative the tables promise.
LOCATE_XTOL = 1e-13
#: a located event is a critical point when ‖∇E‖ ≤ VERIFY_GRAD_RTOL · ‖[L·∂ₓG ∂_qG]‖ (a
#: Newton step shorter than 1e-8 in scaled units).
VERIFY_GRAD_RTOL = 1e-8
#: ... and has an eigenvalue through zero when |λ| ≤ VERIFY_EIG_RTOL · max(max|λ|, |λ_j| at the
#: piece's ends): Brent leaves ~1e-13 of it; a jump between branches leaves order one.
VERIFY_EIG_RTOL = 1e-7
#: a located turning point is a turn when its tangent's parameter component is below this.
TURN_TOL = 1e-5
#: ``[∂ₓG ∂_qG]`` is rank-deficient (a branch point, not a fold) when its smallest singular
#: value is ≤ BRANCH_POINT_RTOL times its size at the piece's ends: of order one at a
#: generic fold; at a branch point ~1e-10 (finite differences) plus what the corrector's
#: tolerance leaves of the point (~1e-9 where the Hessian is singular), hence 1e-6.
BRANCH_POINT_RTOL = 1e-6
#: two points (events, seeds, branch crossings) closer than this in scaled ``(x/L, q)`` units
#: are the same point.
SAME_POINT_TOL = 1e-6
#: distance from a branch point to the switched points, in units of the initial step.
SWITCH_STEP = 0.5

# ---------------------------------------------------------------- local structure of branch points
#: the critical points merging at a branch point are counted at ``q* ± δ``, ``δ`` this times
#: the initial step (and again at ``δ/4``): small enough that nothing else lies that near.
LOCAL_STEP = 1 / 32
#: ... within this times ``δ^{1/2}`` of ``x*`` (a turning branch lies ~``δ^{1/2}`` away).
LOCAL_RADIUS = 4.0
#: ... and merging there: the farthest of them comes at least this much closer at ``δ/4``
#: (``1/2`` on a turning branch, ``1/4`` on a crossing one; ``1`` for a point not merging).
LOCAL_SHRINK = 0.75
#: start directions on the circle of a two-dimensional null space (D₃: multiples of 3).
LOCAL_DIRECTIONS = 12
#: Newton iterations of the local census at fixed ``q``.
LOCAL_ITERS = 40

# ---------------------------------------------------------------- a branch that stops (stall.py)
#: relative step of the forward differences of the extended fold system's Jacobian.
STALL_FD_STEP = 1e-7
#: largest dimension where the fold next to a stopped branch is solved for (2d + 1 unknowns).
STALL_MAX_DIM = 64
#: two folds solved for where branches stopped are one when closer than this (scaled units):
#: Newton on the nearly singular extended system leaves them ~1e-5 apart.
STALL_SAME_TOL = 1e-3

#: defaults of the user options (also the documented defaults of ``continuation``).
CONTINUATION_DEFAULTS: dict[str, Any] = {
    "steps": 40,
    "max_points": 2000,
    "tol": 1e-9,
    "scale": None,
    "reseed": 3,
    "refine": 1,
    "branch_switching": True,
    "saddle_connections": False,
    "n_graph": 16,
}


@dataclass(frozen=True)
class ContinuationOptions:
    """What :func:`~memscape.landscape.continuation.continuation` may be told, checked on build.

    Attributes:
        steps: initial step is ``|q_stop − q_start| / steps`` (arclength, scaled units);
            steps adapt between ``H_MIN_FACTOR`` and ``H_MAX_FACTOR`` times that.
        max_points: cap on points per followed half-branch (≥ 2).
        tol: corrector tolerance on the Newton step (scaled units).
        scale: length unit ``L`` of the coordinates in the arclength metric (default: the
            spread of the seed points, or 1).
        reseed: interior parameter values (evenly spaced in ``q``) where the census is run
            again, so that branches born inside the range are caught (≥ 0).
        refine: rounds of completion: each runs a census midway between consecutive census
            values and follows what no branch explains; stops early when nothing new is
            found (≥ 0).
        branch_switching: follow the branches leaving each pitchfork.
        saddle_connections: also locate changes of the Morse–Smale graph (expensive).
        n_graph: parameter values where the Morse–Smale graph is built (≥ 2).
        census_kwargs: extra keyword arguments of the census
            (:func:`memscape.landscape.critical.critical_points`).
    """

    steps: int = CONTINUATION_DEFAULTS["steps"]
    max_points: int = CONTINUATION_DEFAULTS["max_points"]
    tol: float = CONTINUATION_DEFAULTS["tol"]
    scale: float | None = CONTINUATION_DEFAULTS["scale"]
    reseed: int = CONTINUATION_DEFAULTS["reseed"]
    refine: int = CONTINUATION_DEFAULTS["refine"]
    branch_switching: bool = CONTINUATION_DEFAULTS["branch_switching"]
    saddle_connections: bool = CONTINUATION_DEFAULTS["saddle_connections"]
    n_graph: int = CONTINUATION_DEFAULTS["n_graph"]
    census_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int(self.steps, "steps")
        check_int(self.max_points, "max_points", minimum=2)
        check_positive(self.tol, "tol")
        if self.scale is not None:
            check_positive(self.scale, "scale")
        check_int(self.reseed, "reseed", minimum=0)
        check_int(self.refine, "refine", minimum=0)
        for name in ("branch_switching", "saddle_connections"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_int(self.n_graph, "n_graph", minimum=2)
        if not isinstance(self.census_kwargs, Mapping):
            raise TypeError(
                f"census_kwargs must be a mapping, got {type(self.census_kwargs).__name__}"
            )
