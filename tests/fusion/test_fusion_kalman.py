import numpy as np
import pytest

from fusion import kalman, kalman_kernels
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


@pytest.mark.parametrize("dim_z", [1, 2, 4])
def test_update_leading_equals_the_joseph_form_update(dim_z):
    # update_leading (a row-wise Cholesky with the solves folded in, no H matmuls) is the
    # tracker's hot path; the Joseph form with an explicit H is the reference it must reproduce.
    rng = np.random.default_rng(11)
    n = 64
    x, p = rng.normal(size=(n, 4)) * 10, _random_spd(rng, n, 4)
    z, r = rng.normal(size=(n, dim_z)) * 10, _random_spd(rng, n, dim_z)
    x_ref, p_ref, _, _ = kalman.update(x, p, z, np.eye(4)[:dim_z], r)
    x_new, p_new = kalman.update_leading(x, p, z, r)
    np.testing.assert_allclose(x_new, x_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(p_new, p_ref, rtol=0, atol=1e-9)
    empty = kalman.update_leading(x[:0], p[:0], z[:0], r[:0])
    assert empty[0].shape == (0, 4) and empty[1].shape == (0, 4, 4)


def test_block_inverse_of_spd_4x4_matches_lapack():
    rng = np.random.default_rng(12)
    s = _random_spd(rng, 200, 4)
    # Strongly correlated blocks (position with velocity), as a tracker's covariances are.
    s[:100] += 50.0 * np.einsum("ni,nj->nij", *(2 * [rng.normal(size=(100, 4))]))
    inv = kalman._inv_spd4(s)
    ref = np.linalg.inv(s)
    np.testing.assert_allclose(inv, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(inv, np.swapaxes(inv, 1, 2))  # symmetric by construction


def test_cv_predict_equals_the_transition_form():
    rng = np.random.default_rng(13)
    x, p = rng.normal(size=(30, 4)), _random_spd(rng, 30, 4)
    dt, q = 0.07, 1.3
    x_ref, p_ref = kalman.predict(x, p, kalman.cv_transition(dt), kalman.cv_process_noise(dt, q))
    x_new, p_new = kalman.cv_predict(x, p, dt, q)
    np.testing.assert_allclose(x_new, x_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p_new, p_ref, rtol=0, atol=1e-12)
    assert p_new.flags.c_contiguous and not np.shares_memory(p_new, p)


def test_pivot_test_agrees_with_cholesky_of_p_minus_the_floor():
    # repair_covariance's fast path replaces a batched Cholesky of P - MIN_EIGENVALUE I by a
    # fraction-free elimination (kalman_kernels.symmetrised_checked): both must call the same
    # matrices positive definite.
    rng = np.random.default_rng(14)
    base = _random_spd(rng, 300, 4) * rng.uniform(1e-6, 1e2, (300, 1, 1))
    w, v = np.linalg.eigh(base)
    # Smallest eigenvalue spread across the floor: well above, just above, just below, negative.
    w[:, 0] = kalman.MIN_EIGENVALUE * np.repeat([1e6, 1.5, 0.5, -1e3], 75)
    p = np.einsum("nij,nj,nkj->nik", v, w, v)
    p = 0.5 * (p + np.swapaxes(p, 1, 2))
    for i in range(p.shape[0]):
        try:
            np.linalg.cholesky(p[i] - kalman.MIN_EIGENVALUE * np.eye(4))
            want = True
        except np.linalg.LinAlgError:
            want = False
        got = kalman_kernels.symmetrised_checked(p[i:i + 1], kalman.MIN_EIGENVALUE)[2]
        if abs(w[i, 0] / kalman.MIN_EIGENVALUE - 1.0) > 0.4:  # clear of the floor: no rounding doubt
            assert got == want, i
    assert kalman_kernels.symmetrised_checked(p[:75], kalman.MIN_EIGENVALUE)[2]
    assert not kalman_kernels.symmetrised_checked(p[200:], kalman.MIN_EIGENVALUE)[2]


@pytest.mark.parametrize("n", [5, 6])
def test_repair_tests_the_whole_matrix_beyond_4x4(n):
    # The fast pivot test covered the leading 4x4 block only: an IMM (5x5) or ego EKF (6x6)
    # covariance indefinite in its last rows came back unrepaired, unless another matrix in the
    # batch happened to send the whole batch to the eigenvalue path.
    bad = np.diag([1.0] * (n - 1) + [-0.5])
    good = np.eye(n) * 2.0
    fixed, repaired, broken = kalman.repair_covariance(np.stack([good, bad]))
    assert repaired.tolist() == [False, True] and not broken.any()
    assert np.linalg.eigvalsh(fixed[1]).min() >= kalman.MIN_EIGENVALUE * 0.999
    np.testing.assert_array_equal(fixed[0], good)
    # A positive definite batch still takes the fast path: returned as symmetrised, unrepaired.
    spd = np.eye(n) + 0.1 * np.ones((n, n))
    fixed, repaired, _ = kalman.repair_covariance(np.stack([spd, good]))
    assert not repaired.any()
    np.testing.assert_array_equal(fixed[0], spd)
