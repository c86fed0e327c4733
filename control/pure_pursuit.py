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


def nearest_arc_length(xy_m: np.ndarray, point_m: np.ndarray) -> tuple[float, np.ndarray]:
    """Arc length of the point of the polyline ``xy_m`` (K, 2) nearest ``point_m``, and the
    cumulative arc length per vertex (K,)."""
    seg = np.diff(xy_m, axis=0)
    seg_len2 = np.einsum("ij,ij->i", seg, seg)
    seg_len = np.sqrt(seg_len2)
    cum = np.concatenate(([0.0], np.cumsum(seg_len)))
    if seg.shape[0] == 0:
        return 0.0, cum
    rel = point_m - xy_m[:-1]
    u = np.clip(np.einsum("ij,ij->i", rel, seg) / np.maximum(seg_len2, 1e-12), 0.0, 1.0)
    miss = rel - u[:, None] * seg
    i = int(np.argmin(np.einsum("ij,ij->i", miss, miss)))
    return float(cum[i] + u[i] * seg_len[i]), cum


def point_at_arc_length(xy_m: np.ndarray, yaw_end_rad: float, cum_m: np.ndarray,
                        s_m: float) -> np.ndarray:
    """Point at arc length ``s_m``; beyond the end the path is extended along its final heading,
    so a short (stopping) plan still yields a lookahead target straight ahead."""
    if s_m >= cum_m[-1]:
        extra = s_m - cum_m[-1]
        return xy_m[-1] + extra * np.array([math.cos(yaw_end_rad), math.sin(yaw_end_rad)])
    return np.array([np.interp(s_m, cum_m, xy_m[:, 0]), np.interp(s_m, cum_m, xy_m[:, 1])])


def pure_pursuit_steer(xy_m: np.ndarray, yaw_end_rad: float, pose: np.ndarray, lookahead_m: float,
                       wheelbase_m: float) -> tuple[float, float]:
    """Front-wheel angle [rad] steering the rear axle at ``pose`` (x, y, yaw) onto the path, and the
    lateral distance of the rear axle to the path [m, positive when the path is to the left]."""
    s_near, cum = nearest_arc_length(xy_m, pose[:2])
    target = point_at_arc_length(xy_m, yaw_end_rad, cum, s_near + lookahead_m)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    dx, dy = target[0] - pose[0], target[1] - pose[1]
    x_local = c * dx + s * dy
    y_local = -s * dx + c * dy
    dist2 = max(x_local * x_local + y_local * y_local, 1e-6)
    curvature = 2.0 * y_local / dist2
    near = point_at_arc_length(xy_m, yaw_end_rad, cum, s_near)
    lateral_err = -s * (near[0] - pose[0]) + c * (near[1] - pose[1])
    return math.atan(wheelbase_m * curvature), lateral_err
