"""The explorer's data (memscape.landscape.explorer) and page (memscape.runs.explorer).

The tiny family: the exact diffusion energy of two points (±1, 0), σ decreasing from 1.9
to 0.55. Its critical points are known in closed form: on the x0 axis, x = tanh(x/σ²)
(the stationarity of −log p_σ); for σ > 1 the origin is the only (minimum) point, for
σ < 1 it is a saddle between two minima ±m: a pitchfork at σ = 1. The energy on the
grid is −log p_σ up to a constant, computed here with numpy.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

import memscape as ms
from memscape.landscape.explorer import explorer_data, explorer_family, explorer_values
from memscape.runs.explorer import check_explorer_data, render_explorer, write_explorer

Y = np.array([[-1.0, 0.0], [1.0, 0.0]])
VALUES = [1.9, 1.3, 0.8, 0.55]


def tiny_explorer(resolution: int = 16, title: str = "two points") -> dict:
    """The explorer data of the two-point family (a few seconds on one core; a fresh copy)."""
    return json.loads(_tiny(resolution, title))


@functools.lru_cache(maxsize=4)
def _tiny(resolution: int, title: str) -> str:
    y = torch.tensor(Y)
    model = ms.EmpiricalDiffusion(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bd = ms.landscape.continuation(model, "sigma", start=1.9, stop=0.55, steps=10,
                                       census_kwargs={"n_starts": 20, "patterns": y},
                                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    fam = explorer_family(lambda s: (model, s), bd, VALUES, patterns=y, xlim=(-2.0, 2.0),
                          ylim=(-1.5, 1.5), resolution=resolution, name="two points")  # fmt: skip
    return json.dumps(explorer_data(title, [fam], experiment="test"))


@pytest.fixture(scope="module")
def data() -> dict:
    return tiny_explorer()


def _pitchfork_minimum(sigma: float) -> float:
    """The positive root of x = tanh(x/σ²) (σ < 1), by bisection."""
    lo, hi = 1e-9, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.tanh(mid / sigma**2) > mid else (lo, mid)
    return 0.5 * (lo + hi)


def test_critical_points_match_the_closed_form(data):
    fam = data["families"][0]
    assert [f["value"] for f in fam["frames"]] == pytest.approx(VALUES)
    for fr in fam["frames"]:
        s = fr["value"]
        pts = sorted(fr["points"], key=lambda p: p["x0"])
        if s > 1:
            assert [p["morse_index"] for p in pts] == [0]
            assert pts[0]["x0"] == pytest.approx(0, abs=1e-6)
            assert fr["edges"] == []
        else:
            m = _pitchfork_minimum(s)
            assert [p["morse_index"] for p in pts] == [0, 1, 0]
            assert [p["x0"] for p in pts] == pytest.approx([-m, 0, m], abs=1e-5)
            assert pts[1]["label"] == "saddle" and pts[1]["kind"] == "saddle-1"
            ends = sorted(round(e[1][0], 4) for e in fr["edges"])  # saddle → each minimum
            assert ends == pytest.approx([-m, m], abs=1e-4)
            assert all(e[0][0] == pytest.approx(0, abs=1e-6) for e in fr["edges"])
        assert all(p["x1"] == pytest.approx(0, abs=1e-6) for p in pts)
        # the energy of a point is −log p_σ there (up to the constant of the model)
        e = [p["energy"] for p in pts]
        nlp = [-np.log(np.exp(-((p["x0"] - Y[:, 0]) ** 2) / (2 * s * s)).mean()) for p in pts]
        assert np.diff(e) == pytest.approx(np.diff(nlp), rel=1e-4, abs=1e-6)


def test_grid_is_minus_log_density_up_to_a_constant(data):
    fam = data["families"][0]
    x, y = np.array(fam["x"]), np.array(fam["y"])
    assert x[0] == -2 and x[-1] == 2 and y[0] == -1.5 and len(x) == len(y) == 16
    gx, gy = np.meshgrid(x, y)  # rows along y
    for fr in fam["frames"]:
        s = fr["value"]
        d2 = (gx[..., None] - Y[:, 0]) ** 2 + (gy[..., None] - Y[:, 1]) ** 2
        nlp = -np.log(np.exp(-d2 / (2 * s * s)).mean(-1))
        z = np.array(fr["z"])
        assert z.shape == (16, 16) and z.min() == 0
        assert z == pytest.approx(nlp - nlp.min(), rel=1e-4, abs=1e-6)  # 5 digits; x, y to 6


def test_basins_split_at_the_symmetry_line_below_the_pitchfork(data):
    """Two points at (±1, 0): above σ = 1 every node flows to the one minimum; below, the
    gradient flow never crosses the mirror line x0 = 0, so a node's basin is its side's."""
    fam = data["families"][0]
    gx, _ = np.meshgrid(np.array(fam["x"]), np.array(fam["y"]))
    assert not (gx == 0).any()  # no node on the line itself (16 nodes over [−2, 2])
    for fr in fam["frames"]:
        basins = np.array(fr["basins"], dtype=float)
        assert basins.shape == gx.shape and not np.isnan(basins).any()
        minima = [i for i, p in enumerate(fr["points"]) if p["morse_index"] == 0]
        if fr["value"] > 1:
            assert minima == [0] and (basins == 0).all()
        else:  # the minimum each node reaches is the one on its side of x0 = 0
            side = np.array([np.sign(fr["points"][int(i)]["x0"]) for i in basins.ravel()])
            assert (side.reshape(gx.shape) == np.sign(gx)).all()
            assert set(np.unique(basins).astype(int)) == set(minima)


def test_diagram_has_the_pitchfork_at_sigma_one(data):
    fam = data["families"][0]
    assert fam["parameter"] == "sigma" and fam["symbol"] == "σ" and fam["log"] is True
    assert fam["surface"] == "energy"
    pitch = [e for e in fam["diagram"]["events"] if e["kind"] == "pitchfork"]
    assert len(pitch) == 1 and pitch[0]["parameter"] == pytest.approx(1.0, rel=1e-4)
    assert (pitch[0]["index_before"], pitch[0]["index_after"]) == (0, 1)
    # the two outer branches are minima (index 0) and live below σ = 1 only
    outer = [b for b in fam["diagram"]["branches"] if max(map(abs, b["x0"])) > 0.5]
    assert len(outer) == 2 and all(set(b["morse_index"]) == {0} for b in outer)
    assert all(max(b["parameter"]) <= 1 + 1e-6 for b in outer)


def test_explorer_values():
    v = explorer_values(2.0, 0.5, 3, log=True, include=[0.7, 5.0, 1.0 + 1e-12])
    assert v == pytest.approx([2.0, 1.0, 0.7, 0.5])  # geometric midpoint 1; 5 is outside
    assert explorer_values(0.0, 1.0, 3, log=False) == pytest.approx([0, 0.5, 1])
    with pytest.raises(ValueError, match="n"):
        explorer_values(1.0, 2.0, 1, log=True)
    with pytest.raises(ValueError, match="start"):
        explorer_values(-1.0, 2.0, 3, log=True)
    with pytest.raises(ValueError, match="differ"):
        explorer_values(1.0, 1.0, 3, log=False)


def test_explorer_family_rejects_bad_input(data):
    y = torch.tensor(Y)
    model = ms.EmpiricalDiffusion(y)
    with pytest.raises(TypeError, match="diagram"):
        explorer_family(lambda s: (model, s), "not a diagram", [1.0])
    bd = ms.BifurcationDiagram("sigma", True, *_tables(data))
    with pytest.raises(ValueError, match="values"):
        explorer_family(lambda s: (model, s), bd, [])
    with pytest.raises(ValueError, match="resolution"):
        explorer_family(lambda s: (model, s), bd, [1.0], resolution=2)
    with pytest.raises(ValueError, match="xlim"):
        explorer_family(lambda s: (model, s), bd, [1.0], xlim=(1.0, 0.0))
    with pytest.raises(ValueError, match="families"):
        explorer_data("t", [])


def _tables(data):
    """The diagram's tables rebuilt from the JSON (enough for a BifurcationDiagram)."""
    import pandas as pd

    rows = [{"branch": b["branch"], "point": k, "parameter": p, "x0": b["x0"][k],
             "x1": b["x1"][k], "energy": b["energy"][k], "bifurcation": False,
             "morse_index": b["morse_index"][k], "stable": b["morse_index"][k] == 0}
            for b in data["families"][0]["diagram"]["branches"]
            for k, p in enumerate(b["parameter"])]  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(data["families"][0]["diagram"]["events"])


class _Refs(HTMLParser):
    """Every tag's src/href, every <link>, and the text of <script id=explorer-data>."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.in_data = False
        self.data = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "action")]
        self.in_data = tag == "script" and a.get("id") == "explorer-data"

    def handle_endtag(self, tag):
        self.in_data = False

    def handle_data(self, text):
        if self.in_data:
            self.data += text


def test_page_is_offline_and_carries_the_data(tmp_path, data):
    hostile = {**data, "title": "</script><b>x</b> & 'y'"}
    page = write_explorer(tmp_path, hostile)
    assert page == tmp_path / "explorer.html" and (tmp_path / "explorer.json").exists()
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.refs == [], f"the page requests files: {parser.refs}"
    assert "link" not in parser.tags and "iframe" not in parser.tags
    assert json.loads(parser.data) == json.loads((tmp_path / "explorer.json").read_text())
    assert json.loads(parser.data)["title"] == hostile["title"]  # "</" did not end the script
    assert "plotly.js v" in page.read_text(encoding="utf-8")[:2_000_000]  # embedded, not linked
    # rewriting from explorer.json alone gives the same page
    before = page.read_text(encoding="utf-8")
    assert write_explorer(tmp_path).read_text(encoding="utf-8") == before


def test_the_offline_check_can_fail():
    parser = _Refs()
    parser.feed('<script src="https://cdn.example/plotly.js"></script><a href="x.png">x</a>')
    assert [r[2] for r in parser.refs] == ["https://cdn.example/plotly.js", "x.png"]


def test_write_explorer_names_what_is_wrong(tmp_path, data):
    with pytest.raises(ValueError, match="existing results folder"):
        write_explorer(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no explorer\.json"):
        write_explorer(tmp_path)
    bad = json.loads(json.dumps(data))
    bad["families"][0]["frames"][1]["z"] = bad["families"][0]["frames"][1]["z"][:-1]
    with pytest.raises(ValueError, match=r"families\[0\]\.frames\[1\]\.z must be 16 rows"):
        write_explorer(tmp_path, bad)
    assert not (tmp_path / "explorer.json").exists()  # checked before any write
    with pytest.raises(ValueError, match="format"):
        check_explorer_data({**data, "format": "other"})
    with pytest.raises(ValueError, match="families"):
        check_explorer_data({**data, "families": []})
    nan = json.loads(json.dumps(data))
    nan["families"][0]["frames"][0]["z"][0][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        render_explorer(nan)
    (tmp_path / "explorer.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        write_explorer(tmp_path)
    assert Path(tmp_path / "explorer.html").exists() is False


def test_bad_basins_are_named_before_any_write(tmp_path, data):
    check_explorer_data(data)  # the family's own basins (frames below σ = 1 have 3 points)
    for change in (lambda fr: fr["basins"].pop(),  # a row missing
                   lambda fr: fr["basins"][0].__setitem__(0, len(fr["points"])),  # no such point
                   lambda fr: fr["basins"][2].__setitem__(3, 0.5)):  # not an index  # fmt: skip
        bad = json.loads(json.dumps(data))
        change(bad["families"][0]["frames"][3])
        with pytest.raises(ValueError, match=r"families\[0\]\.frames\[3\]\.basins must be 16 rows"):
            write_explorer(tmp_path, bad)
    assert not (tmp_path / "explorer.json").exists()


def test_cli_explore_rewrites_the_page_and_names_a_bad_folder(tmp_path, data):
    from typer.testing import CliRunner

    from memscape.cli import app

    (tmp_path / "explorer.json").write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["explore", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "explorer.html")
    assert "plotly.js v" in (tmp_path / "explorer.html").read_text(encoding="utf-8")[:2_000_000]
    missing = CliRunner().invoke(app, ["explore", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "error:" in missing.output
    assert "existing results folder" in missing.output


@functools.lru_cache(maxsize=2)
def _pair(kind: str) -> str:
    from memscape.landscape.explorer import pair_family

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fam = pair_family(1.0, "vp", kind, frames=3, steps=12, n_starts=30, resolution=12)
    return json.dumps(fam)


@pytest.mark.parametrize("kind", ["density", "drift"])
def test_pair_family_is_the_process_landscape_of_two_points(kind):
    """Symmetry-breaking's explorer: (±1, 0) under VP along t, against numpy and the theory."""
    fam = json.loads(_pair(kind))
    proc = ms.diffusion.get_process("vp")
    assert fam["parameter"] == "t" and fam["log"] is True and fam["name"] == f"±1, VP, {kind}"
    ts = [f["value"] for f in fam["frames"]]
    assert ts[0] == pytest.approx(float(proc.t_of_sigma(3.0))) and ts[0] > ts[1] > ts[2]
    assert ts[-1] == pytest.approx(float(proc.t_of_sigma(0.3)))
    x, y = np.meshgrid(np.array(fam["x"]), np.array(fam["y"]))
    y2 = np.array([[1.0, 0.0], [-1.0, 0.0]])
    for fr in fam["frames"]:
        s, sig, rate, g2 = (float(v) for v in proc.sde(fr["value"]))
        d2 = (x[..., None] / s - y2[:, 0]) ** 2 + (y[..., None] / s - y2[:, 1]) ** 2
        e = -np.log(np.exp(-d2 / (2 * sig * sig)).mean(-1))  # −log p_t up to a constant
        if kind == "drift":  # U = g² E + ½ f ‖x‖² (Raya & Ambrogioni 2023)
            e = g2 * e + 0.5 * rate * (x**2 + y**2)
        assert np.array(fr["z"]) == pytest.approx(e - e.min(), rel=1e-4, abs=1e-5 * np.ptp(e))
        assert all(p["x1"] == pytest.approx(0, abs=1e-6) for p in fr["points"])
    first, last = (sorted(p["morse_index"] for p in fam["frames"][i]["points"]) for i in (0, -1))
    assert (first, last) == ([0], [0, 0, 1])  # one minimum at t(3a); two and a saddle at t(0.3a)
    theory = {"density": ms.theory.symmetry_breaking_time,
              "drift": ms.theory.drift_potential_breaking_time}[kind](1.0, "vp")  # fmt: skip
    pitch = [e for e in fam["diagram"]["events"] if e["kind"] == "pitchfork"]
    assert len(pitch) == 1 and pitch[0]["parameter"] == pytest.approx(theory, rel=1e-3)
    with pytest.raises(ValueError, match="a must be"):
        ms.landscape.explorer.pair_family(-1.0, "vp")


def test_landscape_frame_is_minus_log_density_on_a_rectangular_grid():
    """Rows along y, columns along x (len(y) ≠ len(x)); −log p_σ up to its minimum."""
    from memscape.landscape.explorer import landscape_frame

    y = torch.tensor(Y)
    xs, ys = np.linspace(-2.0, 2.0, 7), np.linspace(-1.0, 1.5, 5)
    fr = landscape_frame(ms.EmpiricalDiffusion(y), 0.7, 3.0, xs, ys, patterns=y)
    gx, gy = np.meshgrid(xs, ys)
    d2 = (gx[..., None] - Y[:, 0]) ** 2 + (gy[..., None] - Y[:, 1]) ** 2
    nlp = -np.log(np.exp(-d2 / (2 * 0.7**2)).mean(-1))
    assert np.array(fr["z"]).shape == (5, 7)
    assert np.array(fr["z"]) == pytest.approx(nlp - nlp.min(), rel=1e-4, abs=1e-6)
    assert fr["value"] == 3.0 and fr["points"] == [] and fr["patterns"] == Y.tolist()
    with pytest.raises(ValueError, match="grid nodes"):
        landscape_frame(ms.EmpiricalDiffusion(y), 0.7, 3.0, [0.0], ys)
