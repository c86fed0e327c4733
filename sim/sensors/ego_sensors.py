"""Ego-motion sensors: IMU (specific force, yaw rate), wheel speed, GNSS position fix."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.messages import GnssFix, ImuSample, WheelSpeed
from sim.sensors.config import GnssConfig, ImuConfig, WheelConfig
from sim.truth import EgoTruth

GRAVITY_MPS2 = 9.80665


@dataclass(frozen=True, slots=True)
class ImuBias:
    """Per-run constant biases, drawn once from the IMU's own generator."""

    accel_mps2: np.ndarray  # (3,)
    gyro_rps: float

    @staticmethod
    def draw(cfg: ImuConfig, rng: np.random.Generator) -> "ImuBias":
        return ImuBias(cfg.accel_bias_sigma_mps2 * rng.standard_normal(3), float(cfg.gyro_bias_sigma_rps * rng.standard_normal()))


def imu_sample(cfg: ImuConfig, t_ns: int, ego: EgoTruth, bias: ImuBias, rng: np.random.Generator,
               noise_scale: float = 1.0) -> ImuSample:
    """Specific force at the IMU: rear-axle acceleration (longitudinal, centripetal v*omega) plus the
    -omega^2 r term of the lever arm; gravity shows as +g on z (the road is flat)."""
    w = float(ego.yaw_rate_rps)
    x, y = cfg.x_m, cfg.y_m
    accel = np.array([ego.accel_mps2 - w * w * x, ego.speed_mps * w - w * w * y, GRAVITY_MPS2])
    accel = accel + bias.accel_mps2 + cfg.accel_sigma_mps2 * noise_scale * rng.standard_normal(3)
    yaw_rate = w + bias.gyro_rps + cfg.gyro_sigma_rps * noise_scale * float(rng.standard_normal())
    return ImuSample(int(t_ns), accel, float(yaw_rate))


def wheel_speed(cfg: WheelConfig, t_ns: int, ego: EgoTruth, rng: np.random.Generator,
                noise_scale: float = 1.0) -> WheelSpeed:
    """Speed from the wheel encoders: a tyre-radius scale error and noise; never negative."""
    v = ego.speed_mps * (1.0 + cfg.scale_error) + cfg.speed_sigma_mps * noise_scale * float(rng.standard_normal())
    return WheelSpeed(int(t_ns), float(max(v, 0.0)))


def gnss_fix(cfg: GnssConfig, t_ns: int, ego: EgoTruth, rng: np.random.Generator,
             noise_scale: float = 1.0) -> GnssFix:
    """Map-frame fix of the antenna (its mount offset rotated by the ego heading), Gaussian noise and,
    with probability outlier_prob, a multipath outlier the receiver does not know about."""
    x, y, yaw = (float(v) for v in ego.pose)
    c, s = np.cos(yaw), np.sin(yaw)
    antenna = np.array([x + c * cfg.x_m - s * cfg.y_m, y + s * cfg.x_m + c * cfg.y_m])
    noise = cfg.sigma_m * noise_scale * rng.standard_normal(2)
    outlier = rng.random() < cfg.outlier_prob
    jump = cfg.outlier_sigma_m * rng.standard_normal(2)
    return GnssFix(int(t_ns), antenna + noise + (jump if outlier else 0.0), float(cfg.sigma_m))
