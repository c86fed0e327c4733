"""Compiled kernels of the traffic's physics step (core/jit.py): car following, the scripts'
overrides, integration, lane changes and the actors' motion truth.

Each runs every physics tick over tens of vehicles, where the numpy forms they replace spent their
time in the overhead of ~40 small array calls, not in the arithmetic. Per vehicle a kernel performs
the operations of the numpy code in the same order, so it gives the same bits;
tests/sim/test_traffic_kernels.py keeps that numpy code as the reference.

At this size a call's own cost (unboxing each argument, boxing each returned array: about 0.1 us
and 0.9 us) is what remains, so the parts are written as ``*_rows``/``*_into`` kernels that fill
arrays they are given, and the world's tick calls one kernel that composes them (traffic_step,
actor_motion); the standalone kernels are the same parts, tested one by one.

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

# Layout of the IDM constants array handed to ``follow_accel`` (IdmParams, derived once per run).
IDM_ACCEL = 0  # a [m/s^2]
IDM_TWO_SQRT_AB = 1  # 2 sqrt(a b) [m/s^2]
IDM_TIME_GAP = 2  # T [s]
IDM_MIN_GAP = 3  # s0 [m]
IDM_MAX_DECEL = 4  # deceleration floor [m/s^2] (positive)
IDM_TERMS = 5  # the array's length


@kernel("float64(float64, float64)")
def idm_free_term(quotient, delta):
    """numpy's ``quotient ** delta`` for IDM's free-road term, ``quotient`` = v / v0 (>= 0, or NaN),
    ``delta`` a Python float: numpy squares where delta is 2.0 and calls libm's pow otherwise (its
    power loop without SVML, as DESIGN.md's kernels rely on), so this does the same. numba's own
    ``**`` is not it: it differs from numpy's at delta 2 (tests/sim/test_traffic_kernels.py)."""
    return quotient * quotient if delta == 2.0 else math.pow(quotient, delta)


@kernel("float64(float64, float64, float64, float64, float64[::1])")
def idm(v_mps, free_term, gap_m, approach_mps, idm_consts):
    """IDM acceleration [m/s^2] of one vehicle: a [1 - (v/v0)^delta - (s*/s)^2] with
    s* = s0 + max(0, v T + v dv / (2 sqrt(a b))), floored at the deceleration limit, in
    traffic.idm_accel's order of operations. ``free_term``: (v/v0)^delta (numpy's power);
    ``approach_mps``: v - v_leader; a gap of +inf is a free road, one <= 0 saturates at the floor."""
    s_star = v_mps * approach_mps
    s_star /= idm_consts[IDM_TWO_SQRT_AB]
    s_star += v_mps * idm_consts[IDM_TIME_GAP]
    s_star = s_star if (s_star > 0.0 or s_star != s_star) else 0.0
    s_star += idm_consts[IDM_MIN_GAP]
    ratio = s_star / (gap_m if (gap_m > 1e-3 or gap_m != gap_m) else 1e-3)
    acc = 1.0 - free_term
    acc -= ratio * ratio
    acc *= idm_consts[IDM_ACCEL]
    floor = -idm_consts[IDM_MAX_DECEL]
    return acc if (acc > floor or acc != acc) else floor


@kernel("void(float64[:], float64[:], float64[:], int64[:], boolean[:], float64[:, :], float64[:, :], float64[:],"
        " float64, float64, int64, int64, float64, float64, int64, float64[::1], float64[:], float64[:])")
def follow_rows(s_m, d_m, v_mps, lane, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps,
                ego_lo, ego_hi, lane_width_m, half_num_lanes, top_lane, idm_consts, accel_mps2, gap_m):
    """Writes the IDM acceleration [m/s^2] of each of N vehicles behind its leader into
    ``accel_mps2``, and the bumper gap [m] to that leader (+inf: none) into ``gap_m``.

    The leader is the nearest vehicle ahead (centre distance along s > 0) among the active
    vehicles and the ego (s ``ego_s_m``, lanes ``ego_lo..ego_hi``) whose lane span meets the lanes
    the vehicle follows in: those its footprint touches and the lane it keeps or heads for.
    ``pm_half_lanes`` (2, N): -/+ half widths in lanes; ``half_len_sum_m`` (N, N + 1): half the sum
    of the lengths of vehicle i and vehicle j (the ego last); ``free_term`` (N,): (v / v0) ** delta;
    ``half_num_lanes`` = 0.5 num_lanes, ``top_lane`` = num_lanes - 1; ``idm_consts``: IDM_* constants.
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
        accel_mps2[i] = idm(v_mps[i], free_term[i], gap_i, v_mps[i] - v_lead, idm_consts)
        gap_m[i] = gap_i


@kernel("Tuple((float64[::1], float64[::1]))(float64[:], float64[:], float64[:], int64[:], boolean[:],"
        " float64[:, :], float64[:, :], float64[:], float64, float64, int64, int64, float64, float64,"
        " int64, float64[::1])")
def follow_accel(s_m, d_m, v_mps, lane, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps,
                 ego_lo, ego_hi, lane_width_m, half_num_lanes, top_lane, idm_consts):
    """(IDM acceleration [m/s^2] of each of N vehicles behind its leader, bumper gap [m] to that
    leader (+inf: none)): ``follow_rows`` into new arrays."""
    n = s_m.shape[0]
    accel, gap = np.empty(n), np.empty(n)
    follow_rows(s_m, d_m, v_mps, lane, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps, ego_lo,
                ego_hi, lane_width_m, half_num_lanes, top_lane, idm_consts, accel, gap)
    return accel, gap


# Rows of integrate_rows' output block: one returned array instead of five (numba boxes each
# returned array at a cost comparable to this step's arithmetic).
ROW_S, ROW_V, ROW_A, ROW_D, ROW_LC_T0 = range(5)


@kernel("Tuple((boolean, boolean))(float64[:], float64[:], float64[:], float64[:], boolean[:], int64[:], float64[:],"
        " float64[:], float64[:], float64[::1], float64, boolean, float64, float64, float64, float64, float64,"
        " float64[:, ::1], boolean[::1])")
def integrate_into(s_m, d_m, v_mps, accel_mps2, active, lane, lc_from_d_m, lc_t0_s, lane_change_s, curvature_1pm,
                   samples_per_m, straight, road_length_m, lane_width_m, centre_offset_lanes, t_s, dt_s, out, active1):
    """One step of ``traffic.integrate`` into ``out`` (5, N), whose ROW_* rows become s', v', a_eff,
    d' and the lane-change starts', and ``active1`` (N,), active'; returns (whether any vehicle left
    the road, whether any lane change runs). d' and the start times are filled only when a lane
    change runs (the caller keeps the old arrays otherwise).

    ``curvature_1pm``: the road's per-sample curvature, ``samples_per_m`` samples per metre of s
    (Road.samples_per_m: the spacing is the road's own, at most SAMPLE_SPACING_M); ``straight``:
    it is zero everywhere; ``centre_offset_lanes`` = 0.5 (num_lanes - 1).
    """
    n = s_m.shape[0]
    s1, v1, a_eff, d1, lc_t0 = out[ROW_S], out[ROW_V], out[ROW_A], out[ROW_D], out[ROW_LC_T0]
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
            idx = np.int64(s_m[i] * samples_per_m)  # truncated, as astype(int64)
            idx = idx if idx < n_curv - 1 else n_curv - 1
            if idx < 0:
                idx += n_curv  # numpy's negative index (s >= 0 always: vehicles never reverse)
            stretch = 1.0 - curvature_1pm[idx] * d_m[i]
            s1[i] = s_m[i] + dist / (stretch if (stretch > 0.1 or stretch != stretch) else 0.1)
        leaving = active[i] and s1[i] >= road_length_m
        any_leaving = any_leaving or leaving
        active1[i] = active[i] and not leaving
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
    return any_leaving, any_changing


@kernel("Tuple((float64[:, ::1], boolean[::1], boolean, boolean))(float64[:], float64[:], float64[:], float64[:],"
        " boolean[:], int64[:], float64[:], float64[:], float64[:], float64[::1], float64, boolean, float64, float64,"
        " float64, float64, float64)")
def integrate_rows(s_m, d_m, v_mps, accel_mps2, active, lane, lc_from_d_m, lc_t0_s, lane_change_s,
                   curvature_1pm, samples_per_m, straight, road_length_m, lane_width_m, centre_offset_lanes, t_s,
                   dt_s):
    """``integrate_into`` new arrays: (the (5, N) ROW_* block, active', whether any vehicle left the
    road, whether any lane change runs)."""
    n = s_m.shape[0]
    out = np.empty((5, n))
    active1 = np.empty(n, dtype=np.bool_)
    any_leaving, any_changing = integrate_into(s_m, d_m, v_mps, accel_mps2, active, lane, lc_from_d_m, lc_t0_s,
                                               lane_change_s, curvature_1pm, samples_per_m, straight, road_length_m,
                                               lane_width_m, centre_offset_lanes, t_s, dt_s, out, active1)
    return out, active1, any_leaving, any_changing


@kernel("void(float64[::1], float64[:], float64[:], boolean[:], boolean[:], float64)")
def script_override_rows(accel_mps2, v_mps, decel_mps2, braking, stopped, dt_s):
    """sim.actors.scripted_accel in place on ``accel_mps2``: a triggered hard-braker (``braking``)
    brakes at its deceleration but never past zero within this step, -np.minimum(decel, v / dt);
    a stopped actor holds still."""
    for i in range(accel_mps2.shape[0]):
        if braking[i]:
            decel, to_stop = decel_mps2[i], v_mps[i] / dt_s
            accel_mps2[i] = -(decel if (decel < to_stop or decel != decel) else to_stop)
        if stopped[i]:
            accel_mps2[i] = 0.0


@kernel("Tuple((float64[:, ::1], boolean[::1], boolean, boolean))(float64[:], float64[:], float64[:], int64[:],"
        " int64[:], boolean[:], float64[:], float64[:], float64[:], float64[:, :], float64[:, :], float64[:],"
        " float64[:], boolean[:], boolean[:], float64, float64, int64, int64, float64[::1], float64, float64, int64,"
        " float64[::1], float64, boolean, float64, float64, float64, float64)")
def traffic_step(s_m, d_m, v_mps, lane_followed, lane, active, lc_from_d_m, lc_t0_s, free_term, pm_half_lanes,
                 half_len_sum_m, lane_change_s, decel_mps2, braking, stopped, ego_s_m, ego_v_mps, ego_lo, ego_hi,
                 idm_consts, lane_width_m, half_num_lanes, top_lane, curvature_1pm, samples_per_m, straight,
                 road_length_m, centre_offset_lanes, t_s, dt_s):
    """The world's traffic step in one call: ``follow_rows`` (with ``lane_followed``, the lanes
    before this step's lane-change decisions), ``script_override_rows`` and ``integrate_into`` (with
    ``lane``, the lanes after them, through integrate_rows); returns integrate_rows' (block, active',
    any leaving, any changing). One call instead of three: at tens of vehicles the calls' argument
    unboxing and the boxing of their returned arrays cost more than the arithmetic."""
    n = s_m.shape[0]
    accel, gap = np.empty(n), np.empty(n)
    follow_rows(s_m, d_m, v_mps, lane_followed, active, pm_half_lanes, half_len_sum_m, free_term, ego_s_m, ego_v_mps,
                ego_lo, ego_hi, lane_width_m, half_num_lanes, top_lane, idm_consts, accel, gap)
    script_override_rows(accel, v_mps, decel_mps2, braking, stopped, dt_s)
    return integrate_rows(s_m, d_m, v_mps, accel, active, lane, lc_from_d_m, lc_t0_s, lane_change_s, curvature_1pm,
                          samples_per_m, straight, road_length_m, lane_width_m, centre_offset_lanes, t_s, dt_s)


@kernel("Tuple((int64, float64, int64, float64))(float64, int64, float64[:], int64[:], int64[:], boolean[:])")
def nearest_in_lane(s_q_m, lane_q, s_m, lo, hi, active):
    """(leader row, centre distance ahead, follower row, centre distance behind) of a vehicle at
    ``s_q_m`` among the active vehicles whose lane span (lo..hi) holds ``lane_q``: traffic.nearest
    for one query. +inf (and row 0) where there is none; a vehicle at the very same s is neither."""
    lead, ahead, foll, behind = 0, math.inf, 0, math.inf
    for j in range(s_m.shape[0]):
        if active[j] and lo[j] <= lane_q and hi[j] >= lane_q:
            ds = s_m[j] - s_q_m
            if ds > 0.0 and ds < ahead:
                lead, ahead = j, ds
            if ds < 0.0 and -ds < behind:
                foll, behind = j, -ds
    return lead, ahead, foll, behind


@kernel("int64[::1](float64[:], float64[:], float64[:], float64[:], int64[:], int64[:], int64[:], boolean[:],"
        " boolean[:], int64, float64[::1], float64, float64, float64)")
def mobil_lanes(s_m, v_mps, free_term, length_m, lane, lo, hi, active, eligible, num_lanes, idm_consts,
                politeness, threshold_mps2, safe_decel_mps2):
    """traffic.mobil_targets for M vehicles: the lane each eligible vehicle changes to, -1 to stay.

    Per eligible vehicle and side, the operations of the numpy form (tests/sim/test_traffic_kernels.py)
    in its order; the terms numpy computes and then masks out (no follower, no leader) are skipped.
    ``free_term``: (v/v0)^delta of every row (numpy's power); ``idm_consts``: IDM_* constants.
    """
    m = s_m.shape[0]
    best_lane = np.full(m, -1, dtype=np.int64)
    for i in range(m):
        if not eligible[i]:
            continue
        s, v, length = s_m[i], v_mps[i], length_m[i]
        own_lead, own_dl, old_f, old_df = nearest_in_lane(s, lane[i], s_m, lo, hi, active)
        has_own = math.isfinite(own_dl)
        v_own_lead = v_mps[own_lead] if has_own else v
        a_self = idm(v, free_term[i], own_dl - 0.5 * (length + length_m[own_lead]), v - v_own_lead, idm_consts)
        # Old follower: now behind me; after my change it follows my current leader.
        old_term = 0.0
        if math.isfinite(old_df):
            vo, lo_len = v_mps[old_f], length_m[old_f]
            a_old = idm(vo, free_term[old_f], old_df - 0.5 * (lo_len + length), vo - v, idm_consts)
            gap_old_new = old_df + own_dl - 0.5 * (lo_len + length_m[own_lead]) if has_own else math.inf
            a_old_new = idm(vo, free_term[old_f], gap_old_new, vo - v_own_lead, idm_consts)
            old_term = a_old_new - a_old
        best_incentive = -math.inf
        for direction in (-1, 1):
            target = lane[i] + direction
            if not (target >= 0 and target < num_lanes):
                continue
            lead, dl, foll, df = nearest_in_lane(s, target, s_m, lo, hi, active)
            has_lead, has_foll = math.isfinite(dl), math.isfinite(df)
            v_lead = v_mps[lead] if has_lead else v
            gap_lead = dl - 0.5 * (length + length_m[lead])
            a_self_new = idm(v, free_term[i], gap_lead, v - v_lead, idm_consts)
            new_term = 0.0
            safe = True
            if has_foll:
                vn = v_mps[foll]
                gap_foll = df - 0.5 * (length_m[foll] + length)
                a_new_f_after = idm(vn, free_term[foll], gap_foll, vn - v, idm_consts)
                gap_before = df + dl - 0.5 * (length_m[foll] + length_m[lead]) if has_lead else math.inf
                a_new_f_before = idm(vn, free_term[foll], gap_before, vn - v_lead, idm_consts)
                new_term = a_new_f_after - a_new_f_before
                safe = a_new_f_after >= -safe_decel_mps2 and gap_foll > 0.0
            if has_lead and not gap_lead > 0.0:
                safe = False
            incentive = a_self_new - a_self + politeness * (new_term + old_term)
            if safe and incentive > threshold_mps2 and incentive > best_incentive:
                best_lane[i] = target
                best_incentive = incentive
    return best_lane


@kernel("boolean(float64[:], float64[:], int64[:], float64[:], float64[:], int64[:], float64, float64, float64,"
        " float64[:], float64[:])")
def along_heading_into(v_mps, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m, centre_offset_lanes, t_s,
                       d_rate_mps, speed_mps):
    """Writes the lateral rate d' [m/s] of the smoothstep5 lane change at t_s and the speed along
    the heading [m/s] of the given rows into ``d_rate_mps`` and ``speed_mps``; returns whether any
    vehicle (of all N) is changing lanes.

    While one is, d' is traffic's lateral rate (0 where no change runs) and the speed
    hypot(v, d'); otherwise d' is 0 and the speed v + 0.0 (the full formula's signed zero). The
    numpy form (lateral_rate, np.hypot) is kept in tests/sim/test_traffic_kernels.py; the heading
    offset atan2(d', v) is left to numpy's arctan2, whose last bit libm's atan2 does not always give.
    ``centre_offset_lanes`` = 0.5 (num_lanes - 1).
    """
    any_changing = False
    for i in range(lc_t0_s.shape[0]):
        if math.isfinite(lc_t0_s[i]):
            any_changing = True
            break
    for k in range(rows.shape[0]):
        i = rows[k]
        rate = 0.0
        if any_changing and math.isfinite(lc_t0_s[i]):
            tau = (t_s - lc_t0_s[i]) / lane_change_s[i]
            tau = tau if (tau > 0.0 or tau != tau) else 0.0
            tau = tau if (tau < 1.0 or tau != tau) else 1.0
            span = (float(lane[i]) - centre_offset_lanes) * lane_width_m - lc_from_d_m[i]
            rest = 1.0 - tau
            rate = span / lane_change_s[i] * (30.0 * tau * tau * (rest * rest))  # smoothstep5_rate
        d_rate_mps[k] = rate
        speed_mps[k] = math.hypot(v_mps[i], rate) if any_changing else v_mps[i] + 0.0
    return any_changing


@kernel("Tuple((float64[::1], float64[::1], boolean))(float64[:], float64[:], int64[:], float64[:], float64[:],"
        " int64[:], float64, float64, float64)")
def along_heading(v_mps, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m, centre_offset_lanes, t_s):
    """``along_heading_into`` new arrays: (d' [m/s], speed along the heading [m/s], whether any
    vehicle is changing lanes)."""
    m = rows.shape[0]
    d_rate, speed = np.empty(m), np.empty(m)
    any_changing = along_heading_into(v_mps, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m,
                                      centre_offset_lanes, t_s, d_rate, speed)
    return d_rate, speed, any_changing


# Rows of actor_motion's output block (one returned array instead of four, as for integrate_rows).
MOTION_YAW, MOTION_SPEED, MOTION_ACCEL, MOTION_D_RATE = range(4)


@kernel("Tuple((float64[:, ::1], boolean))(float64[:], float64[:], float64[:], float64[:], int64[:], float64[:],"
        " float64[:], int64[:], float64, float64, float64)")
def actor_motion(heading_rad, v_mps, a_mps2, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m,
                 centre_offset_lanes, t_s):
    """The actor truth's motion columns of the given rows, whose reference headings [rad] are
    ``heading_rad``: a (4, M) block whose MOTION_* rows are the yaw, the speed along the heading
    and the acceleration, and along_heading_into's d'; and whether any vehicle is changing lanes.

    While nobody is, the yaw is the heading + 0.0 (atan2(0, v) == 0 for v >= 0, the full
    formula's signed zeros); while someone is, the yaw row holds the heading only and the caller
    adds numpy's arctan2(d', v) (see along_heading_into)."""
    m = rows.shape[0]
    out = np.empty((4, m))
    any_changing = along_heading_into(v_mps, lc_t0_s, lane, lc_from_d_m, lane_change_s, rows, lane_width_m,
                                      centre_offset_lanes, t_s, out[MOTION_D_RATE], out[MOTION_SPEED])
    for k in range(m):
        out[MOTION_YAW, k] = heading_rad[k] if any_changing else heading_rad[k] + 0.0
        out[MOTION_ACCEL, k] = a_mps2[rows[k]]
    return out, any_changing
