"""Pure-pursuit lateral control about the rear axle.

Pure pursuit rather than Stanley: the vehicle frame origin is the rear axle, which is exactly the
point pure pursuit's geometry is derived for, so no front-axle projection is needed; on a constant
curvature path the pursuit arc coincides with the path (zero steady-state error on the R ~250 m
curve); and a speed-scaled lookahead gives well-damped behaviour at highway speed with a lagging,
rate-limited steering actuator, where Stanley's heading term becomes twitchy on noisy yaw.

A plan is tracked for ten control steps, so what depends only on its path (segment vectors and
lengths, cumulative arc length) is derived once into a ``TrackPath`` that the controller keeps in
its state; each step then costs one vectorised nearest-segment search and a few scalar operations.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class TrackPath:
    """The per-plan geometry of a polyline path of K >= 1 vertices."""

    xy_m: np.ndarray  # (K, 2) vertices
    seg_m: np.ndarray  # (K - 1, 2) segment vectors
    seg_len2_m2: np.ndarray  # (K - 1,) squared lengths, floored at 1e-12 (the projection divides by them)
    seg_len_m: list[float]  # segment lengths, plain floats: read one at a time
    cum_m: list[float]  # (K,) arc length at each vertex
    yaw_end_rad: float  # heading the path is extended along beyond its end


def track_path(xy_m: np.ndarray, yaw_end_rad: float) -> TrackPath:
    seg = xy_m[1:] - xy_m[:-1]
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    seg_len = np.sqrt(seg_len2)
    cum = np.empty(xy_m.shape[0])
    cum[0] = 0.0
    np.cumsum(seg_len, out=cum[1:])
    return TrackPath(xy_m, seg, np.maximum(seg_len2, 1e-12), seg_len.tolist(), cum.tolist(), float(yaw_end_rad))


def nearest_arc_length(path: TrackPath, x_m: float, y_m: float) -> tuple[float, float, float]:
    """Arc length of the point of the path nearest (x_m, y_m), and that point's x and y."""
    xy = path.xy_m
    if path.seg_m.shape[0] == 0:
        return 0.0, float(xy[0, 0]), float(xy[0, 1])
    seg = path.seg_m
    rel = np.array((x_m, y_m)) - xy[:-1]
    u = np.einsum("ij,ij->i", rel, seg) / path.seg_len2_m2
    np.minimum(np.maximum(u, 0.0, out=u), 1.0, out=u)  # np.clip's Python wrapper costs more than the clip
    miss = rel - u[:, None] * seg
    i = int(np.einsum("ij,ij->i", miss, miss).argmin())  # the method: np.argmin's wrapper costs more
    ui = float(u[i])
    sx, sy = seg[i].tolist()
    x0, y0 = xy[i].tolist()
    return path.cum_m[i] + ui * path.seg_len_m[i], x0 + ui * sx, y0 + ui * sy


def point_at_arc_length(path: TrackPath, s_m: float) -> tuple[float, float]:
    """Point at arc length ``s_m``; beyond the end the path is extended along its final heading,
    so a short (stopping) plan still yields a lookahead target straight ahead."""
    cum, xy = path.cum_m, path.xy_m
    if s_m >= cum[-1]:
        extra = s_m - cum[-1]
        x1, y1 = xy[-1].tolist()
        return x1 + extra * math.cos(path.yaw_end_rad), y1 + extra * math.sin(path.yaw_end_rad)
    # The segment holding s_m (the last of equal arc lengths, as np.interp), interpolated once for x and y.
    j = min(max(bisect_right(cum, s_m) - 1, 0), len(cum) - 2)
    length = cum[j + 1] - cum[j]
    w = (s_m - cum[j]) / length if length > 0.0 else 0.0
    (xa, ya), (xb, yb) = xy[j].tolist(), xy[j + 1].tolist()
    return xa + w * (xb - xa), ya + w * (yb - ya)


def pure_pursuit_steer(path: TrackPath, x_m: float, y_m: float, yaw_rad: float, lookahead_m: float,
                       wheelbase_m: float) -> tuple[float, float]:
    """Front-wheel angle [rad] steering the rear axle at (x, y, yaw) onto the path, and the lateral
    distance of the rear axle to the path [m, positive when the path is to the left]."""
    s_near, near_x, near_y = nearest_arc_length(path, x_m, y_m)
    tx, ty = point_at_arc_length(path, s_near + lookahead_m)
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    dx, dy = tx - x_m, ty - y_m
    x_local = c * dx + s * dy
    y_local = -s * dx + c * dy
    dist2 = max(x_local * x_local + y_local * y_local, 1e-6)
    curvature = 2.0 * y_local / dist2
    lateral_err = -s * (near_x - x_m) + c * (near_y - y_m)
    return math.atan(wheelbase_m * curvature), lateral_err
