"""Run metrics from ground truth: safety (collisions, time to collision, gaps), comfort, progress.

Conventions (all values plain floats or ints, JSON-safe):
- collisions: ego/actor footprint overlaps (touching counts), once per actor per contact episode;
- min_ttc_s / min_distance_m: over actors ahead of the ego whose footprint overlaps the ego's
  lateral corridor in Frenet coordinates (so curves are handled); gaps are bumper to bumper along s,
  0 while overlapping. None when no actor was ever ahead (TTC: never closing) - never inf;
- max_abs_jerk_mps3: from the ego's actual acceleration, only while moving (speed above
  jerk_min_speed_mps at both samples): the brake-hold step at standstill is not a comfort event;
- max_abs_lat_accel_mps2: v * yaw_rate = v^2 kappa;
- lane_center_rmse_m: lateral offset of the vehicle frame origin (rear axle, the point plans
  refer to) from the nearest lane centre;
- progress_m: distance along the road covered by the box centre.
"""
from __future__ import annotations

import math

import numpy as np

from core.geometry import box_corners_2d, boxes_overlap
from core.road import Road
from core.vehicle import VehicleParams
from sim.truth import ActorsTruth, EgoTruth

_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_IDS.flags.writeable = False  # shared empty contact set: nobody may append to it in place
_BROAD_PHASE_MARGIN_M = 1e-6  # keeps exactly touching corners (which count) inside the broad phase


class MetricsRecorder:
    def __init__(self, road: Road, vehicle: VehicleParams, jerk_min_speed_mps: float = 0.5):
        self._road, self._vehicle = road, vehicle
        self._jerk_min_speed_mps = jerk_min_speed_mps
        self._steps = 0
        self._invalid_actor_samples = 0
        self._collisions = 0
        self._contact_ids = np.zeros(0, dtype=np.int64)
        self._min_ttc_s = math.inf
        self._min_gap_m = math.inf
        self._speed_sum = 0.0
        self._s_start: float | None = None
        self._s_last = 0.0
        self._prev: tuple[int, float, float] | None = None  # t_ns, accel, speed
        self._max_jerk = 0.0
        self._max_lat = 0.0
        self._lane_sq_sum = 0.0

    def update(self, ego: EgoTruth, actors: ActorsTruth) -> None:
        # Plain floats: every per-tick scalar below is Python math, numpy only for per-actor columns.
        pose, centre = ego.pose, ego.center_xy_m
        ego_x, ego_y, ego_yaw, c_x, c_y = float(pose[0]), float(pose[1]), float(pose[2]), float(centre[0]), float(centre[1])
        speed, accel = ego.speed_mps, ego.accel_mps2
        if not all(map(math.isfinite, (ego_x, ego_y, ego_yaw, c_x, c_y, speed, accel, ego.yaw_rate_rps))):
            raise ValueError(f"non-finite ego truth at t_ns={ego.t_ns}")
        if self._prev is not None and ego.t_ns <= self._prev[0]:
            raise ValueError(f"metrics updates must move forward in time: {ego.t_ns} after {self._prev[0]}")
        xy_a, n_all = actors.xy_m, len(actors)
        keep = None  # None: every actor row is valid (the common case, no gather needed)
        # One finite sum proves every term finite; only a non-finite (or overflowing) sum pays for the
        # per-row check.
        if n_all and not math.isfinite(float(xy_a.sum()) + float(actors.yaw_rad.sum()) + float(actors.speed_mps.sum())):
            finite = np.isfinite(xy_a).all(axis=1) & np.isfinite(actors.yaw_rad) & np.isfinite(actors.speed_mps)
            self._invalid_actor_samples += int((~finite).sum())
            keep = np.flatnonzero(finite)
            xy_a = xy_a[keep]
        n = xy_a.shape[0]

        # One projection for the ego's rear axle, its centre and every actor centre.
        pts = np.empty((n + 2, 2))
        pts[0] = ego_x, ego_y
        pts[1] = c_x, c_y
        pts[2:] = xy_a
        s, d = self._road.to_frenet(pts)
        ego_d_axle, ego_s, ego_d = float(d[0]), float(s[1]), float(d[1])
        lane_err = ego_d_axle - self._lane_center_d(ego_d_axle)
        self._lane_sq_sum += lane_err * lane_err
        if self._s_start is None:
            self._s_start = ego_s
        self._s_last = ego_s
        self._steps += 1
        self._speed_sum += speed
        self._max_lat = max(self._max_lat, abs(speed * ego.yaw_rate_rps))
        if self._prev is not None:
            t_prev, a_prev, v_prev = self._prev
            if min(v_prev, speed) > self._jerk_min_speed_mps:
                jerk = (accel - a_prev) / ((ego.t_ns - t_prev) * 1e-9)
                self._max_jerk = max(self._max_jerk, abs(jerk))
        self._prev = (ego.t_ns, accel, speed)
        if n:
            self._actor_metrics(ego, actors, keep, xy_a, s[2:], d[2:], ego_s, ego_d)
        else:
            self._contact_ids = _NO_IDS

    def _lane_center_d(self, d_m: float) -> float:
        """Road.lane_center_d(Road.lane_of(d)) for one float, without numpy's per-call overhead."""
        road = self._road
        lane = min(max(math.floor(d_m / road.lane_width_m + 0.5 * road.num_lanes), 0), road.num_lanes - 1)
        return (lane - 0.5 * (road.num_lanes - 1)) * road.lane_width_m

    def _actor_metrics(self, ego: EgoTruth, actors: ActorsTruth, keep: np.ndarray | None, xy_a: np.ndarray,
                       s_a: np.ndarray, d_a: np.ndarray, ego_s: float, ego_d: float) -> None:
        def rows(col: np.ndarray) -> np.ndarray:
            return col if keep is None else col[keep]

        length, width = rows(actors.length_m), rows(actors.width_m)
        # Broad phase: two rectangles can only touch if their centres are within the sum of their
        # half-diagonals; only those few pairs get the exact separating-axis test.
        ego_radius = 0.5 * math.hypot(ego.length_m, ego.width_m)
        rel = xy_a - ego.center_xy_m
        reach = np.hypot(length, width) * 0.5 + (ego_radius + _BROAD_PHASE_MARGIN_M)
        near = np.flatnonzero((rel * rel).sum(axis=1) <= reach * reach)
        if near.shape[0]:
            ego_box = box_corners_2d(ego.center_xy_m[None, :], ego.length_m, ego.width_m, ego.pose[2])
            boxes = box_corners_2d(xy_a[near], length[near], width[near], rows(actors.yaw_rad)[near])
            touching = boxes_overlap(np.broadcast_to(ego_box, (near.shape[0], 4, 2)), boxes)
            ids_now = rows(actors.ids)[near[touching]]
            if ids_now.shape[0]:
                self._collisions += int((~np.isin(ids_now, self._contact_ids)).sum())
            self._contact_ids = ids_now
        else:
            self._contact_ids = _NO_IDS

        ahead = np.flatnonzero((s_a > ego_s) & (np.abs(d_a - ego_d) < 0.5 * (width + ego.width_m)))
        if not ahead.shape[0]:
            return
        gap = np.maximum(s_a[ahead] - ego_s - 0.5 * (length[ahead] + ego.length_m), 0.0)
        yaw_ahead, speed_ahead = rows(actors.yaw_rad)[ahead], rows(actors.speed_mps)[ahead]
        unit = np.empty((ahead.shape[0], 2))  # np.stack's Python overhead exceeds this whole product
        unit[:, 0], unit[:, 1] = np.cos(yaw_ahead), np.sin(yaw_ahead)
        velocity = speed_ahead[:, None] * unit
        heading = np.array([math.cos(ego.pose[2]), math.sin(ego.pose[2])])
        closing = ego.speed_mps - velocity @ heading
        self._min_gap_m = min(self._min_gap_m, float(gap.min()))
        approaching = closing > 0.0
        if approaching.any():
            self._min_ttc_s = min(self._min_ttc_s, float((gap[approaching] / closing[approaching]).min()))

    def summary(self) -> dict:
        n = max(self._steps, 1)
        return {
            "collisions": self._collisions,
            "min_ttc_s": None if math.isinf(self._min_ttc_s) else self._min_ttc_s,
            "min_distance_m": None if math.isinf(self._min_gap_m) else self._min_gap_m,
            "mean_speed_mps": self._speed_sum / n,
            "progress_m": 0.0 if self._s_start is None else self._s_last - self._s_start,
            "max_abs_jerk_mps3": self._max_jerk,
            "max_abs_lat_accel_mps2": self._max_lat,
            "lane_center_rmse_m": math.sqrt(self._lane_sq_sum / n),
            "steps": self._steps,
            "invalid_actor_samples": self._invalid_actor_samples,
        }
