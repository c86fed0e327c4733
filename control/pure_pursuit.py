"""Pure-pursuit lateral control about the rear axle.

Pure pursuit rather than Stanley: the vehicle frame origin is the rear axle, which is exactly the
point pure pursuit's geometry is derived for, so no front-axle projection is needed; on a constant
curvature path the pursuit arc coincides with the path (zero steady-state error on the R ~250 m
curve); and a speed-scaled lookahead gives well-damped behaviour at highway speed with a lagging,
rate-limited steering actuator, where Stanley's heading term becomes twitchy on noisy yaw.

A plan is tracked for ten control steps, so what depends only on its path (segment vectors and
lengths, cumulative arc length) is derived once into a ``TrackPath`` that the controller keeps in
its state. Each step is then one compiled call (``_pursue``): the nearest-segment search over the
path, the lookahead point and the steering law. As numpy and Python scalars the step was ~40 small
numpy calls, whose per-call cost, not the arithmetic, made up most of a control step; the kernel
performs the same IEEE operations in the same order (tests/control/test_pursuit_kernel.py keeps the
numpy form as the bit-exact reference).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import types

from core.jit import kernel
from core.records import fast_frozen_init


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class TrackPath:
    """The per-plan geometry of a polyline path of K >= 1 vertices (all C-contiguous float64)."""

    xy_m: np.ndarray  # (K, 2) vertices
    seg_m: np.ndarray  # (K - 1, 2) segment vectors
    seg_len2_m2: np.ndarray  # (K - 1,) squared lengths, floored at 1e-12 (the projection divides by them)
    seg_len_m: np.ndarray  # (K - 1,) segment lengths (unfloored)
    cum_m: np.ndarray  # (K,) arc length at each vertex
    yaw_end_rad: float  # heading the path is extended along beyond its end


def track_path(xy_m: np.ndarray, yaw_end_rad: float) -> TrackPath:
    xy_m = np.ascontiguousarray(xy_m, dtype=np.float64)  # the kernel's layout; no copy for a plan's own array
    if xy_m.ndim != 2 or xy_m.shape[0] == 0 or xy_m.shape[1] != 2:
        raise ValueError(f"a path needs K >= 1 vertices as a (K, 2) array, not {xy_m.shape}")
    # Allocated here and filled by the kernel: four arrays returned from a compiled call cost more.
    k = xy_m.shape[0]
    seg, seg_len2, seg_len, cum = np.empty((k - 1, 2)), np.empty(k - 1), np.empty(k - 1), np.empty(k)
    _path_geometry(xy_m, seg, seg_len2, seg_len, cum)
    return TrackPath(xy_m, seg, seg_len2, seg_len, cum, float(yaw_end_rad))


@kernel(types.void(types.Array(types.float64, 2, "C", readonly=True), types.float64[:, ::1], types.float64[::1],
                   types.float64[::1], types.float64[::1]))
def _path_geometry(xy, seg, seg_len2, seg_len, cum):
    """Segment vectors, squared lengths floored at 1e-12, lengths and cumulative arc length of a
    path of K >= 1 vertices (into ``seg`` (K - 1, 2), ``seg_len2``, ``seg_len`` (K - 1) and ``cum``
    (K)): one compiled pass instead of six numpy calls (a plan of 51 vertices arrives ten times a
    second). The numpy form's operations in its order: the row difference, einsum's
    ``0.0 + a0 * a0 + a1 * a1``, sqrt, a cumulative sum from the first length, and numpy's maximum
    (NaN kept)."""
    k = xy.shape[0]
    cum[0] = 0.0
    for i in range(k - 1):
        sx, sy = xy[i + 1, 0] - xy[i, 0], xy[i + 1, 1] - xy[i, 1]
        seg[i, 0], seg[i, 1] = sx, sy
        len2 = 0.0 + sx * sx + sy * sy
        length = math.sqrt(len2)
        seg_len[i] = length
        cum[i + 1] = length if i == 0 else cum[i] + length
        seg_len2[i] = len2 if (len2 > 1e-12 or math.isnan(len2)) else 1e-12


def pure_pursuit_steer(path: TrackPath, x_m: float, y_m: float, yaw_rad: float, lookahead_m: float,
                       wheelbase_m: float) -> tuple[float, float]:
    """Front-wheel angle [rad] steering the rear axle at (x, y, yaw) onto the path, and the lateral
    distance of the rear axle to the path [m, positive when the path is to the left]."""
    return _pursue(path.xy_m, path.seg_m, path.seg_len2_m2, path.seg_len_m, path.cum_m, path.yaw_end_rad,
                   x_m, y_m, yaw_rad, lookahead_m, wheelbase_m)


# The vertices are read-only: a plan decoded from a log hands out read-only arrays, and
# track_path keeps a contiguous float64 array as it is.
_VERTICES = types.Array(types.float64, 2, "C", readonly=True)


@kernel(types.Tuple((types.float64, types.float64))(
    _VERTICES, types.float64[:, ::1], types.float64[::1], types.float64[::1], types.float64[::1],
    types.float64, types.float64, types.float64, types.float64, types.float64, types.float64))
def _pursue(xy, seg, seg_len2, seg_len, cum, yaw_end, x, y, yaw, lookahead, wheelbase):
    """``pure_pursuit_steer`` on the TrackPath's arrays: nearest point, lookahead point, steering.
    Each operation is the numpy / Python reference's, in its order: einsum sums a row from 0.0
    (0.0 + a0 * b0 + a1 * b1, which turns a lone -0.0 into +0.0), numpy's elementwise maximum and
    minimum give the second operand on ties (+0.0 from maximum(-0.0, 0.0)) and the NaN of either,
    argmin takes the first minimum (or first NaN),
    bisect_right's loop is spelled out, and Python's max(a, b) is ``b if b > a else a``."""
    # Nearest point of the path: project onto every segment, clamp, keep the closest projection.
    n_seg = seg.shape[0]
    if n_seg == 0:
        s_near, near_x, near_y = 0.0, xy[0, 0], xy[0, 1]
    else:
        best_i, best_d2, best_u = 0, 0.0, 0.0
        for i in range(n_seg):
            rel_x, rel_y = x - xy[i, 0], y - xy[i, 1]
            u = (0.0 + rel_x * seg[i, 0] + rel_y * seg[i, 1]) / seg_len2[i]
            u = u if (u > 0.0 or math.isnan(u)) else 0.0
            u = u if (u < 1.0 or math.isnan(u)) else 1.0
            miss_x, miss_y = rel_x - u * seg[i, 0], rel_y - u * seg[i, 1]
            d2 = miss_x * miss_x + miss_y * miss_y
            if i == 0 or (not math.isnan(best_d2) and (d2 < best_d2 or math.isnan(d2))):
                best_i, best_d2, best_u = i, d2, u
        i = best_i
        s_near = cum[i] + best_u * seg_len[i]
        near_x, near_y = xy[i, 0] + best_u * seg[i, 0], xy[i, 1] + best_u * seg[i, 1]

    # Lookahead point at arc length s; beyond the end the path is extended along its final heading,
    # so a short (stopping) plan still yields a target straight ahead.
    s = s_near + lookahead
    k = cum.shape[0]
    if s >= cum[k - 1]:
        extra = s - cum[k - 1]
        tx, ty = xy[k - 1, 0] + extra * math.cos(yaw_end), xy[k - 1, 1] + extra * math.sin(yaw_end)
    else:
        # The segment holding s (the last of equal arc lengths, as np.interp): bisect_right - 1.
        lo, hi = 0, k
        while lo < hi:
            mid = (lo + hi) // 2
            if s < cum[mid]:
                hi = mid
            else:
                lo = mid + 1
        j = min(max(lo - 1, 0), k - 2)
        length = cum[j + 1] - cum[j]
        w = (s - cum[j]) / length if length > 0.0 else 0.0
        tx, ty = xy[j, 0] + w * (xy[j + 1, 0] - xy[j, 0]), xy[j, 1] + w * (xy[j + 1, 1] - xy[j, 1])

    # The pursuit arc through the target, in the vehicle frame.
    c, sn = math.cos(yaw), math.sin(yaw)
    dx, dy = tx - x, ty - y
    x_local = c * dx + sn * dy
    y_local = -sn * dx + c * dy
    dist2 = x_local * x_local + y_local * y_local
    dist2 = 1e-6 if 1e-6 > dist2 else dist2
    curvature = 2.0 * y_local / dist2
    lateral_err = -sn * (near_x - x) + c * (near_y - y)
    return math.atan(wheelbase * curvature), lateral_err
