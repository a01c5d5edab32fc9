"""Landscape and bifurcation figures: the expected artists, on the Agg canvas, savable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection, QuadMesh
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

import memscape as ms
from memscape.landscape.critical import critical_points
from memscape.landscape.plot import plot_bifurcation, plot_landscape
from memscape.protocol import EnergyModel
from tests.toys import TiltedWell

F64 = torch.float64
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Rotation(EnergyModel):
    """Score-only field ``s = −x + ω J x`` (no energy: it has a curl)."""

    has_energy = False
    event_shape = (2,)

    def score(self, x, sigma=None):
        return -x + 0.5 * torch.stack([-x[:, 1], x[:, 0]], dim=1)


@pytest.fixture(scope="module")
def well():
    model = TiltedWell(0.5)
    cps = critical_points(
        model, n_starts=32, max_steps=300, generator=torch.Generator().manual_seed(0)
    )
    return model, cps


def scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection) and c.get_label()[0] != "_"]


def test_plot_landscape_artists_and_png(well, tmp_path):
    model, cps = well
    ax = plot_landscape(model, cps=cps, resolution=40, basin_resolution=24)
    assert isinstance(ax.figure, Figure)
    assert any(isinstance(c, ContourSet) and not c.filled for c in ax.collections)
    assert any(isinstance(c, QuadMesh) for c in ax.collections)  # basins
    assert len(ax.collections) >= 4  # + stream lines and the critical points
    sc = {c.get_label(): c for c in scatters(ax)}
    assert set(sc) == {"minimum", "saddle (index 1)"}
    # critical points of the tilted well: 4x³ − 4x − t = 0 on the x axis
    roots = np.sort(np.roots([4, 0, -4, -0.5]).real)
    mins = np.sort(sc["minimum"].get_offsets()[:, 0])
    assert np.allclose(mins, roots[[0, 2]], atol=1e-6)
    assert np.allclose(sc["saddle (index 1)"].get_offsets(), [[roots[1], 0.0]], atol=1e-6)
    marker_shapes = {c.get_paths()[0].vertices.round(3).tobytes() for c in sc.values()}
    assert len(marker_shapes) == 2  # one marker per Morse index
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["minimum", "saddle (index 1)"]
    path = tmp_path / "landscape.png"
    ax.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_plot_landscape_score_only_model_and_given_axes():
    fig = Figure()
    ax0 = fig.add_subplot()
    ax = plot_landscape(Rotation(), ax=ax0, xlim=(-1, 1), ylim=(-1, 1), resolution=20)
    assert ax is ax0
    contours = [c for c in ax.collections if isinstance(c, ContourSet)]
    assert len(contours) == 1 and contours[0].filled  # score magnitude, no energy lines
    assert not any(isinstance(c, QuadMesh) for c in ax.collections)
    assert ax.get_xlim() == (-1, 1)


def test_plot_landscape_bad_input(well):
    model, cps = well
    with pytest.raises(ValueError, match="2 coordinates"):
        plot_landscape(ms.EmpiricalDiffusion(torch.randn(3, 3, dtype=F64)), 0.5)
    with pytest.raises(ValueError, match="sigma"):
        plot_landscape(ms.EmpiricalDiffusion(torch.randn(3, 2, dtype=F64)))
    with pytest.raises(TypeError, match="CriticalPoints"):
        plot_landscape(model, cps=cps.points)
    with pytest.raises(ValueError, match="xlim"):
        plot_landscape(model, xlim=(1.0, -1.0))
    with pytest.raises(ValueError, match="basins"):
        plot_landscape(model, basins=True, resolution=8)


def test_bifurcation_diagram_plot(tmp_path):
    a = 1.0
    model = ms.EmpiricalDiffusion(torch.tensor([[a], [-a]], dtype=F64))
    diagram = ms.continuation(
        model, "sigma", start=2 * a, stop=0.1 * a, starts=torch.zeros(1, 1, dtype=F64), reseed=0
    )
    ax = diagram.plot()
    assert (
        ax.get_xscale() == "log" and ax.get_xlabel() == "noise level σ" and ax.get_ylabel() == "x0"
    )
    styles = {(ln.get_color(), ln.get_linestyle()) for ln in ax.get_lines()}
    assert styles == {("tab:blue", "-"), ("tab:red", "--")}  # minima solid, saddles dashed
    (marks,) = scatters(ax)
    assert marks.get_label() == "pitchfork"
    assert np.allclose(marks.get_offsets(), [[a, 0.0]], rtol=1e-3, atol=1e-6)  # σ = a
    legend = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert legend == ["minimum", "pitchfork", "saddle (index 1)"]
    ax2 = plot_bifurcation(diagram, y="energy")
    assert ax2.get_ylabel() == "energy"
    path = tmp_path / "bifurcation.png"
    ax.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="y"):
        plot_bifurcation(diagram, y="x7")


def test_bifurcation_diagram_projected_on_a_direction():
    """Pair (±1, ±1)/√2 in 2-D: on the diagonal the branches sit at ±1 (and 0); x0 sees 1/√2."""
    r = 2**-0.5
    model = ms.EmpiricalDiffusion(torch.tensor([[r, r], [-r, -r]], dtype=F64))
    diagram = ms.continuation(
        model, "sigma", start=2.0, stop=0.2, starts=torch.zeros(1, 2, dtype=F64), reseed=0
    )
    ax = plot_bifurcation(diagram, y=[2.0, 2.0], ylabel="diagonal")
    assert ax.get_ylabel() == "diagonal"
    ys = np.concatenate([ln.get_ydata() for ln in ax.get_lines()])
    # minima at x = ±m(σ)(1, 1)/√2 with m → 1 as σ → 0: the projection reaches ≈ ±1, x0 only 1/√2
    assert ys.max() > 0.95 and ys.min() < -0.95 and np.abs(ys).max() <= 1 + 1e-9
    (marks,) = scatters(ax)
    assert np.allclose(marks.get_offsets(), [[1.0, 0.0]], rtol=1e-3, atol=1e-6)  # pitchfork σ = a
    for bad in ([1.0], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="direction"):
            plot_bifurcation(diagram, y=bad)


def test_landscape_on_a_plane_through_three_points_of_a_5d_model():
    """Gram–Schmidt and the energy on the plane, checked against numpy: the three points sit
    at (0, 0), (‖b − a‖, 0) and their closed-form coordinates; contours are the exact energy
    −log Σ exp(−‖x − y‖²/2σ²) (+ a constant) at the embedded grid nodes."""
    from scipy.special import logsumexp

    from memscape.landscape.plot import landscape_plane

    rng = np.random.default_rng(2)
    y = rng.normal(size=(6, 5))
    model = ms.EmpiricalDiffusion(torch.tensor(y))
    a, b, c = y[0], y[3], y[4]
    origin, basis = landscape_plane(model, torch.tensor(np.stack([a, b, c])))
    e1 = (b - a) / np.linalg.norm(b - a)
    w = (c - a) - ((c - a) @ e1) * e1
    e2 = w / np.linalg.norm(w)
    assert np.allclose(basis.numpy(), np.stack([e1, e2]), atol=1e-12)
    assert np.allclose(origin.numpy(), a)
    sigma = 0.7
    ax = plot_landscape(model, sigma, plane=torch.tensor(np.stack([a, b, c])), resolution=12,
                        streamlines=False)  # fmt: skip
    (stars,) = [c for c in scatters(ax) if c.get_label().startswith("patterns")]
    uv = stars.get_offsets()
    assert np.allclose(uv[0], [0, 0], atol=1e-12) and np.allclose(uv[3], [np.linalg.norm(b - a), 0])
    assert np.allclose(uv[4], [(c - a) @ e1, np.linalg.norm(w)], atol=1e-12)
    assert ax.get_xlabel().startswith("u") and "plane of 3 points" in ax.get_title()
    pca_origin, pca_basis = landscape_plane(model, "pca")
    assert np.allclose(pca_origin.numpy(), y.mean(0))
    vh = np.linalg.svd(y - y.mean(0), full_matrices=False)[2][:2]
    assert np.allclose(np.abs((pca_basis.numpy() * vh).sum(1)), 1.0, atol=1e-12)  # ± sign
    # the energy on the plane is the exact one at the embedded points
    u, v = 0.3, -0.4
    x = a + u * e1 + v * e2
    want = -logsumexp(-((x - y) ** 2).sum(1) / (2 * sigma**2))
    got = float(model.energy(origin[None] + torch.tensor([[u, v]], dtype=F64) @ basis, sigma))
    ref_x = a  # differences of energies cancel the normalising constant
    ref = -logsumexp(-((ref_x - y) ** 2).sum(1) / (2 * sigma**2))
    assert got - float(model.energy(origin[None], sigma)) == pytest.approx(want - ref, abs=1e-10)
    for bad in (torch.tensor(np.stack([a, a, c])), torch.tensor(np.stack([a, b, 2 * b - a])),
                torch.zeros(3, 4), "random"):  # fmt: skip
        with pytest.raises(ValueError, match="plane"):
            plot_landscape(model, sigma, plane=bad, resolution=8)
    with pytest.raises(ValueError, match="basins"):
        plot_landscape(model, sigma, plane="pca", basins=True)
    with pytest.raises(ValueError, match="plane="):
        plot_landscape(model, sigma)


def census(rows):
    """A census table from ``(x0, x1, morse_index, energy)`` rows (all converged)."""
    import pandas as pd

    t = pd.DataFrame(rows, columns=["x0", "x1", "morse_index", "energy"])
    return t.assign(converged=True).reset_index(names="point")


def test_morse_smale_graph_has_energy_up_nodes_by_index_and_readable_labels():
    import pandas as pd
    from matplotlib.text import Annotation

    from memscape.figures import legend_overlaps_data
    from memscape.landscape import plot_morse_smale

    pts = census([(-1, 0, 0, 0.2), (1, 0, 0, 0.5), (0, 0.3, 1, 1.7), (0, 2, 2, 3.0)])
    edges = pd.DataFrame({"saddle": [2, 2, 2], "end": ["0", "1", "unresolved-2-+"]})
    ax = plot_morse_smale(pts, edges)
    assert ax.get_ylabel() == "energy E"
    sc = {c.get_label(): c.get_offsets() for c in scatters(ax)}
    assert set(sc) == {"minimum", "saddle (index 1)", "maximum (index 2)"}
    assert np.allclose(sorted(map(tuple, sc["minimum"])), [(-1, 0.2), (1, 0.5)])
    assert np.allclose(sc["saddle (index 1)"], [[0, 1.7]])
    arrows = [t for t in ax.texts if isinstance(t, Annotation) and t.arrow_patch is not None]
    assert len(arrows) == 2  # the unresolved end is left out
    assert {tuple(a.xy) for a in arrows} == {(-1.0, 0.2), (1.0, 0.5)}  # heads at the minima
    labels = [t for t in ax.texts if t.get_text()]
    assert sorted(t.get_text() for t in labels) == ["0", "1", "2", "3"]
    assert min(t.get_fontsize() for t in labels) >= 8
    ms.figures.finish(ax.figure)
    assert not legend_overlaps_data(ax)
    no_energy = pts.assign(energy=np.nan)
    assert plot_morse_smale(no_energy, edges).get_ylabel().startswith("x1")
    with pytest.raises(ValueError, match="fontsize"):
        plot_morse_smale(pts, edges, fontsize=5)


def test_landscape_has_an_energy_colorbar_and_sigma_and_k_in_its_title():
    from memscape.figures import maps_without_colorbar

    model = ms.EmpiricalDiffusion(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], dtype=F64))
    ax = plot_landscape(model, 0.5, resolution=16, streamlines=False)
    assert "σ = 0.5" in ax.get_title() and "K = 3" in ax.get_title()
    assert maps_without_colorbar(ax.figure) == []
    (bar,) = [a for a in ax.figure.axes if hasattr(a, "_colorbar")]
    assert bar.get_xlabel() == "energy E(x, σ)"
    plain = plot_landscape(model, 0.5, resolution=16, streamlines=False, colorbar=False)
    assert len(plain.figure.axes) == 1
    hop = ms.ModernHopfield(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64), 2.0)
    assert "β = 2" in plot_landscape(hop, resolution=12, streamlines=False).get_title()


def test_attractor_colors_follow_each_minimum_across_censuses():
    from memscape.landscape import attractor_colors

    snaps = [
        census([(0, 0, 0, 0)]),
        census([(2, 0, 0, 0), (1, 0, 1, 0), (0.1, 0, 0, 0)]),  # a minimum born at x = 2
        census([(0, 0.1, 0, 0), (-2, 0, 0, 0), (2.1, 0, 0, 0)]),  # and one at x = −2
    ]
    assert attractor_colors(snaps) == [["C0"], ["C1", "0.6", "C0"], ["C0", "C2", "C1"]]
    assert attractor_colors(snaps[:1], palette=["red"]) == [["red"]]
    with pytest.raises(ValueError, match="palette"):
        attractor_colors(snaps, palette=[])


def test_basins_take_the_colour_given_to_their_minimum(well):
    from matplotlib.colors import to_rgba

    model, cps = well
    colors = ["gold" if int(i) == 0 else "k" for i in cps.morse_index]
    minima = [r for r in range(len(cps)) if int(cps.morse_index[r]) == 0 and bool(cps.converged[r])]
    colors[minima[-1]] = "purple"
    ax = plot_landscape(model, cps=cps, resolution=12, basin_resolution=10, basin_colors=colors)
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    shown = {tuple(np.round(mesh.cmap(k), 6)) for k in range(mesh.cmap.N)}
    assert shown == {tuple(np.round(to_rgba(c), 6)) for c in ("gold", "purple")}
    with pytest.raises(ValueError, match="basin_colors"):
        plot_landscape(model, cps=cps, resolution=12, basin_resolution=10, basin_colors=["r"])


def test_plot_fraction_draws_the_wilson_interval_found_by_inverting_the_score_test():
    """The Wilson interval is the set of p0 whose score test |p̂ − p0| ≤ z √(p0(1−p0)/n)
    accepts p̂ (Wilson 1927): found here by brute force on a fine grid of p0."""
    from matplotlib.collections import LineCollection

    from memscape.landscape import plot_fraction

    frac, trials, z = np.array([0.0, 0.3, 0.9]), np.array([20, 50, 10]), 1.959964
    ax = Figure().add_subplot()
    line = plot_fraction(ax, [1, 2, 3], frac, trials, label="f")
    assert np.allclose(line.get_ydata(), frac)
    assert [t.get_text() for t in ax.legend().get_texts()] == ["f"]
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    p0 = np.linspace(0, 1, 200001)
    for seg, p, n in zip(bars.get_segments(), frac, trials, strict=True):
        ok = p0[np.abs(p - p0) <= z * np.sqrt(p0 * (1 - p0) / n)]
        assert seg[:, 1].min() == pytest.approx(ok.min(), abs=2e-5)
        assert seg[:, 1].max() == pytest.approx(ok.max(), abs=2e-5)
    for bad in ({"fraction": [1.2], "trials": [5]}, {"fraction": [0.5], "trials": [0]}):
        with pytest.raises(ValueError, match="fractions"):
            plot_fraction(ax, [1], **bad)


def test_snapshot_panels_share_one_legend_of_every_index_on_the_top_right_panel():
    """Two points at ±1 (exact diffusion energy): one minimum at σ = 2 (above the pitchfork
    at σ = 1), two minima and a saddle at σ = 0.5; the single legend names both indices."""
    from memscape.landscape import plot_snapshots
    from memscape.landscape.morse_smale import morse_smale_graph
    from memscape.landscape.snapshots import census_table, edge_table

    y = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)
    model = ms.EmpiricalDiffusion(y)
    panels = []
    for sigma in (2.0, 0.5):
        cps = critical_points(model, sigma, n_starts=24, generator=torch.Generator().manual_seed(1))
        panels.append({"model": model, "sigma": sigma, "census": census_table(cps),
                       "edges": edge_table(morse_smale_graph(model, cps)), "patterns": y,
                       "title": f"σ = {sigma:g}: test"})  # fmt: skip
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, 2)
    plot_snapshots(panels, axes, resolution=12, basin_resolution=8, xlim=(-2, 2), ylim=(-2, 2))
    assert axes[0].get_legend() is None
    names = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert names == ["minimum", "saddle (index 1)"]
    assert axes[0].get_title() == "σ = 2, K = 2: test"
    with pytest.raises(ValueError, match="one Axes per panel"):
        plot_snapshots(panels, axes[:1])


def test_nearest_grid_groups_rows_by_class_and_shows_each_sample_beside_its_nearest():
    """Rows taken one class at a time (rare classes shown), sorted by class, labelled; the
    right image is the training point the sample was made from (brute-force nearest)."""
    from memscape.memorization import CLASSES, plot_nearest

    g = torch.Generator().manual_seed(0)
    train = torch.rand(6, 64, generator=g) * 2 - 1  # six 8×8 "images", far apart
    generated = train + 1e-3 * torch.randn(6, 64, generator=g)  # sample i is nearest train i
    classes = ["off-data", "memorized", "memorized", "spurious", "memorized", "off-data"]
    axes = Figure().subplots(4, 2)
    plot_nearest(generated, train, axes, classes=classes)
    # one per class in CLASSES order (memorized 1, spurious 3, off-data 0), then memorized 2
    labels = [row[0].get_ylabel() for row in axes]
    assert labels == ["memorized", "memorized", "spurious", "off-data"]
    assert labels == sorted(labels, key=CLASSES.index)
    for row, i in zip(axes, [1, 2, 3, 0], strict=True):
        left, right = (ax.get_images()[0].get_array() for ax in row)
        assert np.allclose(left, generated[i].reshape(8, 8).numpy())
        assert np.allclose(right, train[i].reshape(8, 8).numpy())
    few = Figure().subplots(4, 2)  # two samples for four rows: the rest is blank
    plot_nearest(generated[:2], train, few, classes=classes[:2])
    assert [len(row[0].get_images()) for row in few] == [1, 1, 0, 0]
    assert [row[0].get_ylabel() for row in few] == ["memorized", "off-data", "", ""]
