"""The coupled terms of one batch of lattice candidates, compiled (core/jit.py): collision against
the inflated predictions, path curvature limits, and the longitudinal proximity weights.

The anytime search (planning/lattice.py) visits candidates in order of their lower bound; for each
batch these terms were about fifteen numpy calls on (B, N, K) arrays of a few thousand elements,
where the per-call cost exceeded the arithmetic. The kernel does the same operations in the same
order (float32 where they used float32), so its results are those bits; the numpy form lives on as
the reference in tests/planning/test_planner_kernels.py. ``search_batch`` runs one whole batch of
the search (indices, coupled terms, the proximity sum as numpy's float32 einsum, the RSS rule) in
one call.
"""
from __future__ import annotations

import numpy as np

from core.jit import kernel
from planning.lattice_obstacles import rss_unsafe


@kernel("Tuple((float32[:, :, ::1], boolean[::1]))(int64[::1], int64[::1], float64[:, :], float64[:, :],"
        " float64[:, :], float64[:, :], boolean[:, :, ::1], float32[:, ::1], float32[:, ::1], float64, float64,"
        " float64, float64)")
def batch_terms(lon_row, lat_row, lon_x_rows, lon_v_rows, lat_a_rows, road_curvature_1pm, lat_overlap_rows,
                s_obj_rel, inv_half_l, s_ref_m, rear_axle_to_center_m, max_curvature_1pm,
                max_lat_accel_mps2):
    """For B candidates, each a longitudinal row ``lon_row`` of the (rows, K) profile arrays and a
    lateral row ``lat_row`` of the (rows, ...) lateral arrays: the proximity weights along s
    (B, N, K) float32 and whether the candidate is feasible (B,): it collides with no object at
    any step, and wherever the ego is faster than 2 m/s its path curvature (lateral acceleration
    over v^2, plus the road's, ``road_curvature_1pm`` (B, K), or (0, K) on a straight road) keeps
    under ``max_curvature_1pm`` and v^2 |curvature| under ``max_lat_accel_mps2``.

    Along s, per object and step, r = (s_ego_centre - s_ref - s_obj_rel) / half_l in float32 (after
    removing s_ref, offsets below a few hundred metres keep millimetres): overlap is r^2 < 1 and the
    weight max(1 - r^2 / 4, 0), equal to the bit to max(1 - (r / 2)^2, 0) (scaling by a power of two
    is exact), so one square serves both. The weight reaches twice the collision distance along s
    (closing in); along d it stays within the collision corridor (obstacle_terms), so traffic in the
    next lane does not push the ego away. A candidate collides where the overlap along s meets the
    overlap along d (``lat_overlap_rows``) at one object and step."""
    n_b = lon_row.shape[0]
    n_obj, n_k = s_obj_rel.shape
    curved = road_curvature_1pm.shape[0] > 0
    lon_w = np.empty((n_b, n_obj, n_k), np.float32)
    feasible = np.empty(n_b, np.bool_)
    one, zero, quarter = np.float32(1.0), np.float32(0.0), np.float32(-0.25)
    for b in range(n_b):
        jv, jl = lon_row[b], lat_row[b]
        kin_ok = True
        for k in range(n_k):
            v = lon_v_rows[jv, k]
            v_floor = v if (v > 2.0 or v != v) else 2.0  # np.maximum(v, 2.0): NaN stays NaN
            curv = lat_a_rows[jl, k] / (v_floor * v_floor)
            if curved:
                curv += road_curvature_1pm[b, k]
            abs_curv = abs(curv)
            if v > 2.0 and (abs_curv > max_curvature_1pm or v * v * abs_curv > max_lat_accel_mps2):
                kin_ok = False  # lateral motion at walking pace is the controller's business
        collide = False
        for n in range(n_obj):
            for k in range(n_k):
                s_rel = np.float32((lon_x_rows[jv, k] + rear_axle_to_center_m) - s_ref_m)
                r = (s_rel - s_obj_rel[n, k]) * inv_half_l[n, k]
                r2 = r * r
                if r2 < one and lat_overlap_rows[jl, n, k]:
                    collide = True
                w = r2 * quarter + one
                lon_w[b, n, k] = zero if w < zero else w  # NaN stays NaN, as np.maximum
        feasible[b] = kin_ok and not collide
    return lon_w, feasible


@kernel("int64(float64[::1], boolean[::1], float64[:, ::1], float64[:, ::1], boolean[:, :, ::1], int64[::1],"
        " float32[:, ::1], float32[:, ::1], float64, float64, float64, float64, float64)")
def best_rss_safe(total, changes_lane, s_b, v_b, lat_overlap_rows, lat_row, stop_rel, rear_rel, s_ref_m,
                  front_offset_m, reaction_s, ego_brake_mps2, best_cost):
    """Index in the batch of the least ``total`` (first of equals) below ``best_cost`` among the
    candidates that pass the RSS rule (``rss_unsafe``), which only lane changes (``changes_lane``)
    must; -1 if none. Checked lazily, best first: usually the first candidate settles it, and the
    rule for the whole batch would cost more than the rest of the batch. A NaN total ends the
    search as numpy's argmin, which returns the first NaN, did. ``total`` is consumed."""
    while True:
        i = 0
        for j in range(1, total.shape[0]):
            if np.isnan(total[i]):
                break
            if total[j] < total[i] or np.isnan(total[j]):
                i = j
        if not total[i] < best_cost:
            return -1
        if changes_lane[i]:
            s_front = s_b[i] + front_offset_m
            if rss_unsafe(s_front, v_b[i], lat_overlap_rows[lat_row[i]], stop_rel, rear_rel, s_ref_m,
                          reaction_s, ego_brake_mps2):
                total[i] = np.inf
                continue
        return i


@kernel("float32(float32[::1], float32[::1])")
def sum_products_f32(x, y):
    """``np.einsum("k,k->", x, y)`` for float32 to the bit, as numpy's einsum reduces ("bnk,bnk->b"
    too, per b over its contiguous n, k): four float32 lanes (x86-64-v2 baseline, no fused
    multiply-add) accumulate blocks of sixteen, lane l taking elements i + 12 + l, i + 8 + l,
    i + 4 + l, i + l in that order; the tail four at a time, zero-padded; then the lanes by
    horizontal adds, (l0 + l1) + (l2 + l3), added to the zero output. Checked against einsum in
    tests/planning/test_planner_kernels.py."""
    n = x.shape[0]
    zero = np.float32(0.0)
    l0, l1, l2, l3 = zero, zero, zero, zero
    i = 0
    while n - i >= 16:
        l0 = x[i + 12] * y[i + 12] + l0
        l1 = x[i + 13] * y[i + 13] + l1
        l2 = x[i + 14] * y[i + 14] + l2
        l3 = x[i + 15] * y[i + 15] + l3
        l0 = x[i + 8] * y[i + 8] + l0
        l1 = x[i + 9] * y[i + 9] + l1
        l2 = x[i + 10] * y[i + 10] + l2
        l3 = x[i + 11] * y[i + 11] + l3
        l0 = x[i + 4] * y[i + 4] + l0
        l1 = x[i + 5] * y[i + 5] + l1
        l2 = x[i + 6] * y[i + 6] + l2
        l3 = x[i + 7] * y[i + 7] + l3
        l0 = x[i] * y[i] + l0
        l1 = x[i + 1] * y[i + 1] + l1
        l2 = x[i + 2] * y[i + 2] + l2
        l3 = x[i + 3] * y[i + 3] + l3
        i += 16
    while i < n:
        l0 = x[i] * y[i] + l0
        l1 = (x[i + 1] * y[i + 1] if i + 1 < n else zero * zero) + l1
        l2 = (x[i + 2] * y[i + 2] if i + 2 < n else zero * zero) + l2
        l3 = (x[i + 3] * y[i + 3] if i + 3 < n else zero * zero) + l3
        i += 4
    return zero + ((l0 + l1) + (l2 + l3))


@kernel("Tuple((int64, float64))(int64[::1], int64, int64, float64[:, :], float64[:, :], float64[:, :], boolean,"
        " float64[::1], float64, float64, boolean[:, :, ::1], float32[:, :, ::1], float32[:, ::1], float32[:, ::1],"
        " float64, float64, float64, float64, float64[::1], float64, float64, int64[::1], float32[:, ::1],"
        " float32[:, ::1], float64, float64, float64, float64)")
def search_batch(candidates, n_lon_rows, n_t, lon_x_rows, lon_v_rows, lat_a_rows, straight_road, road_curvature_1pm,
                 road_length_m, road_samples_per_m, lat_overlap_rows, lat_w_rows, s_obj_rel, inv_half_l, s_ref_m,
                 rear_axle_to_center_m, max_curvature_1pm, max_lat_accel_mps2, bound, w_proximity, dt_s, lane_slot,
                 stop_rel, rear_rel, front_offset_m, rss_reaction_s, rss_ego_brake_mps2, best_cost):
    """One batch of the anytime search (planning/lattice.py), the flat candidate indices
    ``candidates`` (B,): the best candidate below ``best_cost`` that is feasible (``batch_terms``)
    and passes the RSS rule if it changes lanes (``best_rss_safe``), as (its index, its cost), or
    (-1, inf). Its cost is the bound plus the proximity cost, w_proximity * (sum of the lateral
    times the longitudinal weights) * dt in float32 as numpy computed it (einsum's float32 sum,
    ``sum_products_f32``; a Python float times a float32 array is float32), added to the float64
    bound. Candidate c = il * n_lon_rows + jv: longitudinal row jv, lateral row il * n_t + jv % n_t.
    The road's curvature under the visited profiles (curved roads only) is track_frenet.curvature_at's
    lookup: s clamped to the road as np.minimum(np.maximum(.)), the sample index truncated (NaN:
    0, as numpy's cast and clamp give) and clamped. The Python loop over batches (and the deadline
    between them) stays with the caller: one call per batch instead of a dozen numpy calls."""
    n_b = candidates.shape[0]
    n_k = lon_x_rows.shape[1]
    n_obj = s_obj_rel.shape[0]
    jv = np.empty(n_b, np.int64)
    jl = np.empty(n_b, np.int64)
    changes_lane = np.empty(n_b, np.bool_)
    s_b = np.empty((n_b, n_k))
    v_b = np.empty((n_b, n_k))
    for b in range(n_b):
        il = candidates[b] // n_lon_rows
        jv[b] = candidates[b] % n_lon_rows
        jl[b] = il * n_t + jv[b] % n_t
        changes_lane[b] = lane_slot[il] != 1
        for k in range(n_k):
            s_b[b, k] = lon_x_rows[jv[b], k]
            v_b[b, k] = lon_v_rows[jv[b], k]
    if straight_road:
        curvature = np.zeros((0, n_k))
    else:
        curvature = np.empty((n_b, n_k))
        last = road_curvature_1pm.shape[0] - 2
        for b in range(n_b):
            for k in range(n_k):
                s = s_b[b, k]
                s = s if (s > 0.0 or s != s) else 0.0
                s = s if (s < road_length_m or s != s) else road_length_m
                x = s * road_samples_per_m
                i = 0 if x != x else np.int64(x)
                i = 0 if i < 0 else (last if i > last else i)
                curvature[b, k] = road_curvature_1pm[i]
    lon_w, feasible = batch_terms(jv, jl, lon_x_rows, lon_v_rows, lat_a_rows, curvature, lat_overlap_rows, s_obj_rel,
                                  inv_half_l, s_ref_m, rear_axle_to_center_m, max_curvature_1pm, max_lat_accel_mps2)
    total = np.empty(n_b)
    dt32, w32 = np.float32(dt_s), np.float32(w_proximity)
    for b in range(n_b):
        prox = sum_products_f32(lat_w_rows[jl[b]].reshape(n_obj * n_k), lon_w[b].reshape(n_obj * n_k)) * dt32
        total[b] = bound[candidates[b]] + np.float64(w32 * prox) if feasible[b] else np.inf
    i = best_rss_safe(total, changes_lane, s_b, v_b, lat_overlap_rows, jl, stop_rel, rear_rel, s_ref_m, front_offset_m,
                      rss_reaction_s, rss_ego_brake_mps2, best_cost)
    if i < 0:
        return -1, np.inf
    return candidates[i], total[i]
