"""One rule per concept: Morse index, hyperbolicity, symmetry, "same point" spacing, streamed softmax.

Each rule is checked against an independent truth written here: hand-built spectra
with known counts, matrices with a known asymmetry, a brute-force ``cdist`` spacing,
and materialized softmax / log-sum-exp computed in the test.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from memscape.diffusion import EmpiricalDiffusion
from memscape.landscape import CriticalPoints, is_hyperbolic, morse_index
from memscape.landscape.labels import default_tolerance, median_nn_distance
from memscape.landscape.morse import (
    HYPERBOLIC_RTOL,
    MORSE_RTOL,
    SYMMETRY_RTOL,
    asymmetry,
    hessian_eigenvalues,
    hessian_spectrum,
    is_symmetric,
)
from memscape.memories import DenseAM
from memscape.memorization import classify_samples, median_nn_spacing, same_point_radius
from memscape.memorization.neighbors import SAME_POINT_FRACTION
from memscape.protocol import EnergyModel


# --------------------------------------------------------------------- Morse index
def test_morse_index_counts_hand_built_spectra():
    spectra = torch.tensor(
        [
            [-2.0, -1.0, 3.0],  # two clear negatives
            [-2.0, -1e-13, 3.0],  # round-off below a zero eigenvalue: not counted
            [-2.0, 1e-13, 3.0],  # and above it
            [-2.0, -1e-6, 3.0],  # small but real curvature: counted
            [0.0, 0.0, 0.0],  # flat: no scale, nothing negative
            [1.0, 2.0, 3.0],  # minimum
            [-1.0, -2.0, -3.0],  # maximum, any order
        ],
        dtype=torch.float64,
    )
    assert morse_index(spectra).tolist() == [2, 1, 1, 2, 0, 0, 3]
    # relative: rescaling the spectrum changes nothing
    assert morse_index(1e8 * spectra).tolist() == [2, 1, 1, 2, 0, 0, 3]
    assert morse_index(1e-8 * spectra).tolist() == [2, 1, 1, 2, 0, 0, 3]
    # the threshold sits at −rtol·max|λ|, on either side of it
    edge = torch.tensor([[-1.0, -0.5 * MORSE_RTOL], [-1.0, -2 * MORSE_RTOL]], dtype=torch.float64)
    assert morse_index(edge).tolist() == [1, 2]
    assert int(morse_index(torch.tensor([-3.0, -1e-3, 4.0]), rtol=1e-2)) == 1
    assert morse_index(spectra.reshape(7, 1, 3)).shape == (7, 1)  # any leading shape


class _Quadratic(EnergyModel):
    """``E(x) = ½ xᵀHx`` with the Hessian ``H`` built by hand (autograd Hessian)."""

    def __init__(self, h: torch.Tensor) -> None:
        self.h = h
        self.event_shape = (h.shape[0],)

    def energy(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        return 0.5 * ((x @ self.h) * x).sum(1)


def test_hessian_spectrum_index_ignores_round_off_of_a_flat_direction():
    """H = Q diag(−1, 0, 0, 2) Qᵀ: index 1 for every rotation Q, whatever the sign of the noise."""
    g = torch.Generator().manual_seed(3)
    x = torch.zeros(1, 4, dtype=torch.float64)
    noisy_negative = 0
    for _ in range(20):
        q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
        h = q @ torch.diag(torch.tensor([-1.0, 0.0, 0.0, 2.0], dtype=torch.float64)) @ q.T
        spec = hessian_spectrum(_Quadratic(h), x)
        noisy_negative += int((spec.eigenvalues < 0).sum()) - 1
        assert spec.morse_index().tolist() == [1]
        assert spec.is_hyperbolic().tolist() == [False]  # the zero eigenvalues: degenerate
    assert noisy_negative > 0  # the bare sign test ``λ < 0`` would have miscounted


def test_is_hyperbolic_and_is_morse_share_the_rule():
    ev = torch.tensor(
        [[-1.0, 2.0], [1e-7, 2.0], [-1e-7, 2.0], [1.0, 0.5e-6 * 2], [4e-6, 2.0]],
        dtype=torch.float64,
    )
    assert is_hyperbolic(ev).tolist() == [True, False, False, False, True]
    assert HYPERBOLIC_RTOL >= MORSE_RTOL  # degenerate before the index changes
    pts = torch.zeros(len(ev), 2, dtype=torch.float64)
    table = {"converged": [True] * len(ev), "morse_index": morse_index(ev).tolist()}
    cps = CriticalPoints(pts, pd.DataFrame(table), ev)
    assert not cps.is_morse()
    keep = [0, 4]
    cps = CriticalPoints(pts[keep], pd.DataFrame(table).iloc[keep], ev[keep])
    assert cps.is_morse()
    assert not cps.is_morse(rtol=1.0)


# --------------------------------------------------------------------- symmetry
def test_asymmetry_and_is_symmetric():
    a = 1e-3
    h = torch.tensor([[1.0, a], [0.0, 1.0]], dtype=torch.float64)
    # ‖H − Hᵀ‖_F = √2 a, ‖H‖_F = √(2 + a²)
    assert float(asymmetry(h)) == pytest.approx(math.sqrt(2) * a / math.sqrt(2 + a * a), rel=1e-14)
    assert not bool(is_symmetric(h))
    assert bool(is_symmetric(h, rtol=1e-2))
    g = torch.Generator().manual_seed(0)
    m = torch.randn(5, 6, 6, generator=g, dtype=torch.float64)
    sym = m + m.transpose(1, 2)
    assert asymmetry(sym).abs().max() == 0.0 and bool(is_symmetric(sym).all())
    # round-off-sized asymmetry (an autograd Hessian) still counts as symmetric
    tiny = sym + 1e-15 * torch.randn(5, 6, 6, generator=g, dtype=torch.float64)
    assert bool(is_symmetric(tiny).all())
    skew = sym + 10 * SYMMETRY_RTOL * (m - m.transpose(1, 2))
    assert not bool(is_symmetric(skew).any())
    assert float(asymmetry(torch.zeros(3, 3))) == 0.0  # the zero matrix is symmetric


def test_hessian_eigenvalues_switch_solver_on_the_symmetry_rule():
    # upper triangular, non-symmetric: eigenvalues are the diagonal (not those of the sym part)
    h = torch.tensor([[-1.0, 5.0], [0.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        hessian_eigenvalues(h), torch.tensor([-1.0, 2.0], dtype=torch.float64)
    )
    sym_part = torch.linalg.eigvalsh(0.5 * (h + h.T))
    assert float(sym_part[0]) < -2.0  # what a symmetric solver would have said
    # a rotation-like Jacobian: complex pair 1 ± 2i, real parts 1
    rot = torch.tensor([[1.0, -2.0], [2.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(hessian_eigenvalues(rot), torch.ones(2, dtype=torch.float64))
    # a batch mixing both kinds, and the symmetric one through eigvalsh
    s = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    out = hessian_eigenvalues(torch.stack([h, s]))
    torch.testing.assert_close(out, torch.tensor([[-1.0, 2.0], [1.0, 3.0]], dtype=torch.float64))


# --------------------------------------------------------------------- "same point" spacing
def _brute_spacing(points: torch.Tensor) -> float:
    d = torch.cdist(points, points)
    d.fill_diagonal_(math.inf)
    return float(d.amin(1).median())  # torch: the lower middle value for even K


@pytest.mark.parametrize("k", [2, 3, 10, 57])
def test_median_nn_spacing_matches_brute_force_cdist(k):
    g = torch.Generator().manual_seed(k)
    pts = torch.randn(k, 3, generator=g, dtype=torch.float64)
    if k > 3:
        pts[1] = pts[0]  # a duplicate pair: spacing 0 for both
    truth = _brute_spacing(pts)
    assert median_nn_spacing(pts, chunk_size=7) == pytest.approx(truth, rel=1e-12, abs=1e-15)
    assert same_point_radius(pts) == pytest.approx(truth / 3, rel=1e-12, abs=1e-15)
    assert same_point_radius(pts, 0.25, chunk_size=5) == pytest.approx(truth / 4, rel=1e-12)
    images = pts.reshape(k, 1, 3)  # image-shaped inputs are flattened
    assert median_nn_spacing(images) == pytest.approx(truth, rel=1e-12, abs=1e-15)


def test_one_spacing_rule_for_labels_and_sample_classes():
    assert SAME_POINT_FRACTION == pytest.approx(1 / 3)
    g = torch.Generator().manual_seed(1)
    train = torch.randn(40, 2, generator=g, dtype=torch.float64)
    radius = same_point_radius(train)
    assert radius == pytest.approx(_brute_spacing(train) / 3, rel=1e-12)
    assert default_tolerance(train) == pytest.approx(radius, rel=1e-15)
    assert median_nn_distance(train) == pytest.approx(3 * radius, rel=1e-15)
    gen = torch.randn(30, 2, generator=g, dtype=torch.float64)
    res = classify_samples(gen, train)
    assert res.delta_m == pytest.approx(radius, rel=1e-15) == res.delta_s
    # the census labels with the same radius
    model = EmpiricalDiffusion(train)
    cps = CriticalPoints.from_points(model, train[:3], 0.05)
    assert cps.info["label_tol"] == pytest.approx(radius, rel=1e-15)


def test_spacing_rule_edge_cases_and_bad_input():
    one = torch.zeros(1, 2, dtype=torch.float64)
    dup = torch.zeros(4, 2, dtype=torch.float64)
    assert median_nn_distance(one) == 1.0  # no spacing: the unit length
    assert median_nn_distance(dup) == 1.0  # all duplicates: spacing 0, the unit length
    assert median_nn_spacing(dup) == 0.0
    assert default_tolerance(None) == SAME_POINT_FRACTION
    with pytest.raises(ValueError, match="points"):
        median_nn_spacing(one)
    with pytest.raises(ValueError, match="fraction"):
        same_point_radius(dup, -0.1)
    with pytest.raises(TypeError, match="points"):
        median_nn_spacing([[0.0, 1.0], [1.0, 0.0]])  # type: ignore[arg-type]


# --------------------------------------------------------------------- streamed softmax
def test_dense_exponential_energy_and_score_are_the_materialized_softmax():
    g = torch.Generator().manual_seed(2)
    pats = torch.sign(torch.randn(64, 800, generator=g, dtype=torch.float64))
    model = DenseAM(pats, interaction="exponential")
    x = torch.cat([pats[:3], torch.sign(torch.randn(5, 800, generator=g, dtype=torch.float64))])
    m = x @ pats.T  # overlaps up to N = 800: exp(800) overflows float64 without the shift
    lse = m.amax(1) + torch.log(torch.exp(m - m.amax(1, keepdim=True)).sum(1))
    w = torch.exp(m - lse[:, None])
    torch.testing.assert_close(model.energy(x), -lse, rtol=1e-14, atol=0)
    torch.testing.assert_close(model.score(x), w @ pats, rtol=1e-12, atol=1e-12)
    ints = x[:2].to(torch.int64)  # integer ±1 states are accepted as before
    torch.testing.assert_close(model.energy(ints), -lse[:2], rtol=1e-14, atol=0)


def test_posterior_of_one_index_is_the_streamed_softmax_entry():
    g = torch.Generator().manual_seed(4)
    data = torch.randn(300, 3, generator=g, dtype=torch.float64)
    model = EmpiricalDiffusion(data, chunk_size=64)
    k = torch.randint(0, 300, (50,), generator=g)
    sigma = 0.4
    x = data[k] + sigma * torch.randn(50, 3, generator=g, dtype=torch.float64)
    # the materialized softmax of −‖x − y‖²/2σ², written here
    logits = -(torch.cdist(x, data) ** 2) / (2 * sigma**2)
    truth = torch.softmax(logits, dim=1)[torch.arange(50), k]
    torch.testing.assert_close(model.posterior(x, sigma, index=k), truth, rtol=1e-10, atol=1e-14)
    full = model.posterior(x, sigma)
    torch.testing.assert_close(full[torch.arange(50), k], truth, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="index"):
        model.posterior(x, sigma, index=k[:3])
    with pytest.raises(ValueError, match="index"):
        model.posterior(x, sigma, index=k + 300)
    with pytest.raises(TypeError, match="index"):
        model.posterior(x, sigma, index=k.double())
