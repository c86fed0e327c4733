"""The road's compiled kernels: Frenet conversions and sample lookups on core.road.Road's tables.

Road (core/road.py) builds the tables (samples, piece rows) and calls these; other kernels (the
world step, the planner's plan geometry and track placement) call them directly with a road's
tables. Each keeps the arithmetic of the numpy form it replaced, operation for operation, and
tests/core/test_road_kernels.py holds those forms as the references.
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel

_PIECE_TABLE = "float64[:, ::1]"


@kernel(f"int64(float64, float64, {_PIECE_TABLE}, {_PIECE_TABLE}, float64, float64[:, ::1])")
def nearest_sample_of(x, y, line_rows, arc_rows, samples_per_m, xy_table):
    """Road.nearest_sample's numpy form on a road with arcs, for one point, operation for operation
    (tests/core/test_road_kernels.py keeps it as the reference): per piece, lines first, then arcs
    (rows of Road._line_piece_rows / _arc_piece_rows), the foot point (a line's tangent projection
    s_mid + (x - mid_x) cos + (y - mid_y) sin, an arc's s_mid + atan2(rx by - ry bx, rx bx + ry by)
    / k), clamped to the piece by fmax then fmin (NaN -> the bound), rounded half to even to a
    sample index; the candidates are that index - 2 .. + 2, clamped to the samples, compared by
    squared distance; the first of equals wins, and a NaN distance wins at once (np.argmin's)."""
    last = xy_table.shape[0] - 1
    best_i, best = 0, 0.0
    first = True
    for kind in range(2):
        rows = line_rows if kind == 0 else arc_rows
        for p in range(rows.shape[0]):
            if kind == 0:
                foot = rows[p, 0] + (x - rows[p, 1]) * rows[p, 3] + (y - rows[p, 2]) * rows[p, 4]
                s0, s1 = rows[p, 5], rows[p, 6]
            else:
                bx, by = x - rows[p, 1], y - rows[p, 2]
                rad_x, rad_y = rows[p, 3], rows[p, 4]
                phi = math.atan2(rad_x * by - rad_y * bx, rad_x * bx + rad_y * by)
                foot = rows[p, 0] + phi * rows[p, 5]
                s0, s1 = rows[p, 6], rows[p, 7]
            foot = s0 if foot != foot else (foot if foot > s0 else s0)  # np.fmax(foot, s0), s0 finite
            foot = s1 if foot != foot else (foot if foot < s1 else s1)  # np.fmin(., s1)
            centre = np.int64(np.rint(foot * samples_per_m))
            for off in range(-2, 3):
                c = centre + off
                c = 0 if c < 0 else (last if c > last else c)
                dx, dy = xy_table[c, 0] - x, xy_table[c, 1] - y
                dist = dx * dx + dy * dy
                if dist != dist:
                    return c
                if first or dist < best:
                    best_i, best, first = c, dist, False
    return best_i


@kernel(f"void(Array(float64, 2, 'A', readonly=True), {_PIECE_TABLE}, {_PIECE_TABLE}, float64, float64[:, ::1],"
        " int64[::1])")
def nearest_samples(xy, line_rows, arc_rows, samples_per_m, xy_table, idx):
    """Road.nearest_sample of N points (N, 2) on a road with arcs into ``idx`` (N,)."""
    for j in range(xy.shape[0]):
        idx[j] = nearest_sample_of(xy[j, 0], xy[j, 1], line_rows, arc_rows, samples_per_m, xy_table)


@kernel(f"UniTuple(float64, 2)(float64, float64, {_PIECE_TABLE}, {_PIECE_TABLE}, float64, float64[::1],"
        " float64[:, ::1], float64[::1], float64[::1], float64[::1])")
def curved_point_frenet(x, y, line_rows, arc_rows, samples_per_m, s_table, xy_table, cos_table, sin_table,
                         curvature_table):
    """Road.to_frenet of one point (x, y) on a road with arcs, (s, d): the nearest sample
    (``nearest_sample_of``), then the numpy form's projection onto its tangent in its order:
    along = dx cos + dy sin, d = -dx sin + dy cos, along / np.maximum(1 - k d, 1e-3) (NaN kept),
    s = s_i + along."""
    i = nearest_sample_of(x, y, line_rows, arc_rows, samples_per_m, xy_table)
    dx, dy = x - xy_table[i, 0], y - xy_table[i, 1]
    cos_h, sin_h = cos_table[i], sin_table[i]
    along = dx * cos_h + dy * sin_h
    lateral = -dx * sin_h + dy * cos_h
    stretch = 1.0 - curvature_table[i] * lateral
    along = along / (stretch if (stretch > 1e-3 or stretch != stretch) else 1e-3)
    return s_table[i] + along, lateral


@kernel(f"void(Array(float64, 2, 'A', readonly=True), {_PIECE_TABLE}, {_PIECE_TABLE}, float64, float64[::1],"
        " float64[:, ::1], float64[::1], float64[::1], float64[::1], float64[:, ::1])")
def curved_to_frenet(xy, line_rows, arc_rows, samples_per_m, s_table, xy_table, cos_table, sin_table,
                      curvature_table, s_d):
    """Road.to_frenet of N points (N, 2) on a road with arcs into ``s_d`` (2, N), s then d
    (``curved_point_frenet`` per point)."""
    for j in range(xy.shape[0]):
        s_d[0, j], s_d[1, j] = curved_point_frenet(xy[j, 0], xy[j, 1], line_rows, arc_rows, samples_per_m, s_table,
                                                    xy_table, cos_table, sin_table, curvature_table)


# Any 1-D float64 array, read-only ones (np.broadcast_to, shared truth columns) included.
_POINTS = "Array(float64, 1, 'A', readonly=True)"


@kernel("Tuple((float64, int64))(float64, float64, float64, int64)")
def clipped_sample(s, length_m, samples_per_m, last):
    """One point's (s, sample index) as Road.interpolate's numpy form takes them on a curved road,
    for kernels that evaluate it point by point: s as np.clip to [0, length] (NaN kept, -0.0
    lifted to 0.0), the index truncated and clamped to [0, last] (the sample below the last;
    numpy casts NaN to the most negative integer, which the clamp lifts to 0)."""
    s = s if (s != s or s > 0.0) else 0.0  # np.clip: max(s, 0), then min(., length)
    s = s if (s != s or s < length_m) else length_m
    if s != s:
        return s, 0
    i = np.int64(s * samples_per_m)
    return s, (0 if i < 0 else (last if i > last else i))


@kernel(f"void({_POINTS}, {_POINTS}, float64[::1], float64[:, ::1], float64[::1], float64[::1], float64, float64,"
        " boolean, float64, float64, float64[:, ::1], float64[::1])")
def frenet_to_map_into(s_m, d_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m, straight,
                       cos_0, sin_0, xy, heading):
    """Road.to_cartesian of N points into ``xy`` (N, 2), map xy, and ``heading`` (N,), the reference
    heading (the world's step kernel fills its own buffer with it; ``frenet_to_map`` allocates).

    Operation for operation the numpy forms it replaced (tests/core/test_road_kernels.py keeps them
    as the bit-exact reference). A curved road: Road.interpolate (s clipped to the road, the exact
    arc from the sample below) plus d along the normal. A straight road (``straight``, one heading
    whose cosine and sine are cos_0, sin_0): the same with k == 0 folded in, so the chord is u and
    no sine or cosine is evaluated; s is clamped as np.minimum(np.maximum(s, 0), length), which
    differs from np.clip only in the sign of a zero.
    """
    n = s_m.shape[0]
    last = s_table.shape[0] - 2
    for j in range(n):
        s, d = s_m[j], d_m[j]
        if straight:
            s = s if (s > 0.0 or s != s) else 0.0  # np.maximum: a tie gives the second operand
            s = s if (s < length_m or s != s) else length_m
        else:
            s = 0.0 if s < 0.0 else (length_m if s > length_m else s)  # np.clip: NaN and ties stay
        if s != s:
            i = 0  # numpy casts NaN to the most negative integer, which the clamp lifts to 0
        else:
            i = np.int64(s * samples_per_m)
            i = 0 if i < 0 else (last if i > last else i)
        u = s - s_table[i]
        if straight:
            heading[j] = heading_table[i] + 0.0 * u  # h0 + k u with k == 0, NaN-propagating like it
            xy[j, 0] = xy_table[i, 0] + u * cos_0 + d * -sin_0
            xy[j, 1] = xy_table[i, 1] + u * sin_0 + d * cos_0
        else:
            k, h0 = curvature_table[i], heading_table[i]
            h = h0 + k * u
            mid = h0 + 0.5 * k * u
            chord = 2.0 * math.sin(0.5 * k * u) / k if abs(k) > 1e-12 else u
            heading[j] = h
            xy[j, 0] = xy_table[i, 0] + chord * math.cos(mid) + d * -math.sin(h)
            xy[j, 1] = xy_table[i, 1] + chord * math.sin(mid) + d * math.cos(h)


@kernel(f"Tuple((float64[:, ::1], float64[::1]))({_POINTS}, {_POINTS}, float64[::1], float64[:, ::1], float64[::1],"
        " float64[::1], float64, float64, boolean, float64, float64)")
def frenet_to_map(s_m, d_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m, straight,
                   cos_0, sin_0):
    """Road.to_cartesian of N points: ``frenet_to_map_into`` new arrays, (xy (N, 2), heading (N,))."""
    n = s_m.shape[0]
    xy, heading = np.empty((n, 2)), np.empty(n)
    frenet_to_map_into(s_m, d_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m, straight,
                       cos_0, sin_0, xy, heading)
    return xy, heading


@kernel("Tuple((float64, float64))(float64, float64, float64, float64[::1], float64[:, ::1], float64[::1],"
        " float64[::1], float64, float64)")
def newton_frenet(x_m, y_m, s_guess_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m):
    """Road.track_frenet: the operations of the scalar Python loop it replaced (kept in
    tests/core/test_road_kernels.py as the bit-exact reference), Python's min/max included
    (``max(a, b)`` is ``b if b > a else a``)."""
    s, d = s_guess_m, 0.0
    last = s_table.shape[0] - 2
    for _ in range(3):
        if s != s:
            raise ValueError("cannot convert float NaN to integer")
        if math.isinf(s):
            raise OverflowError("cannot convert float infinity to integer")
        i = np.int64(s * samples_per_m)  # int(): truncation toward zero
        i = 0 if 0 > i else i
        i = last if last < i else i
        u, k, h0 = s - s_table[i], curvature_table[i], heading_table[i]
        chord = 2.0 * math.sin(0.5 * k * u) / k if abs(k * u) > 1e-12 else u
        mid, h = h0 + 0.5 * k * u, h0 + k * u
        dx = x_m - xy_table[i, 0] - chord * math.cos(mid)
        dy = y_m - xy_table[i, 1] - chord * math.sin(mid)
        cos_h, sin_h = math.cos(h), math.sin(h)
        along = dx * cos_h + dy * sin_h
        d = -dx * sin_h + dy * cos_h
        stretch = 1.0 - k * d
        s += along / (1e-3 if 1e-3 > stretch else stretch)
        if abs(along) < 1e-7:
            break
    s = 0.0 if 0.0 > s else s
    return (length_m if length_m < s else s), d


@kernel("UniTuple(float64, 2)(float64, float64, float64, float64, float64, float64[::1], float64[:, ::1], float64,"
        " float64)")
def line_point_frenet(x, y, to_index_x, to_index_y, index0, s_table, xy_table, cos_h, sin_h):
    """(s, d) of one point on a straight road, the arithmetic of line_to_frenet (Road.line_frenet_args
    gives the road's arguments after x and y), for kernels that project points of their own."""
    last = float(s_table.shape[0] - 1)
    idx_f = x * to_index_x + y * to_index_y + index0
    idx_f = idx_f if idx_f >= 0.0 else 0.0  # np.fmax(idx_f, 0): NaN -> 0
    idx_f = idx_f if idx_f <= last else last
    i = np.int64(np.rint(idx_f))
    dx, dy = x - xy_table[i, 0], y - xy_table[i, 1]
    return s_table[i] + (dx * cos_h + dy * sin_h), -dx * sin_h + dy * cos_h


@kernel("UniTuple(float64[::1], 2)(Array(float64, 2, 'A', readonly=True), float64, float64, float64, float64[::1],"
        " float64[:, ::1], float64, float64)")
def line_to_frenet(xy, to_index_x, to_index_y, index0, s_table, xy_table, cos_h, sin_h):
    """Road.to_frenet of N points (N, 2) on a straight road, new arrays (s (N,), d (N,)): the
    nearest-sample and projection numpy forms operation for operation (tests/core/test_road_kernels.py
    checks them bit for bit): the foot point's sample index x a + y b + c, clamped by fmax/fmin (a NaN
    to the bound) and rounded half to even as np.rint, then the offset from that sample along and
    across the line."""
    n = xy.shape[0]
    s_out, d_out = np.empty(n), np.empty(n)
    for j in range(n):
        s_out[j], d_out[j] = line_point_frenet(xy[j, 0], xy[j, 1], to_index_x, to_index_y, index0, s_table, xy_table,
                                               cos_h, sin_h)
    return s_out, d_out

