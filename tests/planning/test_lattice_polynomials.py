import numpy as np
import pytest

from planning.polynomials import evaluate, quartic_coeffs, quintic_coeffs


def test_quintic_boundary_conditions():
    T = np.array([2.0, 3.5, 5.0])
    x1, v1, a1 = np.array([3.5, -3.5, 0.2]), np.array([0.0, 0.5, -0.3]), np.array([0.0, 0.1, 0.0])
    c = quintic_coeffs(0.4, -0.2, 0.3, x1, v1, a1, T)
    x, v, a, _ = evaluate(c, np.full(3, 10.0), np.array([0.0]))
    assert np.allclose(x[:, 0], 0.4) and np.allclose(v[:, 0], -0.2) and np.allclose(a[:, 0], 0.3)
    for m in range(3):
        xe, ve, ae, _ = evaluate(c[m:m + 1], np.array([10.0]), np.array([T[m]]))
        assert xe[0, 0] == pytest.approx(x1[m]) and ve[0, 0] == pytest.approx(v1[m], abs=1e-9)
        assert ae[0, 0] == pytest.approx(a1[m], abs=1e-9)


def test_quartic_boundary_conditions_and_extension():
    T = np.array([1.0, 4.0])
    c = quartic_coeffs(10.0, 20.0, -1.0, np.array([15.0, 25.0]), np.zeros(2), T)
    t = np.linspace(0.0, 6.0, 61)
    x, v, a, j = evaluate(c, T, t)
    assert np.allclose(x[:, 0], 10.0) and np.allclose(v[:, 0], 20.0) and np.allclose(a[:, 0], -1.0)
    k1, k4 = 10, 40
    assert v[0, k1] == pytest.approx(15.0) and a[0, k1] == pytest.approx(0.0, abs=1e-9)
    assert v[1, k4] == pytest.approx(25.0) and a[1, k4] == pytest.approx(0.0, abs=1e-9)
    # Beyond T: constant velocity, position keeps integrating it.
    assert np.allclose(v[0, k1:], 15.0) and np.allclose(np.diff(x[0, k1:]), 1.5)
    assert np.all(j[1, k4 + 1:] == 0.0)
    # Numerical derivative agrees with the analytic velocity.
    assert np.allclose(np.gradient(x[1, :k4], t[:k4])[1:-1], v[1, 1:k4 - 1], atol=0.05)


def test_grid_evaluation_matches_rows():
    from planning.polynomials import evaluate_grid
    horizons = np.array([1.5, 3.0, 5.0])
    t = np.arange(51) * 0.1
    v1 = np.array([[10.0, 12.0, 14.0], [0.0, 5.0, 30.0]])
    c = quartic_coeffs(3.0, 20.0, 0.5, v1.ravel(), np.zeros(6), np.tile(horizons, 2)).reshape(2, 3, 6)
    grid = evaluate_grid(c, horizons, t)
    rows = evaluate(c.reshape(6, 6), np.tile(horizons, 2), t)
    for g, r in zip(grid, rows):
        assert np.allclose(g.reshape(6, -1), r)
