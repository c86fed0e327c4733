"""Shared by the traffic-kernel tests: the numpy code the compiled kernels (sim/traffic_kernels.py)
replaced, kept as their reference (the same operations in the same order, so results must be equal
to the bit), and random fleets, states and neighbourhoods to compare them on."""
from __future__ import annotations

import dataclasses

import numpy as np

from core.road import Road, RoadSegment
from sim.scenario import load_scenario
from sim.traffic import (Fleet, IdmParams, MobilParams, Neighbourhood, TrafficState, follow_gap, idm_accel, nearest,
                         smoothstep5, smoothstep5_rate)
from sim.traffic_kernels import idm
from sim.world import World


ROADS = {
    "straight": Road((RoadSegment(400.0),), 3, 3.5, 25.0),
    "curved": Road((RoadSegment(100.0), RoadSegment(150.0, 1 / 60.0), RoadSegment(150.0, -1 / 80.0)), 4, 3.2, 25.0),
}
IDM = IdmParams(1.5, 2.0, 1.5, 2.0, 4.0, 9.0)


def same_bits(a, b) -> bool:
    """Equal dtype, shape and bytes: signed zeros and NaN as well as values."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --- reference: the numpy car following (occupancy, leaders, idm_accel) -----------------------------
def reference_follow(road, state, pm_half_lanes, half_len_sum, v0, ego_s, ego_v, ego_lo, ego_hi, p):
    n = state.d_m.shape[0]
    base = state.d_m / road.lane_width_m + 0.5 * road.num_lanes
    span_all = np.empty((2, n + 1), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        span_all[:, :n] = np.minimum(np.maximum(np.floor(base + pm_half_lanes), 0), road.num_lanes - 1)
    lo, hi = span_all[0, :n], span_all[1, :n]
    span_all[0, n], span_all[1, n] = ego_lo, ego_hi
    q_lo, q_hi = np.minimum(lo, state.lane), np.maximum(hi, state.lane)
    share = (span_all[0][None, :] <= q_hi[:, None]) & (span_all[1][None, :] >= q_lo[:, None])
    share[:, :-1] &= state.active[None, :]
    s_all, v_all = np.append(state.s_m, ego_s), np.append(state.v_mps, ego_v)
    ds = s_all - state.s_m[:, None]
    ahead = np.where(share & (ds > 0.0), ds, np.inf)
    lead, dist = ahead.argmin(axis=1), ahead.min(axis=1)
    gap = dist - half_len_sum[np.arange(n), lead]
    return idm_accel(state.v_mps, v0, gap, state.v_mps - v_all[lead], p), gap


# --- reference: the numpy integration --------------------------------------------------------------
def reference_integrate(fleet, state, accel_mps2, road, t_s, dt_s):
    v = state.v_mps
    v1 = v + accel_mps2 * dt_s
    if v1.shape[0] and v1.min() <= 0.0:
        stops = v1 < 0.0
        braking = np.where(accel_mps2 < 0.0, accel_mps2, -1.0)
        dist = np.where(stops, np.where(accel_mps2 < 0.0, 0.5 * v * v / -braking, 0.0), 0.5 * (v + v1) * dt_s)
        v1 = np.maximum(v1, 0.0)
        a_eff = np.where((v1 == 0.0) & (accel_mps2 < 0.0), 0.0, accel_mps2)
    else:
        dist = 0.5 * (v + v1) * dt_s
        a_eff = accel_mps2
    if road.is_straight:
        s1 = state.s_m + dist
    else:
        idx = np.minimum((state.s_m * road.samples_per_m).astype(np.int64), road.curvature_1pm.shape[0] - 1)
        kappa = road.curvature_1pm[idx]
        s1 = state.s_m + dist / np.maximum(1.0 - kappa * state.d_m, 0.1)
    leaving = state.active & (s1 >= road.length_m)
    active = state.active & ~leaving if leaving.any() else state.active
    changing = np.isfinite(state.lc_t0_s)
    if not changing.any():
        return TrafficState(s1, state.d_m, v1, a_eff, state.lane, state.lc_from_d_m, state.lc_t0_s, active,
                            state.triggered)
    tau = np.fmin((t_s + dt_s - state.lc_t0_s) / fleet.lane_change_s, 1.0)
    d_target = road.lane_center_d(state.lane)
    d1 = np.where(changing, state.lc_from_d_m + (d_target - state.lc_from_d_m) * smoothstep5(tau), d_target)
    lc_t0 = np.where(tau >= 1.0, np.nan, state.lc_t0_s)
    return TrafficState(s1, d1, v1, a_eff, state.lane, state.lc_from_d_m, lc_t0, active, state.triggered)


# --- reference: the numpy MOBIL and lane-change rate ------------------------------------------------
def reference_mobil_targets(nb: Neighbourhood, eligible: np.ndarray, num_lanes: int, idm: IdmParams,
                  mobil: MobilParams) -> np.ndarray:
    s, v, v0, length, lane = nb.s_m, nb.v_mps, nb.v0_mps, nb.length_m, nb.lane
    own_lead, own_dl, old_f, old_df = nearest(s, lane, lane, s, nb.lo, nb.hi, nb.active)
    has_own = np.isfinite(own_dl)
    v_own_lead = np.where(has_own, v[own_lead], v)
    a_self = idm_accel(v, v0, follow_gap(own_dl, length, length[own_lead]), v - v_own_lead, idm)
    # Old follower: now behind me; after my change it follows my current leader.
    has_old = np.isfinite(old_df)
    vo, v0o, lo_len = v[old_f], v0[old_f], length[old_f]
    a_old = idm_accel(vo, v0o, follow_gap(old_df, lo_len, length), vo - v, idm)
    a_old_new = idm_accel(vo, v0o, np.where(has_own, follow_gap(old_df + own_dl, lo_len, length[own_lead]),
                                             np.inf), vo - v_own_lead, idm)
    old_term = np.where(has_old, a_old_new - a_old, 0.0)

    best_lane = np.full(s.shape[0], -1, dtype=np.int64)
    best_incentive = np.full(s.shape[0], -np.inf)
    for direction in (-1, 1):  # two sides, each fully vectorised over vehicles
        target = lane + direction
        valid = eligible & (target >= 0) & (target < num_lanes)
        tq = np.clip(target, 0, num_lanes - 1)
        lead, dl, foll, df = nearest(s, tq, tq, s, nb.lo, nb.hi, nb.active)
        has_lead, has_foll = np.isfinite(dl), np.isfinite(df)
        v_lead = np.where(has_lead, v[lead], v)
        gap_lead = follow_gap(dl, length, length[lead])
        gap_foll = follow_gap(df, length[foll], length)
        a_self_new = idm_accel(v, v0, gap_lead, v - v_lead, idm)
        vn, v0n = v[foll], v0[foll]
        a_new_f_after = idm_accel(vn, v0n, gap_foll, vn - v, idm)
        a_new_f_before = idm_accel(vn, v0n, np.where(has_lead, follow_gap(df + dl, length[foll], length[lead]),
                                                     np.inf), vn - v_lead, idm)
        new_term = np.where(has_foll, a_new_f_after - a_new_f_before, 0.0)
        incentive = a_self_new - a_self + mobil.politeness * (new_term + old_term)
        safe = ((~has_foll | ((a_new_f_after >= -mobil.safe_decel_mps2) & (gap_foll > 0.0)))
                & (~has_lead | (gap_lead > 0.0)))
        take = valid & safe & (incentive > mobil.threshold_mps2) & (incentive > best_incentive)
        best_lane = np.where(take, target, best_lane)
        best_incentive = np.where(take, incentive, best_incentive)
    return best_lane


def reference_lateral_rate(fleet: Fleet, state: TrafficState, road: Road, t_s: float) -> np.ndarray:
    changing = np.isfinite(state.lc_t0_s)
    # minimum/maximum rather than np.clip, whose Python wrapper costs more than the clip at this size.
    tau = np.minimum(np.maximum(np.where(changing, (t_s - state.lc_t0_s) / fleet.lane_change_s, 1.0), 0.0), 1.0)
    span = road.lane_center_d(state.lane) - state.lc_from_d_m
    return np.where(changing, span / fleet.lane_change_s * smoothstep5_rate(tau), 0.0)



def random_fleet_state(road, n, rng, t_s):
    """N vehicles on lane centres or mid-change (some finishing this step), a few inactive, some at
    the same s (ties), standing or braking to a stop, some near the road end."""
    lane = rng.integers(0, road.num_lanes, n)
    lane_change_s = rng.uniform(1.0, 4.0, n)
    changing = rng.random(n) < 0.4
    lc_t0 = np.where(changing, t_s - rng.uniform(0.0, 1.05, n) * lane_change_s, np.nan)
    lc_from = road.lane_center_d(np.clip(lane + rng.choice([-1, 1], n), 0, road.num_lanes - 1))
    d = np.where(changing, rng.uniform(-0.5, 0.5, n) * road.num_lanes * road.lane_width_m, road.lane_center_d(lane))
    s = rng.uniform(0.0, road.length_m - 0.01, n)
    s[rng.random(n) < 0.15] = road.length_m - rng.uniform(0.0, 0.3)  # about to leave
    if n > 3:
        s[1] = s[0]  # a tie in s
        s[3] = 0.0
    v = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0.0, 35.0, n))
    v[rng.random(n) < 0.1] = 0.005  # stops inside the step under braking
    width = rng.uniform(1.6, 2.6, n)
    length = rng.uniform(3.5, 12.0, n)
    fleet = Fleet(ids=np.arange(n), kind=np.zeros(n, np.int8), v0_mps=rng.uniform(5.0, 35.0, n), length_m=length,
                  width_m=width, height_m=np.ones(n), labels=np.zeros(n, np.int16), trigger_t_s=np.full(n, np.inf),
                  decel_mps2=np.zeros(n), target_lane=np.full(n, -1), lane_change_s=lane_change_s,
                  trigger_ttc_s=np.full(n, np.nan), may_change=np.ones(n, bool),
                  colors_bgr=np.zeros((n, 3), np.uint8))
    state = TrafficState(s_m=s, d_m=d, v_mps=v, a_mps2=np.zeros(n), lane=lane, lc_from_d_m=lc_from,
                         lc_t0_s=lc_t0, active=rng.random(n) < 0.85, triggered=np.zeros(n, bool))
    return fleet, state


def random_accel(n, rng):
    accel = rng.uniform(-9.0, 2.0, n)
    accel[rng.random(n) < 0.1] = -0.0
    accel[rng.random(n) < 0.1] = 0.0
    return accel


def busy_world(name, seed):
    cfg = load_scenario(name)
    cfg = dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=12.0,
                                                               mobil_threshold_mps2=0.05))
    return World(cfg, seed)


def random_neighbourhood(rng, m, num_lanes):
    lane = rng.integers(0, num_lanes, m)
    lo = np.maximum(lane - (rng.random(m) < 0.15), 0)
    hi = np.minimum(lane + (rng.random(m) < 0.15), num_lanes - 1)
    s = rng.uniform(0.0, 120.0 if rng.random() < 0.5 else 400.0, m)
    if m > 3:
        s[2] = s[1]  # a tie
    v = np.where(rng.random(m) < 0.1, 0.0, rng.uniform(0.0, 35.0, m))
    return Neighbourhood(s_m=s, v_mps=v, v0_mps=rng.uniform(5.0, 35.0, m), length_m=rng.uniform(3.5, 12.0, m),
                         lane=lane, lo=lo, hi=hi, active=rng.random(m) < 0.9)


def reference_motion(fleet, state, road, t_s, rows):
    """actors_truth's numpy lateral rate and speed of the given rows (before along_heading)."""
    v = state.v_mps[rows]
    if np.isfinite(state.lc_t0_s).any():
        d_rate = reference_lateral_rate(fleet, state, road, t_s)[rows]
        return d_rate, np.hypot(v, d_rate), True
    return np.zeros(rows.shape[0]), v + 0.0, False
