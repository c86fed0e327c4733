"""The world's physics step and its actors' truth, each as one compiled call (core/jit.py).

``world_step`` composes parts that are compiled and tested one by one elsewhere: the ego's Newton
Frenet tracking (core.road.newton_frenet), the ego's lane span (World._ego_span's rule), car
following, the scripts' overrides and integration (traffic_kernels.traffic_step's parts), and the
truth of the state it produces: the reference line's Frenet-to-map transform
(core.road.frenet_to_map_into) and the actors' motion columns (traffic_kernels.actor_motion's).
At tens of vehicles a kernel call's own cost (unboxing each argument, boxing each returned array:
about 0.1 us and 1 us on the tick's host) is most of a tick, so the world makes this one call
instead of four, and everything it returns is laid out in one float64 buffer (``BufferLayout``).
Every part performs the same operations in the same order as its standalone form, so the buffer
holds the standalone parts' bits (tests/sim/test_world_kernels.py).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from core.jit import kernel
from core.road import frenet_to_map_into, newton_frenet
from sim.traffic_kernels import (ROW_A, ROW_D, ROW_LC_T0, ROW_S, ROW_V, along_heading_into, follow_rows, integrate_into,
                                 script_override_rows)

# Per-vehicle rows of the step's buffer, each N long: traffic_kernels' ROW_* rows (s', v', a_eff,
# d', lane-change starts') and then active' as 1.0 / 0.0 (read only when someone left the road).
STEP_ROWS = 6
ROW_ACTIVE = 5
# Truth columns after them, for the M vehicles on the road: xy (M, 2), then yaw, speed along the
# heading, acceleration and the lateral rate d' (M each).
TRUTH_COLUMNS = 6


class TruthSlices(NamedTuple):
    """Where the truth columns of M vehicles lie in a buffer (``truth_slices``)."""

    xy: slice  # 2M values: (M, 2) row-major
    yaw: slice
    speed: slice
    accel: slice
    d_rate: slice


def truth_slices(start: int, m: int) -> TruthSlices:
    """The truth columns of ``m`` vehicles in a buffer from index ``start`` on (``world_step``'s:
    STEP_ROWS * N; ``actor_truth``'s: 0)."""
    return TruthSlices(slice(start, start + 2 * m), slice(start + 2 * m, start + 3 * m),
                       slice(start + 3 * m, start + 4 * m), slice(start + 4 * m, start + 5 * m),
                       slice(start + 5 * m, start + 6 * m))


def row_slices(n: int) -> tuple[slice, ...]:
    """The STEP_ROWS per-vehicle rows of ``world_step``'s buffer for a fleet of ``n``, by row index."""
    return tuple(slice(row * n, (row + 1) * n) for row in range(STEP_ROWS))


@kernel("Tuple((int64, int64))(float64, float64, float64, float64, int64)")
def ego_lane_span(ego_d_m, half_width_m, lane_width_m, half_num_lanes, top_lane):
    """Lowest and highest lane the ego's footprint touches: World._ego_span's operations (Python's
    math.floor, then min/max against 0 and the top lane), raising as math.floor does on NaN/inf."""
    base = ego_d_m / lane_width_m + half_num_lanes
    lo_edge, hi_edge = base - half_width_m / lane_width_m, base + half_width_m / lane_width_m
    if lo_edge != lo_edge or hi_edge != hi_edge:
        raise ValueError("cannot convert float NaN to integer")
    if math.isinf(lo_edge) or math.isinf(hi_edge):
        raise OverflowError("cannot convert float infinity to integer")
    lo, hi = math.floor(lo_edge), math.floor(hi_edge)
    lo = lo if lo > 0 else 0
    hi = hi if hi > 0 else 0
    return (lo if lo < top_lane else top_lane), (hi if hi < top_lane else top_lane)


# The per-run constants that actor_truth and actor_truth_into take last, in this order (the world
# builds them once): the fleet's lane-change durations [s] and the road's reference line.
_TRUTH_CONSTANTS = (" float64[:], float64[::1], float64[:, ::1], float64[::1], float64[::1], float64, float64, boolean,"
                    " float64, float64, float64, float64")


@kernel("boolean(float64[:], float64[:], float64[:], float64[:], float64[:], int64[:], float64[:], int64[::1], float64,"
        " float64[::1]," + _TRUTH_CONSTANTS + ")")
def actor_truth_into(s_m, d_m, v_mps, a_mps2, lc_t0_s, lane, lc_from_d_m, rows, t_s, out, lane_change_s, s_table,
                     xy_table, heading_table, curvature_table, road_length_m, samples_per_m, straight, cos_0, sin_0,
                     lane_width_m, centre_offset_lanes):
    """The truth columns of the given rows (the vehicles on the road) at t_s into ``out`` (6 M, the
    TRUTH_COLUMNS layout); returns whether any vehicle (of all N) is changing lanes.

    World.actors_truth's former calls in one: Road.to_cartesian of the rows' (s, d)
    (frenet_to_map_into) and traffic_kernels.actor_motion; while a lane change runs the yaw is the
    heading only, and the caller adds numpy's arctan2(d', v) as before.
    """
    m = rows.shape[0]
    s_on, d_on = np.empty(m), np.empty(m)
    for k in range(m):
        s_on[k], d_on[k] = s_m[rows[k]], d_m[rows[k]]
    heading = np.empty(m)
    frenet_to_map_into(s_on, d_on, s_table, xy_table, heading_table, curvature_table, road_length_m, samples_per_m,
                       straight, cos_0, sin_0, out[:2 * m].reshape((m, 2)), heading)
    yaw, speed, accel, d_rate = out[2 * m:3 * m], out[3 * m:4 * m], out[4 * m:5 * m], out[5 * m:6 * m]
    any_changing = along_heading_into(v_mps, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m,
                                      centre_offset_lanes, t_s, d_rate, speed)
    for k in range(m):
        yaw[k] = heading[k] if any_changing else heading[k] + 0.0  # actor_motion's MOTION_YAW
        accel[k] = a_mps2[rows[k]]
    return any_changing


@kernel("Tuple((float64[::1], boolean))(float64[:], float64[:], float64[:], float64[:], float64[:], int64[:],"
        " float64[:], int64[::1], float64," + _TRUTH_CONSTANTS + ")")
def actor_truth(s_m, d_m, v_mps, a_mps2, lc_t0_s, lane, lc_from_d_m, rows, t_s, lane_change_s, s_table, xy_table,
                heading_table, curvature_table, road_length_m, samples_per_m, straight, cos_0, sin_0, lane_width_m,
                centre_offset_lanes):
    """``actor_truth_into`` a new buffer: (the truth columns (truth_slices(0, M)), whether any
    vehicle changes lanes)."""
    out = np.empty(TRUTH_COLUMNS * rows.shape[0])
    any_changing = actor_truth_into(s_m, d_m, v_mps, a_mps2, lc_t0_s, lane, lc_from_d_m, rows, t_s, out,
                                    lane_change_s, s_table, xy_table, heading_table, curvature_table, road_length_m,
                                    samples_per_m, straight, cos_0, sin_0, lane_width_m, centre_offset_lanes)
    return out, any_changing


# The per-run constants that world_step takes last, in this order (the world builds them once): the
# fleet's (2, N) signed half widths in lanes, (N, N + 1) half length sums with the ego last, lane-change
# durations, braking decelerations, stopped mask and the IDM_* constants; the road's reference line
# (tables, length, samples per metre, straightness, the first heading's cosine and sine), lane
# width, half the lane count, the top lane, the lane-centre offset 0.5 (num_lanes - 1); the ego's
# half width [m].
_STEP_CONSTANTS = (" float64[:, :], float64[:, :], float64[:], float64[:], boolean[:], float64[::1], float64[::1],"
                   " float64[:, ::1], float64[::1], float64[::1], float64, float64, boolean, float64, float64, float64,"
                   " float64, int64, float64, float64")


@kernel("Tuple((float64[::1], boolean, boolean, boolean, float64, float64))(boolean, float64, float64, float64,"
        " float64, float64, float64[:], float64[:], float64[:], int64[:], int64[:], boolean[:], float64[:], float64[:],"
        " float64[:], boolean[:], float64, float64, float64," + _STEP_CONSTANTS + ")")
def world_step(track_ego, ego_x_m, ego_y_m, ego_s_m, ego_d_m, ego_v_mps, s_m, d_m, v_mps, lane_followed, lane, active,
               lc_from_d_m, lc_t0_s, free_term, braking, t_s, dt_s, truth_t_s, pm_half_lanes, half_len_sum_m,
               lane_change_s, decel_mps2, stopped, idm_consts, s_table, xy_table, heading_table, curvature_table,
               road_length_m, samples_per_m, straight, cos_0, sin_0, lane_width_m, half_num_lanes, top_lane,
               centre_offset_lanes, ego_half_width_m):
    """The world's step from t_s to t_s + dt_s and the truth of the state it reaches (at
    ``truth_t_s``, the new tick time): (buffer, whether any vehicle left the road, whether a lane
    change ran in the step, whether one runs in the truth (its yaw then wants numpy's arctan2
    added), the ego's Frenet s and d).

    The ego's Frenet coordinates are tracked from ``ego_s_m`` as Road.track_frenet does for its box
    centre (``ego_x_m``, ``ego_y_m``) when ``track_ego``; otherwise ``ego_s_m``, ``ego_d_m`` are the
    ones the caller already tracked this step (for a script trigger or a MOBIL decision). Then
    traffic_kernels.traffic_step's parts: follow_rows in ``lane_followed`` with the ego spanning
    ego_lane_span's lanes, script_override_rows, integrate_into in ``lane``. The buffer holds
    STEP_ROWS rows of N (row_slices), then the truth columns of the M vehicles left on the road
    (truth_slices(STEP_ROWS * N, M)), computed from the new state as actor_truth_into does.
    """
    if track_ego:
        ego_s_m, ego_d_m = newton_frenet(ego_x_m, ego_y_m, ego_s_m, s_table, xy_table, heading_table,
                                         curvature_table, road_length_m, samples_per_m)
    ego_lo, ego_hi = ego_lane_span(ego_d_m, ego_half_width_m, lane_width_m, half_num_lanes, top_lane)
    n = s_m.shape[0]
    out = np.empty(STEP_ROWS * n + TRUTH_COLUMNS * n)
    accel, gap = np.empty(n), np.empty(n)
    follow_rows(s_m, d_m, v_mps, lane_followed, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps,
                ego_lo, ego_hi, lane_width_m, half_num_lanes, top_lane, idm_consts, accel, gap)
    script_override_rows(accel, v_mps, decel_mps2, braking, stopped, dt_s)
    rows = out[:5 * n].reshape((5, n))
    active1 = np.empty(n, dtype=np.bool_)
    any_leaving, any_changing = integrate_into(s_m, d_m, v_mps, accel, active, lane, lc_from_d_m, lc_t0_s,
                                               lane_change_s, curvature_table, samples_per_m, straight, road_length_m,
                                               lane_width_m, centre_offset_lanes, t_s, dt_s, rows, active1)
    m = 0
    for i in range(n):
        out[ROW_ACTIVE * n + i] = 1.0 if active1[i] else 0.0
        m += 1 if active1[i] else 0
    on = np.empty(m, dtype=np.int64)
    k = 0
    for i in range(n):
        if active1[i]:
            on[k] = i
            k += 1
    # The new state: d and the lane-change starts move only while a lane change ran (as in
    # traffic.integrated_state); lanes and lane-change origins are the decisions' own.
    d1 = rows[ROW_D] if any_changing else d_m
    lc_t0 = rows[ROW_LC_T0] if any_changing else lc_t0_s
    truth_changing = actor_truth_into(rows[ROW_S], d1, rows[ROW_V], rows[ROW_A], lc_t0, lane, lc_from_d_m, on,
                                      truth_t_s, out[STEP_ROWS * n:STEP_ROWS * n + TRUTH_COLUMNS * m], lane_change_s,
                                      s_table, xy_table, heading_table, curvature_table, road_length_m,
                                      samples_per_m, straight, cos_0, sin_0, lane_width_m, centre_offset_lanes)
    return out, any_leaving, any_changing, truth_changing, ego_s_m, ego_d_m
