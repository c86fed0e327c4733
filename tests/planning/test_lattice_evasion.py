"""An evasive lane change, once under way, is not dropped for an emergency stop in the lane it leaves.

lead_brake (onnx; seeds 2, 10, 11, 16, 18): the lead 37 m ahead brakes hard; every comfortable
profile in the ego lane collides with its (inflated) prediction, so the lattice starts the one
comfortable lane change that passes the RSS rule. Two replans later the lead's braking estimate has
grown and the continuations that still pass RSS (and miss the car approaching in the target lane)
exceed the comfort jerk by 0.2 m/s^3: both ways were emergencies, the soft terms (each lane's
speed error against its own roll-out, zero for the lane's own emergency stop) chose the stop, and the
lattice aborted the evasion at 0.2-0.4 s. Separately, lateral velocity noise on a lane keeper (a
braking lead at -0.54 m/s, a car in the target lane at 0.5 m/s, its 1.5 s sweep inside its lane) made
it a "lane changer" and blocked the lanes next to it, which also dropped the lane change under way.
The scene below is lead_brake seed 16 at t = 6.0 s (ego at 100 m instead of 219.8 m).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from acc_loop import make_tracks, straight_road
from core.messages import EgoState, ModeLimits
from planning.behaviour import lane_references
from planning.lattice import LatticeConfig, LatticeState, lattice_plan_step
from planning.lattice_tables import build_tables
from planning.track_frenet import tracks_to_frenet

CFG = LatticeConfig(budget_ns=10**12)
T_NS = 1_000_000_000


def _plan(target_lane: int):
    # Lead (id 0) 36.9 m ahead at 15.0 m/s, 0.1 s ago 15.7 m/s with a -4.76 m/s^2 estimate (the
    # planner's memory: it now reads -5.16); a car (id 1) 45 m behind in the left lane at 21.4 m/s.
    state = replace(LatticeState(), target_lane=target_lane, track_ids=np.array([0, 1]), track_yaws=np.zeros(2),
                    track_vs=np.array([15.72, 21.38]), track_accel=np.array([-4.76, 0.04]),
                    track_t_ns=T_NS - 100_000_000)
    ego = EgoState(T_NS, np.array([100.0, 0.13, 0.012]), 19.25, -3.13, 0.0, np.eye(5) * 0.01)
    tracks = make_tracks(T_NS, np.array([[136.92, -0.03], [54.44, 3.57]]), np.array([[15.04, -0.17], [21.41, 0.03]]))
    return lattice_plan_step(state, ego, tracks, ModeLimits(), straight_road(25.0), T_NS, CFG, lambda: 0)


def test_evasive_lane_change_under_way_carries_on():
    state, plan = _plan(target_lane=2)
    # No comfortable way is left: the continuation is an emergency too, but it keeps going left.
    assert state.target_lane == 2 and plan.emergency and state.infeasible == 0
    assert plan.speed_mps[-1] > 8.0  # slows in the free lane, not to a stop behind the lead


def test_no_evasive_lane_change_starts_from_the_same_scene():
    # Not under way: staying is no abort, and the emergency stop in the lane is chosen as before.
    state, plan = _plan(target_lane=1)
    assert state.target_lane == 1 and plan.behaviour == "emergency_brake"


def test_lane_keeper_with_lateral_noise_blocks_no_lane():
    road = straight_road()
    tab = build_tables(CFG)
    # The braking lead at -0.54 m/s sideways (seed 16, t = 6.1 s) and a car in the left lane at
    # -0.52 m/s (seed 10, t = 7.9 s): both stay in their lanes over the cut-in horizon.
    for xy, v in (([136.4, -0.38], [14.4, -0.54]), ([158.2, 3.10], [25.9, -0.52])):
        ft, _ = tracks_to_frenet(make_tracks(0, np.array([xy]), np.array([v])), road, 0, 0.3)
        refs = lane_references(ft, np.zeros(1), 100.0, 1, 19.0, 0.0, ModeLimits(), road, 0.0, CFG.acc, tab.t_ref_s,
                               tab.interp_ref)
        assert refs.valid.all()
