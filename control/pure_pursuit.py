"""Pure-pursuit lateral control about the rear axle.

Pure pursuit rather than Stanley: the vehicle frame origin is the rear axle, which is exactly the
point pure pursuit's geometry is derived for, so no front-axle projection is needed; on a constant
curvature path the pursuit arc coincides with the path (zero steady-state error on the R ~250 m
curve); and a speed-scaled lookahead gives well-damped behaviour at highway speed with a lagging,
rate-limited steering actuator, where Stanley's heading term becomes twitchy on noisy yaw.
"""
from __future__ import annotations

import math

import numpy as np


def nearest_arc_length(xy_m: np.ndarray, point_m: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Arc length of the point of the polyline ``xy_m`` (K, 2) nearest ``point_m``, the cumulative
    arc length per vertex (K,) and that nearest point (2,)."""
    seg = xy_m[1:] - xy_m[:-1]
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    seg_len = np.sqrt(seg_len2)
    cum = np.empty(xy_m.shape[0])
    cum[0] = 0.0
    np.cumsum(seg_len, out=cum[1:])
    if seg.shape[0] == 0:
        return 0.0, cum, xy_m[0]
    rel = point_m - xy_m[:-1]
    u = np.einsum("ij,ij->i", rel, seg) / np.maximum(seg_len2, 1e-12)
    np.clip(u, 0.0, 1.0, out=u)
    miss = rel - u[:, None] * seg
    i = int(np.argmin(np.einsum("ij,ij->i", miss, miss)))
    ui = float(u[i])
    return float(cum[i]) + ui * float(seg_len[i]), cum, xy_m[i] + ui * seg[i]


def point_at_arc_length(xy_m: np.ndarray, yaw_end_rad: float, cum_m: np.ndarray,
                        s_m: float) -> np.ndarray:
    """Point at arc length ``s_m``; beyond the end the path is extended along its final heading,
    so a short (stopping) plan still yields a lookahead target straight ahead."""
    if s_m >= cum_m[-1]:
        extra = s_m - float(cum_m[-1])
        return xy_m[-1] + extra * np.array([math.cos(yaw_end_rad), math.sin(yaw_end_rad)])
    # The segment holding s_m (the last of equal arc lengths, as np.interp), interpolated once for x and y.
    j = min(max(int(np.searchsorted(cum_m, s_m, side="right")) - 1, 0), cum_m.shape[0] - 2)
    length = float(cum_m[j + 1] - cum_m[j])
    w = (s_m - float(cum_m[j])) / length if length > 0.0 else 0.0
    return xy_m[j] + w * (xy_m[j + 1] - xy_m[j])


def pure_pursuit_steer(xy_m: np.ndarray, yaw_end_rad: float, pose: np.ndarray, lookahead_m: float,
                       wheelbase_m: float) -> tuple[float, float]:
    """Front-wheel angle [rad] steering the rear axle at ``pose`` (x, y, yaw) onto the path, and the
    lateral distance of the rear axle to the path [m, positive when the path is to the left]."""
    px, py, yaw = float(pose[0]), float(pose[1]), float(pose[2])
    s_near, cum, near = nearest_arc_length(xy_m, pose[:2])
    target = point_at_arc_length(xy_m, yaw_end_rad, cum, s_near + lookahead_m)
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = float(target[0]) - px, float(target[1]) - py
    x_local = c * dx + s * dy
    y_local = -s * dx + c * dy
    dist2 = max(x_local * x_local + y_local * y_local, 1e-6)
    curvature = 2.0 * y_local / dist2
    lateral_err = -s * (float(near[0]) - px) + c * (float(near[1]) - py)
    return math.atan(wheelbase_m * curvature), lateral_err
