"""Shared truth builders for the sensor tests: a straight road along +x and boxes placed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from core.road import Road, RoadSegment
from sim.truth import ActorsTruth, EgoTruth


def make_ego(speed_mps: float = 0.0, yaw_rate_rps: float = 0.0, pose=(0.0, 0.0, 0.0), accel_mps2: float = 0.0) -> EgoTruth:
    pose = np.asarray(pose, dtype=np.float64)
    centre = pose[:2] + 1.4 * np.array([np.cos(pose[2]), np.sin(pose[2])])
    return EgoTruth(0, pose, centre, speed_mps, accel_mps2, yaw_rate_rps, 0.0, 4.6, 1.9, 1.5)


def make_actors(xy, yaw=None, speed=None, size=(4.5, 1.8, 1.5), labels=None, colors=None) -> ActorsTruth:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    size = np.broadcast_to(np.asarray(size, dtype=np.float64), (n, 3))
    return ActorsTruth(0, np.arange(n, dtype=np.int64) + 100, xy,
                       np.zeros(n) if yaw is None else np.asarray(yaw, dtype=np.float64),
                       np.zeros(n) if speed is None else np.asarray(speed, dtype=np.float64), np.zeros(n),
                       size[:, 0].copy(), size[:, 1].copy(), size[:, 2].copy(),
                       np.zeros(n, np.int16) if labels is None else np.asarray(labels, dtype=np.int16),
                       np.full((n, 3), 180, np.uint8) if colors is None else np.asarray(colors, dtype=np.uint8))


def random_traffic(n: int, seed: int = 0) -> ActorsTruth:
    r = np.random.default_rng(seed)
    x = r.uniform(8.0, 110.0, n) * r.choice([-1.0, 1.0], n)
    y = r.choice([-3.5, 0.0, 3.5], n)
    keep_clear = (np.abs(x) < 8.0) & (y == 0.0)
    x = np.where(keep_clear, x + 12.0, x)
    return make_actors(np.column_stack([x, y]), speed=r.uniform(5, 25, n),
                       size=np.column_stack([r.uniform(3.8, 5.5, n), r.uniform(1.7, 2.1, n), r.uniform(1.4, 2.2, n)]),
                       colors=r.integers(30, 230, (n, 3)))


@pytest.fixture(scope="session")
def road() -> Road:
    return Road((RoadSegment(600.0),), 3, 3.5, 25.0, start_pose=(-200.0, 0.0, 0.0))
