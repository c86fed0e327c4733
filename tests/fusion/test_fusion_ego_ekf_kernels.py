"""The ego EKF's kernels (fusion/ego_ekf_kernels.py) against the numpy algebra they replaced.

The kernels do not reproduce numpy's bits (its products go through BLAS): they are held to it at
1e-12, relative to the magnitudes involved."""
import numpy as np
import pytest

from core.geometry import wrap_angle
from fusion.ego_ekf_kernels import N_STATE, joseph_update, motion_step


def numpy_motion_step(x, p, accel, dt, q_rate):
    """The former ``ego_ekf._motion`` and covariance step, in numpy."""
    px, py, yaw, v, w, scale = x
    mid = yaw + 0.5 * w * dt
    c, s = np.cos(mid), np.sin(mid)
    x_new = np.array([px + v * dt * c, py + v * dt * s, wrap_angle(yaw + w * dt), v + accel * dt, w, scale])
    f = np.eye(N_STATE)
    f[0, 2], f[0, 3], f[0, 4] = -v * dt * s, dt * c, -0.5 * v * dt * dt * s
    f[1, 2], f[1, 3], f[1, 4] = v * dt * c, dt * s, 0.5 * v * dt * dt * c
    f[2, 4] = dt
    return x_new, f @ p @ f.T + np.diag(q_rate * dt)


def numpy_joseph_update(x, p, y, h, r):
    """The former path through ``kalman.update_innovation``, for one state."""
    ph_t = p @ h.T
    s = h @ ph_t + r
    k = np.linalg.solve(s, ph_t.T).T
    i_kh = np.eye(x.shape[0]) - k @ h
    return x + k @ y, i_kh @ p @ i_kh.T + k @ r @ k.T


def _random_spd(rng, n, scale):
    a = rng.normal(0.0, 1.0, (n, n))
    return (a @ a.T + n * np.eye(n)) * scale


@pytest.mark.parametrize("seed", range(20))
def test_motion_step_equals_the_numpy_step(seed):
    rng = np.random.default_rng(seed)
    x = np.array([rng.uniform(-500, 500), rng.uniform(-500, 500), rng.uniform(-np.pi, np.pi),
                  rng.uniform(0, 40), rng.uniform(-0.5, 0.5), rng.uniform(-0.02, 0.02)])
    p = _random_spd(rng, N_STATE, 0.1)
    q_rate = rng.uniform(1e-6, 0.5, N_STATE)
    accel, dt = rng.uniform(-8, 3), rng.uniform(1e-3, 3.0)
    x_k, p_k = motion_step(x, p, accel, dt, q_rate)
    x_n, p_n = numpy_motion_step(x, p, accel, dt, q_rate)
    np.testing.assert_allclose(x_k, x_n, rtol=1e-12, atol=1e-12 * np.abs(x).max())
    np.testing.assert_allclose(p_k, p_n, rtol=0, atol=1e-12 * np.abs(p_n).max())


def test_motion_step_wraps_the_heading_as_wrap_angle_does():
    x = np.array([0.0, 0.0, np.pi - 1e-3, 10.0, 0.5, 0.0])
    x_k, _ = motion_step(x, np.eye(N_STATE), 0.0, 0.01, np.zeros(N_STATE))
    assert x_k[2] == float(wrap_angle(x[2] + 0.5 * 0.01)) and x_k[2] < 0.0


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("seed", range(20))
def test_joseph_update_equals_the_numpy_update(m, seed):
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(0.0, 10.0, N_STATE)
    p = _random_spd(rng, N_STATE, rng.uniform(1e-3, 10.0))
    h = rng.normal(0.0, 1.0, (m, N_STATE))
    r = _random_spd(rng, m, rng.uniform(1e-4, 1.0))
    y = rng.normal(0.0, 1.0, m)
    x_k, p_k = joseph_update(x, p, y, h, r)
    x_n, p_n = numpy_joseph_update(x, p, y, h, r)
    np.testing.assert_allclose(x_k, x_n, rtol=0, atol=1e-12 * np.abs(x_n).max())
    np.testing.assert_allclose(p_k, p_n, rtol=0, atol=1e-12 * np.abs(p_n).max())


def test_kernels_take_a_covariance_view_of_any_layout():
    # A repaired covariance is an N-major view of a component-major array: not C-contiguous.
    rng = np.random.default_rng(7)
    p = np.asfortranarray(_random_spd(rng, N_STATE, 1.0))
    x = rng.normal(0.0, 1.0, N_STATE)
    h = np.eye(N_STATE)[:2]
    np.testing.assert_array_equal(joseph_update(x, p, np.ones(2), h, np.eye(2))[1],
                                  joseph_update(x, np.ascontiguousarray(p), np.ones(2), h, np.eye(2))[1])
    np.testing.assert_array_equal(motion_step(x, p, 0.1, 0.02, np.ones(N_STATE))[1],
                                  motion_step(x, np.ascontiguousarray(p), 0.1, 0.02, np.ones(N_STATE))[1])


def test_joseph_update_refuses_other_measurement_sizes():
    with pytest.raises(ValueError, match="one or two"):
        joseph_update(np.zeros(N_STATE), np.eye(N_STATE), np.zeros(3), np.eye(N_STATE)[:3], np.eye(3))


def test_a_singular_innovation_covariance_gives_non_finite_values_not_an_exception():
    # The caller (ego_ekf._update) then finds the covariance broken through repair_covariance.
    x_k, p_k = joseph_update(np.zeros(N_STATE), np.zeros((N_STATE, N_STATE)), np.ones(1),
                             np.eye(N_STATE)[:1], np.zeros((1, 1)))
    assert not np.isfinite(x_k).all() and not np.isfinite(p_k).all()
