"""Anchor lidar boxes to the faces the sensor actually sees.

A lidar sees only the faces of a car that turn towards it; the network regresses the centre from
that partial view, and where training saw few such views it is off by metres: a car alongside the
ego, whose near side is all the lidar sees, came out 1.3 m towards the ego, inside the ego's lane,
and its track then "cut in" (free_road seed 3, cut_in seed 2). The network's size and yaw are good;
its centre is the weak part. So each box keeps its size and yaw, and its centre moves, along each
box axis whose face looks at the sensor, until that face lies on the outermost object point on
that side. An axis whose faces the sensor sees edge-on (a car straight ahead, seen across its
width) keeps the network's estimate.

All boxes are refined at once: points are sorted by x once, each box takes the slice within its
reach (ragged ranges, gathered in one index array) and the per-box extremes are segment reductions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.config import rng


@dataclass(frozen=True, slots=True)
class BoxRefineConfig:
    enabled: bool = True
    # The lidar's position in the vehicle frame (the shipped rig's mount): which faces it sees.
    sensor_x_m: float = field(default=1.4, metadata=rng(-50.0, 50.0))
    sensor_y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    margin_m: float = field(default=1.0, metadata=rng(0.0, 5.0))  # search beyond the box for its points
    min_height_m: float = field(default=0.3, metadata=rng(-5.0, 5.0))  # below: ground returns
    min_points: int = field(default=8, metadata=rng(1, 100_000))  # fewer: too little to anchor to
    # A larger move means the points belong to something else (a neighbour, a wall): keep the box.
    max_shift_m: float = field(default=1.5, metadata=rng(0.0, 10.0))


def _ragged_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(lo[i], hi[i])`` for every i, and the i of each element."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(lo.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    return lo[owner] + (np.arange(owner.shape[0]) - starts[owner]), owner


def refine_boxes(boxes: np.ndarray, points: np.ndarray, cfg: BoxRefineConfig) -> tuple[np.ndarray, int]:
    """``boxes`` (N, 7) x, y, z, l, w, h, yaw and finite ``points`` (P, 3), both in the vehicle frame
    -> (refined boxes (N, 7) of the same dtype, number of boxes moved)."""
    n = boxes.shape[0]
    if not cfg.enabled or n == 0:
        return boxes, 0
    obj = points[points[:, 2] > cfg.min_height_m]
    if obj.shape[0] == 0:
        return boxes, 0
    order = np.argsort(obj[:, 0], kind="stable")
    xs, ys = obj[order, 0].astype(np.float64), obj[order, 1].astype(np.float64)
    b = boxes.astype(np.float64)
    cx, cy, half_l, half_w, yaw = b[:, 0], b[:, 1], 0.5 * b[:, 3], 0.5 * b[:, 4], b[:, 6]
    reach = np.hypot(half_l, half_w) + cfg.margin_m
    idx, owner = _ragged_ranges(np.searchsorted(xs, cx - reach), np.searchsorted(xs, cx + reach, side="right"))
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = xs[idx] - cx[owner], ys[idx] - cy[owner]
    u = c[owner] * dx + s[owner] * dy  # along the box's length
    v = c[owner] * dy - s[owner] * dx  # along its width
    inside = (np.abs(u) <= half_l[owner] + cfg.margin_m) & (np.abs(v) <= half_w[owner] + cfg.margin_m)
    u, v, owner = u[inside], v[inside], owner[inside]
    count = np.bincount(owner, minlength=n)
    # Extremes per box; owner is non-decreasing, so each box's points are one contiguous segment.
    big = np.inf
    u_min, u_max, v_min, v_max = (np.full(n, big), np.full(n, -big), np.full(n, big), np.full(n, -big))
    has = count > 0
    if has.any():
        starts = (np.cumsum(count) - count)[has]
        u_min[has], u_max[has] = np.minimum.reduceat(u, starts), np.maximum.reduceat(u, starts)
        v_min[has], v_max[has] = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    # The sensor in each box's frame decides which face of each axis it sees.
    sx, sy = cfg.sensor_x_m - cx, cfg.sensor_y_m - cy
    su, sv = c * sx + s * sy, c * sy - s * sx
    du = np.where(su > half_l, u_max - half_l, np.where(su < -half_l, u_min + half_l, 0.0))
    dv = np.where(sv > half_w, v_max - half_w, np.where(sv < -half_w, v_min + half_w, 0.0))
    move = (count >= cfg.min_points) & (np.hypot(du, dv) <= cfg.max_shift_m)
    du, dv = np.where(move, du, 0.0), np.where(move, dv, 0.0)
    out = boxes.copy()
    out[:, 0] = cx + c * du - s * dv
    out[:, 1] = cy + s * du + c * dv
    return out, int(np.count_nonzero(move & ((du != 0.0) | (dv != 0.0))))
