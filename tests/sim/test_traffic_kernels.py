"""The compiled traffic kernels (sim/traffic_kernels.py) against the numpy code they replaced, kept
here as the reference: the same operations in the same order, so the results must be equal to the
bit (core/jit.py), signed zeros, NaN, standstills, lane changes and vehicles leaving the road included."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.road import SAMPLE_SPACING_M, Road, RoadSegment
from sim.scenario import load_scenario
from sim.traffic import (Fleet, IdmParams, MobilParams, Neighbourhood, TrafficState, follow_gap, idm_accel, idm_terms,
                         integrate, integrated_state, lane_span, mobil_targets, motion_along_heading, nearest,
                         signed_half_widths, smoothstep5, smoothstep5_rate)
from sim.traffic_kernels import follow_accel, idm
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


@pytest.mark.parametrize("road_name", sorted(ROADS))
@pytest.mark.parametrize("n", [0, 1, 2, 5, 13, 40])
def test_follow_accel_matches_occupancy_leaders_and_idm(road_name, n):
    road, rng = ROADS[road_name], np.random.default_rng(11 + n)
    for trial in range(60):
        fleet, state = random_fleet_state(road, n, rng, 5.0)
        pm_half = signed_half_widths(road, fleet.width_m)
        ego_length = rng.uniform(4.0, 5.0)
        length_all = np.append(fleet.length_m, ego_length)
        half_len_sum = 0.5 * (fleet.length_m[:, None] + length_all[None, :])
        ego_s = float(state.s_m[2]) if n > 2 and trial % 3 == 0 else rng.uniform(0.0, road.length_m)  # ties
        ego_lo = int(rng.integers(0, road.num_lanes))
        ego_hi = min(ego_lo + int(rng.integers(0, 2)), road.num_lanes - 1)
        ego_v = rng.uniform(0.0, 30.0)
        free_term = state.v_mps / fleet.v0_mps
        free_term **= IDM.delta
        accel, gap = follow_accel(state.s_m, state.d_m, state.v_mps, state.lane, state.active, pm_half,
                                  half_len_sum, free_term, ego_s, ego_v, ego_lo, ego_hi, road.lane_width_m,
                                  0.5 * road.num_lanes, road.num_lanes - 1, idm_terms(IDM))
        ref_accel, ref_gap = reference_follow(road, state, pm_half, half_len_sum, fleet.v0_mps, ego_s, ego_v,
                                              ego_lo, ego_hi, IDM)
        assert same_bits(gap, ref_gap) and same_bits(accel, ref_accel)


def test_follow_accel_edge_cases_follow_numpy():
    """NaN speeds and offsets, a zero standstill gap and an IDM deceleration floor that is hit."""
    road, rng = ROADS["straight"], np.random.default_rng(3)
    p = dataclasses.replace(IDM, min_gap_m=0.0)
    fleet, state = random_fleet_state(road, 9, rng, 2.0)
    v = state.v_mps.copy()
    v[4] = np.nan
    d = state.d_m.copy()
    d[6] = np.nan
    state = state._replace(v_mps=v, d_m=d, s_m=np.linspace(10.0, 18.0, 9), active=np.ones(9, bool))
    pm_half = signed_half_widths(road, fleet.width_m)
    length_all = np.append(fleet.length_m, 4.6)
    half_len_sum = 0.5 * (fleet.length_m[:, None] + length_all[None, :])
    with np.errstate(invalid="ignore"):
        free_term = state.v_mps / fleet.v0_mps
        free_term **= p.delta
        ref = reference_follow(road, state, pm_half, half_len_sum, fleet.v0_mps, 14.5, 20.0, 0, 2, p)
    out = follow_accel(state.s_m, state.d_m, state.v_mps, state.lane, state.active, pm_half, half_len_sum,
                       free_term, 14.5, 20.0, 0, 2, road.lane_width_m, 1.5, 2, idm_terms(p))
    assert same_bits(out[0], ref[0]) and same_bits(out[1], ref[1])
    assert (out[0] == -p.max_decel_mps2).any()  # overlapping neighbours saturate at the floor


@pytest.mark.parametrize("road_name", sorted(ROADS))
@pytest.mark.parametrize("n", [0, 1, 2, 7, 30])
def test_integrate_matches_the_numpy_integration(road_name, n):
    road, rng = ROADS[road_name], np.random.default_rng(21 + n)
    for trial in range(80):
        t_s = float(rng.uniform(0.0, 20.0))
        fleet, state = random_fleet_state(road, n, rng, t_s)
        if trial % 4 == 0:  # nobody changing lanes: d and the start times pass through
            state = state._replace(d_m=road.lane_center_d(state.lane), lc_t0_s=np.full(n, np.nan))
        accel = random_accel(n, rng)
        if trial % 5 == 0:
            accel = np.abs(accel) + 0.1  # no standstill: numpy's unclamped branch
        got = integrate(fleet, state, accel, road, t_s, 0.01)
        ref = reference_integrate(fleet, state, accel, road, t_s, 0.01)
        for name in TrafficState._fields:
            assert same_bits(getattr(got, name), getattr(ref, name)), name
        # Unchanged arrays stay the same objects (consumers recognise them by identity).
        for name in ("d_m", "lc_t0_s", "active", "lane", "lc_from_d_m", "triggered"):
            assert (getattr(got, name) is getattr(state, name)) == (getattr(ref, name) is getattr(state, name)), name


def test_integrate_with_a_nan_speed_keeps_numpys_unclamped_branch():
    road, rng = ROADS["curved"], np.random.default_rng(5)
    fleet, state = random_fleet_state(road, 6, rng, 1.0)
    v = state.v_mps.copy()
    v[2] = np.nan
    state = state._replace(v_mps=v)
    accel = np.full(6, -8.0)  # speeds would go negative: numpy's min is NaN, so nothing is clamped
    with np.errstate(invalid="ignore"):
        ref = reference_integrate(fleet, state, accel, road, 1.0, 0.01)
    got = integrate(fleet, state, accel, road, 1.0, 0.01)
    for name in TrafficState._fields:
        assert same_bits(getattr(got, name), getattr(ref, name)), name


def test_integrate_stretches_with_the_curvature_of_the_roads_own_sample():
    """On a road whose length is not a multiple of SAMPLE_SPACING_M its samples sit closer than that
    (Road.samples_per_m). Just past a join, indexing with the nominal spacing reads the sample before
    the join, of the other segment: a vehicle off the reference line there would cover the old
    segment's lane length. Each vehicle here sits in the first step of the curve's samples."""
    road = Road((RoadSegment(100.3), RoadSegment(157.1, 0.02), RoadSegment(80.7, -0.03)), 3, 3.5, 20.0)
    spacing = 1.0 / road.samples_per_m
    assert spacing < SAMPLE_SPACING_M
    first = int(np.searchsorted(road.s_m, 257.4, side="right"))  # the first sample of the -0.03 segment
    s = road.s_m[first] + np.array([0.05, 0.3, 0.6, 0.9]) * spacing
    # The nominal spacing lands some of them on the sample before the join (0.02 1/m).
    assert (road.curvature_1pm[(s / SAMPLE_SPACING_M).astype(np.int64)] == 0.02).any()
    n, rng = s.shape[0], np.random.default_rng(8)
    fleet, state = random_fleet_state(road, n, rng, 0.0)
    d = np.full(n, road.lane_center_d(0))
    state = state._replace(s_m=s, d_m=d, v_mps=np.full(n, 20.0), lane=np.zeros(n, np.int64),
                           lc_t0_s=np.full(n, np.nan), active=np.ones(n, bool))
    got = integrate(fleet, state, np.zeros(n), road, 0.0, 0.01)
    expected = s + 0.2 / (1.0 - (-0.03) * d)  # 20 m/s for 10 ms along a lane of the -0.03 1/m curve
    np.testing.assert_allclose(got.s_m, expected, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("road_name", sorted(ROADS))
@pytest.mark.parametrize("n", [0, 1, 5, 13, 40])
def test_traffic_step_is_follow_then_scripts_then_integrate(road_name, n):
    """World.step's one call (traffic_step) against its three parts as separate calls: follow_accel
    in the lanes before this step's decisions, sim.actors.scripted_accel and integrate in the lanes
    after them; hard-brakers stopping inside the step and stopped actors included."""
    from sim.actors import KIND_HARD_BRAKE, KIND_STOPPED, scripted_accel
    from sim.traffic_kernels import traffic_step

    road, rng = ROADS[road_name], np.random.default_rng(71 + n)
    for trial in range(40):
        t_s, dt_s = float(rng.uniform(0.0, 20.0)), 0.01
        fleet, state = random_fleet_state(road, n, rng, t_s)
        kind = np.where(rng.random(n) < 0.3, KIND_HARD_BRAKE, np.where(rng.random(n) < 0.2, KIND_STOPPED, 0))
        fleet = dataclasses.replace(fleet, kind=kind.astype(np.int8), decel_mps2=rng.uniform(2.0, 9.0, n))
        state = state._replace(triggered=rng.random(n) < 0.6)
        braking, stopped = (kind == KIND_HARD_BRAKE) & state.triggered, kind == KIND_STOPPED
        lane_followed = state.lane
        decided = rng.random(n) < 0.2  # lane changes decided this step: only the integration sees them
        state = state._replace(lane=np.where(decided, rng.integers(0, road.num_lanes, n), state.lane),
                               lc_t0_s=np.where(decided, t_s, state.lc_t0_s))
        pm_half = signed_half_widths(road, fleet.width_m)
        length_all = np.append(fleet.length_m, 4.6)
        half_len_sum = 0.5 * (fleet.length_m[:, None] + length_all[None, :])
        ego_s, ego_v, ego_lo = rng.uniform(0.0, road.length_m), rng.uniform(0.0, 30.0), int(rng.integers(0, 2))
        free_term = state.v_mps / fleet.v0_mps
        free_term **= IDM.delta
        follow_args = (state.d_m, state.v_mps, lane_followed, state.active, pm_half, half_len_sum, free_term, ego_s,
                       ego_v, ego_lo, ego_lo + 1, road.lane_width_m, 0.5 * road.num_lanes, road.num_lanes - 1)
        a_idm, _ = follow_accel(state.s_m, *follow_args, idm_terms(IDM))
        accel = scripted_accel(fleet.kind, state.triggered, state.v_mps, fleet.decel_mps2, a_idm, dt_s)
        ref = integrate(fleet, state, accel, road, t_s, dt_s)
        rows, active1, any_leaving, any_changing = traffic_step(
            state.s_m, state.d_m, state.v_mps, lane_followed, state.lane, state.active, state.lc_from_d_m,
            state.lc_t0_s, free_term, pm_half, half_len_sum, fleet.lane_change_s, fleet.decel_mps2, braking, stopped,
            ego_s, ego_v, ego_lo, ego_lo + 1, idm_terms(IDM), road.lane_width_m, 0.5 * road.num_lanes,
            road.num_lanes - 1, road.curvature_1pm, road.samples_per_m, road.is_straight, road.length_m,
            0.5 * (road.num_lanes - 1), t_s, dt_s)
        got = integrated_state(state, rows, active1, any_leaving, any_changing)
        for name in TrafficState._fields:
            assert same_bits(getattr(got, name), getattr(ref, name)), name


def busy_world(name, seed):
    cfg = load_scenario(name)
    cfg = dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=12.0,
                                                               mobil_threshold_mps2=0.05))
    return World(cfg, seed)


@pytest.mark.parametrize("name", ["free_road", "curve"])
def test_world_car_following_matches_the_all_pairs_search(name):
    """In a busy world over lane changes, the kernel's leaders and accelerations are ``nearest``'s
    (all pairs, lane spans by ``lane_span``) and idm_accel's."""
    world = busy_world(name, 2)
    checked_changing = 0
    for k in range(500):
        world.step(0.2, 0.0, 10_000_000)
        if k % 7:
            continue
        fleet, state = world._fleet, world._state
        ego_s, ego_d = world._ego_frenet()
        accel, gap = world._follow(fleet, state, ego_s, ego_d)
        ego_lo, ego_hi = world._ego_span(ego_d)
        lo, hi = lane_span(world.road, state.d_m, fleet.width_m)
        s_all, v_all = np.append(state.s_m, ego_s), np.append(state.v_mps, world._ego.v_mps)
        lead, dist, _, _ = nearest(state.s_m, np.minimum(lo, state.lane), np.maximum(hi, state.lane), s_all,
                                   np.append(lo, ego_lo), np.append(hi, ego_hi), np.append(state.active, True))
        ref_gap = follow_gap(dist, fleet.length_m, world._length_all[lead])
        assert same_bits(gap, ref_gap)
        assert same_bits(accel, idm_accel(state.v_mps, fleet.v0_mps, ref_gap, state.v_mps - v_all[lead], world._idm))
        checked_changing += int(np.isfinite(state.lc_t0_s).any())
    assert checked_changing > 0  # lane changes happened while checking


def test_idm_terms_layout():
    terms = idm_terms(IDM)
    assert terms.tolist() == [1.5, 2.0 * math.sqrt(1.5 * 2.0), 1.5, 2.0, 9.0]


def test_scalar_idm_matches_idm_accel():
    rng = np.random.default_rng(8)
    v, v0 = rng.uniform(0.0, 35.0, 3000), rng.uniform(1.0, 35.0, 3000)
    gap = np.where(rng.random(3000) < 0.2, np.inf, rng.uniform(-2.0, 150.0, 3000))
    gap[::17] = 1e-3
    approach = rng.uniform(-15.0, 15.0, 3000)
    for p in (IDM, dataclasses.replace(IDM, min_gap_m=0.0, delta=3.3)):
        free_term = v / v0
        free_term **= p.delta
        ref = idm_accel(v, v0, gap, approach, p)
        got = np.array([idm(v[i], free_term[i], gap[i], approach[i], idm_terms(p)) for i in range(3000)])
        assert same_bits(got, ref)


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


@pytest.mark.parametrize("m", [1, 2, 4, 10, 30, 80])
def test_mobil_kernel_matches_the_numpy_mobil(m):
    rng = np.random.default_rng(31 + m)
    mobils = [MobilParams(0.3, 0.2, 4.0), MobilParams(0.0, -1.0, 9.0), MobilParams(1.0, 0.05, 1.0)]
    decisions = 0
    for trial in range(120):
        num_lanes = int(rng.integers(1, 5))
        nb = random_neighbourhood(rng, m, num_lanes)
        eligible = rng.random(m) < 0.8
        mobil = mobils[trial % len(mobils)]
        got = mobil_targets(nb, eligible, num_lanes, IDM, mobil)
        ref = reference_mobil_targets(nb, eligible, num_lanes, IDM, mobil)
        assert same_bits(got, ref)
        decisions += int((ref >= 0).sum())
    assert decisions > 0  # changes were chosen, not only refused


def reference_motion(fleet, state, road, t_s, rows):
    """actors_truth's numpy lateral rate and speed of the given rows (before along_heading)."""
    v = state.v_mps[rows]
    if np.isfinite(state.lc_t0_s).any():
        d_rate = reference_lateral_rate(fleet, state, road, t_s)[rows]
        return d_rate, np.hypot(v, d_rate), True
    return np.zeros(rows.shape[0]), v + 0.0, False


@pytest.mark.parametrize("n", [0, 1, 6, 25])
def test_motion_along_heading_matches_the_numpy_rate_and_speed(n):
    road, rng = ROADS["curved"], np.random.default_rng(41 + n)
    for trial in range(60):
        t_s = float(rng.uniform(0.0, 20.0))
        fleet, state = random_fleet_state(road, n, rng, t_s)
        lc_t0 = state.lc_t0_s.copy()
        if n > 2:
            lc_t0[0] = t_s  # starts right now: tau == 0
            lc_t0[1] = t_s + 0.5  # in the future: tau clamps at 0
        if trial % 3 == 0:
            lc_t0[:] = np.nan  # nobody changes lanes
        v = state.v_mps.copy()
        v[::4] = -0.0  # the signed zero the no-change path normalises
        state = state._replace(lc_t0_s=lc_t0, v_mps=v)
        rows = np.flatnonzero(state.active)
        got = motion_along_heading(fleet, state, road, t_s, rows)
        ref = reference_motion(fleet, state, road, t_s, rows)
        assert same_bits(got[0], ref[0]) and same_bits(got[1], ref[1]) and got[2] == ref[2]


@pytest.mark.parametrize("n", [0, 1, 6, 25])
def test_actor_motion_is_along_heading_plus_the_yaw_and_accel_columns(n):
    """actor_motion's block: along_heading's d' and speed, the rows' accelerations, and the yaw as
    actors_truth completes it (heading + 0.0, or heading + numpy's arctan2 added by the caller)."""
    from sim.traffic_kernels import MOTION_ACCEL, MOTION_D_RATE, MOTION_SPEED, MOTION_YAW, actor_motion

    road, rng = ROADS["curved"], np.random.default_rng(53 + n)
    for trial in range(60):
        t_s = float(rng.uniform(0.0, 20.0))
        fleet, state = random_fleet_state(road, n, rng, t_s)
        if trial % 3 == 0:
            state = state._replace(lc_t0_s=np.full(n, np.nan))  # nobody changes lanes
        state = state._replace(a_mps2=random_accel(n, rng))
        rows = np.flatnonzero(state.active)
        heading = rng.uniform(-np.pi, np.pi, rows.shape[0])
        heading[::3] = -0.0  # + 0.0 makes it +0.0 while nobody changes lanes
        d_rate, speed, changing = motion_along_heading(fleet, state, road, t_s, rows)
        block, got_changing = actor_motion(heading, state.v_mps, state.a_mps2, state.lc_t0_s, state.lane,
                                           state.lc_from_d_m, fleet.lane_change_s, rows, road.lane_width_m,
                                           0.5 * (road.num_lanes - 1), t_s)
        assert got_changing == changing and block.shape == (4, rows.shape[0])
        assert same_bits(block[MOTION_D_RATE], d_rate) and same_bits(block[MOTION_SPEED], speed)
        assert same_bits(block[MOTION_ACCEL], state.a_mps2[rows])
        yaw = block[MOTION_YAW].copy()
        if changing:
            yaw += np.arctan2(block[MOTION_D_RATE], state.v_mps[rows])
        expected = heading + np.arctan2(d_rate, state.v_mps[rows]) if changing else heading + 0.0
        assert same_bits(yaw, expected)


@pytest.mark.parametrize("name", ["cut_in", "curve"])
def test_world_actor_truth_matches_the_numpy_formulas(name):
    """actors_truth over lane changes (busy traffic, MOBIL) against to_cartesian plus the numpy
    lateral rate, arctan2 and hypot."""
    world = busy_world(name, 3)
    changing = 0
    for k in range(700):
        world.step(0.1, 0.0, 10_000_000)
        if k % 5:
            continue
        fleet, state, road = world._fleet, world._state, world.road
        truth = world.actors_truth()
        rows = np.flatnonzero(state.active)
        xy, heading = road.to_cartesian(state.s_m[rows], state.d_m[rows])
        d_rate, speed, any_changing = reference_motion(fleet, state, road, world.t_ns / 1e9, rows)
        yaw = heading + np.arctan2(d_rate, state.v_mps[rows]) if any_changing else heading + 0.0
        assert same_bits(truth.xy_m, xy) and same_bits(truth.yaw_rad, yaw) and same_bits(truth.speed_mps, speed)
        changing += int(any_changing)
    assert changing > 0
