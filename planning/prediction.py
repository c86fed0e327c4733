"""Prediction of tracked objects over the plan horizon, in the road's Frenet frame.

Per object one of three models, chosen by array masks (no per-object loop):
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

from dataclasses import dataclass, field

import numpy as np

from core.config import rng
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
    speed = np.hypot(ft.vs_mps, ft.vd_mps)
    aligned = np.abs(np.arctan2(ft.vd_mps, ft.vs_mps)) < p.lane_align_rad
    on_road = np.abs(ft.d_m) < road.half_width_m
    lane = aligned & on_road & (speed > p.lane_min_speed_mps)
    # Usually every object keeps its lane (traffic on a road): the model masks, the map-frame
    # roll-out and the per-object growth factor (1.0 for the lane model) are then constants.
    all_lane = bool(lane.all())
    if all_lane:
        model = np.full(lane.shape[0], MODEL_LANE, np.int8)
    else:
        ctrv = ~lane & (np.abs(yaw_rate_rps) > p.ctrv_min_yaw_rate_rps) & (speed > 1.0)
        model = np.where(lane, MODEL_LANE, np.where(ctrv, MODEL_CTRV, MODEL_CV)).astype(np.int8)

    t = t_s[None, :]
    s = ft.s_m[:, None] + ft.s_rate_mps[:, None] * t
    if accel_mps2 is not None:
        brake = np.minimum(accel_mps2, 0.0)
        braking = (brake < -p.brake_threshold_mps2) & (ft.s_rate_mps > 0.0)
        if braking.any():
            b, v = -brake[braking, None], ft.s_rate_mps[braking, None]
            t_run = np.minimum(t, v / b)  # until it stands
            s[braking] = ft.s_m[braking, None] + v * t_run - 0.5 * b * t_run * t_run
    # A lateral move ends at the centre of the lane it heads for (where the decayed drift would end):
    # a lane changer completes its change and stays there, and velocity noise on a lane keeper
    # (which never reaches the next lane) does not drift it out of its own.
    d_goal = lane_centre_of(road, ft.d_m + ft.vd_mps * p.lateral_decay_s)  # tracks are finite here
    d = np.minimum(np.maximum(ft.d_m[:, None] + ft.vd_mps[:, None] * grid.lateral_drift_s, np.minimum(ft.d_m, d_goal)[:, None]),
                   np.maximum(ft.d_m, d_goal)[:, None])
    if all_lane:
        # growth == 1.0 * t == t: every object's sigma rows are the grid's.
        n_objects = lane.shape[0]
        sigma_s = np.repeat(grid.lane_sigma_s_m, n_objects, axis=0)
        sigma_d = np.repeat(grid.lane_sigma_d_m, n_objects, axis=0)
        return Prediction(t_s, s, d, sigma_s, sigma_d, ft.length_m, ft.width_m, model)
    free = ~lane & (speed >= p.static_speed_mps)
    static = ~lane & ~free
    if free.any():
        # Map-frame CTRV roll-out (CV where the yaw rate is ~0), projected onto the road in one query.
        w = np.where(ctrv, yaw_rate_rps, 0.0)[free, None]
        heading0 = np.arctan2(ft.vy_mps[free], ft.vx_mps[free])[:, None]
        v = speed[free, None]
        turning = np.abs(w) > 1e-6
        w_safe = np.where(turning, w, 1.0)
        dx = np.where(turning, v / w_safe * (np.sin(heading0 + w * t) - np.sin(heading0)), v * np.cos(heading0) * t)
        dy = np.where(turning, v / w_safe * (np.cos(heading0) - np.cos(heading0 + w * t)), v * np.sin(heading0) * t)
        xy = np.stack([ft.x_m[free, None] + dx, ft.y_m[free, None] + dy], axis=-1).reshape(-1, 2)
        sf, df = road.to_frenet(xy)
        s[free], d[free] = sf.reshape(-1, k), df.reshape(-1, k)
    if static.any():
        s[static], d[static] = ft.s_m[static, None], ft.d_m[static, None]
    growth = np.where(lane, 1.0, np.where(static, p.static_factor, p.unstructured_factor))[:, None] * t
    sigma_s = p.sigma0_m + p.sigma_rate_s_mps * growth
    sigma_d = p.sigma0_m + p.sigma_rate_d_mps * growth
    return Prediction(t_s, s, d, sigma_s, sigma_d,
                      ft.length_m, ft.width_m, model)
