"""The world's one-call step and truth kernels (sim/world_kernels.py) against the standalone parts
they compose (Road.track_frenet, World._ego_span's rule, traffic_step, Road.to_cartesian,
actor_motion), equal to the bit."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.vehicle import VehicleParams
from sim.actors import KIND_HARD_BRAKE, KIND_STOPPED
from sim.vehicle_model import BicycleState
from sim.traffic import TrafficState, idm_terms, integrated_state, signed_half_widths
from sim.traffic_kernels import MOTION_ACCEL, MOTION_D_RATE, MOTION_SPEED, MOTION_YAW, actor_motion, traffic_step
from sim.world_kernels import (EGO_FIELDS, ROW_ACTIVE, STEP_ROWS, actor_truth, bicycle_into,
                               buffer_length, ego_lane_span, ego_slice, remainder, row_slices, step_constants,
                               truth_slices, vehicle_constants, world_step)

from traffic_reference import ROADS, IDM, busy_world, random_accel, random_fleet_state, same_bits


def python_ego_span(ego_d, half_w, lane_width, num_lanes):
    """World._ego_span's Python form."""
    base, top = ego_d / lane_width + 0.5 * num_lanes, num_lanes - 1
    return (min(max(math.floor(base - half_w / lane_width), 0), top),
            min(max(math.floor(base + half_w / lane_width), 0), top))


def reference_truth(road, state, lane_change_s, rows, t_s):
    """The former actors_truth: to_cartesian of the rows, then actor_motion, and while a lane change
    runs numpy's arctan2(d', v) added to the yaw."""
    xy, heading = road.to_cartesian(state.s_m[rows], state.d_m[rows])
    motion, changing = actor_motion(heading, state.v_mps, state.a_mps2, state.lc_t0_s, state.lane, state.lc_from_d_m,
                                    lane_change_s, rows, road.lane_width_m, 0.5 * (road.num_lanes - 1), t_s)
    if changing:
        motion[MOTION_YAW] = motion[MOTION_YAW] + np.arctan2(motion[MOTION_D_RATE], state.v_mps[rows])
    return xy, motion, changing


def assert_truth_equal(buf, at, ref_xy, ref_motion, m):
    assert same_bits(buf[at.xy].reshape(m, 2), ref_xy)
    assert same_bits(buf[at.yaw], ref_motion[MOTION_YAW]) and same_bits(buf[at.speed], ref_motion[MOTION_SPEED])
    assert same_bits(buf[at.accel], ref_motion[MOTION_ACCEL]) and same_bits(buf[at.d_rate], ref_motion[MOTION_D_RATE])


def road_constants(road):
    return (road.s_m, road.xy_m, road.heading_rad, road.curvature_1pm, road.length_m, road.samples_per_m,
            road.is_straight, *road.line_cos_sin)


def test_ego_lane_span_matches_the_python_rule():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        num_lanes, lane_width = int(rng.integers(1, 6)), float(rng.uniform(2.5, 4.0))
        half_w = float(rng.uniform(0.5, 1.5))
        d = float(rng.uniform(-1.0, 1.0) * (num_lanes + 2) * lane_width)
        if rng.random() < 0.2:  # on a lane boundary to the bit
            d = (int(rng.integers(0, num_lanes + 1)) - 0.5 * num_lanes) * lane_width + half_w
        got = ego_lane_span(d, half_w, lane_width, 0.5 * num_lanes, num_lanes - 1)
        assert got == python_ego_span(d, half_w, lane_width, num_lanes)
    with pytest.raises(ValueError):
        ego_lane_span(math.nan, 0.95, 3.5, 1.5, 2)
    with pytest.raises(OverflowError):
        ego_lane_span(math.inf, 0.95, 3.5, 1.5, 2)


@pytest.mark.parametrize("road_name", sorted(ROADS))
@pytest.mark.parametrize("n", [0, 1, 5, 13, 40])
def test_world_step_is_tracking_span_traffic_step_and_truth(road_name, n):
    """world_step's buffer and flags against its parts as separate calls: the ego's Frenet tracking
    (or the coordinates handed in), its lane span, traffic_step, and the new state's truth."""
    road, rng = ROADS[road_name], np.random.default_rng(91 + n)
    half_w = 0.95
    for trial in range(40):
        t_s, dt_s = float(rng.uniform(0.0, 20.0)), 0.01
        fleet, state = random_fleet_state(road, n, rng, t_s)
        kind = np.where(rng.random(n) < 0.3, KIND_HARD_BRAKE, np.where(rng.random(n) < 0.2, KIND_STOPPED, 0))
        fleet = dataclasses.replace(fleet, kind=kind.astype(np.int8), decel_mps2=rng.uniform(2.0, 9.0, n))
        state = state._replace(triggered=rng.random(n) < 0.6, a_mps2=random_accel(n, rng))
        braking, stopped = (kind == KIND_HARD_BRAKE) & state.triggered, kind == KIND_STOPPED
        lane_followed = state.lane
        decided = rng.random(n) < 0.2
        state = state._replace(lane=np.where(decided, rng.integers(0, road.num_lanes, n), state.lane),
                               lc_t0_s=np.where(decided, t_s, state.lc_t0_s))
        pm_half = signed_half_widths(road, fleet.width_m)
        half_len_sum = 0.5 * (fleet.length_m[:, None] + np.append(fleet.length_m, 4.6)[None, :])
        delta = (IDM.delta, 2.0, 3.3, 1.0)[trial % 4]  # numpy squares at 2: world_step must too
        free_term = state.v_mps / fleet.v0_mps
        free_term **= delta
        # The ego: a centre near the road (tracked from a guess a step behind), or coordinates given.
        ego_s_true = float(rng.uniform(5.0, road.length_m - 5.0))
        centre, _ = road.to_cartesian(np.array([ego_s_true]), np.array([rng.uniform(-4.0, 4.0)]))
        cx, cy = centre[0].tolist()
        track = trial % 4 != 0
        guess = ego_s_true - float(rng.uniform(0.0, 0.4))
        given_d = float(rng.uniform(-5.0, 5.0))
        ego_v = float(rng.uniform(0.0, 30.0))
        truth_t_s = (round(t_s * 1e9) + 10_000_000) / 1e9
        vehicle = VehicleParams()
        constants = (pm_half, half_len_sum, fleet.lane_change_s, fleet.decel_mps2, stopped, idm_terms(IDM), delta,
                     *road_constants(road), road.lane_width_m, 0.5 * road.num_lanes, road.num_lanes - 1,
                     0.5 * (road.num_lanes - 1), half_w, vehicle_constants(vehicle), fleet.v0_mps)
        ego = BicycleState(cx - 1.4, cy, float(rng.uniform(-0.2, 0.2)), ego_v, float(rng.uniform(-3.0, 1.0)), 0.01)
        accel_cmd, steer_cmd = float(rng.uniform(-8.0, 3.0)), float(rng.uniform(-0.3, 0.3))
        # The ego before the step as world_step reads it: its fields with the box centre (cx, cy).
        ego_fields = np.array([*ego, cx, cy, float(rng.uniform(-0.3, 0.3))])
        ego_fields.flags.writeable = False
        buf = np.full(buffer_length(n), np.nan)
        any_leaving, any_changing, truth_changing, ego_s, ego_d = world_step(
            ego_fields, accel_cmd, steer_cmd, track, guess, given_d, state.s_m, state.d_m, state.v_mps,
            lane_followed, state.lane, state.active, state.lc_from_d_m, state.lc_t0_s, braking, t_s, dt_s, truth_t_s,
            buf, step_constants(*constants))

        ref_s, ref_d = road.track_frenet(cx, cy, guess) if track else (guess, given_d)
        assert (ego_s, ego_d) == (ref_s, ref_d)
        ego_lo, ego_hi = python_ego_span(ref_d, half_w, road.lane_width_m, road.num_lanes)
        rows, active1, ref_leaving, ref_changing = traffic_step(
            state.s_m, state.d_m, state.v_mps, lane_followed, state.lane, state.active, state.lc_from_d_m,
            state.lc_t0_s, free_term, pm_half, half_len_sum, fleet.lane_change_s, fleet.decel_mps2, braking, stopped,
            ref_s, ego_v, ego_lo, ego_hi, idm_terms(IDM), road.lane_width_m, 0.5 * road.num_lanes,
            road.num_lanes - 1, road.curvature_1pm, road.samples_per_m, road.is_straight, road.length_m,
            0.5 * (road.num_lanes - 1), t_s, dt_s)
        assert (any_leaving, any_changing) == (ref_leaving, ref_changing)
        sl = row_slices(n)
        for row in range(5):
            if row in (3, 4) and not ref_changing:
                continue  # d' and the starts' are filled only while a lane change runs
            assert same_bits(buf[sl[row]], rows[row]), row
        assert same_bits(buf[sl[ROW_ACTIVE]] > 0.0, active1)

        new = integrated_state(state, rows, active1, ref_leaving, ref_changing)
        on = np.flatnonzero(new.active)
        ref_xy, ref_motion, ref_truth_changing = reference_truth(road, new, fleet.lane_change_s, on, truth_t_s)
        assert truth_changing == ref_truth_changing
        assert_truth_equal(buf, truth_slices(STEP_ROWS * n, on.shape[0]), ref_xy, ref_motion, on.shape[0])
        ego_ref = np.empty(EGO_FIELDS)
        bicycle_into(*ego, accel_cmd, steer_cmd, dt_s, vehicle_constants(vehicle), ego_ref)
        assert same_bits(buf[ego_slice(n)], ego_ref)

        alone, alone_changing = actor_truth(new.s_m, new.d_m, new.v_mps, new.a_mps2, new.lc_t0_s, new.lane,
                                            new.lc_from_d_m, on, truth_t_s, fleet.lane_change_s,
                                            *road_constants(road), road.lane_width_m, 0.5 * (road.num_lanes - 1))
        assert alone_changing == ref_truth_changing
        assert_truth_equal(alone, truth_slices(0, on.shape[0]), ref_xy, ref_motion, on.shape[0])


@pytest.mark.parametrize("name", ["cut_in", "curve"])
def test_world_truth_and_state_match_the_separate_calls_over_a_busy_run(name):
    """In a busy world over lane changes and vehicles leaving the road: each step's state and truth
    as the former separate calls give them from the previous state (traffic_step, to_cartesian,
    actor_motion and numpy's arctan2)."""
    world = busy_world(name, 4)
    road = world.road
    checked_changing = 0
    for k in range(600):
        world.step(0.3, 0.002 * math.sin(0.01 * k), 10_000_000)
        if k % 6:
            continue
        truth, state, fleet = world.actors_truth(), world._state, world._fleet
        assert isinstance(state, TrafficState)
        on = np.flatnonzero(state.active)
        xy, motion, changing = reference_truth(road, state, fleet.lane_change_s, on, world.t_ns / 1e9)
        assert same_bits(truth.xy_m, xy) and same_bits(truth.yaw_rad, motion[MOTION_YAW])
        assert same_bits(truth.speed_mps, motion[MOTION_SPEED]) and same_bits(truth.accel_mps2, motion[MOTION_ACCEL])
        assert same_bits(truth.ids, fleet.ids[on]) and same_bits(truth.length_m, fleet.length_m[on])
        ego = world.ego_truth()
        assert ego.center_xy_m.tolist() == list(world._ego_centre())
        checked_changing += int(changing)
    assert checked_changing > 0


def test_remainder_is_math_remainder():
    rng = np.random.default_rng(17)
    two_pi = 2.0 * math.pi
    xs = np.concatenate([rng.normal(0.0, 4.0, 20000), rng.normal(0.0, 1e6, 2000), np.arange(-40, 41) * math.pi,
                         [0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, math.pi, -math.pi, two_pi, -two_pi]])
    for x in xs.tolist():
        for y in (two_pi, 2.0, 0.75, -3.0):
            assert same_bits(remainder(x, y), math.remainder(x, y)), (x, y)
    for x in (np.arange(-20, 21) + 0.5).tolist():  # exact half-way cases: the even multiple
        assert same_bits(remainder(x, 1.0), math.remainder(x, 1.0))
    assert math.isnan(remainder(math.nan, 1.0)) and remainder(3.0, math.inf) == 3.0
    for bad in ((math.inf, 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError):
            remainder(*bad)


def test_bicycle_into_is_step_bicycle_with_the_centre_and_yaw_rate():
    from sim.vehicle_model import step_bicycle

    rng = np.random.default_rng(23)
    params = [VehicleParams(), VehicleParams(accel_lag_s=0.0, steer_lag_s=0.0, max_jerk_mps3=100.0),
              VehicleParams(wheelbase_m=3.4, max_steer_rad=0.3, max_steer_rate_rps=5.0, rear_axle_to_center_m=0.0)]
    out = np.empty(EGO_FIELDS)
    for trial in range(6000):
        p = params[trial % len(params)]
        state = BicycleState(*rng.uniform(-500.0, 500.0, 2).tolist(), float(rng.uniform(-3.2, 3.2)),
                             float(rng.choice([0.0, 0.01, rng.uniform(0.0, 40.0)])), float(rng.uniform(-8.0, 3.0)),
                             float(rng.uniform(-0.6, 0.6)))
        accel, steer = float(rng.uniform(-12.0, 5.0)), float(rng.uniform(-1.0, 1.0))
        dt = float(rng.choice([0.01, 0.05, 1.0]))
        ref = step_bicycle(state, accel, steer, dt, p)
        bicycle_into(*state, accel, steer, dt, vehicle_constants(p), out)
        r = p.rear_axle_to_center_m
        expected = [*ref, ref.x_m + r * math.cos(ref.yaw_rad), ref.y_m + r * math.sin(ref.yaw_rad),
                    ref.v_mps * math.tan(ref.steer_rad) / p.wheelbase_m]
        assert same_bits(out, np.array(expected)), trial
