"""Self-describing results folders: tidy tables, figures, config + versions, a report.

Every file is written atomically (temporary name in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memscape._version import __version__
from memscape.io import atomic_write, environment, write_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Check", "ResultsFolder", "git_commit", "provenance"]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any] | None:
    """The git commit of memscape's source when it runs from a checkout (``None`` otherwise).

    Returns ``{"commit": sha, "dirty": bool}`` (``dirty``: tracked files differ from the
    commit). An installed package (under ``site-packages``) has no checkout to report.
    """
    here = Path(__file__).resolve().parent
    if "site-packages" in here.parts or "dist-packages" in here.parts:
        return None

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(here), *args], capture_output=True,
                                 text=True, timeout=10, check=True)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def provenance() -> dict[str, Any]:
    """:func:`memscape.io.environment` (versions, host, threads) plus the git commit."""
    return {**environment(), "git": git_commit()}


def _differences(keys: list[str], old: dict[str, Any], new: dict[str, Any]) -> str:
    """``"seed (1, now 2)"``, ``"config (steps: 50, now 60)"``, ``"data (data: 3f…, now 9a…)"``."""
    parts = []
    for key in keys:
        a, b = old[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            items = [f"{k}: {a.get(k)!r}, now {b.get(k)!r}" for k in sorted({*a, *b})
                     if a.get(k) != b.get(k)]  # fmt: skip
            parts.append(f"{key} ({'; '.join(items)})")
        else:
            parts.append(f"{key} ({a!r}, now {b!r})")
    return ", ".join(parts)


@dataclass
class Check:
    """A measured value against its theory, for the report (pass when the gap is within tolerance).

    ``identity=True`` marks a check whose two sides are one computation by two routes
    (e.g. a continuation that solves the very linearization the formula states): it tests
    the code's consistency, not the theory, and the report shows it as an identity.
    """

    name: str
    measured: float
    theory: float
    tolerance: float
    relative: bool = True  #: compare the relative gap |m − t|/|t| (else the absolute gap)
    identity: bool = False  #: both sides are one computation (consistency, not a measurement)

    @property
    def gap(self) -> float:
        """Relative (or absolute) gap between measured and theory."""
        diff = abs(self.measured - self.theory)
        return diff / abs(self.theory) if self.relative and self.theory != 0 else diff

    @property
    def passed(self) -> bool:
        """Whether the gap is within tolerance."""
        return bool(self.gap <= self.tolerance)


@dataclass
class ResultsFolder:
    """A results folder: ``config.json``, ``*.parquet`` tables, ``*.png``/``*.svg`` figures, ``report.md``/``.html``.

    Args:
        path: the folder (created on the first write).
    """

    path: Path
    sections: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def jobs_dir(self) -> Path:
        """Where the sweep engine keeps one finished sub-folder per job."""
        return self.path / "jobs"

    # -------------------------------------------------------------- config
    def write_config(
        self,
        name: str,
        config: dict[str, Any],
        seed: int,
        *,
        data: dict[str, str] | None = None,
    ) -> None:
        """Write ``config.json``: what the results depend on, and a history of the runs into it.

        The identity of the results — experiment, seed, options, memscape's version and
        the content fingerprints of the data (``data``: ``{option: sha256}``) — must
        equal the stored one; each call appends a run record (command, start time,
        environment, git commit) to ``runs``, so a folder filled by several runs lists
        every one of them (:meth:`end_run` adds its end time and status).

        Raises:
            ValueError: the folder holds results of a different config, seed, data or
                memscape version (resuming into it would mix results), naming what differs.
        """
        identity = {
            "experiment": name,
            "seed": seed,
            "config": config,
            "memscape": __version__,
            "data": dict(data or {}),
        }
        identity = json.loads(json.dumps(identity, default=str))
        old = self.read_config()
        runs: list[dict[str, Any]] = []
        if old is not None:
            differ = [k for k in identity if k in old and old[k] != identity[k]]
            if differ:
                raise ValueError(
                    f"out folder {self.path} holds results of a different "
                    f"{_differences(differ, old, identity)}; resuming would mix them: "
                    "choose another --out (or delete the folder)"
                )
            runs = list(old.get("runs", []))
            if not runs and "environment" in old:  # a config.json from before the history
                runs = [{k: old[k] for k in ("command", "time", "environment") if k in old}]
        runs.append({"command": " ".join(sys.argv), "start": _now(), "environment": provenance()})
        write_json(self.path / "config.json", {**identity, "runs": runs})

    def end_run(self, status: str) -> None:
        """Record the end time and ``status`` (finished, interrupted, failed) of the latest run."""
        cfg = self.read_config()
        if cfg is None or not cfg.get("runs"):
            return
        cfg["runs"][-1].update(end=_now(), status=status)
        write_json(self.path / "config.json", cfg)

    def read_config(self) -> dict[str, Any] | None:
        """The stored ``config.json`` or ``None``."""
        p = self.path / "config.json"
        return json.loads(p.read_text()) if p.exists() else None

    # -------------------------------------------------------------- outputs
    def write_table(self, name: str, table: pd.DataFrame) -> Path:
        """Write a tidy table as ``<name>.parquet`` and ``<name>.csv``."""
        atomic_write(self.path / f"{name}.csv", lambda p: table.to_csv(p, index=False))
        return atomic_write(
            self.path / f"{name}.parquet", lambda p: table.to_parquet(p, index=False)
        )

    def read_table(self, name: str) -> pd.DataFrame:
        """Read ``<name>.parquet``."""
        import pandas as pd

        return pd.read_parquet(self.path / f"{name}.parquet")

    def save_figure(self, name: str, fig: Any, *, svg: bool = True) -> Path:
        """Save a matplotlib figure as ``<name>.png`` (and ``.svg``) and list it in the report.

        A figure made by pyplot is closed afterwards; one made by :meth:`figure` (a bare
        :class:`matplotlib.figure.Figure`) needs no backend and no closing.
        """
        png = atomic_write(
            self.path / f"{name}.png", lambda p: fig.savefig(p, format="png", dpi=120)
        )
        if svg:
            atomic_write(self.path / f"{name}.svg", lambda p: fig.savefig(p, format="svg"))
        import matplotlib.pyplot as plt

        if plt.fignum_exists(getattr(fig, "number", -1)):
            plt.close(fig)
        self.figures.append(name)
        return png

    @contextlib.contextmanager
    def figure(
        self,
        name: str,
        nrows: int = 1,
        ncols: int = 1,
        *,
        figsize: tuple[float, float] = (6, 4.5),
        **subplot_kw: Any,
    ) -> Iterator[tuple[Any, Any]]:
        """``with folder.figure(name, 1, 2) as (fig, axes):`` draw, then it is saved as PNG + SVG.

        The figure is a bare :class:`matplotlib.figure.Figure` (no pyplot state, no backend
        to select), laid out with ``constrained`` layout; ``axes`` is what
        ``Figure.subplots`` returns (one ``Axes`` or an array of them).
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
        yield fig, axes
        self.save_figure(name, fig)

    def add_section(self, title: str, markdown: str = "", *tables: pd.DataFrame) -> None:
        """Add a Markdown section to the report: text, then each table (without its index)."""
        parts = [markdown] if markdown else []
        parts += [t.to_markdown(index=False) for t in tables]
        self.sections.append((title, "\n\n".join(parts)))

    def add_check(
        self,
        name: str,
        measured: float,
        theory: float,
        tolerance: float,
        *,
        relative: bool = True,
        identity: bool = False,
    ) -> Check:
        """Record a measured-vs-theory comparison (or an ``identity``) for the report; returns it."""
        check = Check(name, float(measured), float(theory), float(tolerance), relative, identity)
        self.checks.append(check)
        return check

    def write_report(self, title: str) -> Path:
        """Write ``report.md`` and ``report.html``: config, checks, sections and figures."""
        cfg = self.read_config() or {}
        lines = [f"# {title}", ""]
        if self.checks:
            lines += [
                "## Measured against theory",
                "",
                "kind: *measurement*, a measured value against an independent prediction; "
                "*identity*, one computation by two routes (tests the code, not the theory).",
                "",
                "| check | kind | measured | theory | gap | tolerance | result |",
                "|---|---|---|---|---|---|---|",
            ]
            for c in self.checks:
                kind = "rel." if c.relative else "abs."
                name = c.name.replace("|", "\\|")
                lines.append(
                    f"| {name} | {'identity' if c.identity else 'measurement'} | "
                    f"{c.measured:.4g} | {c.theory:.4g} | {c.gap:.3g} ({kind}) | "
                    f"{c.tolerance:.3g} | {'PASS' if c.passed else 'FAIL'} |"
                )
            lines.append("")
        for sec_title, body in self.sections:
            lines += [f"## {sec_title}", "", body, ""]
        if self.figures:
            lines += ["## Figures", ""]
            lines += [f"![{f}]({f}.png)" for f in self.figures]
            lines.append("")
        lines += ["## Config", "", "```json", json.dumps(cfg, indent=2), "```", ""]
        md = "\n".join(lines)
        atomic_write(self.path / "report.md", lambda p: p.write_text(md))
        if self.checks:
            import pandas as pd

            checks = pd.DataFrame(
                [{**c.__dict__, "gap": c.gap, "passed": c.passed} for c in self.checks]
            )
            self.write_table("checks", checks)
        import base64

        import markdown

        for f in self.figures:  # embed the figures: the page stays whole when moved or mailed
            data = base64.b64encode((self.path / f"{f}.png").read_bytes()).decode()
            md = md.replace(f"]({f}.png)", f"](data:image/png;base64,{data})")
        body = markdown.markdown(md, extensions=["tables", "fenced_code"])
        page = (
            f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style>{body}"
        )
        return atomic_write(self.path / "report.html", lambda p: p.write_text(page))


_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.2em .5em}"
    "th{background:#eee}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow:auto}"
)
