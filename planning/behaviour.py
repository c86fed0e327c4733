"""Behaviour layer of the lattice planner: which lanes may be targeted and what speed profile each
lane offers (the ACC law run against that lane's lead), so that the lattice's speed-error cost makes
a lane change worthwhile exactly when the neighbour lane is faster by more than its cost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.jit import kernel
from core.messages import ModeLimits
from core.road import Road
from planning.acc_law import rollout_profiles
from planning.acc_planner import AccPlannerConfig, target_speed
from planning.frenet_plan import lane_stretch
from planning.track_frenet import FrenetTracks, select_leads


@dataclass(frozen=True, slots=True)
class LaneReferences:
    lanes: np.ndarray  # (3,) int64: right neighbour, own lane, left neighbour (may be off-road)
    centre_d_m: np.ndarray  # (3,) their centres' lateral offsets (Road.lane_center_d)
    # (3,) metres of lane centre per metre of reference line at the ego, 1 - k d (frenet_to_plan's
    # floor): the plans run in reference-line rates s', and a lane's own speed is s' times this.
    stretch: np.ndarray
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
    if len(ft) == 0:
        return np.zeros(lanes.shape[0], bool)
    return _crossed(ft.s_m, ft.d_m, ft.vd_mps, float(s_ego_m), lanes, road.lane_width_m, road.num_lanes,
                    acc.lane_changer_speed_mps, acc.lane_changer_behind_m, acc.lane_changer_ahead_m,
                    acc.cut_in_horizon_s)


_FIELD = "Array(float64, 1, 'A', readonly=True)"


@kernel("int64(float64, float64, int64)")
def _lane_of(d_m, lane_width_m, num_lanes):
    """Road.lane_of of one offset, numpy's cast included (see _crossed)."""
    f = np.floor(d_m / lane_width_m + 0.5 * num_lanes)
    lane = np.int64(f) if -9223372036854775808.0 <= f < 9223372036854775808.0 else np.int64(-9223372036854775807 - 1)
    return 0 if lane < 0 else (num_lanes - 1 if lane > num_lanes - 1 else lane)


@kernel(f"boolean[::1]({_FIELD}, {_FIELD}, {_FIELD}, float64, int64[::1], float64, int64, float64, float64, float64,"
        " float64)")
def _crossed(s_m, d_m, vd_mps, s_ego_m, lanes, lane_width_m, num_lanes, lane_changer_speed_mps,
             lane_changer_behind_m, lane_changer_ahead_m, cut_in_horizon_s):
    """_crossed_by_lane_changers for N > 0 tracks in one loop (it was ~15 numpy calls): a track
    moving sideways faster than the threshold inside the window crosses into or out of the lanes it
    was in, is in and will be in over the cut-in horizon, if the first and last differ. Road.lane_of
    per offset: floor(d / width + lanes / 2) cast to int64 (a NaN or an out-of-range value casts to
    the most negative integer on x86, as numpy's cast does) and clipped to the road's lanes.
    Only a vehicle whose sweep spans two lanes moves between lanes. One whose sweep stays inside its
    lane keeps it (lateral velocity noise on a lane keeper, 0.5 m/s on a braking lead): it blocked
    the lanes next to it, and an evasive lane change under way was dropped for an emergency stop."""
    n_l = lanes.shape[0]
    crossed = np.zeros(n_l, np.bool_)
    for i in range(s_m.shape[0]):
        vd = vd_mps[i]
        if not (abs(vd) > lane_changer_speed_mps and s_m[i] > s_ego_m - lane_changer_behind_m
                and s_m[i] < s_ego_m + lane_changer_ahead_m):
            continue
        sweep = vd * cut_in_horizon_s
        was = _lane_of(d_m[i] - sweep, lane_width_m, num_lanes)
        now = _lane_of(d_m[i], lane_width_m, num_lanes)
        will = _lane_of(d_m[i] + sweep, lane_width_m, num_lanes)
        if was == will:
            continue
        for j in range(n_l):
            if lanes[j] == was or lanes[j] == now or lanes[j] == will:
                crossed[j] = True
    return crossed


def lane_references(ft: FrenetTracks, accel_tracks_mps2: np.ndarray, s_ego_m: float, lane: int,
                    v0_mps: float, a0_mps2: float, limits: ModeLimits, road: Road, kappa_1pm: float,
                    acc: AccPlannerConfig, t_ref_s: np.ndarray, interp_ref: np.ndarray,
                    end_gap_m: float = math.inf) -> LaneReferences:
    """The ACC roll-outs run on the coarser uniform grid ``t_ref_s`` (three scalar roll-outs at the
    plan's step would dominate the planner's budget), then are mapped onto the plan's grid by the
    linear-interpolation matrix ``interp_ref`` (K, R).

    One compiled scalar roll-out per lane (planning/acc_law.py) rather than one vectorised over the
    three lanes: the law branches per step, and with three lanes numpy's per-call overhead (~45
    calls per step) costs far more than the arithmetic.

    The target speed (limit, cap, curve preview) is a speed along a lane; each lane's roll-out runs
    in reference-line rates, so it targets v_target / (1 - k d) with that lane's centre d and the
    curvature k at the ego, ``kappa_1pm`` (the caller has it from placing the ego on the road).
    Otherwise the outer lane of a curve would drive above the limit and the inner one below it.

    ``end_gap_m``: the road's end ahead of the front bumper [m of reference line], the same for
    every lane (planning/road_end.py); infinite where it is not in play."""
    if not 0 <= lane < road.num_lanes:  # the ego lane's roll-out stands in for every invalid lane
        raise ValueError(f"ego lane {lane} is not a lane of a {road.num_lanes}-lane road")
    # Three lanes: their validity in plain Python (numpy calls on 3 elements cost more than the logic).
    lanes = np.array([lane - 1, lane, lane + 1], dtype=np.int64)
    may_change = limits.lane_change_allowed and limits.stop_decel_mps2 <= 0.0
    valid_py = [0 <= ln < road.num_lanes and (ln == lane or may_change) for ln in (lane - 1, lane, lane + 1)]
    # While someone crosses into or out of the ego lane, keep the lane and let the ACC law react: a
    # lane change then would start from a half-reacted speed and race the crossing car.
    crossed = _crossed_by_lane_changers(ft, s_ego_m, lanes, road, acc).tolist()
    for j in (0, 2):
        valid_py[j] = valid_py[j] and not (crossed[j] or crossed[1])
    valid = np.array(valid_py)
    v_target = target_speed(road, s_ego_m, v0_mps, limits, acc)
    gains = acc.gains_array(max(acc.time_gap_s, limits.time_gap_s))
    ref_steps, reference_step_s = interp_ref.shape[1], float(t_ref_s[1] - t_ref_s[0])
    centres_py = [(ln - 0.5 * (road.num_lanes - 1)) * road.lane_width_m for ln in (lane - 1, lane, lane + 1)]
    centres = np.array(centres_py)
    stretch_py = [lane_stretch(kappa_1pm, c) for c in centres_py]  # exactly 1.0 on a straight road
    targets = [v_target / st for st in stretch_py]
    leads, gaps = select_leads(ft, s_ego_m, centres, acc.ego_front_m, acc.ego_half_width_m,
                               acc.corridor_margin_m, acc.cut_in_horizon_s)
    leads, gaps = leads.tolist(), gaps.tolist()
    speeds, accels = ft.s_rate_mps.tolist(), accel_tracks_mps2.tolist()
    coarse = np.empty((3, 3, ref_steps))  # per lane: distance, speed, acceleration on the coarse grid
    done: dict[tuple, int] = {}  # identical roll-out inputs (two free neighbour lanes): run once
    emergency = False
    for j in (1, 0, 2):  # the three lanes: a fixed, tiny loop; the lead search is vectorised above
        i = leads[j]
        key = (gaps[j], speeds[i] if i >= 0 else 0.0, accels[i] if i >= 0 else 0.0, targets[j])
        if not valid_py[j] or key in done:
            coarse[j] = coarse[1] if not valid_py[j] else coarse[done[key]]
            continue
        coarse[j], emerg, _ = rollout_profiles(v0_mps, a0_mps2, key[3], key[0], key[1], key[2],
                                               limits.stop_decel_mps2, gains, reference_step_s, ref_steps, end_gap_m)
        done[key] = j
        if j == 1:
            emergency = emerg
    # (3, 3, K): linear interpolation onto the plan grid, one product.
    out = coarse @ interp_ref.T
    return LaneReferences(lanes, centres, np.array(stretch_py), valid, out[:, 0], out[:, 1], out[:, 2], emergency,
                          leads[1])
