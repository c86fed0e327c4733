"""The end of the road: the planners stop before it.

The map ends where the road does; past it the Frenet frame clamps and nothing the planner computes
means anything (a 90 s free_road run drove off the 2,000 m road at 76 s, with a lane-centre error of
10.9 m and 125 infeasible emergency plans, while the monitor stayed NOMINAL). A stack must not
drive where it has no map.

The end is a fixed stopping point for the ACC law (``road_end_gap``, planning/acc_law.py's
``_road_end_demand``): a stop at the approach deceleration, standstill_gap short of the end. It was
first a stopped lead, followed by the time-gap law, which closes the last metres at a speed
proportional to the spacing error (a 6.5 s exponential): on a 700 m road the ACC planner spent
10.7 s below 2 m/s, took 15.2 s from 5 m/s to standstill and was still creeping at 0.15 m/s 5.2 m
short of the end; the lattice, 7.6 s and 12.0 s, stood 6.6 m short. Now both take 3.0-3.1 s from
5 m/s, 1.5 s below 2 m/s, and stand 4.1 m short. The lattice still sees the end as a standing
object across the whole road (``with_road_end``), but for its collision check only: the proximity
cost around it held the car 1.6 m short of the references' stopping point, and then crept on.

Both are in play only when the road's end is within reach of the ego: its distance at the current
speed over the plan horizon, plus a comfortable stop from that speed, plus a margin. A run that
never comes near the end plans exactly as before.
"""
from __future__ import annotations

import math

import numpy as np

from core.road import Road
from planning.track_frenet import FrenetTracks

ROAD_END_ID = -1  # track ids are non-negative: this one never meets a real track's memory
ROAD_END_LENGTH_M = 1.0  # along the road, its rear face on the road's end
REACH_MARGIN_M = 50.0


def road_end_in_reach(road: Road, s_ego_m: float, v_mps: float, horizon_s: float, decel_mps2: float) -> bool:
    v = max(v_mps, 0.0)
    reach_m = v * horizon_s + v * v / (2.0 * decel_mps2) + REACH_MARGIN_M
    return s_ego_m + reach_m >= road.length_m


def road_end_gap(road: Road, s_ego_m: float, ego_front_m: float, v_mps: float, horizon_s: float,
                 decel_mps2: float) -> float:
    """Arc length [m of reference line] from the ego's front bumper (``ego_front_m`` ahead of the
    rear axle at ``s_ego_m``) to the road's end, where the end is in reach; infinite otherwise, which
    the ACC law reads as no end at all."""
    if not road_end_in_reach(road, s_ego_m, v_mps, horizon_s, decel_mps2):
        return math.inf
    return road.length_m - (s_ego_m + ego_front_m)


def with_road_end(ft: FrenetTracks, road: Road) -> FrenetTracks:
    """``ft`` and, last, a standing object as wide as the road whose rear is at the road's end."""
    s_end = road.length_m + 0.5 * ROAD_END_LENGTH_M
    xy, heading = road.to_cartesian(np.array([road.length_m]), np.zeros(1))
    one = {"ids": np.array([ROAD_END_ID], dtype=np.int64), "s_m": np.array([s_end]), "d_m": np.zeros(1),
           "vs_mps": np.zeros(1), "vd_mps": np.zeros(1), "s_rate_mps": np.zeros(1),
           "length_m": np.array([ROAD_END_LENGTH_M]), "width_m": np.array([2.0 * road.half_width_m]),
           "x_m": xy[:, 0], "y_m": xy[:, 1], "vx_mps": np.zeros(1), "vy_mps": np.zeros(1),
           "yaw_rad": np.asarray(heading, dtype=np.float64).reshape(1)}
    return FrenetTracks(**{name: np.concatenate([np.asarray(getattr(ft, name)).astype(one[name].dtype, copy=False),
                                                 one[name]]) for name in FrenetTracks.__slots__})
