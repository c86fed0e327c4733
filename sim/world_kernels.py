"""The world's physics step and its actors' truth, each as one compiled call (core/jit.py).

``world_step`` composes parts that are compiled and tested one by one elsewhere: the ego's Newton
Frenet tracking (core.road_kernels.newton_frenet), the ego's lane span (World._ego_span's rule), car
following, the scripts' overrides and integration (traffic_kernels.traffic_step's parts), and the
truth of the state it produces: the reference line's Frenet-to-map transform
(core.road_kernels.frenet_to_map_into) and the actors' motion columns (traffic_kernels.actor_motion's).
At tens of vehicles a kernel call's own cost (unboxing each argument, boxing each returned array:
about 0.1 us and 1 us on the tick's host) is most of a tick, so the world makes this one call
instead of four, writes everything into one float64 buffer the caller allocates (buffer_length:
a returned array costs more than an allocated one passed in), reads the ego from the previous
step's buffer, and takes its per-run constants packed into one array (``step_constants``).
Every part performs the same operations in the same order as its standalone form, so the buffer
holds the standalone parts' bits (tests/sim/test_world_kernels.py).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from core.jit import kernel
from core.road_kernels import frenet_to_map_into, newton_frenet
from sim.traffic_kernels import (IDM_TERMS, ROW_A, ROW_D, ROW_LC_T0, ROW_S, ROW_V, along_heading_into, follow_rows,
                                 idm_free_term, integrate_into, script_override_rows)

# Per-vehicle rows of the step's buffer, each N long: traffic_kernels' ROW_* rows (s', v', a_eff,
# d', lane-change starts'), then active' as 1.0 / 0.0 (read only when someone left the road).
STEP_ROWS = 6
ROW_ACTIVE = 5
# Truth columns after them, for the M vehicles on the road: xy (M, 2), then yaw, speed along the
# heading, acceleration and the lateral rate d' (M each); room is left for all N.
TRUTH_COLUMNS = 6
# The ego after the step, last in the buffer (from (STEP_ROWS + TRUTH_COLUMNS) * N): BicycleState's
# fields (x, y, yaw, v, a, steer), then its box centre (x, y) and yaw rate, as World.ego_truth reads them.
EGO_FIELDS = 9
EGO_X, EGO_Y, EGO_YAW, EGO_V, EGO_A, EGO_STEER, EGO_CENTRE_X, EGO_CENTRE_Y, EGO_YAW_RATE = range(EGO_FIELDS)
# Layout of the vehicle constants array (VehicleParams, derived once per run: vehicle_constants).
(VEH_WHEELBASE, VEH_MAX_ACCEL, VEH_MAX_DECEL, VEH_MAX_JERK, VEH_MAX_STEER, VEH_MAX_STEER_RATE, VEH_ACCEL_LAG,
 VEH_STEER_LAG, VEH_REAR_AXLE_TO_CENTRE) = range(9)


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


def buffer_length(n: int) -> int:
    """The length of ``world_step``'s buffer for a fleet of ``n``."""
    return (STEP_ROWS + TRUTH_COLUMNS) * n + EGO_FIELDS


def ego_slice(n: int) -> slice:
    """The ego's EGO_FIELDS values in ``world_step``'s buffer for a fleet of ``n``."""
    start = (STEP_ROWS + TRUTH_COLUMNS) * n
    return slice(start, start + EGO_FIELDS)


def vehicle_constants(p) -> np.ndarray:
    """The VEH_* array of VehicleParams ``p``."""
    out = np.empty(9)
    out[VEH_WHEELBASE], out[VEH_MAX_ACCEL], out[VEH_MAX_DECEL] = p.wheelbase_m, p.max_accel_mps2, p.max_decel_mps2
    out[VEH_MAX_JERK], out[VEH_MAX_STEER] = p.max_jerk_mps3, p.max_steer_rad
    out[VEH_MAX_STEER_RATE], out[VEH_ACCEL_LAG], out[VEH_STEER_LAG] = p.max_steer_rate_rps, p.accel_lag_s, p.steer_lag_s
    out[VEH_REAR_AXLE_TO_CENTRE] = p.rear_axle_to_center_m
    return out


def row_slices(n: int) -> tuple[slice, ...]:
    """The STEP_ROWS per-vehicle rows of ``world_step``'s buffer for a fleet of ``n``, by row index."""
    return tuple(slice(row * n, (row + 1) * n) for row in range(STEP_ROWS))


@kernel("float64(float64, float64)")
def remainder(x, y):
    """math.remainder(x, y): CPython's m_remainder operation for operation. Every operation in it is
    exact (fmod, the subtractions of values within a factor of two, the halving), so it gives the
    correctly rounded IEEE remainder whatever the library; raises ValueError where math.remainder
    does (x infinite, y zero)."""
    if math.isfinite(x) and math.isfinite(y):
        if y == 0.0:
            raise ValueError("math domain error")
        absx, absy = abs(x), abs(y)
        m = np.fmod(absx, absy)
        c = absy - m
        if m < c:
            r = m
        elif m > c:
            r = -c
        else:  # half way: the even multiple
            r = m - 2.0 * np.fmod(0.5 * (absx - m), absy)
        return np.copysign(1.0, x) * r
    if x != x:
        return x
    if y != y:
        return y
    if math.isinf(x):
        raise ValueError("math domain error")
    return x


@kernel("float64(float64, float64, float64, float64)")
def lag(current, target, tau_s, dt_s):
    """sim.vehicle_model._lag: first-order lag, exact for a command held over the step."""
    if tau_s <= 0.0:
        return target
    return target + (current - target) * math.exp(-dt_s / tau_s)


@kernel("void(float64, float64, float64, float64, float64, float64, float64, float64, float64, float64[::1],"
        " float64[::1])")
def bicycle_into(x_m, y_m, yaw_rad, v_mps, a_mps2, steer_rad, accel_cmd_mps2, steer_cmd_rad, dt_s, vehicle, out):
    """sim.vehicle_model.step_bicycle from the state (x_m .. steer_rad) with the commands held for
    dt_s (checked finite and positive by the caller), operation for operation, into ``out``'s
    EGO_* fields, with the new state's box centre (World._ego_centre) and yaw rate (World.ego_truth's
    v tan(steer) / wheelbase). ``vehicle``: the VEH_* constants."""
    max_decel, max_accel, max_steer = vehicle[VEH_MAX_DECEL], vehicle[VEH_MAX_ACCEL], vehicle[VEH_MAX_STEER]
    a0 = a_mps2
    a_cmd = accel_cmd_mps2
    a_cmd = -max_decel if a_cmd < -max_decel else (max_accel if a_cmd > max_accel else a_cmd)
    a_lagged = lag(a0, a_cmd, vehicle[VEH_ACCEL_LAG], dt_s)
    max_da = vehicle[VEH_MAX_JERK] * dt_s
    a = a0 - max_da if a_lagged < a0 - max_da else (a0 + max_da if a_lagged > a0 + max_da else a_lagged)
    steer0 = steer_rad
    steer_cmd = -max_steer if steer_cmd_rad < -max_steer else (
        max_steer if steer_cmd_rad > max_steer else steer_cmd_rad)
    steer_lagged = lag(steer0, steer_cmd, vehicle[VEH_STEER_LAG], dt_s)
    max_dsteer = vehicle[VEH_MAX_STEER_RATE] * dt_s
    steer = steer0 - max_dsteer if steer_lagged < steer0 - max_dsteer else (
        steer0 + max_dsteer if steer_lagged > steer0 + max_dsteer else steer_lagged)
    steer = -max_steer if steer < -max_steer else (max_steer if steer > max_steer else steer)
    v0 = v_mps
    v1 = v0 + a * dt_s
    if v1 >= 0.0:
        dist = 0.5 * (v0 + v1) * dt_s
    else:
        dist = 0.5 * v0 * v0 / -a if a < 0.0 else 0.0
        v1 = 0.0
    if v1 == 0.0 and a < 0.0:
        a = 0.0
    wheelbase = vehicle[VEH_WHEELBASE]
    kappa = math.tan(steer) / wheelbase
    dyaw = kappa * dist
    chord = 2.0 * math.sin(0.5 * dyaw) / kappa if abs(dyaw) > 1e-9 else dist
    mid = yaw_rad + 0.5 * dyaw
    yaw = remainder(yaw_rad + dyaw, 2.0 * math.pi)
    x, y = x_m + chord * math.cos(mid), y_m + chord * math.sin(mid)
    r = vehicle[VEH_REAR_AXLE_TO_CENTRE]
    out[EGO_X], out[EGO_Y], out[EGO_YAW], out[EGO_V], out[EGO_A], out[EGO_STEER] = x, y, yaw, v1, a, steer
    out[EGO_CENTRE_X], out[EGO_CENTRE_Y] = x + r * math.cos(yaw), y + r * math.sin(yaw)
    out[EGO_YAW_RATE] = v1 * math.tan(steer) / wheelbase


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
    (frenet_to_map_into), traffic_kernels.actor_motion and, while a lane change runs, the yaw's turn
    off the heading by atan2(d', v), numpy's former ``yaw + np.arctan2(d', v)`` with libm's atan2
    (numpy's float64 arctan2 without SVML: DESIGN.md, "what a kernel call costs").
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
        if any_changing:
            yaw[k] = heading[k] + math.atan2(d_rate[k], v_mps[rows[k]])
        else:
            yaw[k] = heading[k] + 0.0  # actor_motion's MOTION_YAW
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


# world_step's per-run constants, packed once per run by ``step_constants`` into one float64 array:
# a kernel argument costs about 0.1 us to pass (an array about twice that), so the two dozen constants
# the step needs cost more as separate arguments than the step's own arithmetic on a few vehicles. Every
# value is copied unchanged (the integers and the flags are exact in float64), so the step computes
# with the same bits. The array holds, in this order: the scalars (SC_* slots, then the ego's VEH_*
# constants, then the IDM_* constants: STEP_HEADER values), the per-vehicle (FLEET_ROWS, N) rows,
# the (N, N + 1) bumper-gap offsets with the ego last, the road's (3, S) ROAD_* tables and its (S, 2)
# reference-line points [m]; world_step takes the blocks apart as views (step_blocks).
# Rows of the per-vehicle block: lane-change durations [s], braking decelerations [m/s^2], desired
# speeds v0 [m/s], the (2, N) signed half widths in lanes (signed_half_widths), and 1.0 / 0.0 where
# the vehicle is scripted to stand still.
FLEET_LANE_CHANGE_S, FLEET_DECEL, FLEET_V0, FLEET_HALF_LANES = range(4)
FLEET_STOPPED = FLEET_HALF_LANES + 2
FLEET_ROWS = FLEET_STOPPED + 1
# Rows of the road's (3, S) tables: arc length [m], heading [rad] and curvature [1/m] per sample.
ROAD_S, ROAD_HEADING, ROAD_CURVATURE = range(3)
# Slots of the scalars: the road's length [m], samples per metre, straightness (1.0 / 0.0), the
# first heading's cosine and sine, lane width [m], half the lane count, the top lane, the lane-centre
# offset 0.5 (num_lanes - 1), the ego's half width [m], the road's sample count S, the IDM exponent
# delta; then the ego's VEH_* constants, then the IDM_* constants.
(SC_ROAD_LENGTH, SC_SAMPLES_PER_M, SC_STRAIGHT, SC_COS_0, SC_SIN_0, SC_LANE_WIDTH, SC_HALF_NUM_LANES, SC_TOP_LANE,
 SC_CENTRE_OFFSET, SC_EGO_HALF_WIDTH, SC_ROAD_SAMPLES, SC_IDM_DELTA) = range(12)
SC_VEHICLE = 12
SC_IDM = SC_VEHICLE + 9
STEP_HEADER = SC_IDM + IDM_TERMS


def step_constants(pm_half_lanes, half_len_sum_m, lane_change_s, decel_mps2, stopped, idm_consts, idm_delta, s_table,
                   xy_table, heading_table, curvature_table, road_length_m, samples_per_m, straight, cos_0, sin_0,
                   lane_width_m, half_num_lanes, top_lane, centre_offset_lanes, ego_half_width_m, vehicle,
                   v0_mps) -> np.ndarray:
    """The per-run constants packed for world_step (the layout above): the fleet's (2, N) signed half
    widths in lanes, (N, N + 1) half length sums with the ego last, lane-change durations, braking
    decelerations, stopped mask, the IDM_* constants and exponent; the road's reference line (tables, length,
    samples per metre, straightness, the first heading's cosine and sine), lane width, half the lane
    count, the top lane, the lane-centre offset 0.5 (num_lanes - 1); the ego's half width [m] and its
    VEH_* constants; the fleet's desired speeds v0 [m/s]."""
    n, samples = np.shape(v0_mps)[0], np.shape(s_table)[0]
    if np.shape(idm_consts) != (IDM_TERMS,) or np.shape(vehicle) != (SC_IDM - SC_VEHICLE,):
        raise ValueError(f"step_constants: {np.shape(idm_consts)} IDM constants and {np.shape(vehicle)} vehicle "
                         f"constants, expected ({IDM_TERMS},) and ({SC_IDM - SC_VEHICLE},)")
    header = [road_length_m, samples_per_m, 1.0 if straight else 0.0, cos_0, sin_0, lane_width_m, half_num_lanes,
              top_lane, centre_offset_lanes, ego_half_width_m, samples, idm_delta]
    fleet = np.empty((FLEET_ROWS, n))
    fleet[FLEET_LANE_CHANGE_S], fleet[FLEET_DECEL], fleet[FLEET_V0] = lane_change_s, decel_mps2, v0_mps
    fleet[FLEET_HALF_LANES:FLEET_HALF_LANES + 2] = pm_half_lanes
    fleet[FLEET_STOPPED] = np.where(np.asarray(stopped, dtype=np.bool_), 1.0, 0.0)
    road_tables = np.empty((3, samples))
    road_tables[ROAD_S], road_tables[ROAD_HEADING], road_tables[ROAD_CURVATURE] = s_table, heading_table, curvature_table
    return np.concatenate([np.array(header, dtype=np.float64), np.asarray(vehicle, dtype=np.float64),
                           np.asarray(idm_consts, dtype=np.float64), fleet.ravel(),
                           np.asarray(half_len_sum_m, dtype=np.float64).reshape(n * (n + 1)), road_tables.ravel(),
                           np.asarray(xy_table, dtype=np.float64).reshape(2 * samples)])


@kernel("Tuple((float64[:, ::1], float64[:, ::1], float64[:, ::1], float64[:, ::1]))(float64[::1], int64)")
def step_blocks(constants, n):
    """The blocks of ``step_constants``' array for a fleet of ``n``, as views: (the (FLEET_ROWS, N)
    per-vehicle rows, the (N, N + 1) bumper-gap offsets, the (3, S) road tables, the (S, 2)
    reference-line points)."""
    samples = np.int64(constants[SC_ROAD_SAMPLES])
    at = STEP_HEADER
    fleet = constants[at:at + FLEET_ROWS * n].reshape((FLEET_ROWS, n))
    at += FLEET_ROWS * n
    half_len_sum_m = constants[at:at + n * (n + 1)].reshape((n, n + 1))
    at += n * (n + 1)
    road_tables = constants[at:at + 3 * samples].reshape((3, samples))
    at += 3 * samples
    return fleet, half_len_sum_m, road_tables, constants[at:at + 2 * samples].reshape((samples, 2))


@kernel("Tuple((boolean, boolean, boolean, float64, float64))(Array(float64, 1, 'A', readonly=True), float64, float64,"
        " boolean, float64, float64, float64[:], float64[:], float64[:], int64[:], int64[:], boolean[:], float64[:],"
        " float64[:], boolean[:], float64, float64, float64, float64[::1], float64[::1])")
def world_step(ego, accel_cmd_mps2, steer_cmd_rad, track_ego, ego_s_m, ego_d_m, s_m, d_m, v_mps, lane_followed, lane,
               active, lc_from_d_m, lc_t0_s, braking, t_s, dt_s, truth_t_s, out, constants):
    """The world's step from t_s to t_s + dt_s and the truth of the state it reaches (at
    ``truth_t_s``, the new tick time), written into ``out`` (buffer_length(N) values): (whether any
    vehicle left the road, whether a lane change ran in the step, whether one runs in the truth (its
    yaw then wants numpy's arctan2 added), the ego's Frenet s and d). ``ego``: the ego before the
    step, EGO_FIELDS values (the previous step's ego slice); ``constants``: step_constants' array.

    The ego's Frenet coordinates are tracked from ``ego_s_m`` as Road.track_frenet does for its box
    centre when ``track_ego``; otherwise ``ego_s_m``, ``ego_d_m`` are the ones the caller already
    tracked this step (for a script trigger or a MOBIL decision). Then traffic_kernels.traffic_step's
    parts: follow_rows in ``lane_followed`` with the ego spanning ego_lane_span's lanes,
    script_override_rows, integrate_into in ``lane``. The buffer holds STEP_ROWS rows of N
    (row_slices), then the truth columns of the M vehicles left on the road (truth_slices(STEP_ROWS *
    N, M)), computed from the new state as actor_truth_into does, and last the ego after
    step_bicycle with the commands held (bicycle_into, ego_slice).
    """
    n = s_m.shape[0]
    fleet, half_len_sum_m, road_tables, xy_table = step_blocks(constants, n)
    scalars = constants[:STEP_HEADER]
    lane_change_s, decel_mps2, v0_mps = fleet[FLEET_LANE_CHANGE_S], fleet[FLEET_DECEL], fleet[FLEET_V0]
    pm_half_lanes = fleet[FLEET_HALF_LANES:FLEET_HALF_LANES + 2]
    stopped = fleet[FLEET_STOPPED] != 0.0
    s_table, heading_table = road_tables[ROAD_S], road_tables[ROAD_HEADING]
    curvature_table = road_tables[ROAD_CURVATURE]
    road_length_m, samples_per_m = scalars[SC_ROAD_LENGTH], scalars[SC_SAMPLES_PER_M]
    straight, cos_0, sin_0 = scalars[SC_STRAIGHT] != 0.0, scalars[SC_COS_0], scalars[SC_SIN_0]
    lane_width_m, half_num_lanes = scalars[SC_LANE_WIDTH], scalars[SC_HALF_NUM_LANES]
    top_lane, centre_offset_lanes = np.int64(scalars[SC_TOP_LANE]), scalars[SC_CENTRE_OFFSET]
    vehicle, idm_consts = scalars[SC_VEHICLE:SC_IDM], scalars[SC_IDM:]
    if track_ego:
        ego_s_m, ego_d_m = newton_frenet(ego[EGO_CENTRE_X], ego[EGO_CENTRE_Y], ego_s_m, s_table, xy_table,
                                         heading_table, curvature_table, road_length_m, samples_per_m)
    ego_lo, ego_hi = ego_lane_span(ego_d_m, scalars[SC_EGO_HALF_WIDTH], lane_width_m, half_num_lanes, top_lane)
    # IDM's free-road term (v / v0)^delta with numpy's bits (idm_free_term), v / v0 correctly rounded.
    free_term = np.empty(n)
    delta = scalars[SC_IDM_DELTA]
    for i in range(n):
        free_term[i] = idm_free_term(v_mps[i] / v0_mps[i], delta)
    accel, gap = np.empty(n), np.empty(n)
    follow_rows(s_m, d_m, v_mps, lane_followed, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego[EGO_V],
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
    ego_at = (STEP_ROWS + TRUTH_COLUMNS) * n
    bicycle_into(ego[EGO_X], ego[EGO_Y], ego[EGO_YAW], ego[EGO_V], ego[EGO_A], ego[EGO_STEER], accel_cmd_mps2,
                 steer_cmd_rad, dt_s, vehicle, out[ego_at:ego_at + EGO_FIELDS])
    return any_leaving, any_changing, truth_changing, ego_s_m, ego_d_m
