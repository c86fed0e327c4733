"""Sensor-model benchmarks: each entry builds its inputs (30 actors around the ego on a curved
3-lane road) and returns a zero-argument callable; ``rtdrive bench`` times them.

Run alone: ``python -m benchmarks.bench_sensors`` prints median and p99 per benchmark.
"""
from __future__ import annotations

import time

import numpy as np

from core.road import Road, RoadSegment
from sim.sensors.camera import CameraModel
from sim.sensors.config import CameraConfig, LidarConfig, RadarConfig
from sim.sensors.frames import LocalActors, to_vehicle_frame
from sim.sensors.lidar import LidarModel
from sim.sensors.radar import RadarModel
from sim.truth import ActorsTruth, EgoTruth

NUM_ACTORS = 30


def scene(num_actors: int = NUM_ACTORS, seed: int = 0) -> tuple[Road, EgoTruth, LocalActors]:
    road = Road((RoadSegment(100.0), RoadSegment(200.0, 1.0 / 300.0), RoadSegment(300.0)), 3, 3.5, 25.0)
    ego_s = 40.0
    xy, heading = road.to_cartesian(ego_s, 0.0)
    ego = EgoTruth(0, np.array([xy[0], xy[1], heading]), xy + 1.4 * np.array([np.cos(heading), np.sin(heading)]),
                   20.0, 0.0, 0.0, 0.0, 4.6, 1.9, 1.5)
    r = np.random.default_rng(seed)
    s = ego_s + r.uniform(-40.0, 150.0, num_actors)
    lane = r.integers(0, 3, num_actors)
    s = np.where((np.abs(s - ego_s) < 8.0) & (lane == 1), s + 16.0, s)
    axy, ah = road.to_cartesian(s, road.lane_center_d(lane))
    ped = r.random(num_actors) < 0.1
    actors = ActorsTruth(
        0, np.arange(num_actors, dtype=np.int64), axy.reshape(-1, 2), ah, np.full(num_actors, 18.0),
        np.zeros(num_actors), np.where(ped, 0.6, r.uniform(3.8, 5.5, num_actors)),
        np.where(ped, 0.6, r.uniform(1.7, 2.1, num_actors)), np.where(ped, 1.75, r.uniform(1.4, 2.2, num_actors)),
        ped.astype(np.int16), r.integers(30, 230, (num_actors, 3)).astype(np.uint8))
    return road, ego, to_vehicle_frame(ego, actors)


def make_lidar_scan():
    _, ego, local = scene()
    model, rng = LidarModel(LidarConfig()), np.random.default_rng(0)
    return lambda: model.scan(0, ego, local, rng)


def make_camera_render():
    road, ego, local = scene()
    model, rng = CameraModel(CameraConfig(), road, noise_seed=0), np.random.default_rng(0)
    return lambda: model.render(0, ego, local, rng)


def make_radar_scan():
    _, ego, local = scene()
    model, rng = RadarModel(RadarConfig()), np.random.default_rng(0)
    return lambda: model.scan(0, ego, local, rng)


BENCHMARKS = {"lidar_scan": make_lidar_scan, "camera_render": make_camera_render, "radar_scan": make_radar_scan}


def main(repeats: int = 100) -> None:
    for name, make in BENCHMARKS.items():
        fn = make()
        for _ in range(5):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
        ms = np.array(times) / 1e6
        print(f"{name:15s} median {np.median(ms):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms")


if __name__ == "__main__":
    main()
