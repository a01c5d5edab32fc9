"""A process-local progress channel: long work says what stage it is in; a runner listens.

Library code calls :func:`report` (``report("train", step=1200, steps=3000, rate=310.0)``);
nothing happens unless a listener is installed with :func:`listen`, so the calls cost a
global lookup. The sweep engine (:mod:`memscape.runs.sweep`) listens to each job it
runs — in-process directly, in a process pool through a queue — and shows the stage of
the jobs in flight. A listener that fails never breaks the work that reports to it.

Stages used by memscape: ``"train"`` (``step``, ``steps``, ``rate`` in steps/s),
``"sample"``, ``"census"``, ``"probe"`` (an optional ``what`` names the model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["describe", "listen", "report"]

Listener = Callable[[str, dict[str, Any]], None]

_listener: Listener | None = None


def report(stage: str, **info: Any) -> None:
    """Tell the current listener (if any) that this process is at ``stage`` (``info``: numbers, names)."""
    listener = _listener
    if listener is None:
        return
    try:
        listener(stage, info)
    except Exception:  # progress is a courtesy: it never stops the work
        pass


@contextlib.contextmanager
def listen(listener: Listener | None) -> Iterator[None]:
    """``with listen(fn):`` every :func:`report` in this process calls ``fn(stage, info)``."""
    global _listener
    old, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = old


def describe(stage: str, info: dict[str, Any]) -> str:
    """A short text of a report: ``"train 1200/3000 310/s"``, ``"census (b)"``."""
    text = stage
    if "step" in info and "steps" in info:
        text += f" {info['step']}/{info['steps']}"
    rate = info.get("rate")
    if isinstance(rate, (int, float)) and rate == rate:
        text += f" {rate:.0f}/s"
    if info.get("what"):
        text += f" ({info['what']})"
    return text
