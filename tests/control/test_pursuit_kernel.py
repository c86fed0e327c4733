"""The compiled pure-pursuit step against the numpy / Python code it replaced, kept here as the
reference: the same operations in the same order, so the results must be equal to the bit
(core/jit.py), degenerate paths, ties, zeros and NaN included."""
from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np
import pytest

from control.pure_pursuit import TrackPath, pure_pursuit_steer, track_path


# --- reference: the per-step geometry as numpy and Python scalars (the code before the kernel) ---
def _ref_nearest_arc_length(path: TrackPath, x_m: float, y_m: float) -> tuple[float, float, float]:
    """Arc length of the point of the path nearest (x_m, y_m), and that point's x and y."""
    xy = path.xy_m
    if path.seg_m.shape[0] == 0:
        return 0.0, float(xy[0, 0]), float(xy[0, 1])
    seg = path.seg_m
    rel = np.array((x_m, y_m)) - xy[:-1]
    u = np.einsum("ij,ij->i", rel, seg) / path.seg_len2_m2
    np.minimum(np.maximum(u, 0.0, out=u), 1.0, out=u)
    miss = rel - u[:, None] * seg
    i = int(np.einsum("ij,ij->i", miss, miss).argmin())
    ui = float(u[i])
    sx, sy = seg[i].tolist()
    x0, y0 = xy[i].tolist()
    return path.cum_m.tolist()[i] + ui * path.seg_len_m.tolist()[i], x0 + ui * sx, y0 + ui * sy


def _ref_point_at_arc_length(path: TrackPath, s_m: float) -> tuple[float, float]:
    cum, xy = path.cum_m.tolist(), path.xy_m
    if s_m >= cum[-1]:
        extra = s_m - cum[-1]
        x1, y1 = xy[-1].tolist()
        return x1 + extra * math.cos(path.yaw_end_rad), y1 + extra * math.sin(path.yaw_end_rad)
    j = min(max(bisect_right(cum, s_m) - 1, 0), len(cum) - 2)
    length = cum[j + 1] - cum[j]
    w = (s_m - cum[j]) / length if length > 0.0 else 0.0
    (xa, ya), (xb, yb) = xy[j].tolist(), xy[j + 1].tolist()
    return xa + w * (xb - xa), ya + w * (yb - ya)


def _ref_pure_pursuit_steer(path: TrackPath, x_m: float, y_m: float, yaw_rad: float, lookahead_m: float,
                            wheelbase_m: float) -> tuple[float, float]:
    s_near, near_x, near_y = _ref_nearest_arc_length(path, x_m, y_m)
    tx, ty = _ref_point_at_arc_length(path, s_near + lookahead_m)
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    dx, dy = tx - x_m, ty - y_m
    x_local = c * dx + s * dy
    y_local = -s * dx + c * dy
    dist2 = max(x_local * x_local + y_local * y_local, 1e-6)
    curvature = 2.0 * y_local / dist2
    lateral_err = -s * (near_x - x_m) + c * (near_y - y_m)
    return math.atan(wheelbase_m * curvature), lateral_err


def _bits(values: tuple[float, ...]) -> tuple[bytes, ...]:
    """Bit patterns, -0.0 != 0.0; every NaN is one value (a NaN's sign bit depends on which
    instruction produced it, and the controller never steers from a non-finite pose anyway)."""
    return tuple(b"nan" if math.isnan(v) else np.float64(v).tobytes() for v in values)


def _paths(rng: np.random.Generator):
    """Plan-like paths (smooth, 1-60 vertices) and degenerate ones: repeated vertices, a single
    vertex, exact zeros, huge and tiny coordinates."""
    for _ in range(300):
        k = int(rng.integers(1, 61))
        heading = rng.uniform(-math.pi, math.pi) + np.cumsum(rng.normal(0.0, 0.05, k))
        step = rng.uniform(0.0, 3.0, k) * (rng.random(k) > 0.1)  # some zero-length segments
        xy = np.cumsum(np.stack([step * np.cos(heading), step * np.sin(heading)], 1), axis=0)
        xy += rng.uniform(-500.0, 500.0, 2) * (rng.random() > 0.2)
        yield xy, float(heading[-1])
    yield np.zeros((1, 2)), 0.0
    yield np.zeros((5, 2)), 1.0
    yield np.array([[0.0, 0.0], [-1.0, 0.0], [-2.0, -0.0], [-2.0, -3.0]]), -math.pi / 2
    yield np.array([[1e-300, 0.0], [2e-300, 1e-300], [1e300, 1e300]]), 0.3
    yield np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [20.0, 0.0]]), 0.0


def test_kernel_equals_reference_bits():
    rng = np.random.default_rng(7)
    checked = 0
    for xy, yaw_end in _paths(rng):
        path = track_path(xy, yaw_end)
        vertices = xy.tolist()
        for _ in range(20):
            if rng.random() < 0.2:  # exactly on a vertex (zero offsets, negative zeros)
                x, y = vertices[int(rng.integers(len(vertices)))]
            else:
                x, y = (xy[int(rng.integers(len(xy)))] + rng.normal(0.0, rng.choice([0.01, 1.0, 30.0]), 2)).tolist()
            yaw = float(rng.choice([0.0, -0.0, rng.uniform(-7.0, 7.0)]))
            lookahead = float(rng.choice([0.0, 5.0, rng.uniform(0.5, 60.0)]))
            args = (path, x, y, yaw, lookahead, 2.8)
            with np.errstate(invalid="ignore", over="ignore"):  # the 1e300 path: inf / inf as in the reference
                expected = _ref_pure_pursuit_steer(*args)
            assert _bits(pure_pursuit_steer(*args)) == _bits(expected), args
            checked += 1
    assert checked > 6000


@pytest.mark.parametrize("yaw", [2.0, 3.0, -2.0, 0.0])
@pytest.mark.parametrize("x, y", [(0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0)])
def test_signed_zero_projections_give_the_reference_bits(x, y, yaw):
    # From a negative-zero vertex along a third-quadrant segment the origin projects to a signed
    # zero, which einsum's sum from 0.0 and numpy's maximum (the second operand on a tie) both
    # turn into +0.0; the lateral error's sign shows it.
    for xy in (np.array([[-0.0, -0.0], [-1.0, -1.0]]), np.array([[-0.0, -0.0], [-1.0, -1.0], [-2.0, -0.5]]),
               np.array([[0.0, -0.0], [1.0, -1.0]])):
        args = (track_path(xy, 1.0), x, y, yaw, 0.0, 2.8)
        assert _bits(pure_pursuit_steer(*args)) == _bits(_ref_pure_pursuit_steer(*args)), args


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_pose_gives_the_reference_values(bad):
    """control_step refuses a non-finite pose before steering; should one get here, the values are
    the reference's. (One deliberate difference: for an infinite yaw Python's math.cos raises a
    domain error, the kernel returns NaN.)"""
    path = track_path(np.array([[0.0, 0.0], [5.0, 1.0], [10.0, 3.0]]), 0.2)
    cases = [(path, bad, 0.0, 0.0, 5.0, 2.8), (path, 1.0, bad, 0.0, 5.0, 2.8), (path, 1.0, 0.0, 0.0, bad, 2.8)]
    if math.isnan(bad):
        cases.append((path, 1.0, 0.0, bad, 5.0, 2.8))
    else:
        assert all(map(math.isnan, pure_pursuit_steer(path, 1.0, 0.0, bad, 5.0, 2.8)))
    for args in cases:
        assert _bits(pure_pursuit_steer(*args)) == _bits(_ref_pure_pursuit_steer(*args)), args


def test_a_read_only_plan_steers_as_a_writable_one():
    # A plan decoded from a log holds read-only arrays; track_path keeps a contiguous float64 array.
    xy = np.array([[0.0, 0.0], [5.0, 1.0], [10.0, 3.0]])
    frozen = xy.copy()
    frozen.flags.writeable = False
    args = (0.5, -0.2, 0.1, 5.0, 2.8)
    assert _bits(pure_pursuit_steer(track_path(frozen, 0.2), *args)) == _bits(pure_pursuit_steer(track_path(xy, 0.2), *args))
