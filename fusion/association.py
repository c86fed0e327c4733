"""Gating and global nearest-neighbour assignment of detections to tracks.

Gating uses the squared Mahalanobis distance of the position innovation against the chi-square
quantile with 2 degrees of freedom. The assignment cost is the negative log-likelihood up to a
constant, d^2 + ln det S, so a track with a broad covariance does not win a detection merely because
its Mahalanobis distance is small.

Only the gated pairs are ever materialised. A pair whose track gates no other detection and whose
detection falls in no other gate is a connected component of its own: its assignment is forced, so
it is taken directly. ``linear_sum_assignment`` solves only the sub-matrix of the contested rows and
columns, which in traffic is a handful of pairs rather than the full N x M matrix, and its optimum
equals the optimum of the full problem because components never share rows or columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2

from core.jit import kernel


# Cost that stands in for "not allowed" in the assignment matrix: large against any gated cost
# (a gate at p = 0.999999 is d^2 ~ 28) yet finite, as linear_sum_assignment requires.
_FORBIDDEN = 1e9


def gate_threshold(probability: float, dof: int = 2) -> float:
    """Chi-square quantile; closed form -2 ln(1 - p) for the 2-dof position gate (the hot path),
    with the C library's log1p (numpy's float64 log1p, on a scalar, without numpy's scalar path)."""
    if dof == 2:
        return -2.0 * math.log1p(-float(probability))
    return float(chi2.ppf(probability, dof))


@dataclass(frozen=True, slots=True)
class Association:
    track_idx: np.ndarray  # (K,) int64 matched tracks
    det_idx: np.ndarray  # (K,) int64 matched detections, row-aligned with track_idx
    d2: np.ndarray  # (K,) squared Mahalanobis distance of each match (its 2-dof position NIS)
    det_in_any_gate: np.ndarray  # (M,) bool: a detection near some track, even if unmatched
    n_contested: int  # gated pairs that needed the assignment solver


def _empty(m: int) -> Association:
    e = np.zeros(0, np.int64)
    return Association(e, e, np.zeros(0), np.zeros(m, bool), 0)


@kernel("boolean(float64, float64)")
def _sorts_before(a, b):
    """numpy's sort order (``npy_half``-style LT): a < b, with NaN after every number."""
    return a < b or (b != b and a == a)


@kernel("int64(float64[::1], float64, boolean)")
def _search_sorted(sorted_values, v, right):
    """``np.searchsorted(sorted_values, v, side)`` on values in numpy's sort order (NaN last):
    the first index whose value is not before v (left), or that v is before (right)."""
    lo, hi = 0, sorted_values.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if (_sorts_before(v, sorted_values[mid]) if right else
                not _sorts_before(sorted_values[mid], v)):
            hi = mid
        else:
            lo = mid + 1
    return lo


@kernel("Tuple((int64[::1], int64[::1], float64[::1], float64[::1], int64[::1], int64[::1], boolean))"
        "(float64[:, :], float64[:, :, :], float64[:, :], float64[:, :, :], int64[::1], float64)")
def _gated_pairs(x, p, z_xy, r_xy, order, gate_d2):
    """Track-detection pairs inside the position gate: (track i, detection j, d^2, det S) for each,
    in track order and, within a track, in x order of the detections; per-track and per-detection
    pair counts; and whether any pair shares its track or detection with another (contested).

    With S = P_xy + R_xy and y = z - x, d^2 = (S11 y0^2 - 2 S01 y0 y1 + S00 y1^2) / det S; a pair
    gates when det S > 0 and d^2 <= gate_d2 (a NaN never gates). Only candidates are examined:
    d^2 >= |y|^2 / lambda_max(S) >= |y|^2 / trace(S), so a pair failing |y|^2 <= gate trace(S)
    cannot pass, and that needs |dx| <= reach_i = sqrt(gate (trace P_i + max_j trace R_j)), a
    window of the detections sorted by x (``order``, numpy's stable argsort), found by binary
    search. The arithmetic is the numpy sweep's it replaced, operation for operation.
    """
    n, m = x.shape[0], z_xy.shape[0]
    zx = np.empty(m)
    tr_r = np.empty(m)
    tr_r_max = np.nan  # np.fmax.reduce: a NaN trace, which gates nothing, is skipped
    for k in range(m):
        zx[k] = z_xy[order[k], 0]
        tr_r[k] = r_xy[k, 0, 0] + r_xy[k, 1, 1]
        if tr_r_max != tr_r_max or tr_r[k] > tr_r_max:
            tr_r_max = tr_r[k]
    lo = np.empty(n, np.int64)
    count = np.empty(n, np.int64)
    total = 0
    for i in range(n):
        # A negative or NaN trace gives a NaN reach: its window is the NaN detections, none gate.
        reach = np.sqrt(gate_d2 * ((p[i, 0, 0] + p[i, 1, 1]) + tr_r_max))
        lo[i] = _search_sorted(zx, x[i, 0] - reach, False)
        count[i] = _search_sorted(zx, x[i, 0] + reach, True) - lo[i]
        total += max(count[i], 0)
    ii = np.empty(total, np.int64)
    jj = np.empty(total, np.int64)
    d2_out = np.empty(total)
    det_out = np.empty(total)
    row_count = np.zeros(n, np.int64)
    col_count = np.zeros(m, np.int64)
    k_out = 0
    for i in range(n):
        tx, ty = x[i, 0], x[i, 1]
        p00, p01, p11 = p[i, 0, 0], p[i, 0, 1], p[i, 1, 1]
        tr_p = p00 + p11
        for k in range(lo[i], lo[i] + count[i]):
            j = order[k]
            e0 = z_xy[j, 0] - tx
            e1 = z_xy[j, 1] - ty
            if not e0 * e0 + e1 * e1 <= gate_d2 * (tr_p + tr_r[j]):
                continue
            a = p00 + r_xy[j, 0, 0]
            b = p01 + r_xy[j, 0, 1]
            d = p11 + r_xy[j, 1, 1]
            det = a * d - b * b
            d2 = (d * e0 * e0 - 2.0 * b * e0 * e1 + a * e1 * e1) / det
            if det > 0.0 and d2 <= gate_d2:
                ii[k_out], jj[k_out], d2_out[k_out], det_out[k_out] = i, j, d2, det
                row_count[i] += 1
                col_count[j] += 1
                k_out += 1
    contested = False
    for k in range(k_out):
        contested |= row_count[ii[k]] > 1 or col_count[jj[k]] > 1
    return (ii[:k_out], jj[:k_out], d2_out[:k_out], det_out[:k_out], row_count, col_count,
            contested)


@kernel("Tuple((boolean[::1], int64[::1], int64[::1], int64[::1], int64[::1]))"
        "(int64[::1], int64[::1], int64[::1], int64[::1])")
def _contested(ii, jj, row_count, col_count):
    """The gated pairs that share a track or a detection with another pair: (alone (K,) per pair,
    whether it is in no conflict; the contested tracks and detections, each sorted ascending, as
    ``np.unique`` gives them; and for each contested pair, in pair order, its row in the first and
    its column in the second). ``ii`` is in track order (``_gated_pairs``)."""
    k_all = ii.shape[0]
    alone = np.empty(k_all, np.bool_)
    n_rest = 0
    row_at = np.full(row_count.shape[0], -1, np.int64)
    col_at = np.full(col_count.shape[0], -1, np.int64)
    n_rows = 0
    for k in range(k_all):
        alone[k] = row_count[ii[k]] == 1 and col_count[jj[k]] == 1
        if not alone[k]:
            n_rest += 1
            col_at[jj[k]] = 0
            if row_at[ii[k]] < 0:  # ii ascends: first seen is sorted
                row_at[ii[k]] = n_rows
                n_rows += 1
    rows = np.empty(n_rows, np.int64)
    for i in range(row_at.shape[0]):
        if row_at[i] >= 0:
            rows[row_at[i]] = i
    n_cols = 0
    for j in range(col_at.shape[0]):
        if col_at[j] == 0:
            col_at[j] = n_cols
            n_cols += 1
    cols = np.empty(n_cols, np.int64)
    for j in range(col_at.shape[0]):
        if col_at[j] >= 0:
            cols[col_at[j]] = j
    row_of = np.empty(n_rest, np.int64)
    col_of = np.empty(n_rest, np.int64)
    r = 0
    for k in range(k_all):
        if not alone[k]:
            row_of[r], col_of[r] = row_at[ii[k]], col_at[jj[k]]
            r += 1
    return alone, rows, cols, row_of, col_of


def associate(x: np.ndarray, p: np.ndarray, z_xy: np.ndarray, r_xy: np.ndarray,
              gate_d2: float) -> Association:
    """Match N predicted tracks (x (N, >=2), p (N, >=2, >=2)) to M positions z_xy (M, 2), r_xy (M, 2, 2)."""
    n, m = x.shape[0], z_xy.shape[0]
    if n == 0 or m == 0:
        return _empty(m)
    # argsort stays numpy's (stable, NaN last); the sweep and both gates are one compiled call.
    order = z_xy[:, 0].argsort(kind="stable")
    ii, jj, d2, det, row_count, col_count, contested = _gated_pairs(x, p, z_xy, r_xy, order, gate_d2)
    if not contested:
        # ii and jj are fresh int64 index arrays; every gated pair alone in its row and column.
        return Association(ii, jj, d2, col_count > 0, 0)
    alone, rows, cols, row_of, col_of = _contested(ii, jj, row_count, col_count)
    rest = ~alone
    cost = np.full((rows.size, cols.size), _FORBIDDEN)
    cost[row_of, col_of] = d2[rest] + np.log(det[rest])
    d2_sub = np.full((rows.size, cols.size), np.inf)
    d2_sub[row_of, col_of] = d2[rest]
    r, c = linear_sum_assignment(cost)
    keep = cost[r, c] < _FORBIDDEN
    r, c = r[keep], c[keep]
    return Association(np.concatenate([ii[alone], rows[r]]).astype(np.int64),
                       np.concatenate([jj[alone], cols[c]]).astype(np.int64),
                       np.concatenate([d2[alone], d2_sub[r, c]]), col_count > 0, int(rest.sum()))
