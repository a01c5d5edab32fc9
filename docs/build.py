"""Build the generated parts of the documentation, and check the built site's links.

    python docs/build.py                    # concept figures, gallery tables, every tutorial
    python docs/build.py --skip-tutorials   # figures and tables only (seconds)
    python docs/build.py --tutorials 01 03  # some tutorials (by number or name)
    mkdocs build --strict -d site
    python docs/build.py --check-links site # every internal link and #anchor resolves

Everything a page shows is made here by memscape itself, so the pages cannot drift from
the code: the concept figures (``docs/figures/``), the experiment tables of the gallery
(from the registry, ``docs/_generated/``) and the tutorial figures, made by running each
``docs/tutorials/NN_name.py`` (whose code the tutorial page includes verbatim) with one
torch/OpenMP thread. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
TUTORIALS = DOCS / "tutorials"
GENERATED = DOCS / "_generated"
TUTORIAL_BUDGET_S = 60.0


def tutorial_scripts() -> list[Path]:
    """The tutorial scripts ``docs/tutorials/NN_name.py``, in order."""
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


# --------------------------------------------------------------------------- figures


def concept_figures(out: Path = DOCS / "figures") -> list[Path]:
    """The figures of ``concepts.md``, each computed by memscape; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import memscape as ms

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    written = []
    pair = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)  # two points ±a, a = 1
    exact = ms.EmpiricalDiffusion(pair)
    x = torch.linspace(-2.5, 2.5, 401, dtype=torch.float64)[:, None]

    # denoiser: D(x, σ) = x + σ² s(x, σ); its fixed points are the critical points of E
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(x[:, 0], x[:, 0], "k:", lw=1, label="D = x")
    for sigma in (0.4, 1.0, 1.6):
        ax.plot(x[:, 0], exact.denoise(x, sigma)[:, 0], label=f"D(x, σ = {sigma})")
    ax.set(xlabel="x", ylabel="D(x, σ)", title="exact denoiser of two points ±1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "denoiser.png"))

    # exact energy −log p_σ at three σ, and the modern Hopfield energy with β = 1/σ²
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for sigma in (0.5, 1.0, 1.5):
        e = sigma**2 * exact.energy(x, sigma)
        hop = ms.ModernHopfield(pair, beta=1 / sigma**2).energy(x)
        (line,) = ax.plot(x[:, 0], e - e.min(), label=f"σ²·E(x, σ), σ = {sigma}")
        ax.plot(x[:, 0], hop - hop.min(), "--", color=line.get_color(), lw=2.5, alpha=0.5)
    ax.plot([], [], "k--", lw=2.5, alpha=0.5, label="modern Hopfield, β = 1/σ²")
    ax.set(xlabel="x", ylabel="energy (minimum subtracted)", ylim=(-0.05, 1.5))
    ax.set_title("exact diffusion energy of two points ±1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, out / "two_points.png"))

    # memorization → mixtures → one attractor: the exact landscape of 5 points at three σ
    g = torch.Generator().manual_seed(0)
    points = torch.tensor(
        [[1.0, 0.0], [0.8, 0.45], [-0.6, 0.8], [-0.7, -0.6], [0.3, -0.9]], dtype=torch.float64
    )
    model = ms.EmpiricalDiffusion(points)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, sigma in zip(axes, (0.15, 0.35, 0.9), strict=True):
        cps = ms.critical_points(model, sigma, n_starts=200, generator=g)
        ms.plot_landscape(
            model,
            sigma,
            cps=cps,
            ax=ax,
            xlim=(-1.5, 1.5),
            ylim=(-1.5, 1.5),
            resolution=60,
            basin_resolution=40,
            legend=ax is axes[0],
        )
        ax.scatter(*points.T, marker="*", s=90, c="k", zorder=5)
        n_min = int((cps.table["converged"] & (cps.table["morse_index"] == 0)).sum())
        ax.set_title(f"σ = {sigma}: {n_min} {'minimum' if n_min == 1 else 'minima'}")
    fig.tight_layout()
    written.append(_save(fig, out / "attractors.png"))

    # Morse–Smale graph of three points, and the pitchfork of ±1 at σ = a = 1
    tri = torch.tensor([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]], dtype=torch.float64)
    model, sigma = ms.EmpiricalDiffusion(tri), 0.4
    cps = ms.critical_points(model, sigma, n_starts=200, generator=g)
    graph = ms.morse_smale_graph(model, cps)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ms.plot_landscape(
        model, sigma, cps=cps, ax=left, resolution=60, basin_resolution=40, legend=False
    )
    for saddle, minimum in graph.edges():
        a, b = cps.points[saddle].numpy(), cps.points[minimum].numpy()
        left.annotate("", xy=b, xytext=a, arrowprops={"arrowstyle": "->", "lw": 1.5})
    left.set_title(f"Morse–Smale graph of −log p_σ, σ = {sigma}")
    diagram = ms.continuation(exact, "sigma", start=0.3, stop=2.0, generator=g)
    ms.plot_bifurcation(diagram, ax=right, y="x0")
    right.axvline(1.0, color="grey", lw=0.8, ls=":")
    right.set_title("critical points of two points ±1 against σ (σ_c = a = 1)")
    fig.tight_layout()
    written.append(_save(fig, out / "morse_smale.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- gallery


def _markdown_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def gallery_tables(out: Path = GENERATED) -> list[Path]:
    """Registry-generated tables: every experiment, and each one's options."""
    from memscape.experiments import EXPERIMENTS

    (out / "options").mkdir(parents=True, exist_ok=True)
    rows = ["| experiment | what it shows | reproduces | quick run |", "|---|---|---|---|"]
    written = []
    for name, exp in sorted(EXPERIMENTS.items()):
        rows.append(
            f"| [`{name}`](#{name}) | {_markdown_cell(exp.summary)} | "
            f"{_markdown_cell(exp.paper)} | `memscape run {name} --quick` |"
        )
        lines = ["| option | default | `--quick` | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(exp.config):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            quick = exp.quick.get(f.name, "")
            lines.append(
                f"| `--{f.name.replace('_', '-')}` | `{_markdown_cell(default)}` | "
                f"{'`' + _markdown_cell(quick) + '`' if quick != '' else ''} | "
                f"{_markdown_cell(f.metadata.get('help', ''))} |"
            )
        path = out / "options" / f"{name}.md"
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    path = out / "experiments.md"
    path.write_text("\n".join(rows) + "\n")
    return [path, *written]


# --------------------------------------------------------------------------- tutorials


def run_tutorials(selection: list[str] | None = None) -> dict[str, float]:
    """Run the tutorial scripts (all, or those whose file name contains a selection item).

    Each runs in a fresh interpreter with one OpenMP/MKL thread; what it prints is
    kept in ``docs/_generated/output/<script>.txt`` (the pages include it); returns
    wall-clock seconds per script (the CPU seconds are printed too: on a loaded machine
    they are what the script would take alone, single-threaded). Raises ``RuntimeError`` with the script's output when one fails.
    """
    scripts = [
        s for s in tutorial_scripts() if not selection or any(k in s.name for k in selection)
    ]
    if selection and not scripts:
        raise ValueError(f"no tutorial matches {selection}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    times = {}
    for script in scripts:
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        times[script.name] = time.perf_counter() - start
        cpu = _children_cpu() - cpu
        if proc.returncode != 0:
            raise RuntimeError(f"{script.name} failed:\n{proc.stdout}\n{proc.stderr}")
        (GENERATED / "output").mkdir(parents=True, exist_ok=True)
        (GENERATED / "output" / f"{script.stem}.txt").write_text(proc.stdout)
        print(f"  {script.name:24s} {times[script.name]:6.1f} s wall, {cpu:6.1f} s CPU")
    return times


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- link check


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is None:
                continue
            if key in ("id", "name"):
                self.ids.add(value)
            elif key in ("href", "src"):
                self.links.append(value)


def check_links(site: Path) -> list[str]:
    """Broken internal links of a built site: ``'page.html: link'`` for each.

    Every relative ``href``/``src`` must name an existing file (a directory means its
    ``index.html``; absolute paths are taken from the site root) and every
    ``#fragment`` an ``id`` of its target page. External
    links (``http(s):``, ``mailto:``, ``data:``, ...) are not fetched.
    """
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise ValueError(f"site must be a built mkdocs site (no {site / 'index.html'})")
    parsed: dict[Path, _Links] = {}

    def parse(page: Path) -> _Links:
        if page not in parsed:
            p = _Links()
            p.feed(page.read_text(encoding="utf-8", errors="replace"))
            parsed[page] = p
        return parsed[page]

    broken = []
    for page in sorted(site.rglob("*.html")):
        for link in parse(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("//", "javascript:")):
                continue
            base = site if parts.path.startswith("/") else page.parent  # 404.html: absolute
            target = page if not parts.path else (base / unquote(parts.path).lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            rel = page.relative_to(site)
            if not target.is_file() or not target.is_relative_to(site.resolve()):
                broken.append(f"{rel}: {link}")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in parse(target).ids:
                    broken.append(f"{rel}: {link} (no such anchor)")
    return broken


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tutorials", action="store_true", help="do not run tutorials")
    parser.add_argument("--tutorials", nargs="+", metavar="NAME", help="run only these")
    parser.add_argument(
        "--check-links",
        type=Path,
        metavar="SITE",
        help="only check the internal links of a built site",
    )
    args = parser.parse_args(argv)
    if args.check_links is not None:
        broken = check_links(args.check_links)
        for b in broken:
            print(f"broken link: {b}")
        print(f"link check of {args.check_links}: {len(broken)} broken")
        return 1 if broken else 0
    start = time.perf_counter()
    print("concept figures:", ", ".join(p.name for p in concept_figures()))
    print("gallery tables:", len(gallery_tables()), "files")
    if not args.skip_tutorials:
        print("tutorials (one thread each):")
        times = run_tutorials(args.tutorials)
        slow = [f"{k} ({v:.0f} s)" for k, v in times.items() if v > TUTORIAL_BUDGET_S]
        if slow:
            print(f"warning: over the {TUTORIAL_BUDGET_S:.0f} s budget: {', '.join(slow)}")
    print(f"docs/build.py done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
