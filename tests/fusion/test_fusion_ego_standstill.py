"""A car at rest keeps its heading: the EKF's heading process noise scales with speed below
EgoConfig.yaw_noise_full_speed_mps. At the full rate a car waiting with IMU, wheel and GNSS all
healthy passed the safety monitor's 0.05 rad heading limit after ~95 s (GNSS says nothing of the
heading at rest), and a traffic jam ended in a minimal-risk stop."""
import math

import numpy as np

from core.messages import GnssFix, ImuSample, WheelSpeed
from fusion.ego_ekf import EgoConfig, EgoFilterState, ego_update

MS = 1_000_000


def _heading_sigma_after(seconds: int, speed_mps: float, cfg: EgoConfig) -> float:
    rng = np.random.default_rng(0)
    state = EgoFilterState.at(0, np.array([0.0, 0.0, 0.3]), speed_mps, (0.3, 0.3, 0.01), 0.1)
    for k in range(1, seconds * 100 + 1):  # IMU 100 Hz, wheel 50 Hz, GNSS 10 Hz
        t = k * 10 * MS
        state = ego_update(state, ImuSample(t, np.array([rng.normal(0, 0.05), 0.0, 9.81]), rng.normal(0, 0.01)), cfg)
        if k % 2 == 0:
            state = ego_update(state, WheelSpeed(t, speed_mps), cfg)
        if k % 10 == 0:
            pos = np.array([speed_mps * t * 1e-9 * math.cos(0.3), speed_mps * t * 1e-9 * math.sin(0.3)])
            state = ego_update(state, GnssFix(t, pos + rng.normal(0, 1.0, 2), 1.0), cfg)
    return math.sqrt(state.p[2, 2])


def test_the_heading_sigma_of_a_car_at_rest_grows_only_from_the_yaw_rate():
    at_rest = _heading_sigma_after(100, 0.0, EgoConfig())
    full_rate = _heading_sigma_after(100, 0.0, EgoConfig(yaw_noise_full_speed_mps=0.0))
    assert full_rate > 0.05  # the old model: past the monitor's limit within 100 s
    assert at_rest < 0.016  # 0.0152 at 100 s (0.0174 at 200 s): the IMU's integrated noise alone
