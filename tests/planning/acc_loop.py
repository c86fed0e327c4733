"""A small closed longitudinal loop for planner tests: straight 3-lane road, point-mass ego that
tracks the plan's speed and acceleration through a first-order lag, scripted actors."""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.messages import EgoState, ModeLimits, Tracks
from core.road import Road, RoadSegment

EGO_FRONT_M = 3.7


def straight_road(speed_limit_mps: float = 30.0, length_m: float = 3000.0) -> Road:
    return Road((RoadSegment(length_m),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=speed_limit_mps)


def make_tracks(t_ns: int, xy: np.ndarray, v: np.ndarray, length_m: float = 4.6) -> Tracks:
    n = xy.shape[0]
    states = np.concatenate([xy, v], axis=1) if n else np.zeros((0, 4))
    return Tracks(t_ns, np.arange(n, dtype=np.int64), states, np.tile(np.eye(4), (n, 1, 1)),
                  np.zeros(n), np.tile([length_m, 1.9, 1.5], (n, 1)), np.zeros(n, np.int16), np.ones(n))


def run_loop(planner: Callable, state, road: Road, actors: Callable[[float], tuple[np.ndarray, np.ndarray]],
             v0_mps: float, seconds: float, limits_fn: Callable[[float], ModeLimits] = lambda t: ModeLimits(),
             ego_y_m: float = 0.0):
    """planner(state, ego, tracks, limits, road, t_ns) -> (state, plan). actors(t) -> (xy (N, 2), v (N, 2)).
    Returns the state and a log (T, 5): t, ego x, ego v, min bumper gap to actors ahead in lane, accel."""
    x, v, a = 0.0, v0_mps, 0.0
    plan = None
    log = []
    for i in range(int(seconds * 100)):
        t_s = i * 0.01
        t_ns = i * 10_000_000
        xy, vel = actors(t_s)
        if i % 10 == 0:
            ego = EgoState(t_ns, np.array([x, ego_y_m, 0.0]), v, a, 0.0, np.eye(5))
            state, plan = planner(state, ego, make_tracks(t_ns, xy, vel), limits_fn(t_s), road, t_ns)
        tr = (t_ns - plan.t_ns) * 1e-9
        a_cmd = float(np.interp(tr + 0.2, plan.t_s, plan.accel_mps2)) + 0.8 * (float(np.interp(tr, plan.t_s, plan.speed_mps)) - v)
        if float(np.interp(tr, plan.t_s, plan.speed_mps)) < 0.3 and v < 0.3:
            a_cmd = -1.0  # standstill hold, as the real controller does
        a_cmd = min(max(a_cmd, -8.0), 3.0)
        a += (a_cmd - a) * 0.05  # 0.2 s lag
        v = max(v + a * 0.01, 0.0)
        x += v * 0.01
        in_lane = np.abs(xy[:, 1] - ego_y_m) < 2.0 if xy.shape[0] else np.zeros(0, bool)
        ahead = xy[:, 0] > x
        gaps = xy[in_lane & ahead, 0] - 2.3 - (x + EGO_FRONT_M)
        log.append((t_s, x, v, gaps.min() if gaps.size else np.inf, a))
    return state, np.array(log)
