"""Self-describing results folders: tidy tables, figures, config + versions, a report.

Every file is written atomically (temporary name in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import html
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memscape.io import atomic_write, environment, write_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Check", "ResultsFolder"]


@dataclass
class Check:
    """A measured value against its theory, for the report (pass when the gap is within tolerance)."""

    name: str
    measured: float
    theory: float
    tolerance: float
    relative: bool = True  #: compare the relative gap |m − t|/|t| (else the absolute gap)

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
    def write_config(self, name: str, config: dict[str, Any], seed: int) -> None:
        """Write ``config.json`` (experiment, options, seed, versions, command, time).

        Raises:
            ValueError: the folder already holds results of a different config or seed
                (resuming into it would mix results); use another ``out``.
        """
        record = {"experiment": name, "seed": seed, "config": config}
        old = self.read_config()
        if old is not None and {k: old.get(k) for k in record} != json.loads(json.dumps(record)):
            raise ValueError(
                f"out folder {self.path} holds results of a different config or seed; "
                "choose another --out (or delete the folder)"
            )
        full = {
            **record,
            "environment": environment(),
            "command": " ".join(sys.argv),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(self.path / "config.json", full)

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
        self, name: str, measured: float, theory: float, tolerance: float, *, relative: bool = True
    ) -> Check:
        """Record a measured-vs-theory comparison for the report; returns it."""
        check = Check(name, float(measured), float(theory), float(tolerance), relative)
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
                "| check | measured | theory | gap | tolerance | result |",
                "|---|---|---|---|---|---|",
            ]
            for c in self.checks:
                kind = "rel." if c.relative else "abs."
                name = c.name.replace("|", "\\|")
                lines.append(
                    f"| {name} | {c.measured:.4g} | {c.theory:.4g} | {c.gap:.3g} ({kind}) | "
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
