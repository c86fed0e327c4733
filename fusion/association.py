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

from fusion.kalman import inv_sym2

# Cost that stands in for "not allowed" in the assignment matrix: large against any gated cost
# (a gate at p = 0.999999 is d^2 ~ 28) yet finite, as linear_sum_assignment requires.
_FORBIDDEN = 1e9


def gate_threshold(probability: float, dof: int = 2) -> float:
    return float(chi2.ppf(probability, dof))


@dataclass(frozen=True, slots=True)
class Association:
    track_idx: np.ndarray  # (K,) int64 matched tracks
    det_idx: np.ndarray  # (K,) int64 matched detections, row-aligned with track_idx
    det_in_any_gate: np.ndarray  # (M,) bool: a detection near some track, even if unmatched
    d2: np.ndarray  # (N, M) squared Mahalanobis distances (inf where not finite)


def associate(x: np.ndarray, p: np.ndarray, z_xy: np.ndarray, r_xy: np.ndarray,
              gate_d2: float) -> Association:
    """Match N predicted tracks (x (N, 4), p (N, 4, 4)) to M positions z_xy (M, 2), r_xy (M, 2, 2)."""
    n, m = x.shape[0], z_xy.shape[0]
    if n == 0 or m == 0:
        empty = np.zeros(0, np.int64)
        return Association(empty, empty, np.zeros(m, bool), np.full((n, m), np.inf))
    s = p[:, None, :2, :2] + r_xy[None, :, :, :]  # (N, M, 2, 2)
    s_inv, det = inv_sym2(s)
    y = z_xy[None, :, :] - x[:, None, :2]  # (N, M, 2)
    d2 = np.einsum("nmi,nmij,nmj->nm", y, s_inv, y)
    ok = np.isfinite(d2) & (det > 0.0)
    d2 = np.where(ok, d2, np.inf)
    gated = d2 <= gate_d2
    cost = np.where(gated, d2 + np.log(np.where(ok, det, 1.0)), _FORBIDDEN)
    rows, cols = linear_sum_assignment(cost)
    keep = gated[rows, cols]
    return Association(rows[keep].astype(np.int64), cols[keep].astype(np.int64),
                       gated.any(axis=0), d2)
