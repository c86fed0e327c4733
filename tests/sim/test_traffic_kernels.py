"""The compiled longitudinal traffic kernels (car following, integration, the whole traffic step)
against the numpy code they replaced (tests/sim/traffic_reference.py): the same operations in the
same order, so the results must be equal to the bit (core/jit.py), signed zeros, NaN, standstills,
lane changes and vehicles leaving the road included."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.road import SAMPLE_SPACING_M, Road, RoadSegment
from sim.traffic import (TrafficState, follow_gap, idm_accel, idm_terms, integrate, integrated_state, lane_span,
                         nearest, signed_half_widths)
from sim.traffic_kernels import follow_accel, idm, idm_free_term

from traffic_reference import (ROADS, IDM, same_bits, reference_follow, reference_integrate, random_fleet_state,
                               random_accel, busy_world)


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


def test_idm_free_term_is_numpys_power_over_the_idm_domain():
    """world_step's free-road term against numpy's ``q ** delta`` (a Python float delta, as the
    world's reference formulation has it): quotients v / v0 from 0 past 3, tiny ones, 1, inf, NaN."""
    rng = np.random.default_rng(29)
    q = np.concatenate([rng.uniform(0.0, 3.0, 200_000), rng.uniform(0.0, 1e-150, 2000), rng.uniform(0.0, 1e-300, 2000),
                        [0.0, 1.0, 5e-324, np.inf, np.nan]])
    for delta in (4.0, 2.0, 1.0, 3.0, 3.7, 1.5, 10.0, 2.0000000000000004, 5.0, 9.99):
        expected = q ** delta
        got = np.array([idm_free_term(x, delta) for x in q.tolist()])
        assert same_bits(got, expected), delta
