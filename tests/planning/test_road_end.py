"""The end of the road: both planners stop before it, standstill_gap short of it, at the approach
deceleration; the lattice also sees it as a standing object across the road."""
import dataclasses
import math

import numpy as np
import pytest

from acc_loop import make_tracks, straight_road
from planning.acc_law import STOP_POINT_TOLERANCE_M, desired_accel, rollout
from planning.acc_planner import AccPlannerConfig
from planning.road_end import REACH_MARGIN_M, ROAD_END_ID, road_end_gap, road_end_in_reach, with_road_end
from planning.track_frenet import FrenetTracks, tracks_to_frenet

ACC = AccPlannerConfig()
B_MPS2, J_MPS3, GAP_M = ACC.approach_decel_mps2, ACC.comfort_jerk_mps3, ACC.standstill_gap_m


def test_in_reach_is_the_horizon_distance_plus_a_comfortable_stop_plus_the_margin():
    road = straight_road(length_m=1000.0)
    reach = 20.0 * 5.0 + 20.0 ** 2 / (2.0 * 2.0) + REACH_MARGIN_M  # 250 m at 20 m/s
    assert road_end_in_reach(road, 1000.0 - reach, 20.0, 5.0, 2.0)
    assert not road_end_in_reach(road, 1000.0 - reach - 0.01, 20.0, 5.0, 2.0)
    assert road_end_in_reach(road, 1000.0 - REACH_MARGIN_M, -3.0, 5.0, 2.0)  # reversing: the margin


def test_end_gap_is_front_bumper_to_end_in_reach_and_infinite_beyond():
    road = straight_road(length_m=1000.0)
    assert road_end_gap(road, 900.0, 3.7, 20.0, 5.0, 2.0) == 1000.0 - 903.7
    assert road_end_gap(road, 700.0, 3.7, 20.0, 5.0, 2.0) == math.inf  # 300 m out, reach 250 m


def test_the_object_spans_the_road_behind_its_end_and_stands():
    road = straight_road(length_m=1000.0)
    ft, _ = tracks_to_frenet(make_tracks(0, np.array([[900.0, 0.0], [950.0, 3.5]]), np.array([[20.0, 0.0]] * 2)),
                             road, 0, 0.3)
    out = with_road_end(ft, road)
    assert len(out) == 3 and out.ids.tolist() == [0, 1, ROAD_END_ID]
    assert all(getattr(out, f).shape == (3,) for f in FrenetTracks.__slots__)
    assert out.s_m[2] - 0.5 * out.length_m[2] == 1000.0  # its rear face is the road's end
    assert out.width_m[2] == 3 * 3.5 and out.d_m[2] == 0.0
    assert out.vs_mps[2] == out.s_rate_mps[2] == out.vd_mps[2] == 0.0
    np.testing.assert_array_equal(out.s_m[:2], ft.s_m)  # the real tracks, untouched
    empty, _ = tracks_to_frenet(make_tracks(0, np.zeros((0, 2)), np.zeros((0, 2))), road, 0, 0.3)
    assert with_road_end(empty, road).ids.tolist() == [ROAD_END_ID]


def _stop_rollout(v0_mps: float, end_gap_m: float, dt_s: float):
    steps = int(40.0 / dt_s)
    return rollout(v0_mps, 0.0, 30.0, math.inf, 0.0, 0.0, 0.0, ACC.gains(ACC.time_gap_s), dt_s, steps, end_gap_m)


@pytest.mark.parametrize("dt_s", [0.1, 0.25])  # the ACC planner's step, the lattice's reference step
def test_the_law_stops_at_the_standstill_gap_at_the_approach_deceleration(dt_s):
    # 20 m/s, 150 m out: braking at b = 2 m/s^2 takes 100 m, so it cruises, brakes, stands.
    s, v, a, emergency, following = _stop_rollout(20.0, 150.0, dt_s)
    assert not emergency and following
    stop = int(np.argmax(v == 0.0))
    assert v[stop] == 0.0 and (v[stop:] == 0.0).all() and (a[stop:] == 0.0).all()  # stands, no creep
    # Standstill gap_m short of the end, to the release's discretisation: a few centimetres.
    assert 150.0 - s[stop] == pytest.approx(GAP_M, abs=0.1)
    # Constant deceleration b while braking above the release speed b^2 / j (1.6 m/s), the
    # comfort limits throughout, the jerk included at the stop (forward differences: the roll-out's
    # own; the last step's jump to zero is one of them).
    braking = (v < 15.0) & (v > B_MPS2 ** 2 / J_MPS3 + 0.3)
    assert np.abs(a[braking] + B_MPS2).max() < 0.1 * B_MPS2
    assert a.min() >= -ACC.comfort_decel_mps2
    assert np.abs(np.diff(a)).max() / dt_s <= J_MPS3 + 1e-9
    # 5 m/s to standstill: at least 5 / b = 2.5 s; at most, in continuous time, (5 - 1.6) / b at b
    # and then the release at j / 2 from b, 2 b / j: 3.3 s (the roll-out's steps release a little
    # faster). The time-gap law behind a stopped lead took 15 s in closed loop.
    t = np.arange(v.shape[0]) * dt_s
    falling = (t > 1.0) & (t <= t[stop])  # v decreases from here on
    t5 = float(np.interp(5.0, v[falling][::-1], t[falling][::-1]))
    assert 5.0 / B_MPS2 <= t[stop] - t5 <= (5.0 - B_MPS2 ** 2 / J_MPS3) / B_MPS2 + 2.0 * B_MPS2 / J_MPS3 + 0.05


def test_the_law_is_the_cruise_demand_while_the_end_is_far():
    g = ACC.gains(ACC.time_gap_s)
    # 25 m/s, 300 m out: stopping needs 0.94 m/s^2, well below b; cruising on is the demand.
    assert desired_accel(25.0, 25.0, math.inf, 0.0, 0.0, 0.0, g, 300.0) == desired_accel(
        25.0, 25.0, math.inf, 0.0, 0.0, 0.0, g) == (0.0, False, False)


def test_a_stopped_ego_near_its_point_stays_and_one_short_of_it_closes_in():
    g = ACC.gains(ACC.time_gap_s)
    for end_gap in (GAP_M, GAP_M + 0.5 * STOP_POINT_TOLERANCE_M, GAP_M - 0.5):
        a, emergency, following = desired_accel(0.0, 25.0, math.inf, 0.0, 0.0, 0.0, g, end_gap)
        assert a == 0.0 and not emergency and following
    s, v, a, emergency, _ = _stop_rollout(0.0, GAP_M + 10.0, 0.1)  # stood 10 m short
    assert not emergency and v.max() < 4.0  # sqrt(2 b 10 m) = 6.3 m/s: it ramps in, then brakes
    assert s[-1] == pytest.approx(10.0, abs=0.15) and v[-1] == 0.0


def test_an_end_too_near_for_a_comfortable_stop_is_an_emergency():
    g = ACC.gains(ACC.time_gap_s)
    # 20 m/s, 50 m from the end: 4 m/s^2 to stop at the end itself, beyond the comfortable 3.5.
    a, emergency, following = desired_accel(20.0, 25.0, math.inf, 0.0, 0.0, 0.0, g, 50.0)
    assert emergency and following and a == -(20.0 ** 2) / (2.0 * 50.0)
    # A lead that needs more still sets the deceleration; one that needs less does not lower it.
    a_lead, _, _ = desired_accel(20.0, 25.0, 30.0, 0.0, 0.0, 0.0, g)
    assert desired_accel(20.0, 25.0, 30.0, 0.0, 0.0, 0.0, g, 50.0)[0] == a_lead < -4.0
    assert desired_accel(20.0, 25.0, 200.0, 10.0, 0.0, 0.0, g, 50.0) == (-4.0, True, True)
    # Within comfort it is no emergency: 20 m/s 110 m out needs 1.8 m/s^2 at the end, 1.9 at the point.
    assert not desired_accel(20.0, 25.0, math.inf, 0.0, 0.0, 0.0, g, 110.0)[1]


@pytest.mark.parametrize("planner_kind", ["lattice", "acc"])
def test_a_run_longer_than_the_road_stops_before_its_end(planner_kind):
    # On the 2,000 m free_road at 25 m/s the ego reached the end at 76 s and drove off the map
    # (lane-centre RMSE 10.9 m, 125 infeasible emergency plans, still NOMINAL). Here the road is
    # cut to 700 m to keep the test short, without traffic (traffic leaves the world at the end).
    # With the end followed as a stopped lead, the time-gap law crawled: 10.7 s (ACC; lattice 7.6 s)
    # below 2 m/s, 15.2 s (12.0 s) from 5 m/s to standstill; at 40 s the ACC still rolled at
    # 0.38 m/s, and the lattice stood 6.6 m before the end (5.6 m, after a second start, with the
    # end's own stop law but the lattice's proximity cost around the end object).
    from runtime.closed_loop import ClosedLoop, RunOptions
    from runtime.stack_config import StackConfig
    from sim.scenario import SegmentConfig, load_scenario
    cfg = dataclasses.replace(StackConfig(), planner_kind=planner_kind)
    scenario = load_scenario("free_road")
    scenario = dataclasses.replace(scenario, road=dataclasses.replace(scenario.road, segments=(SegmentConfig(700.0),)),
                                   traffic=dataclasses.replace(scenario.traffic, vehicles_per_km_per_lane=0.0))
    loop = ClosedLoop(scenario, RunOptions(seed=0, duration_s=40.0, perception="oracle"), cfg)
    s = loop.run()
    road, vehicle = loop.world.road, loop.world.vehicle
    traj = np.asarray(loop.trajectory)  # t_s, x, y (rear axle), speed, accel per physics tick
    t, v, a = traj[:, 0], traj[:, 3], traj[:, 4]
    front = road.to_frenet(traj[:, 1:3])[0] + vehicle.rear_axle_to_center_m + 0.5 * vehicle.length_m
    end_gap = road.length_m - front
    assert s["collisions"] == 0 and s["final_mode"] == "NOMINAL"
    assert s["lane_center_rmse_m"] < 0.1 and s["max_abs_lat_accel_mps2"] < 1.0
    assert s["planner"]["emergency_plans"] == 0 and s["max_abs_jerk_mps3"] < 4.5
    assert "stop" in s["planner"]["behaviours"]  # the plans say what they do
    # It stands, standstill_gap before the end, and never came nearer (no overshoot).
    stop = int(np.argmax(v < 0.01))
    assert v[stop] < 0.01 and (v[stop:] < 0.01).all()
    assert end_gap[stop] == pytest.approx(GAP_M, abs=0.3) and end_gap.min() > GAP_M - 0.3
    # The stop brakes at about the approach deceleration, within comfort, and is over quickly:
    # 5 m/s to standstill in the 3.3 s of the closed form (the controller's standstill hold
    # below 0.3 m/s shortens it), 1.8 s below 2 m/s.
    braking = (t < t[stop]) & (v < 15.0) & (v > 2.0)
    assert braking.any() and -2.3 < a[braking].min() and a[braking].max() < -1.6
    assert a.min() > -ACC.comfort_decel_mps2
    assert t[stop] - t[np.argmax(v < 5.0)] < 3.5
    assert np.count_nonzero((v < 2.0) & (t < t[stop])) * (t[1] - t[0]) < 2.0
