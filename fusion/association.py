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

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import chi2


# Cost that stands in for "not allowed" in the assignment matrix: large against any gated cost
# (a gate at p = 0.999999 is d^2 ~ 28) yet finite, as linear_sum_assignment requires.
_FORBIDDEN = 1e9


def gate_threshold(probability: float, dof: int = 2) -> float:
    """Chi-square quantile; closed form -2 ln(1 - p) for the 2-dof position gate (the hot path)."""
    if dof == 2:
        return float(-2.0 * np.log1p(-probability))
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


def associate(x: np.ndarray, p: np.ndarray, z_xy: np.ndarray, r_xy: np.ndarray,
              gate_d2: float) -> Association:
    """Match N predicted tracks (x (N, >=2), p (N, >=2, >=2)) to M positions z_xy (M, 2), r_xy (M, 2, 2)."""
    n, m = x.shape[0], z_xy.shape[0]
    if n == 0 or m == 0:
        return _empty(m)
    # Coarse gate: d^2 >= |y|^2 / lambda_max(S) >= |y|^2 / trace(S), so pairs failing
    # |y|^2 <= gate * trace(S) cannot pass; exact 2x2 algebra runs on the few that remain.
    # That test is itself run only on pairs found by a sweep over x-sorted detections: a pair can
    # pass it only if |dx| <= sqrt(gate * (trace P_i + max_j trace R_j)), so each track sees the
    # detections within its own reach instead of all M (the dense N x M arrays cost more than
    # the whole rest of the association).
    p00, p01, p11 = p[:, 0, 0], p[:, 0, 1], p[:, 1, 1]
    r00, r01, r11 = r_xy[:, 0, 0], r_xy[:, 0, 1], r_xy[:, 1, 1]
    tr_p = p00 + p11
    tr_r = r00 + r11
    # fmax skips a NaN detection trace, which gates nothing anyway, instead of spreading it.
    reach2 = gate_d2 * (tr_p + np.fmax.reduce(tr_r))
    if reach2.min() >= 0.0:  # the rule: no NaN, nothing negative, so the root cannot warn
        reach = np.sqrt(reach2)
    else:
        with np.errstate(invalid="ignore"):  # a negative or NaN trace gives a NaN reach: no window
            reach = np.sqrt(reach2)
    # Contiguous (or plainly strided) component rows: gathers from 1-D rows cost a fraction of
    # gathers from 2-D arrays by mixed or multi-axis indices.
    tx, ty, zx_all, zy = x[:, 0], x[:, 1], z_xy[:, 0], z_xy[:, 1]
    order = zx_all.argsort(kind="stable")
    zx = zx_all[order]
    lo = zx.searchsorted(tx - reach, side="left")
    # Never negative: reach >= 0, and a NaN bound (sorted last) only meets another at the end.
    count = zx.searchsorted(tx + reach, side="right") - lo
    ii = np.arange(n).repeat(count)
    # Candidate k of track i is detection order[lo_i + k], k counting up within i's window.
    jj = order[np.arange(ii.shape[0]) + (lo - (count.cumsum() - count)).repeat(count)]
    e0 = zx_all[jj] - tx[ii]
    e1 = zy[jj] - ty[ii]
    coarse = (e0 * e0 + e1 * e1 <= gate_d2 * (tr_p[ii] + tr_r[jj])).nonzero()[0]
    if coarse.size == 0:
        return _empty(m)
    ii, jj, e0, e1 = ii[coarse], jj[coarse], e0[coarse], e1[coarse]
    a = p00[ii] + r00[jj]
    b = p01[ii] + r01[jj]
    d = p11[ii] + r11[jj]
    det = a * d - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = (d * e0 * e0 - 2.0 * b * e0 * e1 + a * e1 * e1) / det
    ok = (det > 0.0) & (d2 <= gate_d2)  # NaN compares False: a broken pair never gates
    ii, jj, d2 = ii[ok], jj[ok], d2[ok]
    row_count = np.bincount(ii, minlength=n)
    col_count = np.bincount(jj, minlength=m)
    # Every gated pair alone in its row and column (the rule in traffic): a count above 1
    # anywhere is what makes a pair contested.
    if ii.size == 0 or (row_count.max() <= 1 and col_count.max() <= 1):
        # ii and jj are fresh int64 index arrays already (np.repeat of arange, argsort's order).
        return Association(ii, jj, d2, col_count > 0, 0)
    det = det[ok]
    alone = (row_count[ii] == 1) & (col_count[jj] == 1)
    rest = ~alone
    rows, row_of = np.unique(ii[rest], return_inverse=True)
    cols, col_of = np.unique(jj[rest], return_inverse=True)
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
