import json
import math

import numpy as np
import pytest

from core.road import Road, RoadSegment
from core.vehicle import VehicleParams
from sim.metrics import MetricsRecorder
from sim.truth import ActorsTruth, EgoTruth

VP = VehicleParams()
ROAD = Road((RoadSegment(1000.0),), 3, 3.5, 25.0)


def ego(t_ns, x, speed=10.0, accel=0.0, y=0.0, yaw_rate=0.0):
    r = VP.rear_axle_to_center_m
    return EgoTruth(t_ns, np.array([x, y, 0.0]), np.array([x + r, y]), speed, accel, yaw_rate, 0.0,
                    VP.length_m, VP.width_m, VP.height_m)


def actors(t_ns, xy, speed=0.0, ids=None):
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = xy.shape[0]
    return ActorsTruth(t_ns, np.arange(1, n + 1) if ids is None else np.asarray(ids), xy, np.zeros(n),
                       np.full(n, speed), np.zeros(n), np.full(n, 4.6), np.full(n, 1.9), np.full(n, 1.5),
                       np.zeros(n, np.int16), np.zeros((n, 3), np.uint8))


def centre_ahead(gap_m, x=100.0):
    """Actor centre for a bumper gap to an ego with its rear axle at x."""
    return x + VP.rear_axle_to_center_m + 0.5 * VP.length_m + gap_m + 2.3


@pytest.mark.parametrize("gap_m, collides", [(-1.0, True), (0.0, True), (0.01, False), (5.0, False)])
def test_collision_overlap_touching_separate(gap_m, collides):
    m = MetricsRecorder(ROAD, VP)
    m.update(ego(0, 100.0), actors(0, [[centre_ahead(gap_m), 0.0]]))
    assert m.summary()["collisions"] == int(collides)


def test_collision_counted_once_per_contact_episode():
    m = MetricsRecorder(ROAD, VP)
    contact, apart = [[centre_ahead(-0.5), 0.0]], [[centre_ahead(3.0), 0.0]]
    for k, where in enumerate([contact, contact, contact, apart, contact]):
        m.update(ego(k * 10_000_000, 100.0), actors(k * 10_000_000, where))
    assert m.summary()["collisions"] == 2


def test_ttc_and_distance_ahead_in_lane_only():
    m = MetricsRecorder(ROAD, VP)
    # 20 m gap, closing at 10 m/s: TTC 2 s. A closer car in the next lane does not count.
    m.update(ego(0, 100.0, speed=15.0), actors(0, [[centre_ahead(20.0), 0.0], [centre_ahead(2.0), 3.5]], speed=5.0))
    s = m.summary()
    assert s["min_ttc_s"] == pytest.approx(2.0, rel=1e-6)
    assert s["min_distance_m"] == pytest.approx(20.0, abs=1e-6)


def test_no_lead_gives_none_and_summary_is_json_safe():
    m = MetricsRecorder(ROAD, VP)
    m.update(ego(0, 100.0), actors(0, np.zeros((0, 2))))
    m.update(ego(10_000_000, 100.1, accel=0.5), actors(10_000_000, [[50.0, 0.0]]))  # behind
    s = m.summary()
    assert s["min_ttc_s"] is None and s["min_distance_m"] is None and s["collisions"] == 0
    json.dumps(s, allow_nan=False)
    assert s["max_abs_jerk_mps3"] == pytest.approx(50.0)
    assert s["progress_m"] == pytest.approx(0.1)


def test_comfort_and_lane_metrics():
    m = MetricsRecorder(ROAD, VP)
    m.update(ego(0, 100.0, speed=20.0, y=0.3, yaw_rate=0.1), actors(0, np.zeros((0, 2))))
    s = m.summary()
    assert s["max_abs_lat_accel_mps2"] == pytest.approx(2.0)
    assert s["lane_center_rmse_m"] == pytest.approx(0.3)
    assert s["mean_speed_mps"] == 20.0


def test_jerk_ignored_at_standstill():
    m = MetricsRecorder(ROAD, VP)
    m.update(ego(0, 100.0, speed=0.1, accel=-3.0), actors(0, np.zeros((0, 2))))
    m.update(ego(10_000_000, 100.0, speed=0.0, accel=0.0), actors(10_000_000, np.zeros((0, 2))))
    assert m.summary()["max_abs_jerk_mps3"] == 0.0


def test_bad_input():
    m = MetricsRecorder(ROAD, VP)
    with pytest.raises(ValueError):
        m.update(ego(0, math.nan), actors(0, np.zeros((0, 2))))
    m.update(ego(0, 100.0), actors(0, [[math.nan, 0.0], [centre_ahead(-1.0), 0.0]]))
    with pytest.raises(ValueError):
        m.update(ego(0, 100.0), actors(0, np.zeros((0, 2))))  # time must advance
    s = m.summary()
    assert s["invalid_actor_samples"] == 1 and s["collisions"] == 1


@pytest.mark.parametrize("ticks, collisions", [
    ("CCNCC", 1),  # one bad sample inside a contact: one contact, not two
    ("CNNCC", 1),
    ("FNCFC", 2),  # free, bad, contact, free, contact: two episodes
    ("NNCCF", 1),
])
def test_a_nonfinite_actor_sample_carries_the_contact_state(ticks, collisions):
    where = {"C": [[centre_ahead(-0.5), 0.0]], "F": [[centre_ahead(30.0), 0.0]], "N": [[math.nan, math.nan]]}
    m = MetricsRecorder(ROAD, VP)
    for k, tick in enumerate(ticks):
        m.update(ego(k * 10_000_000, 100.0), actors(k * 10_000_000, where[tick]))
    s = m.summary()
    assert s["collisions"] == collisions and s["invalid_actor_samples"] == ticks.count("N")


# -- road departure ------------------------------------------------------------------------------
HALF_W = 0.5 * 3 * 3.5  # ROAD's paved half width [m]
HALF_L, HALF_WIDTH = 0.5 * VP.length_m, 0.5 * VP.width_m


def ego_at_centre(t_ns, cx, cy, yaw=0.0):
    """Ego truth with its box centre at (cx, cy) and heading yaw."""
    r = VP.rear_axle_to_center_m
    pose = np.array([cx - r * math.cos(yaw), cy - r * math.sin(yaw), yaw])
    return EgoTruth(t_ns, pose, np.array([cx, cy]), 10.0, 0.0, 0.0, 0.0, VP.length_m, VP.width_m, VP.height_m)


def departure(poses, block_ticks=128, road=ROAD, tick_ns=10_000_000):
    m = MetricsRecorder(road, VP, block_ticks=block_ticks)
    for k, (cx, cy, yaw) in enumerate(poses):
        m.update(ego_at_centre(k * tick_ns, cx, cy, yaw), actors(k * tick_ns, np.zeros((0, 2))))
    s = m.summary()
    return s["max_off_road_m"], s["off_road_s"]


def test_a_footprint_inside_the_road_is_not_off_road():
    # The outermost lane's centre, tilted: every corner stays inside the edge.
    assert departure([(500.0, 3.5, 0.05), (500.1, -3.5, -0.05)]) == (0.0, 0.0)
    # A corner exactly on the edge is on the road.
    assert departure([(500.0, HALF_W - HALF_WIDTH, 0.0)]) == (0.0, 0.0)


@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("yaw", [0.0, 0.1, -0.3])
def test_a_corner_past_the_edge_is_its_distance_off(side, yaw):
    # The corner farthest to that side sits at cy + side * (half_l |sin yaw| + half_w cos yaw).
    reach = HALF_L * abs(math.sin(yaw)) + HALF_WIDTH * math.cos(yaw)
    cy = side * (HALF_W + 0.4 - reach)
    max_m, off_s = departure([(500.0, 0.0, 0.0), (500.0, cy, yaw)])
    assert max_m == pytest.approx(0.4, abs=1e-9)
    assert off_s == pytest.approx(0.01, abs=1e-12)  # one tick, its interval since the tick before


def test_past_the_road_ends_counts_and_combines_with_the_edge_as_a_distance():
    length = ROAD.length_m
    assert departure([(500.0, 0.0, 0.0), (length - HALF_L + 0.4, 0.0, 0.0)])[0] == pytest.approx(0.4, abs=1e-9)
    assert departure([(500.0, 0.0, 0.0), (HALF_L - 0.4, 0.0, 0.0)])[0] == pytest.approx(0.4, abs=1e-9)
    # 0.3 m past the end and 0.4 m past the left edge: 0.5 m from the paved corner.
    far_corner = (length - HALF_L + 0.3, HALF_W - HALF_WIDTH + 0.4, 0.0)
    assert departure([(500.0, 0.0, 0.0), far_corner])[0] == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("block_ticks", [1, 3, 128])
def test_off_road_time_is_off_road_ticks_times_dt(block_ticks):
    inside, out_0_2, out_0_7 = (100.0, 0.0, 0.0), (100.0, HALF_W - HALF_WIDTH + 0.2, 0.0), \
        (100.0, -(HALF_W - HALF_WIDTH + 0.7), 0.0)
    # Ticks 0..9 at 20 ms: off at 2, 3, 4 and 7; the largest departure 0.7 m, at tick 7.
    poses = [inside, inside, out_0_2, out_0_2, out_0_2, inside, inside, out_0_7, inside, inside]
    max_m, off_s = departure(poses, block_ticks=block_ticks, tick_ns=20_000_000)
    assert max_m == pytest.approx(0.7, abs=1e-9)
    assert off_s == 4 * 0.02
    # The first tick covers no time: off_road_s never exceeds the run's duration.
    assert departure([out_0_2, inside], block_ticks=block_ticks)[1] == 0.0
    assert departure([out_0_2] * 5, block_ticks=block_ticks)[1] == 0.04


@pytest.mark.parametrize("radius, lanes", [(100.0, 3), (10.0, 1)])
@pytest.mark.parametrize("side", ["outer", "inner"])
def test_a_departure_on_an_arc(radius, lanes, side):
    # A left arc from the origin heading +x: centre of curvature (0, radius). The ego sits tangent to
    # the road, its box centre rho from the curvature centre. Off the outer (right) edge its farthest
    # corners are the right ones, sqrt((rho + half_w)^2 + half_l^2) from the centre; off the inner
    # edge the left ones, sqrt((rho - half_w)^2 + half_l^2).
    road = Road((RoadSegment(0.5 * math.pi * radius, 1.0 / radius),), lanes, 3.5, 25.0)
    half_w, phi = 0.5 * lanes * 3.5, 0.5
    if side == "outer":
        rho = radius + half_w + 0.2
        expected = math.hypot(rho + HALF_WIDTH, HALF_L) - (radius + half_w)
    else:
        rho = radius - half_w - 1.5
        expected = (radius - half_w) - math.hypot(rho - HALF_WIDTH, HALF_L)
    cx, cy = rho * math.sin(phi), radius - rho * math.cos(phi)
    max_m, _ = departure([(cx, cy, phi)], road=road)
    assert expected > 0.0 and max_m == pytest.approx(expected, abs=1e-9)


def test_a_world_leaving_the_curve_reports_the_departure_with_no_collision():
    """The reviewer's case without the stack: the ego holds its wheel straight at 18 m/s into the
    curve scenario's 250 m radius bend, so no collision, but off the road from a closed-form time."""
    import dataclasses
    from sim.scenario import load_scenario
    from sim.world import World

    cfg = load_scenario("curve")
    cfg = dataclasses.replace(cfg, traffic=dataclasses.replace(cfg.traffic, vehicles_per_km_per_lane=0.0))
    world = World(cfg, 0)
    m = MetricsRecorder(world.road, world.vehicle)
    m.update(world.ego_truth(), world.actors_truth())
    for _ in range(1500):  # 15 s at 100 Hz
        world.step(0.0, 0.0, 10_000_000)
        m.update(world.ego_truth(), world.actors_truth())
    s = m.summary()
    # The straight ends at x = 200, the bend's centre is (200, 250), the right edge 255.25 m from it.
    # The front-right corner (axle + 3.7 m, y = -0.95) leaves when (x - 200)^2 + 250.95^2 = 255.25^2.
    front = 1.4 + 2.3
    x_out = 200.0 + math.sqrt(255.25 ** 2 - 250.95 ** 2)
    t_out = (x_out - front - 50.0) / 18.0
    assert s["collisions"] == 0
    assert abs(s["off_road_s"] - (15.0 - t_out)) <= 0.01 + 1e-9  # within one tick
    x_end = 50.0 + 18.0 * 15.0 + front
    assert s["max_off_road_m"] == pytest.approx(math.hypot(x_end - 200.0, 250.95) - 255.25, abs=1e-9)


def test_the_departure_agrees_with_road_to_frenet():
    """Against the nearest-sample search of Road.to_frenet (exact to millimetres on the 250 m
    radius), pose by pose on the curve scenario's road, on and off it and past its ends."""
    from core.geometry import box_corners_2d
    from sim.scenario import load_scenario
    from sim.world import World

    road = World(load_scenario("curve"), 0).road
    rng = np.random.default_rng(7)
    s_c = rng.uniform(-3.0, road.length_m + 3.0, 300)
    d_c = rng.uniform(-9.0, 9.0, 300)
    centre, heading = road.to_cartesian(s_c, d_c)
    yaw = heading + rng.uniform(-0.4, 0.4, 300)
    s, d = road.to_frenet(box_corners_2d(centre, VP.length_m, VP.width_m, yaw))
    past_end = np.maximum(-s, 0.0) + np.maximum(s - road.length_m, 0.0)
    expected = np.hypot(past_end, np.maximum(np.abs(d) - road.half_width_m, 0.0)).max(axis=1)
    got = [departure([(centre[j, 0], centre[j, 1], yaw[j])], road=road)[0] for j in range(300)]
    assert (expected > 0).sum() > 50 and (expected == 0).sum() > 50
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_a_corner_off_an_s_bend_is_as_far_off_as_its_nearest_foot():
    """Beside an S-bend a corner has several foot points on the reference line; the one nearest to
    the box centre's s may not be the nearest. Distance to a 1 cm sampling of the line, minus the
    half width, is the reference (the corners here are far from the road's ends)."""
    from core.geometry import box_corners_2d

    road = Road((RoadSegment(40.0), RoadSegment(31.4, 0.1), RoadSegment(31.4, -0.1), RoadSegment(100.0)), 1, 2.5,
                25.0)
    ref, _, _ = road.interpolate(np.arange(0.0, road.length_m, 0.01))
    rng = np.random.default_rng(3)
    for _ in range(200):
        cx, cy, yaw = rng.uniform(40.0, 80.0), rng.uniform(-5.0, 25.0), rng.uniform(-np.pi, np.pi)
        corners = box_corners_2d(np.array([cx, cy]), VP.length_m, VP.width_m, yaw)[0]
        nearest = np.sqrt(((corners[:, None, :] - ref[None]) ** 2).sum(-1)).min(axis=1)
        expected = max(float((nearest - road.half_width_m).max()), 0.0)
        assert departure([(cx, cy, yaw)], road=road)[0] == pytest.approx(expected, abs=2e-3), (cx, cy, yaw)
