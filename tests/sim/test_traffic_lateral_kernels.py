"""The compiled lateral traffic kernels (MOBIL lane choice, motion along the heading, the actors'
truth) against the numpy code they replaced (tests/sim/traffic_reference.py), equal to the bit."""
from __future__ import annotations

import numpy as np
import pytest

from sim.traffic import MobilParams, mobil_targets, motion_along_heading

from traffic_reference import (ROADS, IDM, same_bits, reference_mobil_targets, random_fleet_state, random_accel,
                               busy_world, random_neighbourhood, reference_motion)


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
