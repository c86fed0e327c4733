import numpy as np
import pytest

from fusion import kalman
from fusion_reference import filterpy_predict, filterpy_track, filterpy_update


def _random_spd(rng, n, dim):
    a = rng.normal(size=(n, dim, dim))
    return a @ np.swapaxes(a, -1, -2) + np.eye(dim) * 0.1


@pytest.mark.parametrize("dim_z", [2, 4])
def test_batched_predict_update_matches_filterpy(dim_z):
    rng = np.random.default_rng(3)
    n, q, dt = 50, 1.7, 0.137
    x, p = rng.normal(size=(n, 4)) * 10, _random_spd(rng, n, 4)
    z, r = rng.normal(size=(n, dim_z)) * 10, _random_spd(rng, n, dim_z)
    xb, pb = kalman.predict(x, p, kalman.cv_transition(dt), kalman.cv_process_noise(dt, q))
    xb, pb, _, _ = kalman.update(xb, pb, z, np.eye(4)[:dim_z], r)
    for i in range(n):
        kf = filterpy_track(x[i], p[i])
        filterpy_predict(kf, dt, q)
        filterpy_update(kf, z[i], r[i])
        np.testing.assert_allclose(xb[i], kf.x, rtol=0, atol=1e-9)
        np.testing.assert_allclose(pb[i], kf.P, rtol=0, atol=1e-9)


def test_repair_lifts_indefinite_and_flags_nonfinite():
    p = np.stack([np.eye(4), np.diag([1.0, 1.0, -1e-3, 1.0]), np.full((4, 4), np.nan)])
    fixed, repaired, broken = kalman.repair_covariance(p)
    assert repaired.tolist() == [False, True, False]
    assert broken.tolist() == [False, False, True]
    assert np.linalg.eigvalsh(fixed[1]).min() >= kalman.MIN_EIGENVALUE * 0.999
    np.testing.assert_array_equal(fixed[0], np.eye(4))
