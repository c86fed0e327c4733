"""The compiled polar EKF update and map placement (fusion/polar_kernels.py) against the numpy
forms they replaced.

Its matmuls and solve went through BLAS and LAPACK, whose summation order (and fused
multiply-adds) a kernel cannot reproduce: the two agree to round-off, held here to 1e-12 relative
to the size of each quantity, not to the bit.
"""
import numpy as np
import pytest

from core.geometry import wrap_angle
from fusion import kalman
from fusion.sensor_models import BEARING, PolarMeasurements, polar_predict, polar_to_map
from fusion.tracker_polar import polar_update

RTOL = 1e-12


def reference_polar_update(x, p, track_idx, z, r, pose, pose_cov, mount_xy, range_offset_m=None):
    """``tracker_polar.polar_update`` as numpy, before the kernel."""
    x, p = x.copy(), p.copy()
    if track_idx.size == 0:
        return x, p, np.zeros(0)
    xs, ps = x[track_idx], p[track_idx]
    h, jx, je = polar_predict(xs, pose, mount_xy, z.shape[1] == 3, range_offset_m)
    y = z - h
    y[:, BEARING] = wrap_angle(y[:, BEARING])
    r_eff = r + je @ pose_cov @ np.swapaxes(je, 1, 2)
    x_u, p_u, y, s = kalman.update_innovation(xs, ps, y, jx, r_eff)
    nis = np.einsum("ni,ni->n", y, np.linalg.solve(s, y[..., None])[..., 0])
    x[track_idx], p[track_idx] = x_u, p_u
    return x, p, nis


def reference_polar_to_map(meas, pose, pose_cov, range_offset_m=None):
    """``sensor_models.polar_to_map`` as numpy, before the kernel."""
    rng_m, bearing = meas.z[:, 0], meas.z[:, 1]
    if range_offset_m is not None:
        rng_m = rng_m + range_offset_m
    cb, sb = np.cos(bearing), np.sin(bearing)
    xy_v = meas.mount_xy_m + np.stack([rng_m * cb, rng_m * sb], axis=1)
    j = np.empty((rng_m.shape[0], 2, 2))  # d xy_vehicle / d (range, bearing)
    j[:, 0, 0], j[:, 0, 1], j[:, 1, 0], j[:, 1, 1] = cb, -rng_m * sb, sb, rng_m * cb
    cov_v = j @ meas.r[:, :2, :2] @ np.swapaxes(j, 1, 2)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    drot = np.array([[-s, -c], [c, -s]])
    xy_map = xy_v @ rot.T + pose[:2]
    g = xy_v @ drot.T  # d xy_map / d yaw
    cross = g[:, :, None] * pose_cov[None, None, :2, 2]
    cov = rot @ cov_v @ rot.T + pose_cov[:2, :2] + cross + np.swapaxes(cross, 1, 2) \
        + pose_cov[2, 2] * (g[:, :, None] * g[:, None, :])
    return xy_map, cov


def _spd(rng, n, dim, scale):
    a = rng.normal(size=(n, dim, dim))
    return scale * (a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(dim))


def _case(rng, n_trk, n_upd, m, with_offset, pose_yaw=0.4):
    """n_trk tracks within 60 m of an ego at ``pose_yaw``, n_upd of them matched to noisy polar
    measurements of themselves; the state as the tracker hands it over (N-major views of
    component-major arrays), the pose arrays read-only as a replayed message's are."""
    x = np.c_[rng.uniform(-60, 60, (n_trk, 2)), rng.normal(0, 5, (n_trk, 2))]
    p = _spd(rng, n_trk, 4, 0.5)
    xt, pt = np.ascontiguousarray(x.T), np.ascontiguousarray(p.transpose(1, 2, 0))
    pose = np.array([2.0, -1.0, pose_yaw])
    pose_cov = _spd(rng, 1, 3, 1e-3)[0]
    pose.flags.writeable = pose_cov.flags.writeable = False
    mount = np.array([3.7, 0.2])
    ti = rng.permutation(n_trk)[:n_upd].astype(np.int64)
    offset = rng.uniform(0.0, 2.0, n_upd) if with_offset else None
    h, _, _ = polar_predict(x[ti], pose, mount, m == 3, offset)
    z = h + rng.normal(0, 1, (n_upd, m)) * np.array([0.5, 0.02, 0.3])[:m]
    z[:, 1] = wrap_angle(z[:, 1])
    r = np.zeros((n_upd, m, m))
    for a, sig in enumerate([0.5, 0.02, 0.3][:m]):
        r[:, a, a] = sig**2
    return xt.T, pt.transpose(2, 0, 1), ti, z, r, pose, pose_cov, mount, offset


def _assert_close(got, want):
    """Each of x, P, NIS within RTOL of its own size (and NaN where the reference is NaN)."""
    worst = []
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        fin = np.isfinite(w)
        scale = max(np.abs(w[fin]).max(initial=0.0), 1.0)
        np.testing.assert_allclose(g[fin], w[fin], rtol=RTOL, atol=RTOL * scale)
        worst.append(np.abs(g[fin] - w[fin]).max(initial=0.0) / scale)
    return worst


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("with_offset", [False, True])
def test_polar_kernel_matches_numpy_reference_on_random_tracks(m, with_offset):
    rng = np.random.default_rng(7 + m + 10 * with_offset)
    for _ in range(200):
        n_trk = int(rng.integers(1, 12))
        case = _case(rng, n_trk, int(rng.integers(1, n_trk + 1)), m, with_offset,
                     pose_yaw=rng.uniform(-np.pi, np.pi))
        _assert_close(polar_update(*case), reference_polar_update(*case))


@pytest.mark.parametrize("m", [2, 3])
def test_polar_kernel_no_match_returns_copies(m):
    x, p, _, _, _, pose, pose_cov, mount, _ = _case(np.random.default_rng(1), 5, 1, m, False)
    none = np.zeros(0, np.int64)
    xn, pn, nis = polar_update(x, p, none, np.zeros((0, m)), np.zeros((0, m, m)), pose, pose_cov, mount)
    assert nis.shape == (0,)
    np.testing.assert_array_equal(xn, x)
    np.testing.assert_array_equal(pn, p)
    assert not np.shares_memory(xn, x) and not np.shares_memory(pn, p)


@pytest.mark.parametrize("m", [2, 3])
def test_polar_kernel_bearing_wrap_and_track_at_the_sensor(m):
    rng = np.random.default_rng(3)
    x, p, ti, z, r, pose, pose_cov, mount, offset = _case(rng, 6, 6, m, True, pose_yaw=np.pi - 1e-9)
    x = x.copy()
    # Tracks straight behind the sensor, a hair to either side: predicted bearings and
    # measurements on either side of +-pi, so both the prediction's and the innovation's wrap act.
    mount_map = pose[:2] + np.array([[np.cos(pose[2]), -np.sin(pose[2])],
                                     [np.sin(pose[2]), np.cos(pose[2])]]) @ mount
    behind = pose[2] + np.pi
    for k, t in enumerate(ti[:4]):
        x[t, :2] = mount_map + 20.0 * np.array([np.cos(behind), np.sin(behind)])
        x[t, 1] += (-1.0) ** k * 1e-7
    # Predicted bearings alternate -pi, +pi; measurements on the other side for the first two.
    z[:4, 1] = np.array([1.0, -1.0, -1.0, 1.0]) * (np.pi - 1e-8)
    # A track on the sensor mount: the range's 1e-12 floor keeps it finite.
    x[ti[4], :2] = mount_map
    h = polar_predict(x[ti], pose, mount, m == 3, offset)[0]
    assert (np.abs(h[:4, 1]) > np.pi - 1e-6).all() and (np.sign(h[:2, 1]) != np.sign(z[:2, 1])).all()
    got = polar_update(x, p, ti, z, r, pose, pose_cov, mount, offset)
    _assert_close(got, reference_polar_update(x, p, ti, z, r, pose, pose_cov, mount, offset))
    assert all(np.isfinite(a).all() for a in got)


@pytest.mark.parametrize("m", [2, 3])
def test_polar_kernel_nan_measurement_propagates_as_the_reference(m):
    rng = np.random.default_rng(5)
    x, p, ti, z, r, pose, pose_cov, mount, offset = _case(rng, 6, 4, m, True)
    z[1, 0] = np.nan
    z[2, m - 1] = np.nan
    offset[3] = np.nan
    got = polar_update(x, p, ti, z, r, pose, pose_cov, mount, offset)
    want = reference_polar_update(x, p, ti, z, r, pose, pose_cov, mount, offset)
    _assert_close(got, want)
    assert np.isnan(got[0][ti[1:4]]).any(axis=1).all() and np.isfinite(got[1]).all()


@pytest.mark.parametrize("m", [2, 3])
def test_polar_to_map_kernel_matches_numpy_reference(m):
    rng = np.random.default_rng(13 + m)
    for n_rows in [0, 1, 2, 5, 12] * 20:
        z = np.c_[rng.uniform(0.5, 80.0, n_rows), rng.uniform(-np.pi, np.pi, n_rows),
                  rng.normal(size=n_rows)][:, :m]
        r = _spd(rng, n_rows, m, 0.01)
        r.flags.writeable = z.flags.writeable = False  # a replayed message's arrays
        meas = PolarMeasurements(z, r, np.ones(n_rows, bool), np.array([1.5, -0.3]))
        pose = np.array([rng.uniform(-100, 100), rng.uniform(-100, 100), rng.uniform(-np.pi, np.pi)])
        pose_cov = _spd(rng, 1, 3, 1e-3)[0]
        for offset in (None, rng.uniform(0.0, 2.0, n_rows)):
            _assert_close(polar_to_map(meas, pose, pose_cov, offset),
                          reference_polar_to_map(meas, pose, pose_cov, offset))
    z = np.array([[np.nan, 0.1], [10.0, np.nan]])[:, :2]
    meas = PolarMeasurements(z, np.broadcast_to(np.eye(2), (2, 2, 2)), np.ones(2, bool), np.zeros(2))
    _assert_close(polar_to_map(meas, pose, pose_cov), reference_polar_to_map(meas, pose, pose_cov))


def test_polar_kernel_reports_its_worst_difference():
    """Not a bound of its own: prints the largest difference met, relative to each quantity's
    size, over many camera and radar cases (run with -s to see it)."""
    rng = np.random.default_rng(11)
    worst = np.zeros(3)
    for _ in range(500):
        m = int(rng.integers(2, 4))
        n_trk = int(rng.integers(1, 12))
        case = _case(rng, n_trk, int(rng.integers(1, n_trk + 1)), m, bool(rng.integers(2)),
                     pose_yaw=rng.uniform(-np.pi, np.pi))
        worst = np.maximum(worst, _assert_close(polar_update(*case), reference_polar_update(*case)))
    print(f"polar kernel vs numpy, max |diff| / scale: x {worst[0]:.2e}, P {worst[1]:.2e}, NIS {worst[2]:.2e}")
