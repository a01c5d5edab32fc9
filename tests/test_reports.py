"""report.html and report.md: self-contained, escaped, with the header a reader needs.

The HTML is parsed with :mod:`html.parser` (every table as rows of cells, every src/href);
report.md's tables are split on unescaped ``|``. The truth is what the test wrote: the
checks it added (pass or fail decided here from measured, theory and tolerance), the PNG
bytes on disk and the job times it recorded.
"""

from __future__ import annotations

import base64
import json
import os
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
import torch

from memscape.runs.results import ResultsFolder, duration

CHECKS = [  # name, measured, theory, tolerance, relative, passes (decided here)
    ("max |gap| of the fixed points", 0.004, 0.0, 0.01, False, True),
    ("Σ|ΔN|/2 = events", 3.0, 4.0, 0.0, False, False),
    ("<b>β_c</b> & 'σ_c'", 1.31, 1.3, 0.01, True, True),
    ("a|b|c", 2.0, 1.0, 0.5, True, False),
]


class Page(HTMLParser):
    """Tables (rows of (tag, class, text) cells), src/href attributes, tags, element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str, str]]]] = {}
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.ids: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list | None = None
        self._id: str | None = None
        self._n = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "action")]
        if tag == "table":
            self._n += 1
            self._table = a.get("id") or f"table{self._n}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = [tag, a.get("class") or "", ""]
        if "id" in a:
            self._id = a["id"]
            self.ids[self._id] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        if self._id and tag in ("dd", "p", "pre"):
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += data
        if self._id:
            self.ids[self._id] += data


def _folder(tmp_path, *, quick=None, command=None) -> tuple[ResultsFolder, Page, str]:
    folder = ResultsFolder(tmp_path / "run")
    folder.write_config("demo", {"n_starts": 300}, seed=0)
    if command is not None:  # the command line recorded in config.json
        cfg = folder.read_config()
        cfg["runs"][-1]["command"] = command
        (folder.path / "config.json").write_text(json.dumps(cfg))
    for name, m, t, tol, rel, _ in CHECKS:
        folder.add_check(name, m, t, tol, relative=rel)
    folder.add_section("Critical `points`", "The *census*: a | b.",
                       pd.DataFrame({"name|x": ["p|q", "r"], "x0": [0.5, float("nan")],
                                     "ok": [True, False]}))  # fmt: skip
    timing = pd.DataFrame({"key": ["a", "b"], "seconds": [1.25, 2.0],
                           "start": ["2026-01-01T10:00:00+0000", "2026-01-01T10:00:03+0000"],
                           "end": ["2026-01-01T10:00:02+0000", "2026-01-01T10:00:15+0000"]})  # fmt: skip
    folder.write_table("timing_census", timing)
    with folder.figure("curve") as (_, ax):
        ax.plot([0, 1], [1, 0])
    page = folder.write_report("memscape run demo", quick=quick)
    parser = Page()
    parser.feed(page.read_text(encoding="utf-8"))
    return folder, parser, (folder.path / "report.md").read_text(encoding="utf-8")


def test_html_is_self_contained(tmp_path):
    folder, page, _ = _folder(tmp_path)
    imgs = [v for tag, k, v in page.refs if tag == "img" and k == "src"]
    assert len(imgs) == 1 and imgs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(imgs[0].split(",", 1)[1]) == (folder.path / "curve.png").read_bytes()
    assert all(v.startswith(("data:", "#")) for _, _, v in page.refs), page.refs
    assert "link" not in page.tags and "script" not in page.tags and "iframe" not in page.tags
    assert "style" in page.tags  # the stylesheet is inside the page


def test_header_counts_the_checks_of_the_table(tmp_path):
    _, page, md = _folder(tmp_path)
    rows = page.tables["checks-table"]
    assert [c[2] for c in rows[0]] == ["check", "kind", "measured", "theory", "gap",
                                       "tolerance", "result"]  # fmt: skip
    assert all(c[0] == "th" for c in rows[0]) and all(c[0] == "td" for r in rows[1:] for c in r)
    results = [r[-1] for r in rows[1:]]
    assert [c[2] for c in results] == ["PASS" if ok else "FAIL" for *_, ok in CHECKS]
    assert [c[1] for c in results] == ["pass" if ok else "fail" for *_, ok in CHECKS]  # coloured
    passed = sum(c[2] == "PASS" for c in results)
    line = f"{passed} of {len(rows) - 1} checks passed"
    assert line == "2 of 4 checks passed"
    assert page.ids["check-summary"].strip() == line
    assert f"- checks: {line}" in md
    assert [r[0][2] for r in rows[1:]] == [c[0] for c in CHECKS]  # names escaped, not markup
    assert "b" not in page.tags  # "<b>β_c</b>" stayed text


def _md_cells(line: str) -> list[str]:
    """A Markdown table row's cells: split on unescaped |, escapes undone."""
    inner = line.strip()[1:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def test_pipes_do_not_shift_columns(tmp_path):
    _, page, md = _folder(tmp_path)
    for name, rows in page.tables.items():
        assert len({len(r) for r in rows}) == 1, f"{name}: rows of {[len(r) for r in rows]} cells"
    section = next(r for n, r in page.tables.items() if n != "checks-table")
    assert [c[2] for c in section[0]] == ["name|x", "x0", "ok"]
    assert [c[2] for c in section[1]] == ["p|q", "0.5", "True"]
    assert [c[2] for c in section[2]] == ["r", "", "False"]  # NaN: an empty cell
    blocks = re.findall(r"((?:^\|.*\|$\n?)+)", md, flags=re.M)
    assert len(blocks) == 2
    for block in blocks:
        lines = block.strip().splitlines()
        assert len({len(_md_cells(x)) for x in lines}) == 1, lines
    checks = [_md_cells(x) for x in blocks[0].strip().splitlines()[2:]]
    assert [c[0] for c in checks] == [c[0] for c in CHECKS]
    assert _md_cells(blocks[1].strip().splitlines()[2]) == ["p|q", "0.5", "True"]
    assert all("---" not in c[2] for r in page.tables.values() for row in r for c in row)  # no
    # alignment row kept as data


def test_md_cell_split_can_fail():
    assert len(_md_cells("| a|b | c |")) == 3 and len(_md_cells("| a\\|b | c |")) == 2


def test_header_times_machine_and_command(tmp_path):
    _, page, md = _folder(tmp_path)
    # census: two jobs, 1.25 s + 2 s of job time, 15 s from the first start to the last end
    sweep = f"sweep census: 2 jobs, {duration(3.25)} of job time, {duration(15.0)} first start"
    assert (
        duration(3.25) == "3.2 s" and duration(15.0) == "15.0 s" and duration(125) == "2 min 05 s"
    )
    assert sweep in md
    html_text = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert sweep in html_text
    assert re.search(r"- wall time: [\d.]+ s in total", md)
    cores = f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, device "
    assert cores in md and cores in html_text and f"torch {torch.__version__}" in md
    assert "- command: `" in md
    # backticks and emphasis of section text and titles are rendered, not shown
    assert "<code>points</code>" in html_text and "<em>census</em>" in html_text
    assert "`" not in "".join(c[2] for r in page.tables.values() for row in r for c in row)


@pytest.mark.parametrize(("quick", "command", "banner"), [
    (None, "memscape run demo", False),
    ({"n_starts": 300, "resolution": 60}, "memscape run demo --quick", True),
    (None, "memscape run demo --quick --out x", True),  # overrides not passed: still said
])  # fmt: skip
def test_quick_banner_iff_quick(tmp_path, quick, command, banner):
    _, page, md = _folder(tmp_path, quick=quick, command=command)
    assert ("quick-banner" in page.ids) is banner
    assert ("**Quick mode**" in md) is banner
    if quick:
        for k, v in quick.items():
            assert f"{k} = {v!r}" in page.ids["quick-banner"] and f"{k} = {v!r}" in md
    assert page.ids["check-summary"].strip() == "2 of 4 checks passed"
