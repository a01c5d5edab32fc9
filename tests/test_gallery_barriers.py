"""The ``barriers`` experiment against a brute-force barrier of two patches on a line.

For two points the minimum-energy path between the two minima is the segment joining
them (the energy is symmetric about the bisecting hyperplane and the line), so the
barrier is the segment's maximum minus a minimum's energy: found here with numpy and
scipy's bounded Brent on the exact energy ``−log Σ_k exp(−‖x − y_k‖²/2σ²)`` (+ a
constant that cancels), independently of the atlas, its paths, saddles and merge tree.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

import memscape as ms
from memscape.experiments import run_experiment
from tests._checks import assert_checks_measure


def brute_force_barrier(y: np.ndarray, sigma: float) -> float:
    a, b = y
    line = lambda t: (1 - t) * a + t * b  # noqa: E731
    energy = lambda t: -logsumexp(-((line(t) - y) ** 2).sum(1) / (2 * sigma**2))  # noqa: E731
    top = minimize_scalar(lambda t: -energy(t), bounds=(0.3, 0.7), method="bounded",
                          options={"xatol": 1e-12})  # fmt: skip
    low = minimize_scalar(energy, bounds=(-0.2, 0.45), method="bounded", options={"xatol": 1e-12})
    return -top.fun - low.fun


def test_two_patches_barrier_matches_brute_force(tmp_path):
    factors = (0.3, 0.4)
    folder = run_experiment("barriers", tmp_path / "b", k=2, sigma_factors=factors, images=9,
                            segment_points=101, progress=False)  # fmt: skip
    summary = folder.read_table("summary")
    y = ms.datasets.load("patches", size=8, num_patches=2, data_seed=0).x.double()
    y = y.reshape(2, -1).numpy()
    distance = float(np.linalg.norm(y[0] - y[1]))
    for f in factors:
        row = summary[np.isclose(summary["sigma_over_s"], f)].iloc[0]
        assert row["minima"] == 2 and row["memories"] == 2  # σ < D/2: two memories
        truth = brute_force_barrier(y, f * distance)
        assert row["median_barrier"] == row["max_barrier"]  # one finite barrier
        assert abs(row["max_barrier"] - truth) <= 1e-7 * (1 + truth), (f, row, truth)
    assert int(summary.iloc[-1]["minima"]) == 1  # above the data radius
    checks = folder.read_table("checks")
    assert checks["passed"].all(), checks
    assert_checks_measure(folder)
