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
from core.records import fast_frozen_init
from core.road import Road
from planning.acc_law import _rollout
from planning.acc_planner import AccPlannerConfig, target_speed
from planning.frenet_plan import ONE_KD_FLOOR
from planning.track_frenet import FrenetTracks, _select_leads


@fast_frozen_init  # built every plan (core/records.py)
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

    The three lanes' validity, leads and roll-outs are one compiled call (``_lane_rollouts``): in
    Python they were ~40 small calls and conversions a plan, more than the roll-outs themselves.

    The target speed (limit, cap, curve preview) is a speed along a lane; each lane's roll-out runs
    in reference-line rates, so it targets v_target / (1 - k d) with that lane's centre d and the
    curvature k at the ego, ``kappa_1pm`` (the caller has it from placing the ego on the road).
    Otherwise the outer lane of a curve would drive above the limit and the inner one below it.

    ``end_gap_m``: the road's end ahead of the front bumper [m of reference line], the same for
    every lane (planning/road_end.py); infinite where it is not in play."""
    if not 0 <= lane < road.num_lanes:  # the ego lane's roll-out stands in for every invalid lane
        raise ValueError(f"ego lane {lane} is not a lane of a {road.num_lanes}-lane road")
    may_change = limits.lane_change_allowed and limits.stop_decel_mps2 <= 0.0
    v_target = target_speed(road, s_ego_m, v0_mps, limits, acc)
    gains = acc.gains_array(max(acc.time_gap_s, limits.time_gap_s))
    ref_steps = interp_ref.shape[1]
    coarse = np.empty((3, 3, ref_steps))  # per lane: distance, speed, acceleration on the coarse grid
    lane_rows = np.empty((2, 3))  # per lane: centre, stretch
    valid = np.empty(3, np.bool_)
    emergency, own_lead = _lane_rollouts(
        ft.s_m, ft.d_m, ft.vd_mps, ft.length_m, ft.width_m, ft.s_rate_mps, accel_tracks_mps2, float(s_ego_m), lane,
        road.num_lanes, road.lane_width_m, may_change, float(kappa_1pm), v_target, float(v0_mps), float(a0_mps2),
        limits.stop_decel_mps2, gains, float(t_ref_s[1] - t_ref_s[0]), float(end_gap_m), acc.lane_changer_speed_mps,
        acc.lane_changer_behind_m, acc.lane_changer_ahead_m, acc.cut_in_horizon_s, acc.ego_front_m,
        acc.ego_half_width_m, acc.corridor_margin_m, coarse, lane_rows, valid)
    # (3, 3, K): linear interpolation onto the plan grid, one product.
    out = coarse @ interp_ref.T
    return LaneReferences(np.array([lane - 1, lane, lane + 1], dtype=np.int64), lane_rows[0], lane_rows[1], valid,
                          out[:, 0], out[:, 1], out[:, 2], emergency, own_lead)


@kernel(f"Tuple((boolean, int64))({_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, {_FIELD}, float64, int64,"
        " int64, float64, boolean, float64, float64, float64, float64, float64, float64[::1], float64, float64,"
        " float64, float64, float64, float64, float64, float64, float64, float64[:, :, ::1], float64[:, ::1],"
        " boolean[::1])")
def _lane_rollouts(s_m, d_m, vd_mps, length_m, width_m, s_rate_mps, accel_mps2, s_ego_m, lane, num_lanes,
                   lane_width_m, may_change, kappa_1pm, v_target_mps, v0_mps, a0_mps2, stop_decel_mps2, gains,
                   reference_step_s, end_gap_m, lane_changer_speed_mps, lane_changer_behind_m, lane_changer_ahead_m,
                   cut_in_horizon_s, ego_front_m, ego_half_width_m, corridor_margin_m, coarse, lane_rows, valid):
    """The three lanes (right neighbour, own, left neighbour) of ``lane_references``: into ``valid``
    (3,) whether each may be targeted (on the road; a neighbour only if lane changes are allowed
    and nobody crosses into or out of it or the own lane, ``_crossed``), into ``lane_rows`` (2, 3)
    each centre and its stretch 1 - k d (floored as lane_stretch, Python's max), into ``coarse``
    (3, 3, R) each lane's ACC roll-out (acc_law._rollout against its lead from ``_select_leads``,
    targeting v_target / stretch; an invalid lane gets the own lane's). Returns whether the own
    lane's roll-out starts as an emergency, and its lead's index (-1: none).

    Two lanes with equal roll-out inputs (two free neighbours) share one roll-out, as the Python
    form's dictionary of inputs did (its keys compared by ==, so 0.0 and -0.0 match). The lanes'
    arithmetic is the Python form's on floats; tests/planning/test_lattice_tables.py keeps that
    form as the reference."""
    for j in range(3):
        ln = lane - 1 + j
        centre = (ln - 0.5 * (num_lanes - 1)) * lane_width_m
        stretch = 1.0 - kappa_1pm * centre
        lane_rows[0, j] = centre
        lane_rows[1, j] = ONE_KD_FLOOR if ONE_KD_FLOOR > stretch else stretch
        valid[j] = 0 <= ln < num_lanes and (ln == lane or may_change)
    lanes = np.empty(3, np.int64)
    for j in range(3):
        lanes[j] = lane - 1 + j
    # While someone crosses into or out of the ego lane, keep the lane and let the ACC law react: a
    # lane change then would start from a half-reacted speed and race the crossing car.
    crossed = _crossed(s_m, d_m, vd_mps, s_ego_m, lanes, lane_width_m, num_lanes, lane_changer_speed_mps,
                       lane_changer_behind_m, lane_changer_ahead_m, cut_in_horizon_s)
    valid[0] = valid[0] and not (crossed[0] or crossed[1])
    valid[2] = valid[2] and not (crossed[2] or crossed[1])
    leads, gaps = _select_leads(s_m, d_m, vd_mps, length_m, width_m, s_ego_m, lane_rows[0], ego_front_m,
                                ego_half_width_m, corridor_margin_m, cut_in_horizon_s)
    keys = np.empty((3, 4))  # per lane run: gap, lead speed, lead acceleration, target
    ran = np.zeros(3, np.bool_)
    emergency = False
    ref_steps = coarse.shape[2]
    for step in range(3):
        j = 1 if step == 0 else (0 if step == 1 else 2)  # the own lane first: it stands in for the others
        i = leads[j]
        keys[j, 0] = gaps[j]
        keys[j, 1] = s_rate_mps[i] if i >= 0 else 0.0
        keys[j, 2] = accel_mps2[i] if i >= 0 else 0.0
        keys[j, 3] = v_target_mps / lane_rows[1, j]
        source = 1 if not valid[j] else -1
        if valid[j]:
            for other in (1, 0, 2):
                if ran[other] and (keys[other, 0] == keys[j, 0] and keys[other, 1] == keys[j, 1]
                                   and keys[other, 2] == keys[j, 2] and keys[other, 3] == keys[j, 3]):
                    source = other
                    break
        if source >= 0:
            coarse[j] = coarse[source]
            continue
        profiles, emerg, _ = _rollout(v0_mps, a0_mps2, keys[j, 3], keys[j, 0], keys[j, 1], keys[j, 2], end_gap_m,
                                      stop_decel_mps2, gains, reference_step_s, ref_steps)
        coarse[j] = profiles
        ran[j] = True
        if j == 1:
            emergency = emerg
    return emergency, leads[1]
