"""Road departure of the ego's footprint, for the run metrics (sim/metrics.py): a compiled kernel.

Per tick the four corners of the ego's box (the footprint the collisions use, box_corners_2d's
arithmetic) are projected onto the road's reference line and measured against the paved road:
past an edge (|d| beyond num_lanes * lane_width / 2) and past either end of the finite road (s
below 0 or beyond its length). A corner off an end and a side at once is hypot(past end, past
edge) off: its distance from the paved corner. A corner exactly on the edge is on the road.

Projection: Newton steps on Road.interpolate's exact arc geometry (Road.track_frenet's steps),
from the box centre's s, which the metrics' block projection already has; each corner is within a
few metres of it, so two steps settle a straight road and three a 10 m radius (to well under a
micrometre); see _MIN_STRETCH for corners deep inside a bend. Unlike track_frenet, s is not
clamped: past an end it goes on along the end's tangent. A foot point found so is a point of the
reference line |d| from the corner, so |d| <= half width proves the corner on the road. A corner
that looks off may have a nearer foot elsewhere (a car metres off an S-bend: its local foot was 3.7
m farther than the nearest), so the metrics project those few again from their globally nearest
sample (Road.nearest_sample) and keep the smaller distance. A corner's result depends on its own
inputs only (the stopping test is per corner), so the metrics do not depend on how ticks are
grouped into blocks.

Why compiled: the metrics run every physics tick. Four more points through Road.to_frenet's
nearest-sample search cost ~9 us a tick on a curved road, and the same Newton steps in numpy
(Road.interpolate three times on a block's corners) ~4 us; with one kernel call per block of
ticks the metrics cost ~0.7 us a tick more while on the road, and the nearest-sample
reprojection, for ticks off the road only, ~8 us each on a curved road.
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel

MAX_NEWTON_STEPS = 8  # a settled corner stops after 2-3; only the damped ones below use more
# The least stretch (1 - k d) a Newton step divides by. Newton's step, along / (1 - k d), grows
# without bound as a corner nears a bend's centre of curvature, where every point of the arc is
# about equally far: one such step threw a corner 10 km past the road's end (a car spinning off a
# 10 m radius). Up to 3/4 of the radius inside a bend the steps are Newton's; deeper they are
# damped, bounded by 4x the along-track offset, and the corner's distance is approximate (it is
# then that deep inside the bend, off any road narrower than 3/4 of its radius).
_MIN_STRETCH = 0.25
_SETTLED_M = 1e-9  # the along-track step below which a corner's s has settled

_ROWS = "Array(float64, 2, 'A', readonly=True)"
_COLUMN = "Array(float64, 1, 'A', readonly=True)"
_TABLES = f"{_COLUMN}, {_ROWS}, {_COLUMN}, {_COLUMN}, float64, float64, float64"


@kernel(f"float64(float64, float64, float64, {_TABLES})")
def point_off_road(x, y, s_guess_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m,
                   half_width_m):
    """Distance [m] of the point (x, y) outside the paved road, through its foot point nearest to
    arc length s_guess_m (0.0 on the road)."""
    last = s_table.shape[0] - 2
    s, d = s_guess_m, 0.0
    for _ in range(MAX_NEWTON_STEPS):
        s_on = min(max(s, 0.0), length_m)
        i = min(max(int(s_on * samples_per_m), 0), last)
        u, k, h0 = s_on - s_table[i], curvature_table[i], heading_table[i]
        chord = 2.0 * math.sin(0.5 * k * u) / k if abs(k) > 1e-12 else u
        mid, h = h0 + 0.5 * k * u, h0 + k * u
        dx = x - (xy_table[i, 0] + chord * math.cos(mid))
        dy = y - (xy_table[i, 1] + chord * math.sin(mid))
        cos_h, sin_h = math.cos(h), math.sin(h)
        along = dx * cos_h + dy * sin_h
        d = dy * cos_h - dx * sin_h
        # On an arc, the lateral offset shrinks the arc length covered by the along-track distance.
        s = s_on + along / max(1.0 - k * d, _MIN_STRETCH)
        if abs(along) < _SETTLED_M:
            break
    past_end_m = max(-s, 0.0) + max(s - length_m, 0.0)
    return math.hypot(past_end_m, max(abs(d) - half_width_m, 0.0))


@kernel(f"Tuple((float64[:, ::1], float64[:, :, ::1]))({_ROWS}, {_COLUMN}, {_TABLES})")
def footprint_off_road(ego, centre_s_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m,
                       half_width_m):
    """Each tick's footprint corners (K, 4, 2) and their distances outside the road (K, 4), through
    the foot points nearest to the box centre's s.

    ego: (K, >= 7) rows of (rear-axle x, y, yaw, centre x, centre y, length, width, ...) - the
    metrics' block; centre_s_m: (K,) the box centre's s.
    """
    n = ego.shape[0]
    off_m = np.empty((n, 4))
    corners = np.empty((n, 4, 2))
    for t in range(n):
        yaw, c_x, c_y = ego[t, 2], ego[t, 3], ego[t, 4]
        half_l, half_w = 0.5 * ego[t, 5], 0.5 * ego[t, 6]
        cos_y, sin_y = math.cos(yaw), math.sin(yaw)
        for j in range(4):  # counter-clockwise from front-left, box_corners_2d's arithmetic
            lx = half_l if j == 0 or j == 3 else -half_l
            ly = half_w if j < 2 else -half_w
            x = cos_y * lx - sin_y * ly + c_x
            y = sin_y * lx + cos_y * ly + c_y
            corners[t, j, 0], corners[t, j, 1] = x, y
            off_m[t, j] = point_off_road(x, y, centre_s_m[t], s_table, xy_table, heading_table, curvature_table,
                                         length_m, samples_per_m, half_width_m)
    return off_m, corners


@kernel(f"float64[::1]({_ROWS}, {_COLUMN}, {_TABLES})")
def points_off_road(xy, s_guess_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m,
                    half_width_m):
    """point_off_road of N points (N, 2) from their own guesses (N,)."""
    out = np.empty(xy.shape[0])
    for j in range(xy.shape[0]):
        out[j] = point_off_road(xy[j, 0], xy[j, 1], s_guess_m[j], s_table, xy_table, heading_table, curvature_table,
                                length_m, samples_per_m, half_width_m)
    return out
