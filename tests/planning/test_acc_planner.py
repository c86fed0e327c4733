"""Spine ACC planner: open-step properties and closed longitudinal loops."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from core.messages import EgoState, ModeLimits, Tracks
from core.road import Road, RoadSegment
from planning import AccPlannerConfig, AccPlannerState, acc_plan_step
from acc_loop import make_tracks, run_loop, straight_road

CFG = AccPlannerConfig()


def planner(state, ego, tracks, limits, road, t_ns):
    return acc_plan_step(state, ego, tracks, limits, road, t_ns, CFG)


def lead_at(x0, v0, decel=0.0, t_brake=math.inf, y=0.0):
    def actors(t):
        tb = max(t - t_brake, 0.0)
        t_stop = v0 / decel if decel > 0 else math.inf
        tb = min(tb, t_stop)
        vt = v0 - decel * tb
        x = x0 + v0 * min(t, t_brake) + v0 * tb - 0.5 * decel * tb * tb + (vt * 0 if tb else 0)
        return np.array([[x, y]]), np.array([[vt, 0.0]])
    return actors


def no_actors(t):
    return np.zeros((0, 2)), np.zeros((0, 2))


def test_free_road_reaches_speed_limit_and_plan_shape():
    road = straight_road(25.0)
    state, log = run_loop(planner, AccPlannerState(), road, no_actors, 15.0, 20.0)
    assert abs(log[-1, 2] - 25.0) < 0.3
    plan = state.last_plan
    assert plan.t_s.shape == (51,) and plan.t_s[-1] == pytest.approx(5.0)
    assert np.allclose(plan.xy_m[:, 1], 0.0) and np.all(np.diff(plan.xy_m[:, 0]) >= 0)
    assert plan.behaviour == "cruise" and not plan.emergency


def test_follows_lead_at_time_gap():
    road = straight_road(30.0)
    _, log = run_loop(planner, AccPlannerState(), road, lead_at(80.0, 20.0), 28.0, 60.0)
    gap, v = log[-1, 3], log[-1, 2]
    assert abs(v - 20.0) < 0.2
    assert abs(gap - (CFG.standstill_gap_m + CFG.time_gap_s * 20.0)) < 1.5
    assert log[:, 3].min() > 10.0


def test_longer_time_gap_from_limits():
    road = straight_road(30.0)
    _, log = run_loop(planner, AccPlannerState(), road, lead_at(80.0, 20.0), 20.0, 60.0,
                      limits_fn=lambda t: ModeLimits(time_gap_s=2.5))
    assert abs(log[-1, 3] - (CFG.standstill_gap_m + 2.5 * 20.0)) < 1.5


def test_stops_behind_stopped_vehicle():
    road = straight_road(25.0)
    state, log = run_loop(planner, AccPlannerState(), road, lead_at(150.0, 0.0), 25.0, 30.0)
    assert log[-1, 2] < 0.05
    assert 1.0 < log[-1, 3] < CFG.standstill_gap_m + 2.0
    assert log[:, 3].min() > 1.0
    assert log[:, 4].min() > -CFG.comfort_decel_mps2 - 0.5  # seen from afar: comfortable stop


def test_lead_hard_brake_no_collision_and_flags_emergency():
    road = straight_road(25.0)
    flags = []

    def spy(state, ego, tracks, limits, road, t_ns):
        state, plan = planner(state, ego, tracks, limits, road, t_ns)
        flags.append(plan.emergency)
        return state, plan

    _, log = run_loop(spy, AccPlannerState(), road, lead_at(41.5 + 2.3 + 3.7, 25.0, 6.0, 5.0), 25.0, 20.0)
    assert log[:, 3].min() > 0.5
    assert log[-1, 2] < 0.05
    assert any(flags)


def test_cut_in_no_collision():
    road = straight_road(25.0)

    def actors(t):
        y = max(3.5 - 1.2 * max(t - 2.0, 0.0), 0.0)
        vy = -1.2 if 2.0 < t < 2.0 + 3.5 / 1.2 else 0.0
        return np.array([[25.0 * 2.0 + 22.0 * (t - 2.0) + 20.0 + 2.3 + 3.7, y]]), np.array([[22.0, vy]])

    # Ego at 25 m/s starts level with the cut-in's rear + 18 m gap at t = 2 s when it starts moving over.
    _, log = run_loop(planner, AccPlannerState(), road, actors, 25.0, 25.0)
    assert log[:, 3].min() > 3.0


def test_speed_cap_and_stop_decel():
    road = straight_road(30.0)
    _, log = run_loop(planner, AccPlannerState(), road, no_actors, 30.0, 20.0,
                      limits_fn=lambda t: ModeLimits(speed_cap_mps=15.0))
    assert abs(log[-1, 2] - 15.0) < 0.3
    state, log = run_loop(planner, AccPlannerState(), road, no_actors, 20.0, 15.0,
                          limits_fn=lambda t: ModeLimits(stop_decel_mps2=2.0))
    assert log[-1, 2] < 0.05
    assert log[:, 4].min() > -2.1  # stops at the requested rate, not harder
    assert 20.0 ** 2 / (2 * 2.0) < log[-1, 1] < 20.0 ** 2 / (2 * 2.0) + 30.0
    assert state.last_plan.behaviour == "mrm"


def test_curve_speed_reduced():
    road = Road((RoadSegment(200.0), RoadSegment(400.0, 1.0 / 100.0)), 3, 3.5, 30.0)
    ego = EgoState(0, np.array([150.0, 0.0, 0.0]), 30.0, 0.0, 0.0, np.eye(5))
    _, plan = acc_plan_step(AccPlannerState(), ego, Tracks.empty(0), ModeLimits(), road, 0, CFG)
    assert plan.accel_mps2[5] < -1.0
    assert np.all(plan.curvature_1pm[plan.t_s > 3.0] == pytest.approx(0.01))


def test_nan_tracks_ignored_and_counted_zero_tracks_ok():
    road = straight_road()
    ego = EgoState(0, np.array([0.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    tracks = make_tracks(0, np.array([[30.0, 0.0], [np.nan, 0.0], [50.0, 0.0]]),
                         np.array([[10.0, 0.0], [20.0, 0.0], [np.inf, 0.0]]))
    state, plan = acc_plan_step(AccPlannerState(), ego, tracks, ModeLimits(), road, 0, CFG)
    assert state.ignored_tracks == 2 and state.lead_id == 0
    assert np.isfinite(plan.accel_mps2).all() and plan.accel_mps2[-1] < 0
    state2, plan2 = acc_plan_step(AccPlannerState(), ego, Tracks.empty(0), ModeLimits(), road, 0, CFG)
    assert state2.ignored_tracks == 0 and state2.lead_id == -1 and plan2.behaviour == "cruise"
    assert np.isfinite(plan2.xy_m).all()


def test_nan_existence_track_ignored_and_counted():
    """Finite state, NaN existence: dropped (NaN fails the existence threshold) and, like any
    non-finite track, counted."""
    from planning.track_frenet import tracks_to_frenet

    road = straight_road()
    tracks = make_tracks(0, np.array([[140.0, 0.0], [200.0, 0.0]]), np.array([[0.0, 0.0], [10.0, 0.0]]))
    tracks = replace(tracks, existence=np.array([np.nan, 1.0]))
    ft, n_bad = tracks_to_frenet(tracks, road, 0, CFG.min_existence)
    assert n_bad == 1 and ft.ids.tolist() == [1]
    ego = EgoState(0, np.array([100.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    state, _ = acc_plan_step(AccPlannerState(), ego, tracks, ModeLimits(), road, 0, CFG)
    assert state.ignored_tracks == 1 and state.lead_id == 1


def test_adjacent_lane_traffic_is_not_a_lead():
    road = straight_road()
    ego = EgoState(0, np.array([0.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    tracks = make_tracks(0, np.array([[20.0, 3.5], [25.0, -3.5]]), np.array([[10.0, 0.1], [10.0, -0.1]]))
    state, _ = acc_plan_step(AccPlannerState(), ego, tracks, ModeLimits(), road, 0, CFG)
    assert state.lead_id == -1


def test_stale_and_bad_ego():
    road = straight_road()
    ego = EgoState(0, np.array([0.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    state, plan = acc_plan_step(AccPlannerState(), ego, Tracks.empty(0), ModeLimits(), road, int(0.5e9), CFG)
    assert plan.emergency and plan.behaviour == "stale_ego" and state.stale_egos == 1
    assert plan.speed_mps[-1] < plan.speed_mps[0] - 5.0
    bad = replace(ego, pose=np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="not finite"):
        acc_plan_step(AccPlannerState(), bad, Tracks.empty(0), ModeLimits(), road, 0, CFG)
    state2, plan2 = acc_plan_step(state, replace(bad, t_ns=int(0.6e9)), Tracks.empty(0), ModeLimits(), road,
                                  int(0.6e9), CFG)
    assert state2.rejected_egos == 1 and plan2.emergency and np.isfinite(plan2.xy_m).all()


def test_deterministic():
    road = straight_road()
    ego = EgoState(0, np.array([0.0, 0.0, 0.0]), 20.0, 0.0, 0.0, np.eye(5))
    tracks = make_tracks(0, np.array([[30.0, 0.0]]), np.array([[10.0, 0.0]]))
    _, p1 = acc_plan_step(AccPlannerState(), ego, tracks, ModeLimits(), road, 0, CFG)
    _, p2 = acc_plan_step(AccPlannerState(), ego, tracks, ModeLimits(), road, 0, CFG)
    assert np.array_equal(p1.accel_mps2, p2.accel_mps2) and np.array_equal(p1.xy_m, p2.xy_m)


@pytest.mark.parametrize("k", [0.01, -0.01])
def test_gap_on_a_curve_is_measured_along_the_lane(k):
    """A stopped car 40 m of lane ahead of the ego, in its outer or inner lane of a circle: the ACC
    law works in distance along the lane, so the plan covers as much lane as on a straight road
    with the same 40 m gap (taken as a gap in s, it was 1 -+ 0.035 times too long or short).
    Car and ego lengths are subtracted in s, as the lead search does."""
    cfg, d_lane = AccPlannerConfig(), -3.5
    travelled = []
    for curv in (0.0, k):
        road = Road((RoadSegment(300.0, curv),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
        stretch = 1.0 - curv * d_lane
        s_ego = 100.0
        s_car = s_ego + cfg.ego_front_m + 2.3 + 40.0 / stretch  # make_tracks' cars are 4.6 m long
        (ego_xy,), (ego_h,) = road.to_cartesian(np.array([s_ego]), np.array([d_lane]))
        car_xy, _ = road.to_cartesian(np.array([s_car]), np.array([d_lane]))
        ego = EgoState(0, np.array([ego_xy[0], ego_xy[1], ego_h]), 10.0, 0.0, 0.0, np.eye(5))
        _, plan = acc_plan_step(AccPlannerState(), ego, make_tracks(0, car_xy, np.zeros((1, 2))),
                                ModeLimits(), road, 0, cfg)
        s_end, d_end = road.to_frenet(plan.xy_m[-1:])
        assert d_end[0] == pytest.approx(d_lane, abs=1e-3)  # plan samples are joined by chords
        travelled.append((s_end[0] - s_ego) * stretch)
    assert travelled[1] == pytest.approx(travelled[0], abs=1e-3)
