import dataclasses

import numpy as np

from sim.sensors.config import RadarConfig
from sim.sensors.frames import to_vehicle_frame
from sim.sensors.radar import CLUTTER_LABEL, RadarModel
from tests.sim.sensors.conftest import make_actors, make_ego

EXACT = RadarConfig(detection_prob=1.0, clutter_rate=0.0, range_sigma_m=0.0, azimuth_sigma_rad=0.0,
                    range_rate_sigma_mps=0.0, rcs_sigma_db=0.0)


def scan(cfg, actors, ego=None, seed=0, noise_scale=1.0):
    ego = ego or make_ego()
    return RadarModel(cfg).scan(9, ego, to_vehicle_frame(ego, actors), np.random.default_rng(seed), noise_scale)


def xy(s):
    return np.column_stack([s.range_m * np.cos(s.azimuth_rad), s.range_m * np.sin(s.azimuth_rad)])


def test_doppler_of_approaching_car_is_its_radial_speed():
    ego = make_ego(speed_mps=20.0)
    s, truth = scan(EXACT, make_actors([[40.0, 0.0]], speed=[12.0]), ego=ego)
    assert len(s.range_m) >= 2 and np.all(truth.point_ids == 100)  # several returns, all from it
    p = xy(s)
    np.testing.assert_allclose(p[:, 0], 40.0 - 2.25, atol=1e-4)  # on the rear face, vehicle frame
    los = (p - [EXACT.x_m, EXACT.y_m]) / np.linalg.norm(p - [EXACT.x_m, EXACT.y_m], axis=1, keepdims=True)
    np.testing.assert_allclose(s.range_rate_mps, (12.0 - 20.0) * los[:, 0], atol=1e-4)
    assert np.all(s.range_rate_mps < -7.9)


def test_oncoming_car_and_ego_yaw_rate():
    ego = make_ego(speed_mps=10.0, yaw_rate_rps=0.3)
    s, truth = scan(EXACT, make_actors([[60.0, 3.5]], yaw=[np.pi], speed=[15.0]), ego=ego)
    p = xy(s)
    rel = p - [EXACT.x_m, EXACT.y_m]
    los = rel / np.linalg.norm(rel, axis=1, keepdims=True)
    v_radar = np.array([10.0, 0.3 * EXACT.x_m])  # v + omega x r at the radar's mount
    want = (np.array([-15.0, 0.0]) - v_radar) @ los.T
    np.testing.assert_allclose(s.range_rate_mps, want, atol=1e-4)


def test_field_of_view_follows_the_mount_yaw():
    car = make_actors([[EXACT.x_m + 10.0, 30.0]])  # ~72 deg to the left of the radar
    s, _ = scan(EXACT, car)
    assert len(s.range_m) == 0
    s, truth = scan(dataclasses.replace(EXACT, yaw_rad=1.2), car)
    assert len(s.range_m) > 0 and np.all(truth.point_ids == 100)
    p = xy(s)  # still reported in the vehicle frame: on the faces it sees, right and rear
    on_right = np.abs(p[:, 1] - (30.0 - 0.9)) < 1e-4
    on_rear = np.abs(p[:, 0] - (EXACT.x_m + 10.0 - 2.25)) < 1e-4
    assert np.all(on_right | on_rear) and on_right.any() and on_rear.any()


def test_occluded_car_gives_no_returns_and_misses_happen():
    cars = make_actors([[30.0, 0.0], [60.0, 0.0]], size=[[4.5, 2.5, 1.5], [4.5, 1.8, 1.5]])
    _, truth = scan(EXACT, cars)
    assert set(truth.point_ids.tolist()) == {100}
    many = make_actors([[20.0 + 15.0 * k, 3.5 * (k % 3 - 1)] for k in range(6)])
    full, _ = scan(EXACT, many)
    some, _ = scan(dataclasses.replace(EXACT, detection_prob=0.5), many, seed=3)
    assert 0 < len(some.range_m) < len(full.range_m)


def test_clutter_is_poisson_and_stationary():
    cfg = dataclasses.replace(EXACT, clutter_rate=4.0)
    ego = make_ego(speed_mps=15.0)
    counts, rr_err = [], []
    for seed in range(200):
        s, truth = scan(cfg, make_actors(np.zeros((0, 2))), ego=ego, seed=seed)
        assert np.all(truth.point_ids == CLUTTER_LABEL)
        counts.append(len(s.range_m))
        rel = xy(s) - [cfg.x_m, cfg.y_m]
        los = rel / np.linalg.norm(rel, axis=1, keepdims=True)
        rr_err.extend(s.range_rate_mps + 15.0 * los[:, 0])
        assert np.all(np.abs(np.arctan2(rel[:, 1], rel[:, 0])) <= np.radians(45.0) + 1e-6)
    assert abs(np.mean(counts) - 4.0) < 0.4 and abs(np.var(counts) - 4.0) < 1.2
    assert np.max(np.abs(rr_err)) < 1e-3


def test_noise_scale_and_determinism():
    ego = make_ego(speed_mps=20.0)
    cars = make_actors([[40.0, 0.0], [70.0, 3.5]], speed=[12.0, 25.0])
    a, _ = scan(RadarConfig(), cars, ego=ego, seed=5)
    b, _ = scan(RadarConfig(), cars, ego=ego, seed=5)
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("range_m", "azimuth_rad", "range_rate_mps", "rcs_dbsm"))
    quiet = dataclasses.replace(EXACT, range_rate_sigma_mps=0.1)
    q, _ = scan(quiet, cars, ego=ego, seed=1)
    loud, _ = scan(quiet, cars, ego=ego, seed=1, noise_scale=20.0)
    exact, _ = scan(EXACT, cars, ego=ego, seed=1)
    assert np.std(loud.range_rate_mps - exact.range_rate_mps) > 10 * np.std(q.range_rate_mps - exact.range_rate_mps)
    assert a.range_m.dtype == np.float32 and a.rcs_dbsm.shape == a.range_m.shape
