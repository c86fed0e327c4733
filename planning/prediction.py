"""Prediction of tracked objects over the plan horizon, in the road's Frenet frame.

Per object one of three models (one compiled loop over the objects, ``_rollout``):
- LANE: moving along a lane, aligned with the road: s advances at its rate (FrenetTracks.s_rate_mps,
  v / (1 - k d) on a curve) and any lateral velocity decays over ``lateral_decay_s``, stopping at the
  centre of the lane it heads for (a lane change completes, it does not go on forever);
- CTRV: turning relative to the road (yaw rate from the previous tracks of the same id): constant
  turn rate and speed in the map frame, projected onto the road;
- CV: everything else (slow, misaligned, off-road): constant velocity in the map frame.
Uncertainty grows linearly with time from the track's position sigma, faster for non-lane models.
Objects slower than ``static_speed_mps`` are held where they are, with slowly growing uncertainty:
their measured velocity is noise, and a constant-velocity roll-out of that noise (with the CV
model's fast growth) would smear a stopped car over the neighbour lanes and block every way past it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.config import rng
from core.jit import kernel
from core.records import fast_frozen_init
from core.road import Road
from planning.track_frenet import FrenetTracks, lane_centre_of

MODEL_CV, MODEL_CTRV, MODEL_LANE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class PredictionParams:
    lateral_decay_s: float = field(default=2.0, metadata=rng(0.1, 20.0))
    lane_align_rad: float = field(default=0.35, metadata=rng(0.0, 1.6))
    lane_min_speed_mps: float = field(default=2.0, metadata=rng(0.0, 20.0))
    ctrv_min_yaw_rate_rps: float = field(default=0.03, metadata=rng(0.0, 2.0))
    sigma0_m: float = field(default=0.3, metadata=rng(0.0, 10.0))
    sigma_rate_s_mps: float = field(default=0.5, metadata=rng(0.0, 10.0))  # longitudinal growth
    # Lateral growth, lane model: lane keepers stay in their lane; more would make every car in the
    # next lane a wall a few seconds ahead, and overtaking impossible.
    sigma_rate_d_mps: float = field(default=0.05, metadata=rng(0.0, 10.0))
    unstructured_factor: float = field(default=2.0, metadata=rng(1.0, 10.0))  # CV/CTRV growth multiplier
    static_speed_mps: float = field(default=1.0, metadata=rng(0.0, 10.0))
    static_factor: float = field(default=0.2, metadata=rng(0.0, 10.0))  # growth multiplier when static
    # Below this estimated deceleration a lane follower is predicted braking (above it: noise).
    brake_threshold_mps2: float = field(default=2.0, metadata=rng(0.0, 10.0))


@fast_frozen_init  # built every plan (core/records.py)
@dataclass(frozen=True, slots=True)
class Prediction:
    t_s: np.ndarray  # (K,)
    s_m: np.ndarray  # (N, K)
    d_m: np.ndarray  # (N, K)
    sigma_s_m: np.ndarray  # (N, K)
    sigma_d_m: np.ndarray  # (N, K)
    length_m: np.ndarray  # (N,)
    width_m: np.ndarray  # (N,)
    model: np.ndarray  # (N,) int8

    def __len__(self) -> int:
        return int(self.s_m.shape[0])


@dataclass(frozen=True, slots=True)
class PredictionGrid:
    """The parts of a prediction that depend on the time grid and the parameters alone (built once
    per configuration and carried in the lattice tables), all (1, K)."""

    lateral_drift_s: np.ndarray  # lateral displacement per unit lateral speed, decaying over lateral_decay_s
    lane_sigma_s_m: np.ndarray  # sigma rows of a lane-model object
    lane_sigma_d_m: np.ndarray


def prediction_grid(t_s: np.ndarray, p: PredictionParams) -> PredictionGrid:
    # float64 whatever t_s is: the rows stand in for the general path's, which a float64 factor
    # promoted (a float32 grid gave float32 sigmas; found in review).
    t = np.asarray(t_s, dtype=np.float64)[None, :]
    return PredictionGrid(p.lateral_decay_s * (1.0 - np.exp(-t / p.lateral_decay_s)),
                          p.sigma0_m + p.sigma_rate_s_mps * t, p.sigma0_m + p.sigma_rate_d_mps * t)


def predict(ft: FrenetTracks, yaw_rate_rps: np.ndarray, road: Road, t_s: np.ndarray,
            p: PredictionParams, accel_mps2: np.ndarray | None = None, grid: PredictionGrid | None = None) -> Prediction:
    """``accel_mps2`` (N,): rates of change of s_rate_mps (estimated from the track history); a braking
    lane follower is rolled out braking to a stop, not at constant speed (a car ahead that brakes
    hard would otherwise look like room to accelerate into). Accelerations are not rolled out:
    at constant speed the prediction stays the cautious one for objects ahead. ``grid``:
    prediction_grid(t_s, p), if the caller keeps it."""
    if grid is None:
        grid = prediction_grid(t_s, p)
    k = t_s.shape[0]
    if accel_mps2 is None:
        accel_mps2 = np.zeros(len(ft))  # no braking follower: every object at its rate
    yaw_rate, t_s64 = np.ascontiguousarray(yaw_rate_rps, np.float64), np.ascontiguousarray(t_s, np.float64)
    n = ft.s_m.shape[0]
    model, free, rows = np.empty(n, np.int8), np.empty(n, np.bool_), np.empty((4, n, k))
    n_free = _rollout(
        ft.s_m, ft.d_m, ft.vs_mps, ft.vd_mps, ft.s_rate_mps, yaw_rate,
        np.ascontiguousarray(accel_mps2, np.float64), t_s64,
        grid.lateral_drift_s[0], road.half_width_m, road.lane_width_m, float(road.num_lanes), p.lateral_decay_s,
        p.lane_align_rad, p.lane_min_speed_mps, p.ctrv_min_yaw_rate_rps, p.brake_threshold_mps2,
        p.static_speed_mps, p.sigma0_m, p.sigma_rate_s_mps, p.sigma_rate_d_mps, p.static_factor,
        p.unstructured_factor, model, free, rows)
    s, d, sigma_s, sigma_d = rows
    if n_free:
        # Map-frame CTRV roll-out (CV where the yaw rate is ~0), projected onto the road in one query.
        xy = _map_frame_rollout(model, free, yaw_rate, ft.vx_mps, ft.vy_mps, ft.vs_mps, ft.vd_mps, ft.x_m, ft.y_m,
                                t_s64)
        sf, df = road.to_frenet(xy)
        s[free], d[free] = sf.reshape(-1, k), df.reshape(-1, k)
    return Prediction(t_s, s, d, sigma_s, sigma_d,
                      ft.length_m, ft.width_m, model)


# Track fields pass through as read-only views in places (FrenetTracks of a decoded log).
_FIELD = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"int64({_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, float64[::1], float64[::1], float64[::1], {_FIELD},"
        " float64, float64, float64, float64, float64, float64, float64, float64, float64, float64, float64, float64,"
        " float64, float64, int8[::1], boolean[::1], float64[:, :, ::1])")
def _rollout(s_m, d_m, vs_mps, vd_mps, s_rate_mps, yaw_rate_rps, accel_mps2, t_s, lateral_drift_s,
             road_half_width_m, lane_width_m, num_lanes, lateral_decay_s, lane_align_rad, lane_min_speed_mps,
             ctrv_min_yaw_rate_rps, brake_threshold_mps2, static_speed_mps, sigma0_m, sigma_rate_s_mps,
             sigma_rate_d_mps, static_factor, unstructured_factor, model, free, rows):
    """predict's work for N objects but the map-frame roll-out of the free ones (CV or CTRV at
    ``static_speed_mps`` or faster), into the caller's arrays (a returned array costs about a
    microsecond to hand over): each object's model (N,) int8, which are free (N,) bool, and the
    rows s, d, sigma_s, sigma_d (4, N, K), the free objects' s and d left to predict; returns how
    many are free. One loop
    instead of ~50 numpy calls on a few elements, with the numpy form's operations in its order
    (np.minimum/np.maximum by their NaN rules): the same bits. The lane model's sigma rows,
    sigma0 + rate * (1.0 * t), are the prediction grid's, sigma0 + rate * t."""
    n, n_k = s_m.shape[0], t_s.shape[0]
    free[:] = False
    s, d, sigma_s, sigma_d = rows[0], rows[1], rows[2], rows[3]
    for i in range(n):
        vs, vd, rate, s0, d0 = vs_mps[i], vd_mps[i], s_rate_mps[i], s_m[i], d_m[i]
        speed = np.hypot(vs, vd)
        lane = abs(np.arctan2(vd, vs)) < lane_align_rad and abs(d0) < road_half_width_m and speed > lane_min_speed_mps
        if lane:
            model[i], growth_factor = MODEL_LANE, 1.0
        elif abs(yaw_rate_rps[i]) > ctrv_min_yaw_rate_rps and speed > 1.0:
            model[i], growth_factor = MODEL_CTRV, unstructured_factor
        else:
            model[i], growth_factor = MODEL_CV, unstructured_factor
        if not lane and speed >= static_speed_mps:
            free[i] = True
        elif not lane:
            growth_factor = static_factor  # standing: held where it is (speed < static_speed_mps, or NaN)
        for k in range(n_k):
            growth = growth_factor * t_s[k]
            sigma_s[i, k] = sigma0_m + sigma_rate_s_mps * growth
            sigma_d[i, k] = sigma0_m + sigma_rate_d_mps * growth
        if not lane and not free[i]:
            for k in range(n_k):
                s[i, k] = s0
                d[i, k] = d0
            continue
        # The lane model's s: at its rate, or braking to a stop if it brakes harder than the threshold.
        accel = accel_mps2[i]
        brake = accel if (accel < 0.0 or accel != accel) else 0.0  # np.minimum(accel, 0.0)
        if brake < -brake_threshold_mps2 and rate > 0.0:
            b = -brake
            t_stop = rate / b
            for k in range(n_k):
                t = t_s[k]
                t_run = t if (t < t_stop or t != t) else t_stop  # until it stands
                s[i, k] = (s0 + rate * t_run) - 0.5 * b * t_run * t_run
        else:
            for k in range(n_k):
                s[i, k] = s0 + rate * t_s[k]
        # d: the lateral drift, ending at the centre of the lane it heads for (lane_centre_of).
        q = np.floor((d0 + vd * lateral_decay_s) / lane_width_m + 0.5 * num_lanes)
        q = q if (q > 0.0 or q != q) else 0.0
        q = q if (q < num_lanes - 1.0 or q != q) else num_lanes - 1.0
        d_goal = (q - 0.5 * (num_lanes - 1.0)) * lane_width_m
        lo = d0 if (d0 < d_goal or d0 != d0) else d_goal
        hi = d0 if (d0 > d_goal or d0 != d0) else d_goal
        for k in range(n_k):
            z = d0 + vd * lateral_drift_s[k]
            z = z if (z > lo or z != z) else lo
            d[i, k] = z if (z < hi or z != z) else hi
    n_free = 0
    for i in range(n):
        n_free += 1 if free[i] else 0
    return n_free


@kernel(f"float64[:, ::1](int8[::1], boolean[::1], float64[::1], {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD},"
        f" {_FIELD}, float64[::1])")
def _map_frame_rollout(model, free, yaw_rate_rps, vx_mps, vy_mps, vs_mps, vd_mps, x_m, y_m, t_s):
    """predict's map-frame roll-out of the free tracks: positions (M * K, 2), track-major, of the
    M tracks with ``free`` set, at the K times ``t_s``. CTRV (model MODEL_CTRV) where the yaw rate
    is over 1e-6 rad/s in size, else constant velocity, from the heading atan2(vy, vx) and the
    speed hypot(vs, vd). The numpy form's operations per element in its order (kept in
    tests/planning/test_lattice_prediction.py as the bit-exact reference); atan2, hypot, sin and
    cos are libm's, as numpy's float64 loops call them on this baseline."""
    n_t = t_s.shape[0]
    m = 0
    for i in range(free.shape[0]):
        if free[i]:
            m += 1
    xy = np.empty((m * n_t, 2))
    row = 0
    for i in range(free.shape[0]):
        if not free[i]:
            continue
        w = yaw_rate_rps[i] if model[i] == MODEL_CTRV else 0.0
        heading0 = math.atan2(vy_mps[i], vx_mps[i])
        v = math.hypot(vs_mps[i], vd_mps[i])
        turning = abs(w) > 1e-6
        for k in range(n_t):
            t = t_s[k]
            if turning:
                dx = v / w * (math.sin(heading0 + w * t) - math.sin(heading0))
                dy = v / w * (math.cos(heading0) - math.cos(heading0 + w * t))
            else:
                dx = v * math.cos(heading0) * t
                dy = v * math.sin(heading0) * t
            xy[row, 0] = x_m[i] + dx
            xy[row, 1] = y_m[i] + dy
            row += 1
    return xy
