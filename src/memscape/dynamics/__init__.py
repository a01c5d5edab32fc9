"""Dynamics: the descent loop (retrieval) and the regimes of the exact backward dynamics.

:mod:`~memscape.dynamics.descent` sits below the models (the memories use it), so the
regimes measurements (:mod:`~memscape.dynamics.regimes`, which need the diffusion
models) load on first use: importing a memory does not import the diffusion layer.
"""

from typing import TYPE_CHECKING, Any

from memscape.dynamics.descent import DescentResult, descend

if TYPE_CHECKING:
    from memscape.dynamics.regimes import clone_pairs, collapse_crossing, fit_crossing

__all__ = ["DescentResult", "clone_pairs", "collapse_crossing", "descend", "fit_crossing"]

_REGIMES = ("clone_pairs", "collapse_crossing", "fit_crossing")


def __getattr__(name: str) -> Any:
    if name in _REGIMES:
        from memscape.dynamics import regimes

        return getattr(regimes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
