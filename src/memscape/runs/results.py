"""Self-describing results folders: tidy tables, figures, config + versions, a report.

Every file is written atomically (temporary name in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import math
import numbers
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memscape._version import __version__
from memscape.io import atomic_write, environment, write_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Check",
    "ResultsFolder",
    "Section",
    "duration",
    "git_commit",
    "provenance",
    "report_header",
    "template",
]


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
    sections: list[Section] = field(default_factory=list)
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
        recompute: bool = False,
    ) -> None:
        """Write ``config.json``: what the results depend on, and a history of the runs into it.

        The identity of the results — experiment, seed, options, memscape's version and
        the content fingerprints of the data (``data``: ``{option: sha256}``) — must
        equal the stored one; each call appends a run record (command, start time,
        environment, git commit) to ``runs``, so a folder filled by several runs lists
        every one of them (:meth:`end_run` adds its end time and status).

        With ``recompute``, results of a different identity are not refused: everything
        in the folder moves to ``superseded/<UTC time>/`` (kept, never deleted) and the
        run starts afresh; its run record names where the old results went.

        Raises:
            ValueError: the folder holds results of a different config, seed, data or
                memscape version (resuming into it would mix results), naming what differs,
                and ``recompute`` is off.
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
        differ: list[str] = []
        if old is not None:
            differ = [k for k in identity if k in old and old[k] != identity[k]]
            if differ and not recompute:
                raise ValueError(
                    f"out folder {self.path} holds results of a different "
                    f"{_differences(differ, old, identity)}; resuming would mix them: "
                    "choose another --out, or pass --recompute (recompute=True) to move "
                    "them to superseded/ and start afresh"
                )
            runs = [] if differ else list(old.get("runs", []))
            if not runs and "environment" in old:  # a config.json from before the history
                runs = [{k: old[k] for k in ("command", "time", "environment") if k in old}]
        record = {"command": " ".join(sys.argv), "start": _now(), "environment": provenance()}
        if differ:
            record["superseded"] = self._supersede()
        runs.append(record)
        write_json(self.path / "config.json", {**identity, "runs": runs})

    def _supersede(self) -> str:
        """Move everything in the folder (but earlier ``superseded/``) to ``superseded/<time>``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dest = self.path / "superseded" / stamp
        n = 1
        while dest.exists():  # two recomputes within a second
            dest, n = self.path / "superseded" / f"{stamp}-{n}", n + 1
        dest.mkdir(parents=True)
        for child in sorted(self.path.iterdir()):
            if child.name != "superseded":
                child.replace(dest / child.name)
        return str(dest.relative_to(self.path))

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

        Ticks follow :func:`memscape.figures.finish` (no overlapping labels, decades on
        log axes). A figure made by pyplot is closed afterwards; one made by :meth:`figure` (a bare
        :class:`matplotlib.figure.Figure`) needs no backend and no closing.
        """
        from memscape.figures import finish

        finish(fig)  # one tick style for every figure (memscape.figures)
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
        """Add a report section: Markdown text, then each table (without its index)."""
        self.sections.append(Section(title, markdown, list(tables)))

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

    def write_report(self, title: str, *, quick: Mapping[str, Any] | None = None) -> Path:
        """Write ``report.md`` and ``report.html`` (and ``checks.parquet``); the HTML's path.

        Both open with the same header (:func:`report_header`): experiment, how many
        checks passed, wall time per sweep and in total, the machine, a quick-mode banner
        naming the options ``--quick`` changed, and the command. ``report.html`` is one
        self-contained file rendered from a Jinja2 template (figures embedded as base64
        PNG, a stylesheet, escaped cells): it stays whole when moved or mailed.
        ``report.md`` is its plain-text twin (figures linked beside it).

        Args:
            title: the report's title.
            quick: the overrides of a quick run (``{option: value}``), shown in the
                banner; ``None``: not a quick run (or, when the command has ``--quick``,
                one whose overrides were not passed).
        """
        if self.checks:
            import pandas as pd

            checks = pd.DataFrame(
                [{**c.__dict__, "gap": c.gap, "passed": c.passed} for c in self.checks]
            )
            self.write_table("checks", checks)
        cfg = self.read_config() or {}
        ctx = {
            "title": title,
            "header": report_header(self.path, cfg, self.checks, quick),
            "checks": [_check_row(c) for c in self.checks],
            "sections": self.sections,
            "figures": self.figures,
            "rows": _rows,
            "config": json.dumps(cfg, indent=2, ensure_ascii=False),
        }
        md = template("report.md.j2").render(**ctx)
        atomic_write(self.path / "report.md", lambda p: p.write_text(md, encoding="utf-8"))
        page = template("report.html.j2").render(**ctx, text=_markdown_html, image=self._data_uri)
        return atomic_write(
            self.path / "report.html", lambda p: p.write_text(page, encoding="utf-8")
        )

    def _data_uri(self, figure: str) -> str:
        """``data:image/png;base64,…`` of a saved figure: the page needs no file beside it."""
        data = base64.b64encode((self.path / f"{figure}.png").read_bytes()).decode("ascii")
        return f"data:image/png;base64,{data}"


@dataclass
class Section:
    """A report section: a title, Markdown text, then tables."""

    title: str
    text: str = ""
    tables: list[Any] = field(default_factory=list)


# ------------------------------------------------------------------ report pieces
@functools.cache
def template(name: str) -> Any:
    """The Jinja2 template ``name`` of ``memscape/runs/templates`` (HTML ones autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=lambda name: name is not None and ".html" in name,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = _md_escape
    return env.get_template(name)


def _cell(v: Any) -> str:
    """A table cell as text: floats (numpy's too) to 6 significant digits, NaN and None empty."""
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        return "" if math.isnan(v) else f"{float(v):.6g}"
    return "" if v is None else str(v)


def _rows(table: Any) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, cells (as text) and which columns are numeric, of a DataFrame."""
    import pandas as pd

    cols = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)
               for t in table.dtypes]  # fmt: skip
    rows = [[_cell(v) for v in r] for r in table.itertuples(index=False, name=None)]
    return cols, rows, numeric


def _md_escape(text: str) -> str:
    """A Markdown table cell: ``|`` escaped (so it cannot end the cell), one line."""
    return " ".join(str(text).replace("\\", "\\\\").replace("|", "\\|").split())


def _markdown_html(text: str, *, inline: bool = False) -> Any:
    """Markdown text as HTML (Python-Markdown); ``inline``: without the enclosing ``<p>``."""
    import markdown
    from markupsafe import Markup

    out = markdown.markdown(text, extensions=["tables", "fenced_code"])
    if inline and out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
        out = out[3:-4]
    return Markup(out)


def _check_row(c: Check) -> dict[str, str]:
    return {
        "name": c.name,
        "kind": "identity" if c.identity else "measurement",
        "measured": f"{c.measured:.4g}",
        "theory": f"{c.theory:.4g}",
        "gap": f"{c.gap:.3g} ({'rel.' if c.relative else 'abs.'})",
        "tolerance": f"{c.tolerance:.3g}",
        "result": "PASS" if c.passed else "FAIL",
    }


def _seconds(a: str, b: str) -> float | None:
    """Seconds from time stamp ``a`` to ``b`` (:func:`_now`'s format), ``None`` if unreadable."""
    from datetime import datetime

    try:
        fmt = "%Y-%m-%dT%H:%M:%S%z"
        return (datetime.strptime(b, fmt) - datetime.strptime(a, fmt)).total_seconds()
    except (TypeError, ValueError):
        return None


def duration(seconds: float | None) -> str:
    """``"0.42 s"``, ``"12.3 s"``, ``"4 min 05 s"``, ``"2 h 03 min"`` (``"?"`` when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _sweeps(path: Path) -> list[dict[str, Any]]:
    """Per sweep (``timing_<name>.parquet``): jobs, summed job time, first start to last end."""
    import pandas as pd

    out = []
    for p in sorted(path.glob("timing_*.parquet")):
        t = pd.read_parquet(p)
        job = float(t["seconds"].sum()) if "seconds" in t and len(t) else None
        wall = None
        if {"start", "end"} <= set(t.columns) and t["start"].notna().any():
            wall = _seconds(str(t["start"].dropna().min()), str(t["end"].dropna().max()))
        out.append({"name": p.stem[len("timing_"):], "jobs": len(t), "job_time": duration(job),
                    "wall": duration(wall)})  # fmt: skip
    return out


def report_header(
    path: Path, cfg: dict[str, Any], checks: list[Check], quick: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What the report's header says, from ``config.json``, the timing tables and the checks.

    Returns ``experiment``, ``passed``, ``total`` (checks), ``sweeps`` (per sweep:
    ``name``, ``jobs``, ``job_time``, ``wall``), ``wall`` (this run so far), ``runs``
    (runs into the folder), ``machine`` (one line), ``quick`` (``None``, or the
    ``option = value`` overrides, empty when unknown) and ``command``.
    """
    runs = cfg.get("runs") or [{}]
    run = runs[-1]
    env = run.get("environment") or {}
    command = str(run.get("command", ""))
    device = "cuda" if env.get("cuda") else "cpu"
    machine = (f"{env.get('cpu') or env.get('machine') or '?'}, {env.get('cpu_count', '?')} cores, "
               f"{env.get('torch_threads', '?')} torch threads, device {device}, "
               f"torch {env.get('torch', '?')}, host {env.get('host', '?')}")  # fmt: skip
    if quick is None and "--quick" in command.split():
        quick = {}
    return {
        "experiment": cfg.get("experiment", ""),
        "passed": sum(c.passed for c in checks),
        "total": len(checks),
        "sweeps": _sweeps(path),
        "wall": duration(_seconds(str(run.get("start")), _now())),
        "runs": len(runs),
        "machine": machine,
        "quick": None if quick is None else [_quick_text(k, v) for k, v in quick.items()],
        "command": command,
    }


def _quick_text(name: str, value: Any) -> str:
    """``"steps = 800 (default 3000)"`` for ``{"value": 800, "default": 3000}``, else ``name = v``."""
    if isinstance(value, dict) and set(value) == {"value", "default"}:
        return f"{name} = {value['value']!r} (default {value['default']!r})"
    return f"{name} = {value!r}"
