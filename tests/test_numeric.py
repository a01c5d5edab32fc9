"""Numerical helpers: the level crossing of a sampled curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memscape.numeric import level_crossing


def test_crossing_interpolates_linearly_and_reports_nan_when_never_below():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert level_crossing(x, np.array([1.0, 0.8, 0.2, 0.0]), 0.5) == pytest.approx(1.5)
    assert math.isnan(level_crossing(x, np.array([1.0, 0.9, 0.8, 0.7]), 0.5))


def test_crossing_is_the_first_one_and_exact_for_a_line():
    x = np.linspace(0.5, 1.5, 11)
    assert level_crossing(x, 1.0 - x, 0.0) == pytest.approx(1.0)  # a line: exact
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert level_crossing(x, y, 0.5) == pytest.approx(0.55)  # the first of several
    assert math.isnan(level_crossing(x, np.full(11, -1.0), 0.0))  # starts below: no bracket
    assert level_crossing(list(x), list(1.0 - x), 0.0) == pytest.approx(1.0)  # sequences


def test_crossing_rejects_mismatched_or_unsorted_samples():
    with pytest.raises(ValueError, match="one length"):
        level_crossing([0.0, 1.0], [1.0, 0.5, 0.0], 0.5)
    with pytest.raises(ValueError, match="ascending"):
        level_crossing([1.0, 0.0], [1.0, 0.0], 0.5)
