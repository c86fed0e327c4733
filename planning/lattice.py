"""Anytime Frenet lattice planner (lateral quintics x longitudinal quartics), a drop-in for the
spine planner: ``lattice_plan_step(state, ego, tracks, limits, road, t_ns, cfg, timer) -> (state, plan)``.

Candidates: lateral targets (lane centres +- offsets) x longitudinal profiles x horizons. The
longitudinal profiles are the quartic speed levels plus, per lane, that lane's ACC roll-out (the
spine planner's law, comfortable by construction), paired with targets in that lane only. A
profile beyond the comfort limits (deceleration, jerk) is an emergency candidate: allowed, flagged,
and costed so that it is chosen only when no comfortable candidate is free. A lane change once
chosen stays the target (aborting it costs a lane change too; an emergency if it evades an
emergency stop in the own lane). Per-config constants (polynomial maps, grids) are built once and
carried in the state (LatticeTables).

Order of work: the cost terms that factor per family (jerk, offset, speed error, lane cost,
consistency) give every candidate a lower bound at once; candidates are then visited in order of
that bound, in batches growing from first_batch_size to batch_size, where the coupled terms are
evaluated (collision against inflated predictions, path curvature, proximity cost). The search stops
when no unvisited candidate can beat the best found, or when the injected ``timer`` passes the budget
(the first batch is always evaluated). Without a deadline the result does not depend on the batch
sizes: it is the first candidate in bound order with the least total cost.
Nothing feasible -> emergency braking at the current lateral offset, flagged.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from core.jit import kernel
from core.messages import EgoState, ModeLimits, Plan, Tracks
from core.road import Road
from planning.acc_planner import ego_from_plan, ego_is_finite, initial_accel, stop_profile_plan
from planning.behaviour import lane_references
from planning.frenet_plan import frenet_to_plan, lane_stretch
from planning.interp import interp_at, interp_value, search_with_guess
from planning.lattice_batch import search_batch
from planning.lattice_config import LatticeConfig, LatticeState
from planning.lattice_bounds import candidate_bounds, longitudinal_family_terms_into, slot_speed_ok_into
from planning.lattice_grid import lateral_family_tabled
from planning.lattice_obstacles import MAX_OBJECTS, followers_in_lane, obstacle_terms
from planning.lattice_tables import LatticeTables, tables_for
from planning.prediction import predict
from planning.road_end import road_end_gap, with_road_end
from planning.track_frenet import road_heading_curvature, tracks_to_frenet

__all__ = ["LatticeConfig", "LatticeState", "LatticeTables", "lattice_plan_step"]


def _track_rates(ft, state: LatticeState, dt_s: float, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Yaw rate and along-road acceleration per track, from the memory of the same id in the
    previous plan (0 for new ids): the yaw by finite difference of the wrapped angle, the
    acceleration by finite difference low-passed by ``smoothing`` and clipped."""
    n = ft.ids.shape[0]
    if state.track_ids.shape[0] == 0 or dt_s <= 0.0 or n == 0:
        return np.zeros(n), np.zeros(n)
    rates = np.zeros((2, n))  # yaw rate, acceleration
    _rates_from_memory(ft.ids, ft.yaw_rad, ft.s_rate_mps, state.track_ids, state.track_yaws, state.track_vs,
                       state.track_accel, float(dt_s), float(smoothing), rates)
    return rates[0], rates[1]


# FrenetTracks fields and the state's memory may be read-only views (a decoded log, a column).
_ROW = "Array(float64, 1, 'A', readonly=True)"
_IDS = "Array(int64, 1, 'A', readonly=True)"


@kernel(f"void({_IDS}, {_ROW}, {_ROW}, {_IDS}, {_ROW}, {_ROW}, {_ROW}, float64, float64, float64[:, ::1])")
def _rates_from_memory(ids, yaw_rad, s_rate_mps, prev_ids, prev_yaws, prev_vs, prev_accel, dt_s, smoothing, rates):
    """_track_rates for N > 0 tracks and a non-empty memory, one loop instead of ~20 numpy calls on a
    few elements. A track's memory is the first of the previous ids equal to its id (a stable
    argsort and a left searchsorted found that one); the numpy form's operations in its order:
    wrap_angle's (a + pi) % 2 pi - pi (Python's float remainder, numpy's too), the clip to
    [-12, 6] m/s^2 as np.minimum(np.maximum(.)) (NaN stays NaN). Into ``rates`` (2, N), zeros on
    entry (an array the kernel returned would cost about a microsecond to hand over)."""
    n, m = ids.shape[0], prev_ids.shape[0]
    yaw_rate, accel = rates[0], rates[1]
    for i in range(n):
        for j in range(m):
            if prev_ids[j] == ids[i]:
                yaw_rate[i] = ((yaw_rad[i] - prev_yaws[j] + np.pi) % (2.0 * np.pi) - np.pi) / dt_s
                raw = (s_rate_mps[i] - prev_vs[j]) / dt_s
                accel[i] = prev_accel[j] + smoothing * (raw - prev_accel[j])
                break
        a = accel[i]
        a = a if (a > -12.0 or a != a) else -12.0
        accel[i] = a if (a < 6.0 or a != a) else 6.0


_PROFILE = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"void({_PROFILE}, {_PROFILE}, {_PROFILE}, {_PROFILE}, float64[:, ::1])")
def _path_terms(v_mps, dd_mps, ddd_mps2, a_mps2, rows):
    """The chosen candidate's path d(s) from d(t), rows (3, K): d' = clip(d_t / s_t, -1, 1) and
    d'' = (d_tt - d' s_tt) / s_t^2 with s_t floored at 1 m/s, and the speed floored at 0, as the
    numpy form np.minimum(np.maximum(dd / sdot, -1.0), 1.0) etc. (NaN kept) in its order, into
    ``rows``: each array a kernel returns costs about a microsecond to hand to Python."""
    n = v_mps.shape[0]
    d_s, d_ss, v_ahead = rows[0], rows[1], rows[2]
    for k in range(n):
        v = v_mps[k]
        sdot = v if (v > 1.0 or v != v) else 1.0
        z = dd_mps[k] / sdot
        z = z if (z > -1.0 or z != z) else -1.0
        z = z if (z < 1.0 or z != z) else 1.0
        d_s[k] = z
        d_ss[k] = (ddd_mps2[k] - z * a_mps2[k]) / (sdot * sdot)
        v_ahead[k] = v if (v > 0.0 or v != v) else 0.0


def _previous_plan_rows(age_s: float, t_s: np.ndarray, last_t_s: np.ndarray,
                        last_d_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The previous plan's lateral offset on this plan's grid ``t_s``, ``age_s`` after it started, and
    the consistency weight per step: 1 up to the previous plan's end, 0 past it (no penalty there).
    Compiled for float64 profiles of two or more samples (every lattice plan); numpy otherwise."""
    n = last_t_s.shape[0]
    if n >= 2 and last_d_m.shape == (n,) and last_t_s.dtype == np.float64 and last_d_m.dtype == np.float64:
        rows = np.empty((2, t_s.shape[0]))
        _previous_rows_into(float(age_s), t_s, last_t_s, last_d_m, rows)
        return rows[0], rows[1]
    t_prev = age_s + t_s
    return np.interp(t_prev, last_t_s, last_d_m), (t_prev <= last_t_s[-1]).astype(np.float64)


@kernel(f"void(float64, {_PROFILE}, {_PROFILE}, {_PROFILE}, float64[:, ::1])")
def _previous_rows_into(age_s, t_s, last_t_s, last_d_m, rows):
    """_previous_plan_rows' numpy form into ``rows`` (2, K): t = age_s + t_s, np.interp (interp.py,
    its bits) and (t <= last_t_s[-1]) as 1.0 or 0.0 (NaN: 0.0)."""
    j = 0
    end = last_t_s[last_t_s.shape[0] - 1]
    for k in range(t_s.shape[0]):
        t = age_s + t_s[k]
        if t != t:
            rows[0, k] = t
        else:
            j = search_with_guess(t, last_t_s, j)
            rows[0, k] = interp_at(t, last_t_s, last_d_m, j)
        rows[1, k] = 1.0 if t <= end else 0.0


def _lane_of(road: Road, d_m: float) -> int:
    """Road.lane_of for one float, without numpy's per-call overhead."""
    return min(max(math.floor(d_m / road.lane_width_m + 0.5 * road.num_lanes), 0), road.num_lanes - 1)


def _emergency(state: LatticeState, ego: EgoState, road: Road, d_m: float, t_ns: int, decel: float,
               cfg: LatticeConfig, behaviour: str, **counters) -> tuple[LatticeState, Plan]:
    """Brake at ``decel_mps2`` holding the lateral offset ``d_m``: steering back to a lane centre mid
    lane change could steer into the very obstacle that forced the stop."""
    plan = stop_profile_plan(road, ego, 0, t_ns, initial_accel(state.last_plan, ego, t_ns), decel, cfg.acc,
                             behaviour, d_m=d_m)
    n = plan.t_s.shape[0]
    return replace(state, last_plan=plan, last_d_m=np.full(n, d_m), last_dd_mps2=np.zeros(n),
                   target_lane=_lane_of(road, d_m), evaluated=0, **counters), plan


def lattice_plan_step(state: LatticeState, ego: EgoState, tracks: Tracks, limits: ModeLimits, road: Road,
                      t_ns: int, cfg: LatticeConfig, timer: Callable[[], int]) -> tuple[LatticeState, Plan]:
    deadline_ns = timer() + cfg.budget_ns
    acc = cfg.acc
    if not ego_is_finite(ego):
        if state.last_plan is None:
            raise ValueError("lattice_plan_step: ego state is not finite and there is no previous plan")
        ego = ego_from_plan(state.last_plan, t_ns)
        d_bad = float(road.to_frenet(ego.pose[None, :2])[1][0])
        return _emergency(state, ego, road, d_bad, t_ns, acc.stale_stop_decel_mps2, cfg, "bad_ego",
                          rejected_egos=state.rejected_egos + 1)
    x_m, y_m, yaw_rad = ego.pose.tolist()[:3]
    s_ego, d0 = road.point_to_frenet(x_m, y_m)
    lane = _lane_of(road, d0)
    if (t_ns - ego.t_ns) * 1e-9 > acc.max_ego_age_s:
        return _emergency(state, ego, road, d0, t_ns, acc.stale_stop_decel_mps2, cfg, "stale_ego",
                          stale_egos=state.stale_egos + 1)
    tab = tables_for(state.tables, cfg)
    t_s, dt, steps = tab.t_s, tab.dt_s, tab.steps

    # Ego in Frenet at the planning time.
    s0 = s_ego + ego.speed_mps * max((t_ns - ego.t_ns) * 1e-9, 0.0)
    heading, kappa = road_heading_curvature(road, s0)
    dpsi = math.remainder(yaw_rad - heading, math.tau)
    v0 = max(ego.speed_mps * math.cos(dpsi) / lane_stretch(kappa, d0), 0.0)
    dd0 = ego.speed_mps * math.sin(dpsi)
    a0 = initial_accel(state.last_plan, ego, t_ns)
    last = state.last_plan
    prev_dd = 0.0
    if last is not None and state.last_dd_mps2.shape[0] == last.t_s.shape[0]:
        prev_dd = interp_value((t_ns - last.t_ns) * 1e-9, last.t_s, state.last_dd_mps2)

    # Tracks: Frenet, nearest MAX_OBJECTS, rate memories, predictions.
    ft, n_bad = tracks_to_frenet(tracks, road, t_ns, acc.min_existence)
    dropped = 0
    if len(ft) > MAX_OBJECTS:
        near = np.sort(np.argpartition(np.abs(ft.s_m - s0), MAX_OBJECTS)[:MAX_OBJECTS])
        dropped = len(ft) - MAX_OBJECTS
        ft = type(ft)(*(getattr(ft, f)[near] for f in ft.__slots__))
    # The road's end: a stopping point for the ACC references, and a standing object for the
    # collision check (appended after the selection above: the end of the map is never dropped).
    end_gap = road_end_gap(road, s0, acc.ego_front_m, v0, float(t_s[-1]), acc.cruise_decel_mps2)
    ft_tracks = ft
    if end_gap < math.inf:
        ft = with_road_end(ft, road)
    dt_mem = (t_ns - state.track_t_ns) * 1e-9 if state.track_t_ns >= 0 else 0.0
    yaw_rate, accel_tr = _track_rates(ft, state, dt_mem, cfg.track_accel_smoothing)
    pred = predict(ft, yaw_rate, road, t_s, cfg.prediction, accel_tr, tab.prediction)

    # Behaviour: reachable lanes and their ACC roll-outs; a lane change under way stays committed.
    # The end is no lead (the tracks before it, the law's own demand for it).
    refs = lane_references(ft_tracks, accel_tr[:len(ft_tracks)], s0, lane, v0, a0, limits, road, kappa, acc,
                           tab.t_ref_s, tab.interp_ref, end_gap)
    if v0 < cfg.lane_change_min_speed_mps and state.target_lane not in (lane - 1, lane + 1):
        # No lane change starts at walking pace (one under way carries on): the search does not
        # check path curvature there, and a lane change from standstill is a sideways slide.
        refs = replace(refs, valid=refs.valid & (refs.lanes == lane))
    lanes_py, valid_py = refs.lanes.tolist(), refs.valid.tolist()  # three each: plain Python
    valid_lanes = [ln for ln, ok in zip(lanes_py, valid_py) if ok]
    committed = state.target_lane if state.target_lane in valid_lanes else lane
    # A lane change under way while the own lane's ACC needs more than comfortable braking is an
    # evasion: abandoning it for that lane is an emergency manoeuvre too, so it costs emergency_cost,
    # not lane_change_cost. It is then abandoned when no collision-free, RSS-safe continuation is
    # left, or when staying is comfortable after all, not because the continuation has just crossed
    # a comfort limit too (both emergencies: the soft terms, scored against each lane's own
    # roll-out, favoured braking in the lane, so the lattice started and dropped the evasion).
    change_cost = cfg.emergency_cost if committed != lane and refs.emergency else cfg.lane_change_cost
    v_cap = min(road.speed_limit_mps, limits.speed_cap_mps)
    # The cap holds along each lane: in reference-line rates it is v_cap / (1 - k d) per lane slot
    # (on a straight road exactly v_cap). The quartic family, shared by every lane, reaches the
    # fastest valid lane's cap; candidate_bounds holds each target lane to its own.
    lane_caps = v_cap / refs.stretch
    v_max = max(max(c for c, ok in zip(lane_caps.tolist(), valid_py) if ok), v0)
    offsets, lane_slot = tab.offsets_m, tab.lane_slot
    d_targets = (refs.centre_d_m[:, None] + offsets[None, :]).ravel()
    lat = lateral_family_tabled(tab.lat_map, d0, dd0, prev_dd, d_targets)
    # The longitudinal family: the quartic speed levels, then the three lanes' ACC roll-outs as
    # candidates of their own (the ACC law is comfortable by construction: jerk-limited, braking
    # spread over the whole approach, which end-constrained quartics cannot always match).
    n_lon = tab.levels_mps2.shape[0] + 3
    n_T = tab.horizons_s.shape[0]
    lon_xva = np.empty((3, n_lon, n_T, steps))
    lon_ok, lon_emergency = np.empty((n_lon, n_T), np.bool_), np.empty((n_lon, n_T), np.bool_)
    c_lon, vv = np.empty((n_lon, n_T)), np.empty(n_lon * n_T)
    longitudinal_family_terms_into(
        tab.lon_map, tab.levels_mps2, tab.horizons_s, s0, v0, a0, v_max, refs.s_m, refs.v_mps, refs.a_mps2, dt,
        cfg.max_accel_mps2, cfg.max_decel_mps2, cfg.max_jerk_mps3, acc.comfort_decel_mps2, cfg.comfort_jerk_mps3,
        cfg.w_lon_jerk, cfg.emergency_cost, lon_xva, lon_ok, lon_emergency, c_lon, vv)
    lon_x, lon_v, lon_a = lon_xva  # (n_v + 3, n_T, K) each
    # Above the cap (cap just lowered) only profiles that slow down pass: per lane slot, a profile
    # may not exceed max(its cap, v0), with longitudinal_family_terms' tolerance.
    lon_ok_slot = np.empty((3, n_lon, n_T), np.bool_)
    slot_speed_ok_into(lon_ok, lon_v, lane_caps, v0, lon_ok_slot)

    # Lateral consistency with the previous plan, sampled on this plan's grid.
    use_previous = last is not None and state.last_d_m.shape[0] == steps
    if use_previous:
        previous_d, previous_weight = _previous_plan_rows((t_ns - last.t_ns) * 1e-9, t_s, last.t_s, state.last_d_m)
    else:
        previous_d = previous_weight = np.zeros(0)
    # Every candidate's lower bound (n_d, n_v + 3, n_T) from the per-family terms, and the
    # feasible ones in order of it. v @ references stays numpy's (BLAS's summation order).
    v_ref_dot = lon_v.reshape(-1, steps) @ refs.v_mps.T  # ((n_v + 3) * n_T, 3)
    flat, order = candidate_bounds(
        lat.xvaj, d_targets, lane_slot, offsets, refs.lanes, committed, refs.valid, refs.v_mps, previous_d,
        previous_weight, use_previous, lon_ok_slot, c_lon, vv, v_ref_dot, dt, lane_caps, cfg.max_lat_accel_mps2,
        road.half_width_m, 0.5 * cfg.ego_width_m, cfg.w_lat_jerk, cfg.w_lat_dev, cfg.w_offset, change_cost,
        cfg.w_progress, cfg.w_consistency, cfg.w_speed)
    n_d, n_v = d_targets.shape[0], n_lon
    n_ok = order.shape[0]

    # Coupled terms, evaluated lazily in order of the bound.
    ignore = followers_in_lane(pred, s0 + cfg.rear_axle_to_center_m, d0, cfg.ego_length_m, cfg.ego_width_m)
    obs = obstacle_terms(pred, lat.x, cfg.ego_length_m, cfg.ego_width_m, cfg.inflation_sigmas,
                         cfg.lat_margin_m, cfg.lon_margin_m, ignore, cfg.rss_object_brake_mps2)
    if end_gap < math.inf and not ignore[-1]:
        # No proximity cost around the end (the last object): it stands where the map says, with
        # no uncertainty to keep clear of, and its bump, reaching ~6 m ahead of the front bumper,
        # would hold the car short of the references' stopping point, standstill_gap before it.
        obs.lat_w[:, :, -1, :] = 0.0
    # Per-family rows: candidate idx = il * (n_v * n_T) + jv, where jv = iv * n_T + iT is its
    # longitudinal row and jl = il * n_T + iT its lateral one.
    lon_x_rows, lon_v_rows, lat_a_rows = lon_x.reshape(-1, steps), lon_v.reshape(-1, steps), lat.a.reshape(-1, steps)
    lat_overlap_rows = obs.lat_overlap.reshape((n_d * n_T,) + obs.lat_overlap.shape[2:])
    lat_w_rows = obs.lat_w.reshape(lat_overlap_rows.shape)
    best_cost, best = math.inf, -1
    evaluated, hit_deadline = 0, False
    start, size = 0, min(cfg.first_batch_size, cfg.batch_size)
    while start < n_ok:
        if flat[order[start]] >= best_cost:
            break  # nothing left can beat the best
        if start > 0 and timer() >= deadline_ns:
            hit_deadline = True
            break
        idx = order[start:start + size]
        start, size = start + size, min(2 * size, cfg.batch_size)
        # The coupled terms, the proximity cost and the RSS rule of the batch, compiled; the batch's
        # best feasible, RSS-safe candidate if it beats the best so far.
        found, cost = search_batch(
            idx, n_v * n_T, n_T, lon_x_rows, lon_v_rows, lat_a_rows, road.is_straight, road.curvature_1pm,
            road.length_m, road.samples_per_m, lat_overlap_rows, lat_w_rows, obs.s_obj_rel, obs.inv_half_l, obs.s_ref_m,
            cfg.rear_axle_to_center_m, cfg.max_curvature_1pm, cfg.max_lat_accel_mps2, flat, cfg.w_proximity, dt,
            tab.lane_slot, obs.stop_rel, obs.rear_rel, cfg.rear_axle_to_center_m + 0.5 * cfg.ego_length_m,
            cfg.rss_reaction_s, cfg.rss_ego_brake_mps2, best_cost)
        evaluated += idx.shape[0]
        if found >= 0:
            best_cost, best = cost, found
    # The track memory and counters of every outcome below.
    ignored_tracks, dropped_tracks = state.ignored_tracks + n_bad, state.dropped_tracks + dropped
    deadline_hits = state.deadline_hits + int(hit_deadline)
    if best < 0:
        st = replace(state, track_ids=ft.ids, track_yaws=ft.yaw_rad, track_vs=ft.s_rate_mps, track_accel=accel_tr,
                     track_t_ns=t_ns, ignored_tracks=ignored_tracks, dropped_tracks=dropped_tracks, tables=tab,
                     deadline_hits=deadline_hits, infeasible=state.infeasible + 1)
        st, plan = _emergency(st, ego, road, d0, t_ns, acc.max_decel_mps2, cfg, "emergency_brake")
        return replace(st, evaluated=evaluated), plan

    rest, iT = divmod(best, n_T)
    il, iv = divmod(rest, n_v)
    d, dd, ddd = lat.x[il, iT], lat.v[il, iT], lat.a[il, iT]
    s, v, a = lon_x[iv, iT], lon_v[iv, iT], lon_a[iv, iT]
    path_rows = np.empty((3, steps))
    _path_terms(v, dd, ddd, a, path_rows)
    d_s, d_ss, v_ahead = path_rows
    target_lane = int(refs.lanes[lane_slot[il]])
    emergency = bool(lon_emergency[iv, iT])
    if limits.stop_decel_mps2 > 0.0:
        behaviour = "mrm"
    elif emergency:
        behaviour = "emergency_brake"
    elif target_lane != lane:
        behaviour = "lane_change_left" if target_lane > lane else "lane_change_right"
    else:
        slower = v[-1] < lane_caps[lane_slot[il]] - 0.5
        behaviour = ("follow" if refs.own_lead_index >= 0 and slower else
                     "stop" if end_gap < math.inf and slower else "cruise")
    plan = frenet_to_plan(road, t_ns, t_s, s, d, d_s, d_ss, v_ahead, a, emergency, behaviour)
    # Every field spelt out: dataclasses.replace costs ~10 us a plan.
    return LatticeState(last_plan=plan, last_d_m=d, last_dd_mps2=ddd, target_lane=target_lane, tables=tab,
                        track_ids=ft.ids, track_yaws=ft.yaw_rad, track_vs=ft.s_rate_mps, track_accel=accel_tr,
                        track_t_ns=t_ns, ignored_tracks=ignored_tracks, dropped_tracks=dropped_tracks,
                        stale_egos=state.stale_egos, rejected_egos=state.rejected_egos, deadline_hits=deadline_hits,
                        infeasible=state.infeasible, evaluated=evaluated), plan
