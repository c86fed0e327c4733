"""Obstacle terms of the lattice, factored per axis.

In the Frenet frame an ego box and an object box overlap when they overlap both along s and along
d. Overlap along d depends only on the lateral profile, so it is computed once for the whole lateral
family (small: targets x horizons); overlap along s is computed per batch of candidates, only for the
longitudinal profiles the anytime search actually visits. A candidate collides iff both overlap for
some object at some step. The proximity cost uses the same factorisation with smooth weights. Boxes
are inflated by the prediction's growing sigma; the ego extent is measured from its box centre.
Arrays keep time innermost, (..., N, K): numpy pays a fixed cost per pass over the innermost axis,
and K (51 steps) is long where N (a handful of objects) is not: the per-batch terms ran ~25% faster
than with objects innermost.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.jit import kernel
from core.records import fast_frozen_init
from planning.prediction import Prediction

MAX_OBJECTS = 64  # bound on the per-step work: the nearest objects only, the rest counted
RSS_TOLERANCE_M = 0.01  # float32 rounding of the RSS shortfall, far below any physical margin


@fast_frozen_init  # built every plan (core/records.py)
@dataclass(frozen=True, slots=True)
class ObstacleTerms:
    lat_overlap: np.ndarray  # (n_d, n_T, N, K) bool
    lat_w: np.ndarray  # (n_d, n_T, N, K) float32 proximity weights in [0, 1]
    s_obj_rel: np.ndarray  # (N, K) float32 object arc length minus s_ref
    inv_half_l: np.ndarray  # (N, K) float32 1 / inflated half extent along s
    # (N, K) float32, minus s_ref: where the object's rear would come to rest if it braked now at the
    # assumed worst-case deceleration (RSS, Shalev-Shwartz et al. 2017)
    stop_rel: np.ndarray
    rear_rel: np.ndarray  # (N, K) float32 object rear arc length minus s_ref
    s_ref_m: float

    def unsafe_following(self, s_front_m: np.ndarray, v_mps: np.ndarray, lat_overlap: np.ndarray,
                         reaction_s: float, ego_brake_mps2: float) -> np.ndarray:
        """(B,) bool: the candidate makes the ego less safe behind an object ahead that it overlaps
        laterally (``lat_overlap`` (B, N, K)), by the RSS longitudinal rule: reacting after
        ``reaction_s`` and braking at ``ego_brake_mps2`` from the ego's front at ``s_front_m``
        (B, K) and speed ``v_mps`` (B, K), it must stop before the object's rear, had the object
        braked at its worst case from that step on. The rule binds only where the ego is safe from
        that object now (the first step): a lane change may not make a safe gap unsafe (accelerating
        past a lead that starts braking), while from an already unsafe gap, leaving the lane is an
        escape that the predicted-collision check judges."""
        # Fresh writable arrays: the compiled rule takes no read-only (e.g. broadcast) views.
        s_front_m = np.array(s_front_m, np.float64)
        v_mps = np.array(v_mps, np.float64)
        lat_overlap = np.array(lat_overlap, bool)
        unsafe = np.empty(s_front_m.shape[0], bool)
        for b in range(unsafe.shape[0]):  # B is one in the search (candidates are checked lazily)
            unsafe[b] = rss_unsafe(s_front_m[b], v_mps[b], lat_overlap[b], self.stop_rel, self.rear_rel,
                                   self.s_ref_m, reaction_s, ego_brake_mps2)
        return unsafe


@kernel("boolean(float64[:], float64[:], boolean[:, :], float32[:, ::1], float32[:, ::1], float64, float64, float64)")
def rss_unsafe(s_front_m, v_mps, lat_overlap, stop_rel, rear_rel, s_ref_m, reaction_s, ego_brake_mps2):
    """``ObstacleTerms.unsafe_following`` of one candidate: ego front ``s_front_m`` (K,), speed
    ``v_mps`` (K,), lateral overlap (N, K). The ego's stopping point, reacting and then braking,
    is taken in float32 relative to s_ref; it is worse than an object's (by more than the float32
    tolerance) at a step where the object is ahead of the ego's front and overlaps it laterally,
    while at the first step the ego stops short of that object."""
    n_obj, n_k = stop_rel.shape
    tolerance = np.float32(RSS_TOLERANCE_M)
    brake_factor = 0.5 / ego_brake_mps2
    ego_stop = np.empty(n_k, np.float32)
    front_rel = np.empty(n_k, np.float32)
    for k in range(n_k):
        rel = s_front_m[k] - s_ref_m
        v = v_mps[k]
        ego_stop[k] = np.float32(rel + v * reaction_s + v * v * brake_factor)
        front_rel[k] = np.float32(rel)
    for n in range(n_obj):
        if not ego_stop[0] - stop_rel[n, 0] <= 0.0:
            continue  # not safe from this object now: the rule does not bind
        for k in range(n_k):
            if (ego_stop[k] - stop_rel[n, k] > tolerance and front_rel[k] < rear_rel[n, k]
                    and lat_overlap[n, k]):
                return True
    return False


def obstacle_terms(pred: Prediction, lat_d: np.ndarray, ego_length_m: float, ego_width_m: float,
                   inflation_sigmas: float, lat_margin_m: float, lon_margin_m: float,
                   ignore: np.ndarray, object_brake_mps2: float = 8.0) -> ObstacleTerms:
    """``lat_d`` (n_d, n_T, K) ego lateral offsets; ``ignore`` (N,) objects excluded (followers in the
    ego's own lane); ``object_brake_mps2`` the worst-case braking assumed of an object ahead."""
    ignore = np.asarray(ignore, np.bool_)
    if ignore.shape != (pred.s_m.shape[0],):  # the kernel indexes it per object, unchecked
        raise ValueError(f"ignore has shape {ignore.shape}, the prediction {pred.s_m.shape[0]} objects")
    f64 = np.float64
    fields = (pred.d_m, pred.s_m, pred.sigma_d_m, pred.sigma_s_m, pred.width_m, pred.length_m, pred.t_s)
    if not (fields[0].dtype == f64 and fields[1].dtype == f64 and fields[2].dtype == f64 and fields[3].dtype == f64
            and fields[4].dtype == f64 and fields[5].dtype == f64 and fields[6].dtype == f64):
        fields = tuple(np.asarray(a, f64) for a in fields)
    lat_overlap, lat_w, along, s_ref = _obstacle_arrays(
        np.ascontiguousarray(lat_d, f64), *fields, ignore, float(ego_length_m),
        float(ego_width_m), float(inflation_sigmas), float(lat_margin_m), float(lon_margin_m),
        float(object_brake_mps2))
    return ObstacleTerms(lat_overlap, lat_w, along[0], along[1], along[2], along[3], s_ref)


# The prediction's arrays as they come (rows of one buffer, a test's broadcast columns, read-only).
_ROWS = "Array(float64, 2, 'A', readonly=True)"
_SIZES = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"Tuple((boolean[:, :, :, ::1], float32[:, :, :, ::1], float32[:, :, ::1], float64))(float64[:, :, ::1],"
        f" {_ROWS}, {_ROWS}, {_ROWS}, {_ROWS}, {_SIZES}, {_SIZES}, {_SIZES}, Array(boolean, 1, 'A', readonly=True),"
        " float64, float64, float64, float64, float64, float64)")
def _obstacle_arrays(lat_d, d_all, s_all, sig_d_all, sig_s_all, width_all, length_all, t_s, ignore, ego_length_m,
                     ego_width_m, inflation_sigmas, lat_margin_m, lon_margin_m, object_brake_mps2):
    """The fields of ``ObstacleTerms`` for the N objects of a prediction (N, K) that ``ignore`` does
    not exclude, in their order (the numpy form took them out by index first), and lateral
    profiles ``lat_d`` (n_d, n_T, K), the four float32 (N, K) ones stacked (s_obj_rel, inv_half_l,
    stop_rel, rear_rel: each array a kernel returns costs about a microsecond to hand to Python).
    Per object and step the inflated half extents are
    half_w = (ego_width + width) / 2 + inflation_sigmas sigma_d + lat_margin (half_l likewise along s);
    the scaled lateral offset r = (d_ego - d_obj) / half_w (float32) gives the overlap |r| < 1 and the
    proximity bump max(1 - r^2, 0), a cheap compact stand-in for a Gaussian, both from one square:
    |r| < 1 iff r^2 < 1 (for r < 1, r^2 rounds to at most r). Along s everything is relative to
    s_ref, the nearest object's arc length now, so float32 keeps millimetres."""
    n_d, n_t, n_k = lat_d.shape
    keep = np.empty(d_all.shape[0], np.int64)
    n_obj = 0
    for n in range(d_all.shape[0]):
        if not ignore[n]:
            keep[n_obj] = n
            n_obj += 1
    inv_half_w = np.empty((n_obj, n_k), np.float32)
    along = np.empty((4, n_obj, n_k), np.float32)
    s_rel, inv_half_l, stop_rel, rear_rel = along[0], along[1], along[2], along[3]
    for n in range(n_obj):
        o = keep[n]
        w0 = 0.5 * (ego_width_m + width_all[o])
        l0 = 0.5 * (ego_length_m + length_all[o])
        for k in range(n_k):
            inv_half_w[n, k] = np.float32(1.0 / (w0 + inflation_sigmas * sig_d_all[o, k] + lat_margin_m))
            inv_half_l[n, k] = np.float32(1.0 / (l0 + inflation_sigmas * sig_s_all[o, k] + lon_margin_m))
    lat_overlap = np.empty((n_d, n_t, n_obj, n_k), np.bool_)
    lat_w = np.empty((n_d, n_t, n_obj, n_k), np.float32)
    one, zero = np.float32(1.0), np.float32(0.0)
    for i in range(n_d):
        for t in range(n_t):
            for n in range(n_obj):
                o = keep[n]
                for k in range(n_k):
                    r = np.float32(lat_d[i, t, k] - d_all[o, k]) * inv_half_w[n, k]
                    r2 = r * r
                    lat_overlap[i, t, n, k] = r2 < one
                    bump = one - r2
                    lat_w[i, t, n, k] = zero if bump < zero else bump  # NaN stays NaN, as np.maximum
    s_ref = 0.0
    if n_obj:
        s_ref = s_all[keep[0], 0]
        for n in range(1, n_obj):  # the minimum, NaN propagating as ndarray.min
            s0 = s_all[keep[n], 0]
            if s0 < s_ref or np.isnan(s0):
                s_ref = s0
                if np.isnan(s_ref):
                    break
    brake_factor = 0.5 / object_brake_mps2
    for n in range(n_obj):
        o = keep[n]
        for k in range(n_k):
            rear = s_all[o, k] - 0.5 * length_all[o] - s_ref
            # Along-road speed, forward differences (the last step repeats the one before).
            if n_k > 1:
                j = k if k < n_k - 1 else k - 1
                v = (s_all[o, j + 1] - s_all[o, j]) / (t_s[j + 1] - t_s[j])
                v = 0.0 if v < 0.0 else v
            else:
                v = 0.0
            s_rel[n, k] = np.float32(s_all[o, k] - s_ref)
            rear_rel[n, k] = np.float32(rear)
            stop_rel[n, k] = np.float32(rear + v * v * brake_factor)
    return lat_overlap, lat_w, along, s_ref


def followers_in_lane(pred: Prediction, s_center0_m: float, d0_m: float, ego_length_m: float,
                      ego_width_m: float) -> np.ndarray:
    """Objects entirely behind the ego and laterally overlapping it now: their collisions are not the
    ego's to avoid by braking (that would make them worse), so the planner ignores them."""
    if len(pred) == 0:
        return np.zeros(0, bool)
    return _followers(pred.s_m, pred.d_m, pred.length_m, pred.width_m, float(s_center0_m), float(d0_m),
                      float(ego_length_m), float(ego_width_m))


@kernel(f"boolean[::1]({_ROWS}, {_ROWS}, {_SIZES}, {_SIZES}, float64, float64, float64, float64)")
def _followers(s_m, d_m, length_m, width_m, s_center0_m, d0_m, ego_length_m, ego_width_m):
    """followers_in_lane's two tests per object at the first step, the numpy form's operations
    (s + 0.5 l < s_c - 0.5 L and |d - d0| < 0.5 (W + w)) in its order; one call instead of ten."""
    n = s_m.shape[0]
    out = np.empty(n, np.bool_)
    ego_rear = s_center0_m - 0.5 * ego_length_m
    for i in range(n):
        behind = s_m[i, 0] + 0.5 * length_m[i] < ego_rear
        beside = abs(d_m[i, 0] - d0_m) < 0.5 * (ego_width_m + width_m[i])
        out[i] = behind and beside
    return out
