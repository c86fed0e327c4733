"""The compiled measurement placement (frames.place_into, through to_map), the ego pose
extrapolation (frames.pose_at, through ego_pose_at) and the merge certificate
(track_merge._apart) against the numpy code they replaced, kept here as the specification: the
same bits for to_map and ego_pose_at, the same decision for _apart."""
import numpy as np
import pytest

from core.messages import EgoState
from fusion.frames import ego_pose_at, to_map
from fusion.track_merge import _apart, _inside, any_overlap, duplicates

_QUARTER_TURN_ROWS = np.array([1, 0, 3, 2])
_QUARTER_TURN_SIGNS = np.array([-1.0, 1.0, -1.0, 1.0])[:, None]


def _reference_to_map(pose, pose_cov, xy, v, vel_valid, yaw, pos_sigma_m, vel_sigma_mps):
    c, s = np.cos(pose[2]), np.sin(pose[2])
    m = xy.shape[0]
    zv = np.zeros((m, 4))
    zv[:, :2] = xy
    zv[:, 2:] = np.where(vel_valid[:, None], v, 0.0)
    z = (zv.reshape(-1, 2) @ np.array([[c, s], [-s, c]])).reshape(m, 4)
    g = z.T[_QUARTER_TURN_ROWS] * _QUARTER_TURN_SIGNS
    z[:, 0] += pose[0]
    z[:, 1] += pose[1]
    (pxx, pxy, _), (_, pyy, _), (_, _, pww) = pose_cov[:3, :3].tolist()
    c_xy = pose_cov[:2, 2:3]
    h = g * pww
    h[:2] += c_xy
    r = g[:, None] * h[None]
    r[:2] += c_xy[:, :, None] * g[None]
    pos_var, vel_var = pos_sigma_m**2, vel_sigma_mps**2
    r += np.array([[pxx + pos_var, pxy, 0.0, 0.0], [pxy, pyy + pos_var, 0.0, 0.0],
                   [0.0, 0.0, vel_var, 0.0], [0.0, 0.0, 0.0, vel_var]])[:, :, None]
    return z, r.transpose(2, 0, 1), yaw + pose[2]


def _bits(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_to_map_gives_the_numpy_placement_bits(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 80))
    xy = rng.normal(0, 40, (m, 2)).astype(np.float32).astype(np.float64)
    v = rng.normal(0, 5, (m, 2))
    vel_valid = rng.random(m) < [0.0, 0.5, 1.0][seed % 3]
    xy[rng.random(m) < 0.1] = 0.0  # zeros of the rotation and its quarter turn
    v[rng.random(m) < 0.1] = -0.0
    pose = np.array([rng.normal(0, 100), rng.normal(0, 100), rng.uniform(-4, 4)])
    a = rng.normal(size=(3, 3)) * [1e-3, 0.1, 1.0][seed % 3]
    pose_cov = a @ a.T
    if seed % 4 == 3:
        pose_cov[0, 2] = pose_cov[2, 0] = 0.0
    yaw = rng.uniform(-3, 3, m)
    got = to_map(pose, pose_cov, xy, v, vel_valid, yaw, 0.25, 0.5)
    want = _reference_to_map(pose, pose_cov, xy, v, vel_valid, yaw, 0.25, 0.5)
    for g, w in zip((got.z, got.r, got.yaw), want):
        assert g.shape == w.shape and _bits(g) == _bits(w)


@pytest.mark.parametrize("seed", range(6))
def test_to_map_rotates_special_values_as_numpy_matmul(seed):
    """The rotation reproduces BLAS's fused products on zeros of either sign, infinities, NaNs
    and tiny values too, at yaws whose sine or cosine is exactly 0, 1 or -1."""
    rng = np.random.default_rng(100 + seed)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-310, -3.5, 2.0])
    for _ in range(40):
        m = int(rng.integers(1, 30))
        xy = rng.normal(0, 40, (m, 2))
        v = rng.normal(0, 5, (m, 2))
        for a in (xy, v):
            hit = rng.random(a.shape) < 0.3
            a[hit] = rng.choice(special, int(hit.sum()))
        vel_valid = rng.random(m) < 0.6
        pose = np.array([rng.normal(0, 100), rng.normal(0, 100),
                         rng.choice([0.0, -0.0, np.pi, np.pi / 2, -np.pi / 2, rng.uniform(-4, 4)])])
        pose_cov = np.diag([0.1, 0.2, 1e-3])
        yaw = rng.uniform(-3, 3, m)
        got = to_map(pose, pose_cov, xy, v, vel_valid, yaw, 0.25, 0.5)
        with np.errstate(all="ignore"):
            want = _reference_to_map(pose, pose_cov, xy, v, vel_valid, yaw, 0.25, 0.5)
        assert _bits(got.z) == _bits(want[0])


def _reference_ego_pose_at(ego, t_ns):
    dt = (t_ns - ego.t_ns) * 1e-9
    x, y, yaw = ego.pose.tolist()
    v, w = float(ego.speed_mps), float(ego.yaw_rate_rps)
    if abs(w) < 1e-6:
        return np.array([x + v * dt * np.cos(yaw), y + v * dt * np.sin(yaw), yaw + w * dt])
    yaw_new = yaw + w * dt
    return np.array([x + v / w * (np.sin(yaw_new) - np.sin(yaw)),
                     y - v / w * (np.cos(yaw_new) - np.cos(yaw)), yaw_new])


def test_ego_pose_at_gives_the_numpy_bits():
    """Every number's bits; a NaN (a NaN speed, an infinite yaw rate) stays a NaN, its sign being
    whichever operand the processor's multiply propagates (numpy's scalar product and the
    kernel's take them in different orders), which a refused frame never shows."""
    rng = np.random.default_rng(7)
    for k in range(3000):
        w = float(rng.choice([0.0, -0.0, 1e-7, -9.9e-7, 1e-6, -1e-6, rng.normal(0, 0.3), np.nan, np.inf]))
        ego = EgoState(int(rng.integers(0, 10**12)), np.array([rng.normal(0, 500), rng.normal(0, 500),
                                                                 rng.uniform(-7, 7)]),
                       float(rng.choice([0.0, rng.uniform(-5, 40), np.nan])), 0.0, w, np.eye(5))
        t_ns = ego.t_ns + int(rng.integers(-10**9, 10**9))
        with np.errstate(all="ignore"):
            want = _reference_ego_pose_at(ego, t_ns)
        got = ego_pose_at(ego, t_ns)
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan) and _bits(got[~nan]) == _bits(want[~nan]), k


def _reference_apart(xy, reach_m):
    if not (0.0 < reach_m < np.inf and np.abs(xy).max() < 2.0**14 * reach_m):
        return False
    shifts = np.array([[0.0], [0.5]])
    cells = np.floor(xy.T[:, None, :] * (1.0 / (2.5 * reach_m)) + shifts)
    keys = cells[0][:, None, :] * 2.0**16 + cells[1][None, :, :]
    keys.sort(axis=-1)
    return bool((keys[..., 1:] != keys[..., :-1]).all())


def test_apart_decides_as_the_numpy_certificate():
    rng = np.random.default_rng(3)
    decided = set()
    for k in range(400):
        n = int(rng.integers(2, 120))
        xy = rng.uniform(-1, 1, (n, 2)) * [10.0, 100.0, 1000.0, 1e5][k % 4]
        if k % 7 == 0:
            xy[int(rng.integers(0, n))] = np.nan
        reach = float(rng.choice([0.0, 1.0, 4.8, np.inf, np.nan, 30.0]))
        want = _reference_apart(xy, reach)
        assert _apart(xy, reach) == want, k
        assert _apart(np.ascontiguousarray(xy.T).T, reach) == want, k
        decided.add(want)
    assert decided == {True, False}


def test_any_overlap_is_the_box_test_over_every_pair():
    """any_overlap against duplicates' _inside over all pairs (the same decision), and against
    duplicates itself: where no pair overlaps, duplicates drops nothing; where it drops, a pair
    overlaps."""
    rng = np.random.default_rng(11)
    seen = set()
    for k in range(600):
        n = int(rng.integers(2, 14))
        xy = rng.uniform(-1, 1, (n, 2)) * [5.0, 20.0, 60.0][k % 3]
        if k % 5 == 0:
            xy[1] = xy[0] + rng.normal(0, 1.0, 2)  # a near twin
        yaw = rng.uniform(-4, 4, n)
        size = np.stack([rng.uniform(0.5, 6, n), rng.uniform(0.5, 3, n), np.ones(n)], axis=1)
        if k % 11 == 0:
            xy[int(rng.integers(n))] = np.nan
        margin = float(rng.choice([0.0, 0.3, 1.0]))
        ii, jj = np.triu_indices(n, 1)
        half = 0.5 * size[:, :2] + margin
        off = xy[jj] - xy[ii]
        want = bool((_inside(off, yaw[ii], half[ii]) & _inside(off, yaw[jj], half[jj])).any())
        got = any_overlap(xy, yaw, size, margin)
        assert got == want, k
        dropped = duplicates(xy, yaw, size, np.ones(n, bool), np.ones(n, np.int32), np.arange(n), margin)[0]
        assert got or not dropped.any(), k
        seen.add(got)
    assert seen == {True, False}
