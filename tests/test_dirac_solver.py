"""Tests of the robust 1-D maximisation (robustgan.experiments.dirac.solver) on closed forms."""
from __future__ import annotations

import numpy as np
import pytest

from robustgan.experiments.dirac.solver import maximize_concave


def softplus(x):
    return np.logaddexp(0.0, x)


def test_maximize_concave_edge_cases():
    th = np.array([-1.0, 0.0, 2.0])
    # concave quadratic with maximiser 0.3 * theta inside a box and clipped by it
    h = lambda t, p: -(p - 0.3 * t) ** 2  # noqa: E731
    psi, val = maximize_concave(h, th, psi_max=0.5)
    np.testing.assert_allclose(psi, [-0.3, 0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(val, [0.0, 0.0, -0.01], atol=1e-12)
    # unbounded (linear) and sup-at-infinity (saturating) without a box
    psi, val = maximize_concave(lambda t, p: p * t, np.array([1.0]))
    assert np.isposinf(val[0]) and np.isnan(psi[0])
    psi, val = maximize_concave(lambda t, p: -softplus(-p * t), np.array([1.0]))
    assert val[0] == pytest.approx(0.0, abs=1e-12) and np.isposinf(psi[0])
