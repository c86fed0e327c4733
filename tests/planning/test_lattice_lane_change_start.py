"""Lane changes start only where the lattice can judge them: not from walking pace.

Below 2 m/s the search does not check path curvature (batch_terms), so a lane change planned from
standstill is a sideways slide the car cannot steer. lead_brake seed 16 (onnx): stopped 10 m
behind the stopped lead, the lattice offered a lane change whose lateral motion the car could not
follow, aborted it 2 s later with the car half out of its lane, close behind the lead, and then
planned an emergency stop every 0.1 s while standing still (39 plans).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from acc_loop import make_tracks, straight_road
from core.messages import EgoState, ModeLimits
from planning.lattice import LatticeConfig, LatticeState, lattice_plan_step

CFG = LatticeConfig(budget_ns=10**12)


def _ego(v: float, y: float = 0.0) -> EgoState:
    return EgoState(0, np.array([100.0, y, 0.0]), v, 0.0, 0.0, np.eye(5))


def _stopped_lead(x: float = 111.0):
    return make_tracks(0, np.array([[x, 0.0]]), np.zeros((1, 2)))  # both neighbour lanes free


def _plan(ego, tracks, state=None, cfg=CFG):
    return lattice_plan_step(state or LatticeState(), ego, tracks, ModeLimits(), straight_road(), 0, cfg, lambda: 0)


def test_no_lane_change_starts_from_standstill_behind_a_stopped_lead():
    state, plan = _plan(_ego(0.0), _stopped_lead())
    assert state.target_lane == 1 and not plan.behaviour.startswith("lane_change")
    assert not plan.emergency and state.infeasible == 0
    assert np.abs(plan.xy_m[:, 1]).max() < 0.05  # stays in its lane
    assert plan.speed_mps.max() < 0.5  # and waits behind the lead


def test_lane_change_offered_again_once_moving():
    # Approaching a stopped car at speed the lattice checks curvature, and going round it is offered.
    state, plan = _plan(_ego(12.0), _stopped_lead(160.0))
    assert plan.behaviour.startswith("lane_change") and state.target_lane in (0, 2)


def test_lane_change_under_way_carries_on_at_walking_pace():
    # Slowed below 2 m/s half-way into the right lane: finishing it is not a new start.
    state = replace(LatticeState(), target_lane=0)
    state, plan = _plan(_ego(1.0, y=-1.5), _stopped_lead(125.0), state=state)
    assert state.target_lane == 0 and plan.behaviour == "lane_change_right"
    assert not plan.emergency
