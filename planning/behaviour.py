"""Behaviour layer of the lattice planner: which lanes may be targeted and what speed profile each
lane offers (the ACC law run against that lane's lead), so that the lattice's speed-error cost makes
a lane change worthwhile exactly when the neighbour lane is faster by more than its cost.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from core.messages import ModeLimits
from core.road import Road
from planning.acc_law import rollout
from planning.acc_planner import AccPlannerConfig, target_speed
from planning.track_frenet import FrenetTracks, select_lead


@dataclass(frozen=True, slots=True)
class LaneReferences:
    lanes: np.ndarray  # (3,) int64: right neighbour, own lane, left neighbour (may be off-road)
    valid: np.ndarray  # (3,) bool: on the road and allowed by the limits
    v_ref_mps: np.ndarray  # (3, K) ACC speed profile per lane (own-lane profile where invalid)
    emergency: bool  # the own-lane ACC already needs more than comfortable braking
    own_lead_index: int  # index into the Frenet tracks, -1 if none


def lane_references(ft: FrenetTracks, accel_tracks_mps2: np.ndarray, s_ego_m: float, lane: int,
                    v0_mps: float, a0_mps2: float, limits: ModeLimits, road: Road, acc: AccPlannerConfig,
                    t_s: np.ndarray, reference_step_s: float) -> LaneReferences:
    """The ACC roll-outs run at ``reference_step_s`` (coarser than the plan: they are references,
    and three scalar roll-outs at the plan's step would dominate the planner's budget), then are
    interpolated onto ``t_s``."""
    lanes = np.array([lane - 1, lane, lane + 1], dtype=np.int64)
    exists = (lanes >= 0) & (lanes < road.num_lanes)
    may_change = limits.lane_change_allowed and limits.stop_decel_mps2 <= 0.0
    valid = exists & ((lanes == lane) | may_change)
    v_target = target_speed(road, s_ego_m, v0_mps, limits, acc)
    gains = acc.gains(max(acc.time_gap_s, limits.time_gap_s))
    ref_steps = int(math.ceil(t_s[-1] / reference_step_s)) + 1
    t_ref = np.arange(ref_steps) * reference_step_s
    v_ref = np.empty((3, t_s.shape[0]))
    emergency, own_lead = False, -1
    for j in (1, 0, 2):  # the three lanes: a fixed, tiny loop; the lead search inside is vectorised
        if not valid[j]:
            v_ref[j] = v_ref[1]
            continue
        i, gap = select_lead(ft, s_ego_m, float(road.lane_center_d(lanes[j])), acc.ego_front_m,
                             acc.ego_half_width_m, acc.corridor_margin_m, acc.cut_in_horizon_s)
        v_lead = float(ft.vs_mps[i]) if i >= 0 else 0.0
        a_lead = float(accel_tracks_mps2[i]) if i >= 0 else 0.0
        _, v, _, emerg, _ = rollout(v0_mps, a0_mps2, v_target, gap, v_lead, a_lead, limits.stop_decel_mps2,
                                    gains, reference_step_s, ref_steps)
        v_ref[j] = np.interp(t_s, t_ref, v)
        if j == 1:
            emergency, own_lead = emerg, i
    return LaneReferences(lanes, valid, v_ref, emergency, own_lead)
