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
