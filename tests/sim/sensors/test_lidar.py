import dataclasses

import numpy as np

from sim.sensors.config import LidarConfig
from sim.sensors.frames import to_vehicle_frame
from sim.sensors.lidar import GROUND_LABEL, LidarModel
from tests.sim.sensors.conftest import make_actors, make_ego, random_traffic

QUIET = LidarConfig(dropout_prob=0.0, range_sigma_m=0.0, azimuth_steps=720)


def scan(cfg, actors, seed=0, noise_scale=1.0, ego=None):
    ego = ego or make_ego()
    return LidarModel(cfg).scan(55, ego, to_vehicle_frame(ego, actors), np.random.default_rng(seed), noise_scale)


def test_ranges_to_box_face_match_geometry():
    cfg = dataclasses.replace(QUIET, range_sigma_m=0.02)
    s, truth = scan(cfg, make_actors([[20.0, 0.0]]))
    hit = truth.point_ids == 100
    assert hit.sum() > 20 and s.t_ns == 55
    # Every return from the car lies on its rear face x = 17.75 (up to range noise); the range along
    # each ray is the analytic distance from the lidar to that plane.
    p = s.points[hit].astype(np.float64)
    assert np.all(np.abs(p[:, 0] - 17.75) < 4 * 0.02 + 1e-3)
    assert np.all(np.abs(p[:, 1]) <= 0.9 + 1e-3) and np.all((p[:, 2] > -0.01) & (p[:, 2] < 1.5 + 0.01))
    origin = np.array([cfg.x_m, cfg.y_m, cfg.z_m])
    rays = (p - origin) / np.linalg.norm(p - origin, axis=1, keepdims=True)
    analytic = (17.75 - origin[0]) / rays[:, 0]
    np.testing.assert_allclose(np.linalg.norm(p - origin, axis=1), analytic, atol=4 * 0.02)
    # No ground return is hidden behind the car.
    ground = s.points[truth.point_ids == GROUND_LABEL]
    far = ground[ground[:, 0] > 18.0]
    shadow = np.abs(far[:, 1]) < (far[:, 0] - cfg.x_m) * (0.8 / 20.0)
    assert not shadow.any()


def test_extrinsics_move_returns():
    ring = {}
    for z in (1.9, 2.9):
        s, truth = scan(dataclasses.replace(QUIET, z_m=z), make_actors(np.zeros((0, 2))))
        g = s.points[truth.point_ids == GROUND_LABEL].astype(np.float64)
        assert np.allclose(g[:, 2], 0.0, atol=1e-4)
        ring[z] = np.hypot(g[:, 0] - QUIET.x_m, g[:, 1]).min()
    # The lowest beam (-25 deg) meets the ground at z / tan(25 deg) from the lidar.
    for z, r in ring.items():
        np.testing.assert_allclose(r, z / np.tan(np.radians(25.0)), rtol=1e-3)
    # Moving the lidar forward does not move the car's face in the vehicle frame.
    s, truth = scan(dataclasses.replace(QUIET, x_m=2.4), make_actors([[20.0, 0.0]]))
    np.testing.assert_allclose(s.points[truth.point_ids == 100, 0], 17.75, atol=1e-3)


def test_yawed_mount_rotates_firing_order():
    cfg = dataclasses.replace(QUIET, yaw_rad=np.pi / 2)
    az = np.radians(110.0)  # 20 deg past the rotated column 0, counter-clockwise
    s, truth = scan(cfg, make_actors([[QUIET.x_m + 15.0 * np.cos(az), 15.0 * np.sin(az)]], yaw=[az]))
    hit = truth.point_ids == 100
    # Column 0 now fires to the left: the car is hit about 20/360 of a sweep after its start.
    offsets = s.time_offset_ns[hit] / cfg.period_ns
    assert hit.any() and np.all((offsets > 0.03) & (offsets < 0.085))


def test_time_offsets_labels_range_and_dtypes():
    cfg = LidarConfig()
    s, truth = scan(cfg, random_traffic(30, seed=1))
    n = len(s.points)
    assert s.points.dtype == np.float32 and s.points.shape == (n, 3)
    assert s.intensity.shape == (n,) and s.time_offset_ns.shape == (n,) and truth.point_ids.shape == (n,)
    assert np.all((s.intensity >= 0) & (s.intensity <= 1))
    assert s.time_offset_ns.min() >= 0 and s.time_offset_ns.max() < cfg.period_ns
    r = np.linalg.norm(s.points - np.array([cfg.x_m, cfg.y_m, cfg.z_m], np.float32), axis=1)
    assert r.max() <= cfg.max_range_m + 5 * cfg.range_sigma_m
    assert set(np.unique(truth.point_ids)) - {GROUND_LABEL} <= set(truth.ids.tolist())
    assert truth.boxes.shape == (len(truth.ids), 7)
    # Car returns are brighter than asphalt on average.
    assert s.intensity[truth.point_ids >= 0].mean() > s.intensity[truth.point_ids < 0].mean()


def test_dropout_noise_scale_and_determinism():
    actors = random_traffic(10, seed=2)
    a, _ = scan(LidarConfig(), actors, seed=4)
    b, _ = scan(LidarConfig(), actors, seed=4)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.intensity, b.intensity)
    full, _ = scan(dataclasses.replace(LidarConfig(), dropout_prob=0.0), actors)
    half, _ = scan(dataclasses.replace(LidarConfig(), dropout_prob=0.5), actors)
    assert abs(len(half.points) / len(full.points) - 0.5) < 0.02
    quiet, tq = scan(QUIET, make_actors([[20.0, 0.0]]))
    loud, tl = scan(dataclasses.replace(QUIET, range_sigma_m=0.02), make_actors([[20.0, 0.0]]), noise_scale=10.0)
    assert np.std(loud.points[tl.point_ids == 100, 0]) > 0.1 > np.std(quiet.points[tq.point_ids == 100, 0])


def test_actor_beyond_range_is_not_hit():
    s, truth = scan(QUIET, make_actors([[200.0, 0.0]]))
    assert len(truth.ids) == 0 and not (truth.point_ids >= 0).any() and len(s.points) > 0
