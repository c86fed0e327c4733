"""Anytime Frenet lattice planner (lateral quintics x longitudinal quartics), a drop-in for the
spine planner: ``lattice_plan_step(state, ego, tracks, limits, road, t_ns, cfg, timer) -> (state, plan)``.

Order of work: the cost terms that factor per family (jerk, offset, speed error, lane cost,
consistency) give every candidate a lower bound at once; candidates are then visited in order of
that bound, in batches, where the coupled terms are evaluated (collision against inflated predictions,
path curvature, proximity cost). The search stops when no unvisited candidate can beat the best
found, or when the injected ``timer`` passes the budget (the first batch is always evaluated).
Nothing feasible -> emergency braking in lane, flagged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from core.config import rng
from core.geometry import wrap_angle
from core.messages import EgoState, ModeLimits, Plan, Tracks
from core.road import SAMPLE_SPACING_M, Road
from planning.acc_planner import AccPlannerConfig, ego_from_plan, ego_is_finite, initial_accel, stop_profile_plan
from planning.behaviour import lane_references
from planning.frenet_plan import frenet_to_plan
from planning.lattice_grid import (integral_sq, lateral_family, lateral_feasible, longitudinal_family,
                                   longitudinal_feasible)
from planning.lattice_obstacles import MAX_OBJECTS, followers_in_lane, obstacle_terms
from planning.prediction import PredictionParams, estimate_yaw_rate, predict
from planning.track_frenet import tracks_to_frenet


@dataclass(frozen=True, slots=True)
class LatticeConfig:
    acc: AccPlannerConfig = field(default_factory=AccPlannerConfig)  # horizon, step, ACC references
    prediction: PredictionParams = field(default_factory=PredictionParams)
    horizons_s: tuple[float, ...] = (2.0, 2.75, 3.5, 4.25, 5.0)
    lateral_offsets_m: tuple[float, ...] = (0.0,)  # around each reachable lane centre
    num_accel_levels: int = field(default=25, metadata=rng(2, 200))
    min_accel_level_mps2: float = field(default=-8.0, metadata=rng(-12.0, 0.0))
    max_accel_level_mps2: float = field(default=2.0, metadata=rng(0.0, 5.0))
    max_accel_mps2: float = field(default=3.0, metadata=rng(0.1, 10.0))
    max_decel_mps2: float = field(default=8.0, metadata=rng(0.1, 12.0))
    max_jerk_mps3: float = field(default=15.0, metadata=rng(0.5, 100.0))
    max_lat_accel_mps2: float = field(default=3.5, metadata=rng(0.5, 10.0))
    max_curvature_1pm: float = field(default=0.2, metadata=rng(0.01, 1.0))
    ego_length_m: float = field(default=4.6, metadata=rng(1.0, 20.0))
    ego_width_m: float = field(default=1.9, metadata=rng(0.5, 3.5))
    rear_axle_to_center_m: float = field(default=1.4, metadata=rng(0.0, 10.0))
    inflation_sigmas: float = field(default=1.0, metadata=rng(0.0, 5.0))
    lat_margin_m: float = field(default=0.2, metadata=rng(0.0, 2.0))
    lon_margin_m: float = field(default=1.0, metadata=rng(0.0, 10.0))
    w_lat_jerk: float = field(default=0.05, metadata=rng(0.0, 100.0))
    w_lon_jerk: float = field(default=0.02, metadata=rng(0.0, 100.0))
    w_lat_dev: float = field(default=0.05, metadata=rng(0.0, 100.0))  # d(t) away from its target
    w_offset: float = field(default=1.0, metadata=rng(0.0, 100.0))  # target off the lane centre
    w_speed: float = field(default=1.0, metadata=rng(0.0, 100.0))  # speed vs the lane's ACC profile
    w_progress: float = field(default=0.1, metadata=rng(0.0, 100.0))  # lane slower than desired
    lane_change_cost: float = field(default=4.0, metadata=rng(0.0, 1000.0))
    w_consistency: float = field(default=0.5, metadata=rng(0.0, 100.0))  # lateral, vs previous plan
    w_proximity: float = field(default=2.0, metadata=rng(0.0, 1000.0))
    reference_step_s: float = field(default=0.25, metadata=rng(0.01, 1.0))  # lane ACC roll-outs
    batch_size: int = field(default=64, metadata=rng(1, 100000))
    budget_ns: int = field(default=2_000_000, metadata=rng(1, 10_000_000_000))

    def __post_init__(self) -> None:
        if not self.horizons_s or min(self.horizons_s) <= 0.0 or max(self.horizons_s) > self.acc.horizon_s:
            raise ValueError(f"horizons_s must be non-empty, in (0, acc.horizon_s = {self.acc.horizon_s}]")
        if not self.lateral_offsets_m or max(abs(o) for o in self.lateral_offsets_m) > 2.0:
            raise ValueError("lateral_offsets_m must be non-empty, each within [-2, 2] m of the lane centre")


@dataclass(frozen=True, slots=True)
class LatticeState:
    last_plan: Plan | None = None
    last_d_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Frenet d of the last plan
    last_dd_mps2: np.ndarray = field(default_factory=lambda: np.zeros(0))  # and its d acceleration
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # memory for rates
    track_yaws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    track_vs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    track_accel: np.ndarray = field(default_factory=lambda: np.zeros(0))
    track_t_ns: int = -1
    ignored_tracks: int = 0
    dropped_tracks: int = 0  # valid tracks beyond the MAX_OBJECTS nearest
    stale_egos: int = 0
    rejected_egos: int = 0
    deadline_hits: int = 0
    infeasible: int = 0
    evaluated: int = 0  # candidates fully evaluated in the last step


def _accel_estimate(ids, vs, state: LatticeState, dt_s: float, smoothing: float) -> np.ndarray:
    """Along-road acceleration per track by finite difference against the same id, low-passed."""
    out = np.zeros(ids.shape[0])
    if state.track_ids.shape[0] == 0 or dt_s <= 0.0 or ids.shape[0] == 0:
        return out
    order = np.argsort(state.track_ids, kind="stable")
    pos = np.clip(np.searchsorted(state.track_ids[order], ids), 0, order.shape[0] - 1)
    found = state.track_ids[order[pos]] == ids
    j = order[pos[found]]
    raw = (vs[found] - state.track_vs[j]) / dt_s
    out[found] = state.track_accel[j] + smoothing * (raw - state.track_accel[j])
    return np.clip(out, -12.0, 6.0)


def _emergency(state: LatticeState, ego: EgoState, road: Road, lane: int, t_ns: int, decel: float,
               cfg: LatticeConfig, behaviour: str, **counters) -> tuple[LatticeState, Plan]:
    plan = stop_profile_plan(road, ego, lane, t_ns, initial_accel(state.last_plan, ego, t_ns), decel, cfg.acc, behaviour)
    n = plan.t_s.shape[0]
    return replace(state, last_plan=plan, last_d_m=np.full(n, float(road.lane_center_d(lane))),
                   last_dd_mps2=np.zeros(n), evaluated=0, **counters), plan


def lattice_plan_step(state: LatticeState, ego: EgoState, tracks: Tracks, limits: ModeLimits, road: Road,
                      t_ns: int, cfg: LatticeConfig, timer: Callable[[], int]) -> tuple[LatticeState, Plan]:
    deadline_ns = timer() + cfg.budget_ns
    acc = cfg.acc
    if not ego_is_finite(ego):
        if state.last_plan is None:
            raise ValueError("lattice_plan_step: ego state is not finite and there is no previous plan")
        ego = ego_from_plan(state.last_plan, t_ns)
        lane = int(road.lane_of(road.to_frenet(ego.pose[None, :2])[1][0]))
        return _emergency(state, ego, road, lane, t_ns, acc.stale_stop_decel_mps2, cfg, "bad_ego",
                          rejected_egos=state.rejected_egos + 1)
    s_arr, d_arr = road.to_frenet(ego.pose[None, :2])
    lane = int(road.lane_of(d_arr[0]))
    if (t_ns - ego.t_ns) * 1e-9 > acc.max_ego_age_s:
        return _emergency(state, ego, road, lane, t_ns, acc.stale_stop_decel_mps2, cfg, "stale_ego",
                          stale_egos=state.stale_egos + 1)

    # Ego in Frenet at the planning time.
    steps = int(round(acc.horizon_s / acc.step_s)) + 1
    t_s = np.arange(steps) * acc.step_s
    s0 = float(s_arr[0]) + ego.speed_mps * max((t_ns - ego.t_ns) * 1e-9, 0.0)
    d0 = float(d_arr[0])
    _, heading, kappa = road.interpolate(s0)
    dpsi = float(wrap_angle(ego.pose[2] - heading))
    v0 = max(ego.speed_mps * math.cos(dpsi) / max(1.0 - float(kappa) * d0, 1e-3), 0.0)
    dd0 = ego.speed_mps * math.sin(dpsi)
    a0 = initial_accel(state.last_plan, ego, t_ns)
    prev_dd = 0.0
    if state.last_plan is not None and state.last_dd_mps2.shape[0] == state.last_plan.t_s.shape[0]:
        prev_dd = float(np.interp((t_ns - state.last_plan.t_ns) * 1e-9, state.last_plan.t_s, state.last_dd_mps2))

    # Tracks: Frenet, nearest MAX_OBJECTS, rate memories, predictions.
    ft, n_bad = tracks_to_frenet(tracks, road, t_ns, acc.min_existence)
    dropped = 0
    if len(ft) > MAX_OBJECTS:
        near = np.sort(np.argpartition(np.abs(ft.s_m - s0), MAX_OBJECTS)[:MAX_OBJECTS])
        dropped = len(ft) - MAX_OBJECTS
        ft = type(ft)(*(getattr(ft, f)[near] for f in ft.__slots__))
    dt_mem = (t_ns - state.track_t_ns) * 1e-9 if state.track_t_ns >= 0 else 0.0
    yaw_rate = estimate_yaw_rate(ft.ids, ft.yaw_rad, state.track_ids, state.track_yaws, dt_mem)
    accel_tr = _accel_estimate(ft.ids, ft.vs_mps, state, dt_mem, acc.lead_accel_smoothing)
    pred = predict(ft, yaw_rate, road, t_s, cfg.prediction)
    memory = dict(track_ids=ft.ids, track_yaws=ft.yaw_rad, track_vs=ft.vs_mps, track_accel=accel_tr,
                  track_t_ns=t_ns, ignored_tracks=state.ignored_tracks + n_bad,
                  dropped_tracks=state.dropped_tracks + dropped)

    # Behaviour: reachable lanes and their ACC speed profiles.
    refs = lane_references(ft, accel_tr, s0, lane, v0, a0, limits, road, acc, t_s, cfg.reference_step_s)
    v_cap = min(road.speed_limit_mps, limits.speed_cap_mps)
    v_max = max(v_cap, v0)  # above the cap (cap just lowered): only profiles that slow down pass
    offsets = np.asarray(cfg.lateral_offsets_m, dtype=np.float64)
    d_targets = (road.lane_center_d(refs.lanes)[:, None] + offsets[None, :]).ravel()
    lane_slot = np.repeat(np.arange(3), offsets.shape[0])
    horizons = np.asarray(cfg.horizons_s, dtype=np.float64)
    levels = np.linspace(cfg.min_accel_level_mps2, cfg.max_accel_level_mps2, cfg.num_accel_levels)
    lat = lateral_family(d0, dd0, prev_dd, d_targets, horizons, t_s)
    lon, _ = longitudinal_family(s0, v0, a0, levels, horizons, v_max, t_s)
    lat_ok = lateral_feasible(lat, cfg.max_lat_accel_mps2, road.half_width_m, 0.5 * cfg.ego_width_m)
    lat_ok &= refs.valid[lane_slot][:, None]
    lon_ok = longitudinal_feasible(lon, cfg.max_accel_mps2, cfg.max_decel_mps2, cfg.max_jerk_mps3, v_max)

    # Per-family costs; the lower bound of every candidate (n_d, n_v, n_T) by broadcasting.
    dt = acc.step_s
    c_lat = cfg.w_lat_jerk * integral_sq(lat.j, dt) + cfg.w_lat_dev * integral_sq(lat.x - d_targets[:, None, None], dt)
    c_lat += (cfg.w_offset * offsets[None, :] ** 2 + cfg.lane_change_cost * (refs.lanes != lane)[:, None]).ravel()[:, None]
    lane_progress = cfg.w_progress * integral_sq(np.maximum(v_cap - refs.v_ref_mps, 0.0), dt)
    c_lat += lane_progress[lane_slot][:, None]
    if state.last_plan is not None and state.last_d_m.shape[0] == steps:
        t_prev = (t_ns - state.last_plan.t_ns) * 1e-9 + t_s
        overlap = t_prev <= state.last_plan.t_s[-1]
        prev_d = np.interp(t_prev, state.last_plan.t_s, state.last_d_m)
        c_lat += cfg.w_consistency * integral_sq((lat.x - prev_d) * overlap, dt)
    c_lon = cfg.w_lon_jerk * integral_sq(lon.j, dt)
    c_speed = cfg.w_speed * integral_sq(lon.v[None] - refs.v_ref_mps[:, None, None, :], dt)  # (3, n_v, n_T)
    bound = c_lat[:, None, :] + c_lon[None, :, :] + c_speed[lane_slot]
    bound = np.where(lat_ok[:, None, :] & lon_ok[None, :, :], bound, np.inf)

    # Coupled terms, evaluated lazily in order of the bound.
    ignore = followers_in_lane(pred, s0 + cfg.rear_axle_to_center_m, d0, cfg.ego_length_m, cfg.ego_width_m)
    obs = obstacle_terms(pred, lat.x, cfg.ego_length_m, cfg.ego_width_m, cfg.inflation_sigmas,
                         cfg.lat_margin_m, cfg.lon_margin_m, ignore)
    # Road curvature is piecewise constant per sample: a direct lookup beats interpolating 10^4 points.
    kappa_lon = road.curvature_1pm[np.clip((lon.x / SAMPLE_SPACING_M).astype(np.int64), 0, road.curvature_1pm.shape[0] - 1)]
    n_d, n_v, n_T = bound.shape
    flat = bound.ravel()
    n_ok = int(np.count_nonzero(np.isfinite(flat)))
    order = np.argsort(flat, kind="stable")[:n_ok]
    best_cost, best = math.inf, -1
    evaluated, hit_deadline = 0, False
    for start in range(0, n_ok, cfg.batch_size):
        if flat[order[start]] >= best_cost:
            break  # nothing left can beat the best
        if start > 0 and timer() >= deadline_ns:
            hit_deadline = True
            break
        idx = order[start:start + cfg.batch_size]
        il, iv, iT = np.unravel_index(idx, (n_d, n_v, n_T))
        lon_ov, lon_w = obs.longitudinal(lon.x[iv, iT] + cfg.rear_axle_to_center_m)
        collide = (obs.lat_overlap[il, iT] & lon_ov).any(axis=(1, 2))
        v_b = lon.v[iv, iT]
        curv = kappa_lon[iv, iT] + lat.a[il, iT] / np.maximum(v_b, 2.0) ** 2
        fast = v_b > 2.0  # lateral motion at walking pace is the controller's business
        kin_ok = ~((fast & ((np.abs(curv) > cfg.max_curvature_1pm)
                            | (v_b * v_b * np.abs(curv) > cfg.max_lat_accel_mps2))).any(axis=-1))
        prox = np.einsum("bkn,bkn->b", obs.lat_w[il, iT], lon_w) * dt
        total = np.where(~collide & kin_ok, flat[idx] + cfg.w_proximity * prox, np.inf)
        evaluated += idx.shape[0]
        i = int(np.argmin(total))
        if total[i] < best_cost:
            best_cost, best = float(total[i]), int(idx[i])
    counters = dict(memory, evaluated=evaluated, deadline_hits=state.deadline_hits + int(hit_deadline))
    if best < 0:
        st = replace(state, infeasible=state.infeasible + 1, **{k: v for k, v in counters.items() if k != "evaluated"})
        st, plan = _emergency(st, ego, road, lane, t_ns, acc.max_decel_mps2, cfg, "emergency_brake")
        return replace(st, evaluated=evaluated), plan

    il, iv, iT = (int(z) for z in np.unravel_index(best, (n_d, n_v, n_T)))
    d, dd, ddd = lat.x[il, iT], lat.v[il, iT], lat.a[il, iT]
    s, v, a = lon.x[iv, iT], lon.v[iv, iT], lon.a[iv, iT]
    sdot = np.maximum(v, 1.0)
    d_s = np.clip(dd / sdot, -1.0, 1.0)
    d_ss = (ddd - d_s * a) / (sdot * sdot)
    target_lane = int(refs.lanes[lane_slot[il]])
    emergency = refs.emergency or float(a.min()) < -acc.comfort_decel_mps2 - 0.1
    if limits.stop_decel_mps2 > 0.0:
        behaviour = "mrm"
    elif target_lane != lane:
        behaviour = "lane_change_left" if target_lane > lane else "lane_change_right"
    elif emergency:
        behaviour = "emergency_brake"
    else:
        behaviour = "follow" if refs.own_lead_index >= 0 and v[-1] < v_cap - 0.5 else "cruise"
    plan = frenet_to_plan(road, t_ns, t_s, s, d, d_s, d_ss, np.maximum(v, 0.0), a, emergency, behaviour)
    return replace(state, last_plan=plan, last_d_m=d, last_dd_mps2=ddd, **counters), plan
