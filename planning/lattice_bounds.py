"""The lattice's per-family terms and every candidate's lower bound, compiled (core/jit.py).

Per plan the lattice scores n_d lateral targets x (n_v + 3) longitudinal profiles x n_T horizons
(420 candidates by default) on the cost terms that factor per family: feasibility masks, jerk,
offset, consistency and speed-error integrals. In numpy these were about 120 calls over arrays of a
few thousand elements (~0.5 ms, half the planner); here they are two kernels:

- ``longitudinal_family_terms(_into)``: the quartic family from the precomputed linear maps plus the
  three lanes' ACC roll-outs, its feasibility and emergency flags, its jerk cost and each profile's
  v.v;
- ``candidate_bounds``: lateral feasibility and costs, the speed error against each lane's roll-out,
  every candidate's bound, and the candidates in (stable) order of their bound.

Between the two, v @ references (the cross term of the speed error) stays numpy's matrix product:
its summation order is BLAS's own. Both kernels perform the numpy code's operations in its order,
so they give its bits; the numpy form lives on as the reference in
tests/planning/test_lattice_bounds_kernel.py. Sums of squares follow numpy's einsum order
(``sum_sq``).
"""
from __future__ import annotations

import numpy as np

from core.jit import kernel


@kernel("float64(float64[::1])")
def sum_sq(z):
    """``np.einsum("k,k->", z, z)`` to the bit: numpy (x86-64-v2 baseline, two float64 lanes, no
    fused multiply-add) accumulates lane-wise in blocks of eight, z[i + 6], z[i + 4], z[i + 2], z[i]
    into lane 0 and the odd neighbours into lane 1, then the tail pairwise, then adds the lanes.
    The result is added to the zero output as einsum does (0.0 + sum). Checked against einsum over
    lengths 0..70 in the tests."""
    n = z.shape[0]
    acc0, acc1 = 0.0, 0.0
    i = 0
    while n - i >= 8:
        ab0 = z[i + 6] * z[i + 6] + acc0
        ab1 = z[i + 7] * z[i + 7] + acc1
        ab0 = z[i + 4] * z[i + 4] + ab0
        ab1 = z[i + 5] * z[i + 5] + ab1
        ab0 = z[i + 2] * z[i + 2] + ab0
        ab1 = z[i + 3] * z[i + 3] + ab1
        acc0 = z[i] * z[i] + ab0
        acc1 = z[i + 1] * z[i + 1] + ab1
        i += 8
    while i < n:
        acc0 = z[i] * z[i] + acc0
        if i + 1 < n:
            acc1 = z[i + 1] * z[i + 1] + acc1
        else:
            acc1 = 0.0 * 0.0 + acc1  # the zero-padded lane of the last load
        i += 2
    return 0.0 + (acc0 + acc1)


@kernel("UniTuple(float64, 2)(float64[::1], float64[::1])")
def sum_sq_pair(y, z):
    """(sum_sq(y), sum_sq(z)) for equal lengths, in one loop: the two sums are independent chains of
    additions, and interleaving them halves the time spent waiting on each addition's latency."""
    n = y.shape[0]
    y0, y1, z0, z1 = 0.0, 0.0, 0.0, 0.0
    i = 0
    while n - i >= 8:
        yb0 = y[i + 6] * y[i + 6] + y0
        yb1 = y[i + 7] * y[i + 7] + y1
        zb0 = z[i + 6] * z[i + 6] + z0
        zb1 = z[i + 7] * z[i + 7] + z1
        yb0 = y[i + 4] * y[i + 4] + yb0
        yb1 = y[i + 5] * y[i + 5] + yb1
        zb0 = z[i + 4] * z[i + 4] + zb0
        zb1 = z[i + 5] * z[i + 5] + zb1
        yb0 = y[i + 2] * y[i + 2] + yb0
        yb1 = y[i + 3] * y[i + 3] + yb1
        zb0 = z[i + 2] * z[i + 2] + zb0
        zb1 = z[i + 3] * z[i + 3] + zb1
        y0 = y[i] * y[i] + yb0
        y1 = y[i + 1] * y[i + 1] + yb1
        z0 = z[i] * z[i] + zb0
        z1 = z[i + 1] * z[i + 1] + zb1
        i += 8
    while i < n:
        y0 = y[i] * y[i] + y0
        z0 = z[i] * z[i] + z0
        if i + 1 < n:
            y1 = y[i + 1] * y[i + 1] + y1
            z1 = z[i + 1] * z[i + 1] + z1
        else:
            y1 = 0.0 * 0.0 + y1
            z1 = 0.0 * 0.0 + z1
        i += 2
    return 0.0 + (y0 + y1), 0.0 + (z0 + z1)


def longitudinal_family_terms(lon_map, levels_mps2, horizons_s, s0, v0, a0, v_max_mps, ref_s_m, ref_v_mps,
                              ref_a_mps2, dt_s, max_accel_mps2, max_decel_mps2, max_jerk_mps3, comfort_decel_mps2,
                              comfort_jerk_mps3, w_lon_jerk, emergency_cost):
    """``longitudinal_family_terms_into`` into new arrays: (xva (3, n_v + 3, n_T, K), ok, emergency,
    cost (n_v + 3, n_T), vv ((n_v + 3) n_T,))."""
    _, _, n_t, n_k = lon_map.shape
    n_rows = levels_mps2.shape[0] + 3
    xva = np.empty((3, n_rows, n_t, n_k))
    ok, emergency = np.empty((n_rows, n_t), np.bool_), np.empty((n_rows, n_t), np.bool_)
    cost, vv = np.empty((n_rows, n_t)), np.empty(n_rows * n_t)
    longitudinal_family_terms_into(lon_map, levels_mps2, horizons_s, s0, v0, a0, v_max_mps, ref_s_m, ref_v_mps,
                                   ref_a_mps2, dt_s, max_accel_mps2, max_decel_mps2, max_jerk_mps3,
                                   comfort_decel_mps2, comfort_jerk_mps3, w_lon_jerk, emergency_cost, xva, ok,
                                   emergency, cost, vv)
    return xva, ok, emergency, cost, vv


@kernel("void(float64[:, :, :, ::1], float64[::1], float64[::1], float64, float64, float64, float64, float64[:, :],"
        " float64[:, :], float64[:, :], float64, float64, float64, float64, float64, float64, float64, float64,"
        " float64[:, :, :, ::1], boolean[:, ::1], boolean[:, ::1], float64[:, ::1], float64[::1])")
def longitudinal_family_terms_into(lon_map, levels_mps2, horizons_s, s0, v0, a0, v_max_mps, ref_s_m, ref_v_mps,
                                   ref_a_mps2, dt_s, max_accel_mps2, max_decel_mps2, max_jerk_mps3, comfort_decel_mps2,
                                   comfort_jerk_mps3, w_lon_jerk, emergency_cost, xva, ok, emergency, cost, vv):
    """Into the caller's arrays (each array a kernel returns costs about a microsecond to hand to
    Python): the longitudinal family x, v, a, j (4, n_v + 3, n_T, K): rows 0 .. n_v - 1 the quartics to
    the end speeds v0 + level * T clipped to [0, v_max] (LatticeTables.lon_map, linear in s0, v0,
    a0 and the end speed), rows n_v .. n_v + 2 the three lanes' ACC roll-outs ``ref_*`` (3, K)
    (distance from the ego, speed, acceleration; jerk by forward difference, the last step repeating
    the one before), the same for every horizon. Per profile (n_v + 3, n_T): feasible (acceleration,
    deceleration and jerk limits, no reversing, at most v_max, all with the numpy code's tolerances),
    an emergency (beyond the comfort deceleration or jerk), its cost w_lon_jerk * int j^2 +
    emergency_cost * emergency, and v.v (the speed error's square term).

    The quartic term of the end speed was a matrix product with block-diagonal maps: one non-zero
    product per entry, the other terms exact zeros, so fl(end speed x map) + 0.0. NaN propagates
    as through numpy's minimum/maximum: a profile with a NaN speed, acceleration or jerk fails the
    limits that read it."""
    _, _, n_t, n_k = lon_map.shape
    n_v = levels_mps2.shape[0]
    n_rows = n_v + 3
    jerk = np.empty(n_k)  # one profile's jerk: only its square integral and its limits are needed
    # (s0, v0, a0)'s part, shared by every level: lon_map[0] * s0 + lon_map[1] * v0 + lon_map[2] * a0.
    base = np.empty((4, n_t, n_k))
    for q in range(4):
        for h in range(n_t):
            for k in range(n_k):
                base[q, h, k] = (lon_map[0, q, h, k] * s0 + lon_map[1, q, h, k] * v0) + lon_map[2, q, h, k] * a0
    # The limits on min and max as tests of every sample: max(z) <= hi iff every z <= hi, NaN
    # failing both. An emergency reads a min or max that a NaN would make NaN (and the comparison
    # false): it needs a sample beyond the comfort limit and no NaN.
    accel_hi, decel_lo, jerk_hi = max_accel_mps2 + 1e-9, -max_decel_mps2 - 1e-9, max_jerk_mps3 + 1e-9
    comfort_lo, comfort_jerk_hi = -comfort_decel_mps2 - 0.1, comfort_jerk_mps3 + 1e-6
    v_hi = v_max_mps + 0.05
    for r in range(n_rows):
        for h in range(n_t):
            x_row, v_row, a_row = xva[0, r, h], xva[1, r, h], xva[2, r, h]
            if r < n_v:
                v_end = v0 + levels_mps2[r] * horizons_s[h]
                v_end = v_end if (v_end > 0.0 or v_end != v_end) else 0.0  # np.maximum(., 0.0)
                v_end = v_end if (v_end < v_max_mps or v_end != v_end) else v_max_mps  # np.minimum(., v_max)
                for k in range(n_k):
                    x_row[k] = (v_end * lon_map[3, 0, h, k] + 0.0) + base[0, h, k]
                    v_row[k] = (v_end * lon_map[3, 1, h, k] + 0.0) + base[1, h, k]
                    a_row[k] = (v_end * lon_map[3, 2, h, k] + 0.0) + base[2, h, k]
                    jerk[k] = (v_end * lon_map[3, 3, h, k] + 0.0) + base[3, h, k]
            else:
                j = r - n_v
                for k in range(n_k):
                    x_row[k] = ref_s_m[j, k] + s0
                    v_row[k] = ref_v_mps[j, k]
                    a_row[k] = ref_a_mps2[j, k]
                for k in range(n_k - 1):
                    jerk[k] = (ref_a_mps2[j, k + 1] - ref_a_mps2[j, k]) / dt_s
                jerk[n_k - 1] = jerk[n_k - 2]
            within = True
            a_nan, j_nan, a_beyond, j_beyond = False, False, False, False
            for k in range(n_k):
                v, a, jk = v_row[k], a_row[k], jerk[k]
                within &= ((a <= accel_hi) & (a >= decel_lo) & (jk <= jerk_hi) & (-jk <= jerk_hi)
                           & (v >= -0.05) & (v <= v_hi))
                a_nan |= a != a
                j_nan |= jk != jk
                a_beyond |= a < comfort_lo
                j_beyond |= (jk > comfort_jerk_hi) | (-jk > comfort_jerk_hi)
            ok[r, h] = within
            emerg = (a_beyond and not a_nan) or (j_beyond and not j_nan)
            emergency[r, h] = emerg
            jj, vv[r * n_t + h] = sum_sq_pair(jerk, v_row)
            cost[r, h] = w_lon_jerk * (jj * dt_s) + emergency_cost * (1.0 if emerg else 0.0)


@kernel("void(boolean[:, ::1], float64[:, :, :], float64[::1], float64, boolean[:, :, ::1])")
def slot_speed_ok_into(lon_ok, lon_v, lane_caps_mps, v0_mps, out):
    """``lon_ok`` (n_v + 3, n_T) per target lane slot into ``out`` (3, n_v + 3, n_T): a profile may not exceed
    max(the slot's cap, v0) + 0.05 (longitudinal_family_terms' tolerance) in that lane. As the numpy
    form lon_ok[None] & (lon_v.max(axis=2)[None] <= np.maximum(lane_caps, v0)[:, None, None] + 0.05):
    a NaN speed makes the maximum NaN and fails the test, a NaN cap too."""
    n_rows, n_t, n_k = lon_v.shape
    v_hi = np.empty(3)
    for j in range(3):
        cap = lane_caps_mps[j]
        v_hi[j] = (cap if (cap > v0_mps or cap != cap) else v0_mps) + 0.05
    for r in range(n_rows):
        for h in range(n_t):
            top = lon_v[r, h, 0]
            for k in range(1, n_k):
                if top != top:
                    break
                v = lon_v[r, h, k]
                if v > top or v != v:
                    top = v
            for j in range(3):
                out[j, r, h] = lon_ok[r, h] and top <= v_hi[j]


@kernel("Tuple((float64[::1], int64[::1]))(float64[:, :, :, ::1], float64[::1], int64[::1], float64[::1],"
        " int64[::1], int64, boolean[::1], float64[:, :], float64[::1], float64[::1], boolean, boolean[:, :, ::1],"
        " float64[:, ::1], float64[::1], float64[:, ::1], float64, float64[::1], float64, float64, float64, float64,"
        " float64, float64, float64, float64, float64, float64)")
def candidate_bounds(lat_xvaj, d_targets_m, lane_slot, offsets_m, lanes, committed_lane, lane_valid, ref_v_mps,
                     previous_d_m, previous_weight, use_previous, lon_ok, lon_cost, lon_vv, lon_v_ref_dot, dt_s,
                     lane_caps_mps, max_lat_accel_mps2, road_half_width_m, ego_half_width_m, w_lat_jerk, w_lat_dev,
                     w_offset, lane_change_cost, w_progress, w_consistency, w_speed):
    """Every candidate's lower bound (n_d * (n_v + 3) * n_T,) flat in (lateral target, longitudinal
    row, horizon) order, inf where infeasible, and the finite ones' indices in order of the bound
    (stable: ties by index), as ``np.argsort(bound, kind="stable")[:n_finite]``.

    Lateral (n_d, n_T): feasible where the ego body stays on the road, the lateral acceleration
    within limits and the target's lane slot (``lane_slot``, into ``lanes`` and ``lane_valid``)
    valid; cost w_lat_jerk int j^2 + w_lat_dev int (d - target)^2, plus the offset and lane-change
    cost (against ``committed_lane``), the lane's progress cost (its roll-out ``ref_v_mps`` (3, K)
    below its slot's cap ``lane_caps_mps`` (3,), in reference-line rates) and, if ``use_previous``,
    w_consistency int ((d - previous_d_m) previous_weight)^2.
    Longitudinal (n_v + 3, n_T): ``lon_cost``, ``lon_vv`` from ``longitudinal_family_terms``,
    ``lon_ok`` (3, n_v + 3, n_T) its feasibility per target lane slot (under each slot's cap), and
    ``lon_v_ref_dot`` ((n_v + 3) * n_T, 3) = v @ ref_v_mps.T;
    the speed error against lane j's roll-out is w_speed dt max(v.v - 2 v.ref_j + ref_j.ref_j, 0).
    The last three rows, the lanes' own roll-outs, pair only with targets in their lane."""
    _, n_d, n_t, n_k = lat_xvaj.shape
    n_rows = lon_ok.shape[1]
    n_q = n_rows - 3
    n_o = offsets_m.shape[0]
    scratch = np.empty(n_k)
    # Per lane slot: the progress cost and ref.ref.
    progress = np.empty(3)
    ref_ref = np.empty(3)
    for j in range(3):
        for k in range(n_k):
            short = lane_caps_mps[j] - ref_v_mps[j, k]
            scratch[k] = short if (short > 0.0 or short != short) else 0.0  # np.maximum(., 0.0)
        progress[j] = w_progress * (sum_sq(scratch) * dt_s)
        for k in range(n_k):
            scratch[k] = ref_v_mps[j, k]
        ref_ref[j] = sum_sq(scratch)
    lat_ok = np.empty((n_d, n_t), np.bool_)
    lat_cost = np.empty((n_d, n_t))
    x_hi, a_hi = road_half_width_m + 1e-9, max_lat_accel_mps2
    for i in range(n_d):
        slot = lane_slot[i]
        o = offsets_m[i % n_o]
        target_cost = w_offset * (o * o) + lane_change_cost * (1.0 if lanes[slot] != committed_lane else 0.0)
        for h in range(n_t):
            x_row, a_row = lat_xvaj[0, i, h], lat_xvaj[2, i, h]
            x_lo, x_top, a_lo, a_top = x_row[0], x_row[0], a_row[0], a_row[0]
            x_nan, a_nan = False, False
            for k in range(n_k):
                x, a = x_row[k], a_row[k]
                x_nan |= x != x
                a_nan |= a != a
                x_lo = x if x < x_lo else x_lo
                x_top = x if x > x_top else x_top
                a_lo = a if a < a_lo else a_lo
                a_top = a if a > a_top else a_top
            x_abs = x_top if x_top > -x_lo else -x_lo
            a_abs = a_top if a_top > -a_lo else -a_lo
            lat_ok[i, h] = (not x_nan and x_abs + ego_half_width_m <= x_hi and not a_nan and a_abs <= a_hi
                            and lane_valid[slot])
            for k in range(n_k):
                scratch[k] = x_row[k] - d_targets_m[i]
            c = w_lat_jerk * (sum_sq(lat_xvaj[3, i, h]) * dt_s) + w_lat_dev * (sum_sq(scratch) * dt_s)
            c += target_cost
            c += progress[slot]
            if use_previous:
                for k in range(n_k):
                    scratch[k] = (x_row[k] - previous_d_m[k]) * previous_weight[k]
                c += w_consistency * (sum_sq(scratch) * dt_s)
            lat_cost[i, h] = c
    speed_weight = w_speed * dt_s
    n_cand = n_d * n_rows * n_t
    bound = np.empty(n_cand)
    n_finite = 0
    for i in range(n_d):
        slot = lane_slot[i]
        for r in range(n_rows):
            for h in range(n_t):
                m = r * n_t + h
                err = (lon_vv[m] - 2.0 * lon_v_ref_dot[m, slot]) + ref_ref[slot]
                err = err if (err > 0.0 or err != err) else 0.0  # np.maximum(., 0.0)
                b = (lat_cost[i, h] + lon_cost[r, h]) + speed_weight * err
                feasible = lat_ok[i, h] and lon_ok[slot, r, h] and (r < n_q or r - n_q == slot)
                b = b if feasible else np.inf
                bound[(i * n_rows + r) * n_t + h] = b
                if np.isfinite(b):
                    n_finite += 1
    # Stable order of the finite bounds (costs are sums of non-negative terms: no -inf, and NaN
    # and inf sort after every finite value in numpy's order too).
    finite_index = np.empty(n_finite, np.int64)
    n = 0
    for c in range(n_cand):
        if np.isfinite(bound[c]):
            finite_index[n] = c
            n += 1
    # Bottom-up merge sort of the indices by bound, the left run first among equals (stable);
    # written out because numba's argsort(kind="mergesort") takes seconds to compile.
    order, other = finite_index, np.empty(n_finite, np.int64)
    width = 1
    while width < n_finite:
        for lo in range(0, n_finite, 2 * width):
            mid, hi = min(lo + width, n_finite), min(lo + 2 * width, n_finite)
            a, b = lo, mid
            for out in range(lo, hi):
                if a < mid and (b >= hi or not bound[order[b]] < bound[order[a]]):
                    other[out] = order[a]
                    a += 1
                else:
                    other[out] = order[b]
                    b += 1
        order, other = other, order
        width *= 2
    return bound, order
