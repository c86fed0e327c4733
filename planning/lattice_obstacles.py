"""Obstacle terms of the lattice, separable per axis.

In the Frenet frame an ego box and an object box overlap when they overlap both along s and along
d. Overlap along d depends only on the lateral profile, along s only on the longitudinal one, so each
is computed once per family as a bitmask over objects (bit n: overlaps object n at that time step);
a candidate collides iff (lateral bits & longitudinal bits) != 0 at some step. The proximity cost
uses the same factorisation with smooth Gaussian weights. Boxes are inflated by the prediction's
growing sigma. Ego extent is measured from its box centre (rear axle + rear_axle_to_center).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.prediction import Prediction

MAX_OBJECTS = 64  # bound on the per-step work; the runtime's fusion rarely tracks more nearby


@dataclass(frozen=True, slots=True)
class ObstacleTerms:
    lat_bits: np.ndarray  # (n_d, n_T, K, ceil(N / 8)) uint8: bit n set where object n overlaps in d
    lon_bits: np.ndarray  # (n_v, n_T, K, ceil(N / 8)) uint8: same along s
    lat_w: np.ndarray  # (n_d, n_T, K, N) float32 proximity weights in [0, 1]
    lon_w: np.ndarray  # (n_v, n_T, K, N) float32


def _bump(ratio: np.ndarray) -> np.ndarray:
    """Compact quadratic bump 1 - r^2 on |r| < 1: a cheap stand-in for a Gaussian (no exp)."""
    return np.maximum(1.0 - ratio * ratio, 0.0)


def obstacle_terms(pred: Prediction, lat_d: np.ndarray, lon_s_center: np.ndarray, ego_length_m: float,
                   ego_width_m: float, inflation_sigmas: float, lat_margin_m: float, lon_margin_m: float,
                   ignore: np.ndarray) -> ObstacleTerms:
    """``lat_d`` (n_d, n_T, K) ego lateral offsets; ``lon_s_center`` (n_v, n_T, K) ego box-centre arc
    lengths; ``ignore`` (N,) objects excluded (followers in the ego's own lane)."""
    keep = ~ignore
    half_w = (0.5 * (ego_width_m + pred.width_m)[:, None] + inflation_sigmas * pred.sigma_d_m + lat_margin_m)[keep]
    half_l = (0.5 * (ego_length_m + pred.length_m)[:, None] + inflation_sigmas * pred.sigma_s_m + lon_margin_m)[keep]
    # float32: margins are decimetres, arc lengths below 10 km, so single precision is ample. Arc
    # lengths are made relative to the first object sample before the cast to keep their precision.
    s_ref = float(pred.s_m[keep, 0].min()) if keep.any() else 0.0
    rd = (lat_d[..., None] - pred.d_m[keep].T).astype(np.float32)
    rd *= (1.0 / half_w.T).astype(np.float32)
    rs = (lon_s_center - s_ref).astype(np.float32)[..., None] - (pred.s_m[keep].T - s_ref).astype(np.float32)
    rs *= (1.0 / half_l.T).astype(np.float32)
    lat_bits = np.packbits(np.abs(rd) < 1.0, axis=-1, bitorder="little")
    lon_bits = np.packbits(np.abs(rs) < 1.0, axis=-1, bitorder="little")
    # Proximity reaches twice the collision distance on both axes (closing in; driving alongside).
    return ObstacleTerms(lat_bits, lon_bits, _bump(0.5 * rd), _bump(0.5 * rs))


def followers_in_lane(pred: Prediction, s_center0_m: float, d0_m: float, ego_length_m: float,
                      ego_width_m: float) -> np.ndarray:
    """Objects entirely behind the ego and laterally overlapping it now: their collisions are not the
    ego's to avoid by braking (that would make them worse), so the planner ignores them."""
    if len(pred) == 0:
        return np.zeros(0, bool)
    behind = pred.s_m[:, 0] + 0.5 * pred.length_m < s_center0_m - 0.5 * ego_length_m
    beside = np.abs(pred.d_m[:, 0] - d0_m) < 0.5 * (ego_width_m + pred.width_m)
    return behind & beside
