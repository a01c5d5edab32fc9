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
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "sigma" and ax.get_ylabel() == "x0"
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
