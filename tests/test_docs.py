"""The documentation cannot rot: pages, tutorial scripts, gallery and API pages stay in sync.

Fast tests read files only (plus the experiment registry); the slow test runs
``docs/build.py`` (every tutorial and concept figure), ``mkdocs build --strict`` and
the internal link check.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import memscape
from memscape.experiments import EXPERIMENTS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# pymdownx.snippets includes: one line (--8<-- "file") or a block (--8<--, file, --8<--);
# the tutorial pages use blocks inside code fences (a one-liner is valid Python to ruff format)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"\s*$|^--8<--\n([^\n"]+)\n--8<--$', re.M)
MARKER = re.compile(r"^# --8<-- \[(start|end):(\w+)\]\s*$")


def _snippets(text: str) -> list[str]:
    return [a or b for a, b in SNIPPET.findall(text)]


def _load_build():
    spec = importlib.util.spec_from_file_location("docs_build", DOCS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


def _nav_pages() -> list[str]:
    return re.findall(r":\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)


def _sections(script: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Snippet sections of a script, and its code lines outside any section."""
    source = script.read_text()
    module = ast.parse(source)
    has_doc = ast.get_docstring(module) is not None
    body_start = (module.body[0].end_lineno or 0) if has_doc else 0
    sections: dict[str, list[str]] = {}
    outside: list[str] = []
    current: str | None = None
    for line in source.splitlines()[body_start:]:
        m = MARKER.match(line)
        if m and m.group(1) == "start":
            assert current is None, f"{script.name}: section {m.group(2)} opens inside {current}"
            current = m.group(2)
            assert current not in sections, f"{script.name}: section {current} twice"
            sections[current] = []
        elif m:
            assert current == m.group(2), f"{script.name}: end:{m.group(2)} closes {current}"
            current = None
        elif current is not None:
            sections[current].append(line)
        elif line.strip():
            outside.append(line)
    assert current is None, f"{script.name}: section {current} never ends"
    return sections, outside


def _writes(code: str, stem: str) -> bool:
    """Whether a script's code writes figure ``stem.png`` (literally or as f"prefix{name}")."""
    if f'"{stem}.png"' in code:
        return True
    return any(
        stem.startswith(prefix) and f'"{stem[len(prefix) :]}"' in code
        for prefix in re.findall(r'f"(\w*)\{\w+\}\.png"', code)
    )


def test_nav_pages_exist():
    pages = _nav_pages()
    assert "concepts.md" in pages and "gallery.md" in pages
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml names missing pages: {missing}"


def test_every_tutorial_script_is_shown_whole_by_its_page():
    scripts = build.tutorial_scripts()
    assert len(scripts) >= 5
    pages = [DOCS / p for p in _nav_pages() if p.startswith("tutorials/")]
    included: dict[str, list[str]] = {}
    for page in pages:
        for ref in _snippets(page.read_text()):
            path, _, section = ref.partition(":")
            if path.endswith(".py"):
                included.setdefault(path, []).append(section)
                assert (DOCS / path).is_file(), f"{page.name} includes missing {path}"
    for script in scripts:
        ref = f"tutorials/{script.name}"
        assert ref in included, f"no tutorial page includes {script.name}"
        sections, outside = _sections(script)
        assert not outside, f"{script.name}: code outside any shown section: {outside[:3]}"
        assert sorted(included[ref]) == sorted(sections), (
            f"{script.name}: sections {sorted(sections)} but the page shows {included[ref]}"
        )
        assert all(lines for lines in sections.values()), f"{script.name}: empty section"


def test_tutorial_pages_embed_the_figures_their_scripts_write():
    for page in (DOCS / p for p in _nav_pages() if p.startswith("tutorials/")):
        text = page.read_text()
        scripts = {r.partition(":")[0] for r in _snippets(text) if ".py" in r}
        assert len(scripts) == 1, f"{page.name} should show exactly one script"
        code = (DOCS / scripts.pop()).read_text()
        shown = re.findall(r"\(figures/(\w+)\.png\)", text)
        assert shown, f"{page.name} embeds no figure"
        for stem in shown:
            assert _writes(code, stem), f"{page.name} embeds {stem}.png, its script never writes it"


def test_concept_figures_are_made_by_build():
    text = (DOCS / "concepts.md").read_text()
    shown = re.findall(r"\]\((figures/\w+\.png)\)", text)
    made = set(re.findall(r'out / "(\w+\.png)"', inspect.getsource(build.concept_figures)))
    assert len(shown) >= 4
    assert {Path(s).name for s in shown} <= made
    sections = [s for s in re.split(r"^## ", text, flags=re.M)[1:]]
    assert all("](figures/" in s for s in sections), "every concepts section has a figure"


def test_gallery_has_every_experiment_and_its_figures(tmp_path):
    assert '--8<-- "_generated/gallery.md"' in (DOCS / "gallery.md").read_text()
    build.gallery_tables(tmp_path)
    text = (tmp_path / "gallery.md").read_text()
    sections = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^## `([\w-]+)`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    }
    assert set(sections) == set(EXPERIMENTS), "gallery sections ≠ registered experiments"
    for name, exp in EXPERIMENTS.items():
        body = sections[name]
        assert f"memscape run {name}" in body
        assert exp.figures, f"{name}: register(figures=...) declares no figure"
        for fig in exp.figures:
            assert f"`{fig}`" in body, f"gallery entry {name} does not name its figure {fig}"
        assert len(body.split("```")[0].split()) > 40, f"{name}: its recipe docstring is too short"


def test_readme_experiment_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    assert build.readme(write=False) == text, "run python docs/build.py to regenerate README"
    for name, exp in EXPERIMENTS.items():
        assert f"| `{name}` |" in text and all(f"`{f}.png`" in text for f in exp.figures)


def test_gallery_tables_cover_every_option(tmp_path):
    written = build.gallery_tables(tmp_path)
    assert len(written) == len(EXPERIMENTS) + 2  # the table, the sections, one options table each
    table = (tmp_path / "experiments.md").read_text()
    for name, exp in EXPERIMENTS.items():
        assert f"[`{name}`](#{name})" in table
        options = (tmp_path / "options" / f"{name}.md").read_text()
        for field in exp.config.__dataclass_fields__:
            assert f"`--{field.replace('_', '-')}`" in options


def test_api_pages_cover_every_public_module():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), re.M))
    recipes = {exp.run.__module__ for exp in EXPERIMENTS.values()}
    public = [
        m.name
        for m in pkgutil.walk_packages(memscape.__path__, "memscape.")
        if not m.ispkg and not any(p.startswith("_") for p in m.name.split("."))
    ]
    missing = [m for m in public if m not in documented | recipes | {"memscape.cli"}]
    assert not missing, f"public modules without an API page: {missing}"
    for name in documented:
        assert importlib.util.find_spec(name) is not None, f"API page names unknown {name}"


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for rel, body in pages.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"<html><body>{body}</body></html>")
    return tmp_path


def test_link_check_finds_broken_links_and_anchors(tmp_path, monkeypatch):
    site = _site(
        tmp_path,
        {
            "index.html": '<a href="a/">ok</a><a href="a/#sec">ok</a><img src="img.png">'
            '<a href="https://example.org/x">external</a><a href="#top">self</a><p id="top"></p>',
            "a/index.html": '<h2 id="sec">S</h2><a href="../index.html">up</a>'
            '<a href="../b/">missing page</a><a href="../index.html#nope">missing anchor</a>',
            "404.html": '<a href="/a/">absolute</a><script src="/gone.js"></script>',
        },
    )
    (site / "img.png").write_bytes(b"")
    broken = build.check_links(site)
    assert sorted(broken) == sorted(
        [
            "a/index.html: ../b/",
            "a/index.html: ../index.html#nope (no such anchor)",
            "404.html: /gone.js",
        ]
    )
    # the same site named by a relative path (as CI does: `--check-links site`)
    monkeypatch.chdir(tmp_path)
    assert sorted(build.check_links(site.relative_to(tmp_path))) == sorted(broken)
    with pytest.raises(ValueError, match="site"):
        build.check_links(tmp_path / "nowhere")


@pytest.mark.slow
def test_docs_build_strict_and_links(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    subprocess.run([sys.executable, str(DOCS / "build.py")], cwd=ROOT, check=True)
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert build.check_links(site) == []
    for name in ("hopfield", "landscape", "diffusion", "flagship", "ray"):
        assert (site / "tutorials" / name / "index.html").is_file()
