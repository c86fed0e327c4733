"""The coupled terms of one batch of lattice candidates, compiled (core/jit.py): collision against
the inflated predictions, path curvature limits, and the longitudinal proximity weights.

The anytime search (planning/lattice.py) visits candidates in order of their lower bound; for each
batch these terms were about fifteen numpy calls on (B, N, K) arrays of a few thousand elements,
where the per-call cost exceeded the arithmetic. The kernel does the same operations in the same
order (float32 where they used float32), so its results are those bits; the numpy form lives on as
the reference in tests/planning/test_planner_kernels.py.
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
