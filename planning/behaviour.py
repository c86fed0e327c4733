"""Behaviour layer of the lattice planner: which lanes may be targeted and what speed profile each
lane offers (the ACC law run against that lane's lead), so that the lattice's speed-error cost makes
a lane change worthwhile exactly when the neighbour lane is faster by more than its cost.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    s_m: np.ndarray  # (3, K) ACC roll-out per lane, distance from the ego (own lane's where invalid)
    v_mps: np.ndarray  # (3, K) its speed
    a_mps2: np.ndarray  # (3, K) its acceleration
    emergency: bool  # the own-lane ACC already needs more than comfortable braking
    own_lead_index: int  # index into the Frenet tracks, -1 if none


def _crossed_by_lane_changers(ft: FrenetTracks, s_ego_m: float, lanes: np.ndarray, road: Road,
                              acc: AccPlannerConfig) -> np.ndarray:
    """(len(lanes),) bool: a nearby vehicle moving sideways is leaving or entering the lane. Changing
    into such a lane means racing it for the same space (overtaking a car as it merges in from the
    target lane, say); its prediction alone cannot rule out that it carries on, slows or aborts."""
    near = ((ft.s_m > s_ego_m - acc.lane_changer_behind_m) & (ft.s_m < s_ego_m + acc.lane_changer_ahead_m)
            & (np.abs(ft.vd_mps) > acc.lane_changer_speed_mps))
    if not near.any():
        return np.zeros(lanes.shape[0], bool)
    # The lanes it was in, is in and will be in over the cut-in horizon either way.
    d_now = ft.d_m[near]
    sweep = ft.vd_mps[near] * acc.cut_in_horizon_s
    touched = np.concatenate([road.lane_of(d_now - sweep), road.lane_of(d_now), road.lane_of(d_now + sweep)])
    return np.isin(lanes, touched)


def lane_references(ft: FrenetTracks, accel_tracks_mps2: np.ndarray, s_ego_m: float, lane: int,
                    v0_mps: float, a0_mps2: float, limits: ModeLimits, road: Road, acc: AccPlannerConfig,
                    t_s: np.ndarray, t_ref_s: np.ndarray) -> LaneReferences:
    """The ACC roll-outs run on the coarser uniform grid ``t_ref_s`` (three scalar roll-outs at the
    plan's step would dominate the planner's budget), then are interpolated onto ``t_s``.

    One scalar roll-out per lane rather than one vectorised over the three lanes: the law branches
    per step, and with three lanes numpy's per-call overhead (~0.5-2.5 us per ufunc or where, ~45
    of them per step) costs more than the scalar arithmetic (~4 us per lane and step)."""
    lanes = np.array([lane - 1, lane, lane + 1], dtype=np.int64)
    exists = (lanes >= 0) & (lanes < road.num_lanes)
    may_change = limits.lane_change_allowed and limits.stop_decel_mps2 <= 0.0
    valid = exists & ((lanes == lane) | may_change)
    # While someone crosses into or out of the ego lane, keep the lane and let the ACC law react: a
    # lane change then would start from a half-reacted speed and race the crossing car.
    crossed = _crossed_by_lane_changers(ft, s_ego_m, lanes, road, acc)
    valid[[0, 2]] &= ~(crossed[[0, 2]] | crossed[1])
    v_target = target_speed(road, s_ego_m, v0_mps, limits, acc)
    gains = acc.gains(max(acc.time_gap_s, limits.time_gap_s))
    ref_steps, reference_step_s = t_ref_s.shape[0], float(t_ref_s[1] - t_ref_s[0])
    out = np.empty((3, 3, t_s.shape[0]))  # lane, (s, v, a), time
    emergency, own_lead = False, -1
    for j in (1, 0, 2):  # the three lanes: a fixed, tiny loop; the lead search inside is vectorised
        if not valid[j]:
            out[j] = out[1]
            continue
        i, gap = select_lead(ft, s_ego_m, float(road.lane_center_d(lanes[j])), acc.ego_front_m,
                             acc.ego_half_width_m, acc.corridor_margin_m, acc.cut_in_horizon_s)
        v_lead = float(ft.vs_mps[i]) if i >= 0 else 0.0
        a_lead = float(accel_tracks_mps2[i]) if i >= 0 else 0.0
        s, v, a, emerg, _ = rollout(v0_mps, a0_mps2, v_target, gap, v_lead, a_lead, limits.stop_decel_mps2,
                                    gains, reference_step_s, ref_steps)
        for q, z in enumerate((s, v, a)):
            out[j, q] = np.interp(t_s, t_ref_s, z)
        if j == 1:
            emergency, own_lead = emerg, i
    return LaneReferences(lanes, valid, out[:, 0], out[:, 1], out[:, 2], emergency, own_lead)
