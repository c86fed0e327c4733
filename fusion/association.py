"""Gating and global nearest-neighbour assignment of detections to tracks.

Gating uses the squared Mahalanobis distance of the position innovation against the chi-square
quantile with 2 degrees of freedom. The assignment cost is the negative log-likelihood up to a
constant, d^2 + ln det S, so a track with a broad covariance does not win a detection merely because
its Mahalanobis distance is small.
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
    det_in_any_gate: np.ndarray  # (M,) bool: a detection near some track, even if unmatched
    d2: np.ndarray  # (N, M) squared Mahalanobis distances, inf outside the gate


def associate(x: np.ndarray, p: np.ndarray, z_xy: np.ndarray, r_xy: np.ndarray,
              gate_d2: float) -> Association:
    """Match N predicted tracks (x (N, 4), p (N, 4, 4)) to M positions z_xy (M, 2), r_xy (M, 2, 2)."""
    n, m = x.shape[0], z_xy.shape[0]
    if n == 0 or m == 0:
        empty = np.zeros(0, np.int64)
        return Association(empty, empty, np.zeros(m, bool), np.full((n, m), np.inf))
    y0 = z_xy[None, :, 0] - x[:, None, 0]  # (N, M)
    y1 = z_xy[None, :, 1] - x[:, None, 1]
    # Coarse gate: d^2 >= |y|^2 / lambda_max(S) >= |y|^2 / trace(S), so pairs failing
    # |y|^2 <= gate * trace(S) cannot pass; exact 2x2 algebra runs on the few that remain.
    trace = (p[:, 0, 0] + p[:, 1, 1])[:, None] + (r_xy[:, 0, 0] + r_xy[:, 1, 1])[None, :]
    ii, jj = np.nonzero(y0 * y0 + y1 * y1 <= gate_d2 * trace)
    a = p[ii, 0, 0] + r_xy[jj, 0, 0]
    b = p[ii, 0, 1] + r_xy[jj, 0, 1]
    d = p[ii, 1, 1] + r_xy[jj, 1, 1]
    e0, e1 = y0[ii, jj], y1[ii, jj]
    det = a * d - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        d2_c = (d * e0 * e0 - 2.0 * b * e0 * e1 + a * e1 * e1) / det
    ok = np.isfinite(d2_c) & (det > 0.0) & (d2_c <= gate_d2)
    ii, jj, d2_c, det = ii[ok], jj[ok], d2_c[ok], det[ok]
    d2 = np.full((n, m), np.inf)
    d2[ii, jj] = d2_c
    gated = np.zeros((n, m), bool)
    gated[ii, jj] = True
    cost = np.full((n, m), _FORBIDDEN)
    cost[ii, jj] = d2_c + np.log(det)
    rows, cols = linear_sum_assignment(cost)
    keep = gated[rows, cols]
    return Association(rows[keep].astype(np.int64), cols[keep].astype(np.int64),
                       gated.any(axis=0), d2)
