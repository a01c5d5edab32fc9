"""Arrows point one way: the package's imports follow the layer order of DEVELOPING.md.

The imports are read from the source (every ``import``, at module level or inside a
function), so a lazy import that breaks the order fails too. A second test checks
that the command line's help path loads no heavy library.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "memscape"

# Bottom to top. A module may import modules of its own layer or of lower layers; a
# prefix names a module or a package (the longest matching prefix decides).
LAYERS: list[tuple[str, ...]] = [
    (
        "memscape._version",
        "memscape._validation",
        "memscape.config",
        "memscape.io",
        "memscape.progress",
        "memscape.numeric",
        "memscape.figures",
    ),
    (
        "memscape.protocol",
        "memscape.kernels",
        "memscape.curvature",
        "memscape.onednn",
        "memscape.runs",
    ),
    ("memscape.dynamics.descent",),  # the one descent loop, used by the memories
    ("memscape.datasets", "memscape.diffusion.processes", "memscape.theory"),
    ("memscape.memories", "memscape.diffusion", "memscape.adapters"),
    ("memscape.dynamics", "memscape.memorization.neighbors"),
    ("memscape.landscape",),
    ("memscape.memorization",),
    ("memscape.experiments", "memscape.analyze"),
    ("memscape.cli", "memscape"),
]


def layer_of(module: str) -> int:
    best, level = "", None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, level = p, i
    assert level is not None, f"{module} is in no layer of tests/test_layers.py"
    return level


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every memscape module ``path`` imports (``from a import b`` counts ``a.b`` if a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "memscape"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "memscape":
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                as_module = SRC.parent / Path(*sub.split("."))
                is_module = as_module.with_suffix(".py").exists() or as_module.is_dir()
                out.add(sub if is_module else node.module)
    return out


SOURCES = sorted(p for p in SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    here = module_name(path)
    up = [
        m
        for m in sorted(imports_of(path))
        if layer_of(m) > layer_of(here) and not here.startswith(m + ".")
    ]
    assert not up, f"{here} (layer {layer_of(here)}) imports upward: {up}"


def test_library_never_imports_the_package_root():
    top = layer_of("memscape.experiments")
    for path in SOURCES:
        here = module_name(path)
        if layer_of(here) < top and here != "memscape":
            assert "memscape" not in imports_of(path), f"{here} imports the package root"


def test_layer_test_can_fail():
    """The checker itself: an upward arrow is seen as one."""
    assert layer_of("memscape.landscape.critical") > layer_of("memscape.memories.modern")
    assert layer_of("memscape.memorization.neighbors") < layer_of("memscape.landscape")


HEAVY = {
    "torch": "torch._C",
    "scipy": "scipy._lib",
    "pandas": "pandas.core",
    "matplotlib": "matplotlib.figure",
}


@pytest.mark.parametrize(
    "code",
    [
        "import memscape",
        "from memscape.cli import app",
        "from memscape.experiments import EXPERIMENTS, build_config\n"
        "from memscape.config import option_spec\n"
        "for e in EXPERIMENTS.values(): option_spec(e.config); build_config(e, quick=True)",
    ],
)
def test_cli_help_path_loads_no_heavy_library(code):
    """``memscape --help``, ``list`` and ``run NAME --help`` import no torch/scipy/pandas/matplotlib.

    (A library imported with ``lazy_loader.load`` has a placeholder in ``sys.modules``;
    a real import also loads the submodule named here.)
    """
    probe = (
        f"{code}\nimport sys\nprint(sorted(k for k, m in {HEAVY!r}.items() if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"heavy libraries loaded: {out.stdout.strip()}"


@pytest.mark.parametrize("args", [["--help"], ["list"], ["run", "memorization", "--help"]])
def test_cli_answers_without_heavy_imports(args):
    code = (
        "import sys\nfrom memscape.cli import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', sorted(k for k, m in {HEAVY!r}.items() if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]


def test_docs_cite_papers_not_internal_notes():
    """Docstrings and docs cite papers and equations: never DESIGN.md or "seed 000" labels.

    (Those name files outside the repository that a reader cannot open.)
    """
    root = SRC.parent.parent
    texts = [*SRC.rglob("*.py"), *(root / "docs").rglob("*.md"), root / "README.md"]
    pattern = re.compile(r"DESIGN\.md|\bseed \d{3}\b")
    bad = [
        f"{p.relative_to(root)}:{i}"
        for p in texts
        if "_generated" not in p.parts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not bad, f"internal references (cite the paper instead): {bad}"
    assert pattern.search("see seed 002") and not pattern.search("seed 2 of 3")  # can fail


def test_recipes_stay_thin():
    """A recipe is config, grid, reduction, checks and figures (≤ 250 lines; the science
    lives in the library), ``experiments/`` ≤ 2,500 lines, no class but config dataclasses."""
    experiments = SRC / "experiments"
    sizes = {p.name: len(p.read_text().splitlines()) for p in experiments.rglob("*.py")}
    recipes = {p: n for p, n in sizes.items() if (experiments / "recipes" / p).is_file()}
    assert recipes and max(recipes.values()) <= 250, recipes
    assert sum(sizes.values()) <= 2500, sum(sizes.values())
    for path in (experiments / "recipes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                assert node.name.endswith("Config"), f"{path.name}: class {node.name}"
