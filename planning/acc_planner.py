"""Spine planner at 10 Hz: keep the lane, cruise at the allowed speed, follow a lead at a time gap,
stop for stopped vehicles, and obey the safety layer's limits.

Pure step: ``acc_plan_step(state, ego, tracks, limits, road, t_ns, cfg) -> (state, plan)``.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, fields, replace

import numpy as np

from core.config import rng
from core.jit import kernel
from core.messages import EgoState, ModeLimits, Plan, Tracks
from core.road import Road
from planning.acc_law import AccGains, rollout
from planning.frenet_plan import frenet_to_plan, lane_stretch
from planning.interp import interp_value
from planning.road_end import road_end_gap
from planning.track_frenet import curvature_at, road_heading_curvature, select_lead, tracks_to_frenet

# The config names each gain as AccGains does, so the gains array is read from the config in
# AccGains' field order, derived here rather than restated: a field added to AccGains cannot shift
# the indices the compiled law reads (a gain the config lacks is an AttributeError).
_ACC_GAIN_NAMES = tuple(f.name for f in fields(AccGains))
_config_gains = operator.attrgetter(*_ACC_GAIN_NAMES)
_TIME_GAP_INDEX = _ACC_GAIN_NAMES.index("time_gap_s")


@dataclass(frozen=True, slots=True)
class AccPlannerConfig:
    horizon_s: float = field(default=5.0, metadata=rng(1.0, 15.0))
    step_s: float = field(default=0.1, metadata=rng(0.01, 0.5))
    max_ego_age_s: float = field(default=0.3, metadata=rng(0.01, 5.0))
    time_gap_s: float = field(default=1.5, metadata=rng(0.5, 5.0))
    standstill_gap_m: float = field(default=4.0, metadata=rng(1.0, 20.0))
    reaction_s: float = field(default=0.3, metadata=rng(0.0, 2.0))
    k_speed_1ps: float = field(default=0.5, metadata=rng(0.05, 5.0))
    k_rel_speed_1ps: float = field(default=0.6, metadata=rng(0.05, 5.0))
    k_gap_1ps2: float = field(default=0.12, metadata=rng(0.01, 2.0))
    comfort_accel_mps2: float = field(default=1.5, metadata=rng(0.1, 5.0))
    # ISO 15622 (ACC): automatic deceleration at most 3.5 m/s^2 (2 s average) and its rate of change
    # at most 2.5 m/s^3 (comfort_jerk_mps3): braking within both is a comfortable reaction.
    comfort_decel_mps2: float = field(default=3.5, metadata=rng(0.5, 6.0))
    approach_decel_mps2: float = field(default=2.0, metadata=rng(0.2, 6.0))
    cruise_decel_mps2: float = field(default=2.0, metadata=rng(0.1, 6.0))
    max_decel_mps2: float = field(default=8.0, metadata=rng(1.0, 12.0))
    comfort_jerk_mps3: float = field(default=2.5, metadata=rng(0.5, 20.0))
    emergency_jerk_mps3: float = field(default=12.0, metadata=rng(1.0, 50.0))
    stale_stop_decel_mps2: float = field(default=4.0, metadata=rng(0.5, 12.0))
    lead_brake_threshold_mps2: float = field(default=0.5, metadata=rng(0.05, 5.0))
    lead_accel_smoothing: float = field(default=0.5, metadata=rng(0.01, 1.0))  # low-pass weight of a new estimate
    max_lat_accel_mps2: float = field(default=2.0, metadata=rng(0.5, 8.0))  # curve speed
    curve_preview_s: float = field(default=8.0, metadata=rng(0.0, 30.0))
    ego_front_m: float = field(default=3.7, metadata=rng(0.0, 20.0))  # rear axle to front bumper
    ego_half_width_m: float = field(default=0.95, metadata=rng(0.2, 2.0))
    corridor_margin_m: float = field(default=0.3, metadata=rng(0.0, 2.0))
    cut_in_horizon_s: float = field(default=1.5, metadata=rng(0.0, 5.0))
    min_existence: float = field(default=0.3, metadata=rng(0.0, 1.0))
    # A vehicle this fast sideways and this near blocks lane changes into the lanes it moves between.
    lane_changer_speed_mps: float = field(default=0.5, metadata=rng(0.0, 10.0))
    lane_changer_ahead_m: float = field(default=60.0, metadata=rng(0.0, 500.0))
    lane_changer_behind_m: float = field(default=15.0, metadata=rng(0.0, 500.0))

    def gains(self, time_gap_s: float) -> AccGains:
        return AccGains(self.standstill_gap_m, time_gap_s, self.reaction_s, self.k_speed_1ps,
                        self.k_rel_speed_1ps, self.k_gap_1ps2, self.comfort_accel_mps2,
                        self.comfort_decel_mps2, self.approach_decel_mps2, self.cruise_decel_mps2, self.max_decel_mps2,
                        self.comfort_jerk_mps3, self.emergency_jerk_mps3, self.lead_brake_threshold_mps2)

    def gains_array(self, time_gap_s: float) -> np.ndarray:
        """``gains(time_gap_s).as_array()`` without building the dataclass (once per lattice plan)."""
        values = list(_config_gains(self))
        values[_TIME_GAP_INDEX] = time_gap_s  # the caller's gap (the mode may ask for a longer one)
        return np.array(values, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class AccPlannerState:
    lane: int = -1  # lane being kept; -1 until the first valid ego
    lead_id: int = -1
    lead_speed_mps: float = 0.0
    lead_accel_mps2: float = 0.0  # low-pass finite-difference estimate (tracks carry no accel)
    lead_t_ns: int = -1
    last_plan: Plan | None = None
    ignored_tracks: int = 0  # non-finite tracks dropped, cumulative
    stale_egos: int = 0
    rejected_egos: int = 0

    def counters(self) -> dict[str, int]:
        """The cumulative counters a run report shows: egos refused as stale or non-finite, tracks
        ignored as non-finite."""
        return {"stale_egos": self.stale_egos, "rejected_egos": self.rejected_egos,
                "ignored_tracks": self.ignored_tracks}


def ego_is_finite(ego: EgoState) -> bool:
    # A three-element pose: Python floats are cheaper than array temporaries.
    return all(math.isfinite(z) for z in ego.pose.tolist()) and math.isfinite(ego.speed_mps)


def ego_from_plan(plan: Plan, t_ns: int) -> EgoState:
    """The pose the previous plan promised for ``t_ns``: the best stand-in for a non-finite ego."""
    t = (t_ns - plan.t_ns) * 1e-9
    pose = np.array([np.interp(t, plan.t_s, plan.xy_m[:, 0]), np.interp(t, plan.t_s, plan.xy_m[:, 1]),
                     np.interp(t, plan.t_s, np.unwrap(plan.yaw_rad))])
    return EgoState(t_ns, pose, float(np.interp(t, plan.t_s, plan.speed_mps)),
                    float(np.interp(t, plan.t_s, plan.accel_mps2)), 0.0, np.eye(5))


def target_speed(road: Road, s_ego_m: float, v_mps: float, limits: ModeLimits, cfg: AccPlannerConfig) -> float:
    """Speed limit and cap, lowered ahead of curves so that the curve is reached at a lateral
    acceleration within max_lat_accel after a cruise-rate deceleration."""
    v_max = min(road.speed_limit_mps, limits.speed_cap_mps)
    if cfg.curve_preview_s <= 0.0 or road.is_straight:
        # Nothing to slow for: zero curvature allows sqrt(max_lat_accel / 1e-9), tens of km/s.
        return v_max
    v_allow = _curve_preview_speed(float(s_ego_m), max(v_mps, 5.0) * cfg.curve_preview_s, road.curvature_1pm,
                                   road.length_m, road.samples_per_m, cfg.max_lat_accel_mps2,
                                   2.0 * cfg.cruise_decel_mps2)
    return float(min(v_max, v_allow))


def numpy_curve_preview_speed(road: Road, s_ego_m: float, preview_m: float, max_lat_accel_mps2: float,
                              cruise_decel_mps2: float) -> float:
    """target_speed's curve preview in numpy, the reference of ``_curve_preview_speed``: the least
    speed over 32 points up to ``preview_m`` ahead that still reaches each point's curve speed."""
    ahead = np.linspace(0.0, preview_m, 32)
    k = curvature_at(road, s_ego_m + ahead)
    v_curve2 = max_lat_accel_mps2 / np.maximum(np.abs(k), 1e-9)
    v_allow = np.sqrt(v_curve2 + 2.0 * cruise_decel_mps2 * ahead)
    return v_allow.min()


_PREVIEW_POINTS = 32


@kernel("float64(float64, float64, float64[::1], float64, float64, float64, float64)")
def _curve_preview_speed(s_ego_m, preview_m, curvature_table, length_m, samples_per_m, max_lat_accel_mps2,
                         two_cruise_decel_mps2):
    """numpy_curve_preview_speed in one loop (it was ~15 numpy calls a plan on a curved road), the
    numpy form's operations in its order: np.linspace(0, preview, 32) (i * step + 0.0, or (i / 31)
    * preview where the step underflows to zero, the last point preview itself), curvature_at's
    lookup (np.minimum(np.maximum(.)) clamps, NaN's index 0), the curve speed and the minimum,
    a NaN anywhere making it NaN as ndarray.min."""
    div = _PREVIEW_POINTS - 1
    step = (preview_m - 0.0) / div
    last = curvature_table.shape[0] - 2
    best = np.inf
    for i in range(_PREVIEW_POINTS):
        if i == div:
            ahead = preview_m
        elif step == 0.0:
            ahead = (i / div) * (preview_m - 0.0) + 0.0
        else:
            ahead = i * step + 0.0
        s = s_ego_m + ahead
        s = s if (s > 0.0 or s != s) else 0.0
        s = s if (s < length_m or s != s) else length_m
        x = s * samples_per_m
        j = 0 if x != x else np.int64(x)
        j = 0 if j < 0 else (last if j > last else j)
        k = abs(curvature_table[j])
        k = k if (k > 1e-9 or k != k) else 1e-9
        v_allow = math.sqrt(max_lat_accel_mps2 / k + two_cruise_decel_mps2 * ahead)
        if v_allow < best or v_allow != v_allow:
            best = v_allow
            if best != best:
                break
    return best


def profile_plan(road: Road, t_ns: int, s0_m: float, d_m: float, s: np.ndarray, v: np.ndarray,
                 a: np.ndarray, cfg: AccPlannerConfig, emergency: bool, behaviour: str) -> Plan:
    """Longitudinal profile along a lane centre (distance, speed and acceleration along the lane,
    as the ACC law works) -> Plan. frenet_to_plan takes rates along the reference line: a lane at
    offset d of a curve is 1 - k d times as long, so the profile is divided by that (at s0: exact up
    to the next change of curvature, and 1.0, exact, on a straight road)."""
    t = np.arange(s.shape[0]) * cfg.step_s
    z = np.zeros_like(s)
    per_s = lane_stretch(road_heading_curvature(road, s0_m)[1], d_m)
    return frenet_to_plan(road, t_ns, t, s0_m + s / per_s, np.full_like(s, d_m), z, z, v / per_s, a / per_s,
                          emergency, behaviour)


def initial_accel(prev: Plan | None, ego: EgoState, t_ns: int) -> float:
    """Continue the previous plan's acceleration (consistent jerk limits across replans); fall back
    to the measured one."""
    if prev is not None:
        t = (t_ns - prev.t_ns) * 1e-9
        if 0.0 <= t <= prev.t_s[-1]:
            return interp_value(t, prev.t_s, prev.accel_mps2)
    return float(ego.accel_mps2) if math.isfinite(ego.accel_mps2) else 0.0


def stop_profile_plan(road: Road, ego: EgoState, lane: int, t_ns: int, a0_mps2: float, decel_mps2: float,
                      cfg: AccPlannerConfig, behaviour: str, d_m: float | None = None) -> Plan:
    """Emergency stop in ``lane`` (or at the lateral offset ``d_m`` if given) at ``decel_mps2``
    (emergency jerk), flagged."""
    s_ego, _ = road.to_frenet(ego.pose[None, :2])
    s0 = float(s_ego[0]) + ego.speed_mps * max((t_ns - ego.t_ns) * 1e-9, 0.0)
    g = replace(cfg.gains(cfg.time_gap_s), cruise_decel_mps2=decel_mps2, comfort_jerk_mps3=cfg.emergency_jerk_mps3)
    steps = int(round(cfg.horizon_s / cfg.step_s)) + 1
    s, v, a, _, _ = rollout(ego.speed_mps, a0_mps2, 0.0, math.inf, 0.0, 0.0, decel_mps2, g, cfg.step_s, steps)
    d_stop = float(road.lane_center_d(lane)) if d_m is None else float(d_m)
    return profile_plan(road, t_ns, s0, d_stop, s, v, a, cfg, True, behaviour)


def _stop_plan(state: AccPlannerState, ego: EgoState, road: Road, t_ns: int, cfg: AccPlannerConfig,
               behaviour: str, **counters) -> tuple[AccPlannerState, Plan]:
    _, d_ego = road.to_frenet(ego.pose[None, :2])
    lane = state.lane if state.lane >= 0 else int(road.lane_of(d_ego[0]))
    plan = stop_profile_plan(road, ego, lane, t_ns, initial_accel(state.last_plan, ego, t_ns),
                             cfg.stale_stop_decel_mps2, cfg, behaviour)
    return replace(state, lane=lane, last_plan=plan, **counters), plan


def acc_plan_step(state: AccPlannerState, ego: EgoState, tracks: Tracks, limits: ModeLimits, road: Road,
                  t_ns: int, cfg: AccPlannerConfig) -> tuple[AccPlannerState, Plan]:
    if not ego_is_finite(ego):
        if state.last_plan is None:
            raise ValueError("acc_plan_step: ego state is not finite and there is no previous plan to stop along")
        return _stop_plan(state, ego_from_plan(state.last_plan, t_ns), road, t_ns, cfg, "bad_ego",
                          rejected_egos=state.rejected_egos + 1)
    if (t_ns - ego.t_ns) * 1e-9 > cfg.max_ego_age_s:
        return _stop_plan(state, ego, road, t_ns, cfg, "stale_ego", stale_egos=state.stale_egos + 1)

    s_arr, d_arr = road.to_frenet(ego.pose[None, :2])
    dt_s = max((t_ns - ego.t_ns) * 1e-9, 0.0)
    s_ego, d_ego = float(s_arr[0]) + ego.speed_mps * dt_s, float(d_arr[0])
    lane = state.lane
    if lane < 0 or abs(d_ego - float(road.lane_center_d(lane))) > 0.75 * road.lane_width_m:
        lane = int(road.lane_of(d_ego))
    d_lane = float(road.lane_center_d(lane))

    ft, n_bad = tracks_to_frenet(tracks, road, t_ns, cfg.min_existence)
    i_lead, gap = select_lead(ft, s_ego, d_lane, cfg.ego_front_m, cfg.ego_half_width_m,
                              cfg.corridor_margin_m, cfg.cut_in_horizon_s)
    end_gap = road_end_gap(road, s_ego, cfg.ego_front_m, ego.speed_mps, cfg.horizon_s, cfg.cruise_decel_mps2)
    # The law runs in distance along the lane and physical speeds (profile_plan converts back);
    # the gaps are ones of s, and a metre of s is 1 - k d metres of a lane at offset d.
    stretch = lane_stretch(road_heading_curvature(road, s_ego)[1], d_lane)
    gap *= stretch
    end_gap *= stretch
    lead_id, v_lead, a_lead = -1, 0.0, 0.0
    if i_lead >= 0:
        lead_id, v_lead = int(ft.ids[i_lead]), float(ft.vs_mps[i_lead])
        dt_lead = (t_ns - state.lead_t_ns) * 1e-9
        if lead_id == state.lead_id and dt_lead > 1e-3:
            raw = (v_lead - state.lead_speed_mps) / dt_lead
            a_lead = state.lead_accel_mps2 + cfg.lead_accel_smoothing * (raw - state.lead_accel_mps2)
            a_lead = min(max(a_lead, -cfg.max_decel_mps2 - 2.0), 5.0)

    v_target = target_speed(road, s_ego, ego.speed_mps, limits, cfg)
    gains = cfg.gains(max(cfg.time_gap_s, limits.time_gap_s))
    steps = int(round(cfg.horizon_s / cfg.step_s)) + 1
    s, v, a, emergency, following = rollout(ego.speed_mps, initial_accel(state.last_plan, ego, t_ns), v_target, gap, v_lead,
                                 a_lead, limits.stop_decel_mps2, gains, cfg.step_s, steps, end_gap)
    if limits.stop_decel_mps2 > 0.0:
        behaviour = "mrm"
    elif emergency:
        behaviour = "emergency_brake"
    elif following:
        behaviour = "stop" if end_gap < gap else "follow"  # the nearer of the end and the lead
    else:
        behaviour = "cruise"
    plan = profile_plan(road, t_ns, s_ego, d_lane, s, v, a, cfg, emergency, behaviour)
    new_state = replace(state, lane=lane, lead_id=lead_id, lead_speed_mps=v_lead, lead_accel_mps2=a_lead,
                        lead_t_ns=t_ns, last_plan=plan, ignored_tracks=state.ignored_tracks + n_bad)
    return new_state, plan
