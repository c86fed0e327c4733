"""Compiled kernels of the traffic's physics step (core/jit.py): car following and integration.

Each runs every physics tick over tens of vehicles, where the numpy forms they replace spent their
time in the overhead of ~40 small array calls, not in the arithmetic. Per vehicle a kernel performs
the operations of the numpy code in the same order, so it gives the same bits;
tests/sim/test_traffic_kernels.py keeps that numpy code as the reference.

numpy's elementwise conventions are written out where they can matter:
- ``np.maximum(a, b)`` is ``a if (a > b or a != a) else b``: NaN in either propagates, and a tie
  (+0.0 against -0.0) gives the second operand; ``np.minimum`` likewise with ``<``;
- ``np.fmin(a, b)`` is ``b`` when ``a`` is NaN;
- ``argmin`` over a row is the first index of the smallest value, 0 for a row of +inf.
The one operation numpy does not perform like the C library here is the power (numpy's SIMD
``power`` may differ from ``pow`` in the last bit), so IDM's free-road term ``(v / v0) ** delta``
is computed by numpy and handed in.
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel
from core.road import SAMPLE_SPACING_M

_SAMPLES_PER_M = 1.0 / SAMPLE_SPACING_M  # a compile-time constant of the kernels

# Layout of the IDM constants array handed to ``follow_accel`` (IdmParams, derived once per run).
IDM_ACCEL = 0  # a [m/s^2]
IDM_TWO_SQRT_AB = 1  # 2 sqrt(a b) [m/s^2]
IDM_TIME_GAP = 2  # T [s]
IDM_MIN_GAP = 3  # s0 [m]
IDM_MAX_DECEL = 4  # deceleration floor [m/s^2] (positive)


@kernel("Tuple((float64[::1], float64[::1]))(float64[:], float64[:], float64[:], int64[:], boolean[:],"
        " float64[:, :], float64[:, :], float64[:], float64, float64, int64, int64, float64, float64,"
        " int64, float64[::1])")
def follow_accel(s_m, d_m, v_mps, lane, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps,
                 ego_lo, ego_hi, lane_width_m, half_num_lanes, top_lane, idm):
    """IDM acceleration [m/s^2] of each of N vehicles behind its leader, and the bumper gap [m]
    to that leader (+inf: none).

    The leader is the nearest vehicle ahead (centre distance along s > 0) among the active
    vehicles and the ego (s ``ego_s_m``, lanes ``ego_lo..ego_hi``) whose lane span meets the lanes
    the vehicle follows in: those its footprint touches and the lane it keeps or heads for.
    ``pm_half_lanes`` (2, N): -/+ half widths in lanes; ``half_len_sum_m`` (N, N + 1): half the sum
    of the lengths of vehicle i and vehicle j (the ego last); ``free_term`` (N,): (v / v0) ** delta;
    ``half_num_lanes`` = 0.5 num_lanes, ``top_lane`` = num_lanes - 1; ``idm``: IDM_* constants.
    """
    n = s_m.shape[0]
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    top = float(top_lane)
    for j in range(n):
        # Lanes the footprint touches: floor of the edges in lane units, clamped to the road
        # (np.minimum(np.maximum(np.floor(base +/- half), 0), top)).
        base = d_m[j] / lane_width_m + half_num_lanes
        for k in range(2):
            edge = math.floor(base + pm_half_lanes[k, j])
            edge = edge if (edge > 0.0 or edge != edge) else 0.0
            edge = edge if (edge < top or edge != edge) else top
            lane_idx = np.int64(edge) if edge == edge else np.int64(-9223372036854775808)  # numpy's NaN cast
            if k == 0:
                lo[j] = lane_idx
            else:
                hi[j] = lane_idx
    accel = np.empty(n)
    gap = np.empty(n)
    a_max, two_sqrt_ab, time_gap, min_gap = idm[IDM_ACCEL], idm[IDM_TWO_SQRT_AB], idm[IDM_TIME_GAP], idm[IDM_MIN_GAP]
    floor_accel = -idm[IDM_MAX_DECEL]
    for i in range(n):
        q_lo = lo[i] if lo[i] < lane[i] else lane[i]
        q_hi = hi[i] if hi[i] > lane[i] else lane[i]
        s_i = s_m[i]
        nearest = math.inf
        lead = 0
        for j in range(n):
            if active[j] and lo[j] <= q_hi and hi[j] >= q_lo:
                ds = s_m[j] - s_i
                if ds > 0.0 and ds < nearest:
                    nearest, lead = ds, j
        if ego_lo <= q_hi and ego_hi >= q_lo:
            ds = ego_s_m - s_i
            if ds > 0.0 and ds < nearest:
                nearest, lead = ds, n
        gap_i = nearest - half_len_sum_m[i, lead]
        v_lead = ego_v_mps if lead == n else v_mps[lead]
        v = v_mps[i]
        # s* = s0 + max(0, v T + v dv / (2 sqrt(a b))), in idm_accel's order of operations.
        s_star = v * (v - v_lead)
        s_star /= two_sqrt_ab
        s_star += v * time_gap
        s_star = s_star if (s_star > 0.0 or s_star != s_star) else 0.0
        s_star += min_gap
        gap_floor = gap_i if (gap_i > 1e-3 or gap_i != gap_i) else 1e-3
        ratio = s_star / gap_floor
        acc = 1.0 - free_term[i]
        acc -= ratio * ratio
        acc *= a_max
        accel[i] = acc if (acc > floor_accel or acc != acc) else floor_accel
        gap[i] = gap_i
    return accel, gap


@kernel("Tuple((float64[::1], float64[::1], float64[::1], boolean[::1], boolean, float64[::1], float64[::1],"
        " boolean))(float64[:], float64[:], float64[:], float64[:], boolean[:], int64[:], float64[:], float64[:],"
        " float64[:], float64[::1], boolean, float64, float64, float64, float64, float64)")
def integrate_rows(s_m, d_m, v_mps, accel_mps2, active, lane, lc_from_d_m, lc_t0_s, lane_change_s,
                   curvature_1pm, straight, road_length_m, lane_width_m, centre_offset_lanes, t_s, dt_s):
    """One step of ``traffic.integrate``: returns (s', v', a_eff, active', any left the road,
    d', lane-change start', any lane change running). d' and the start times are filled only
    when a lane change runs (the caller keeps the old arrays otherwise).

    ``curvature_1pm``: the road's per-sample curvature (SAMPLE_SPACING_M apart); ``straight``:
    it is zero everywhere; ``centre_offset_lanes`` = 0.5 (num_lanes - 1).
    """
    n = s_m.shape[0]
    v1 = np.empty(n)
    a_eff = np.empty(n)
    s1 = np.empty(n)
    active1 = np.empty(n, dtype=np.bool_)
    # numpy's branch: clamp at standstill when the smallest new speed is <= 0 (a NaN minimum:
    # never, as np.min propagates NaN and the comparison then fails).
    smallest = math.inf
    has_nan = False
    for i in range(n):
        v1[i] = v_mps[i] + accel_mps2[i] * dt_s
        if v1[i] != v1[i]:
            has_nan = True
        elif v1[i] < smallest:
            smallest = v1[i]
    clamp = n > 0 and not has_nan and smallest <= 0.0
    n_curv = curvature_1pm.shape[0]
    any_leaving = False
    for i in range(n):
        v, a, w = v_mps[i], accel_mps2[i], v1[i]
        if clamp and w < 0.0:
            dist = 0.5 * v * v / -a if a < 0.0 else 0.0
        else:
            dist = 0.5 * (v + w) * dt_s
        if clamp:
            w = w if (w > 0.0 or w != w) else 0.0
            a = 0.0 if (w == 0.0 and a < 0.0) else a
        v1[i], a_eff[i] = w, a
        if straight:
            s1[i] = s_m[i] + dist
        else:
            idx = np.int64(s_m[i] * _SAMPLES_PER_M)  # truncated, as astype(int64)
            idx = idx if idx < n_curv - 1 else n_curv - 1
            if idx < 0:
                idx += n_curv  # numpy's negative index (s >= 0 always: vehicles never reverse)
            stretch = 1.0 - curvature_1pm[idx] * d_m[i]
            s1[i] = s_m[i] + dist / (stretch if (stretch > 0.1 or stretch != stretch) else 0.1)
        leaving = active[i] and s1[i] >= road_length_m
        any_leaving = any_leaving or leaving
        active1[i] = active[i] and not leaving
    d1 = np.empty(n)
    lc_t0 = np.empty(n)
    any_changing = False
    for i in range(n):
        if math.isfinite(lc_t0_s[i]):
            any_changing = True
    if any_changing:
        t1 = t_s + dt_s
        for i in range(n):
            tau = (t1 - lc_t0_s[i]) / lane_change_s[i]
            tau = 1.0 if tau != tau else (tau if tau < 1.0 else 1.0)  # np.fmin(tau, 1.0)
            d_target = (float(lane[i]) - centre_offset_lanes) * lane_width_m
            if math.isfinite(lc_t0_s[i]):
                shape = tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau))  # smoothstep5
                d1[i] = lc_from_d_m[i] + (d_target - lc_from_d_m[i]) * shape
            else:
                d1[i] = d_target
            lc_t0[i] = math.nan if tau >= 1.0 else lc_t0_s[i]
    return s1, v1, a_eff, active1, any_leaving, d1, lc_t0, any_changing
