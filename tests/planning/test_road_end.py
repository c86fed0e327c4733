"""The end of the road is a standing object across the road: both planners stop before it."""
import dataclasses

import numpy as np
import pytest

from acc_loop import make_tracks, straight_road
from planning.road_end import REACH_MARGIN_M, ROAD_END_ID, road_end_in_reach, with_road_end
from planning.track_frenet import FrenetTracks, tracks_to_frenet


def test_in_reach_is_the_horizon_distance_plus_a_comfortable_stop_plus_the_margin():
    road = straight_road(length_m=1000.0)
    reach = 20.0 * 5.0 + 20.0 ** 2 / (2.0 * 2.0) + REACH_MARGIN_M  # 250 m at 20 m/s
    assert road_end_in_reach(road, 1000.0 - reach, 20.0, 5.0, 2.0)
    assert not road_end_in_reach(road, 1000.0 - reach - 0.01, 20.0, 5.0, 2.0)
    assert road_end_in_reach(road, 1000.0 - REACH_MARGIN_M, -3.0, 5.0, 2.0)  # reversing: the margin


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


@pytest.mark.parametrize("planner_kind", ["lattice", "acc"])
def test_a_run_longer_than_the_road_stops_before_its_end(planner_kind):
    # On the 2,000 m free_road at 25 m/s the ego reached the end at 76 s and drove off the map
    # (lane-centre RMSE 10.9 m, 125 infeasible emergency plans, still NOMINAL). Here the road is
    # cut to 700 m to keep the test short, without traffic: the simulated cars leave the world at
    # the road's end, and a lead that vanishes 45 m ahead leaves the end a surprise.
    from runtime.closed_loop import ClosedLoop, RunOptions
    from runtime.stack_config import StackConfig
    from sim.scenario import SegmentConfig, load_scenario
    cfg = dataclasses.replace(StackConfig(), planner_kind=planner_kind)
    scenario = load_scenario("free_road")
    scenario = dataclasses.replace(scenario, road=dataclasses.replace(scenario.road, segments=(SegmentConfig(700.0),)),
                                   traffic=dataclasses.replace(scenario.traffic, vehicles_per_km_per_lane=0.0))
    loop = ClosedLoop(scenario, RunOptions(seed=0, duration_s=40.0, perception="oracle"), cfg)
    s = loop.run()
    _, x, y, v, _ = loop.trajectory[-1]
    road = loop.world.road
    s_final = float(road.to_frenet(np.array([[x, y]]))[0][0])
    front = s_final + 0.5 * loop.world.vehicle.length_m
    assert s["collisions"] == 0 and s["final_mode"] == "NOMINAL"
    assert road.length_m - 12.0 < front < road.length_m  # at about the standstill gap before the end
    assert s["lane_center_rmse_m"] < 0.1 and s["max_abs_lat_accel_mps2"] < 1.0
    assert s["planner"]["emergency_plans"] == 0 and s["max_abs_jerk_mps3"] < 4.5
    # The lattice stands; the ACC law's time-gap term closes the last metres at a crawl (0.44 m/s).
    assert v < (0.05 if planner_kind == "lattice" else 0.5)
