"""Sensor configuration: timing, mounting and noise of every simulated sensor, as frozen dataclasses.

Timing of one sensor: it captures every 1/rate_hz seconds (starting at phase_s), the message arrives
latency_s (+ bounded jitter) after capture, and its t_ns carries the sensor's clock offset. The mount
(x, y, z, roll, pitch, yaw) places the sensor in the vehicle frame (origin rear-axle centre, z at
ground, REP 103). Fields are flat (no nested tables) so that a TOML table overriding one key keeps
the sensor's own defaults for the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import rng
from core.geometry import SE3

JITTER_DISTRIBUTIONS = ("uniform", "normal")


def _f(default: float, lo: float, hi: float):
    return field(default=default, metadata=rng(lo, hi))


@dataclass(frozen=True, slots=True)
class SensorBase:
    """Timing and mount shared by every sensor; subclasses override the defaults."""

    rate_hz: float = field(default=10.0, metadata=rng(0.1, 1000.0))
    latency_s: float = field(default=0.01, metadata=rng(0.0, 2.0))
    # Arrival = capture + latency + j with j in [0, jitter_s]: "uniform" over it, or "normal" as a
    # half-normal (sigma = jitter_s / 2) truncated at jitter_s, so the bound always holds.
    jitter_s: float = field(default=0.0, metadata=rng(0.0, 1.0))
    jitter_dist: str = field(default="uniform", metadata=rng(choices=JITTER_DISTRIBUTIONS))
    clock_offset_s: float = field(default=0.0, metadata=rng(-100.0, 100.0))
    phase_s: float = field(default=0.0, metadata=rng(0.0, 10.0))  # first capture time
    x_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    y_m: float = field(default=0.0, metadata=rng(-50.0, 50.0))
    z_m: float = field(default=0.0, metadata=rng(-10.0, 50.0))
    roll_rad: float = field(default=0.0, metadata=rng(-3.15, 3.15))
    pitch_rad: float = field(default=0.0, metadata=rng(-1.58, 1.58))
    yaw_rad: float = field(default=0.0, metadata=rng(-3.15, 3.15))

    @property
    def period_ns(self) -> int:
        return int(round(1e9 / self.rate_hz))

    def mount(self) -> SE3:
        """Sensor frame -> vehicle frame."""
        return SE3.from_xyz_rpy((self.x_m, self.y_m, self.z_m), (self.roll_rad, self.pitch_rad, self.yaw_rad))

@dataclass(frozen=True, slots=True)
class CameraConfig(SensorBase):
    rate_hz: float = _f(20.0, 0.1, 1000.0)
    latency_s: float = _f(0.03, 0.0, 2.0)
    jitter_s: float = _f(0.005, 0.0, 1.0)
    x_m: float = _f(1.6, -50.0, 50.0)
    z_m: float = _f(1.45, -10.0, 50.0)
    pitch_rad: float = _f(0.04, -1.58, 1.58)
    width_px: int = field(default=960, metadata=rng(16, 4096))
    height_px: int = field(default=540, metadata=rng(16, 4096))
    hfov_deg: float = field(default=90.0, metadata=rng(10.0, 150.0))
    max_range_m: float = field(default=150.0, metadata=rng(10.0, 500.0))
    noise_sigma: float = field(default=4.0, metadata=rng(0.0, 60.0))  # pixel noise, grey levels
    exposure_sigma: float = field(default=0.06, metadata=rng(0.0, 0.5))  # relative gain jitter
    jpeg: bool = False
    jpeg_quality: int = field(default=85, metadata=rng(10, 100))


@dataclass(frozen=True, slots=True)
class LidarConfig(SensorBase):
    rate_hz: float = _f(10.0, 0.1, 1000.0)
    latency_s: float = _f(0.05, 0.0, 2.0)
    jitter_s: float = _f(0.005, 0.0, 1.0)
    x_m: float = _f(1.4, -50.0, 50.0)
    z_m: float = _f(1.9, -10.0, 50.0)
    beams: int = field(default=64, metadata=rng(1, 256))
    min_elevation_deg: float = field(default=-25.0, metadata=rng(-90.0, 0.0))
    max_elevation_deg: float = field(default=15.0, metadata=rng(0.0, 90.0))
    azimuth_steps: int = field(default=1800, metadata=rng(8, 8192))
    max_range_m: float = field(default=120.0, metadata=rng(1.0, 500.0))
    min_range_m: float = field(default=0.5, metadata=rng(0.0, 10.0))
    range_sigma_m: float = field(default=0.02, metadata=rng(0.0, 2.0))
    dropout_prob: float = field(default=0.02, metadata=rng(0.0, 1.0))
    intensity_sigma: float = field(default=0.03, metadata=rng(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class RadarConfig(SensorBase):
    rate_hz: float = _f(20.0, 0.1, 1000.0)
    latency_s: float = _f(0.02, 0.0, 2.0)
    jitter_s: float = _f(0.003, 0.0, 1.0)
    x_m: float = _f(3.7, -50.0, 50.0)
    z_m: float = _f(0.5, -10.0, 50.0)
    hfov_deg: float = field(default=90.0, metadata=rng(1.0, 360.0))
    max_range_m: float = field(default=160.0, metadata=rng(1.0, 400.0))
    min_range_m: float = field(default=0.5, metadata=rng(0.0, 10.0))
    detection_prob: float = field(default=0.9, metadata=rng(0.0, 1.0))  # per return
    clutter_rate: float = field(default=3.0, metadata=rng(0.0, 100.0))  # Poisson mean per scan
    range_sigma_m: float = field(default=0.15, metadata=rng(0.0, 5.0))
    azimuth_sigma_rad: float = field(default=0.005, metadata=rng(0.0, 0.2))
    range_rate_sigma_mps: float = field(default=0.1, metadata=rng(0.0, 5.0))
    rcs_sigma_db: float = field(default=2.0, metadata=rng(0.0, 20.0))


@dataclass(frozen=True, slots=True)
class ImuConfig(SensorBase):
    rate_hz: float = _f(100.0, 0.1, 1000.0)
    latency_s: float = _f(0.002, 0.0, 2.0)
    x_m: float = _f(1.2, -50.0, 50.0)
    z_m: float = _f(0.5, -10.0, 50.0)
    accel_sigma_mps2: float = field(default=0.05, metadata=rng(0.0, 5.0))
    accel_bias_sigma_mps2: float = field(default=0.05, metadata=rng(0.0, 5.0))  # per-run constant
    gyro_sigma_rps: float = field(default=0.002, metadata=rng(0.0, 1.0))
    gyro_bias_sigma_rps: float = field(default=0.001, metadata=rng(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class WheelConfig(SensorBase):
    rate_hz: float = _f(50.0, 0.1, 1000.0)
    latency_s: float = _f(0.005, 0.0, 2.0)
    speed_sigma_mps: float = field(default=0.03, metadata=rng(0.0, 5.0))
    scale_error: float = field(default=0.005, metadata=rng(-0.2, 0.2))  # tyre-radius error


@dataclass(frozen=True, slots=True)
class GnssConfig(SensorBase):
    rate_hz: float = _f(10.0, 0.1, 1000.0)
    latency_s: float = _f(0.08, 0.0, 2.0)
    jitter_s: float = _f(0.01, 0.0, 1.0)
    z_m: float = _f(1.5, -10.0, 50.0)
    # Antenna position; the fix is of the antenna. Above the rear axle by default, so the fix is
    # the vehicle-frame origin's map position.
    sigma_m: float = field(default=0.5, metadata=rng(0.0, 50.0))
    outlier_prob: float = field(default=0.01, metadata=rng(0.0, 1.0))
    outlier_sigma_m: float = field(default=8.0, metadata=rng(0.0, 500.0))


SENSOR_NAMES = ("camera", "lidar", "radar", "imu", "wheel", "gnss")


@dataclass(frozen=True, slots=True)
class SensorRigConfig:
    camera: CameraConfig = CameraConfig()
    lidar: LidarConfig = LidarConfig()
    radar: RadarConfig = RadarConfig()
    imu: ImuConfig = ImuConfig()
    wheel: WheelConfig = WheelConfig()
    gnss: GnssConfig = GnssConfig()
    enabled: tuple[str, ...] = SENSOR_NAMES

    def __post_init__(self) -> None:
        unknown = sorted(set(self.enabled) - set(SENSOR_NAMES))
        if unknown:
            raise ValueError(f"unknown sensor(s) {', '.join(unknown)}; allowed: {', '.join(SENSOR_NAMES)}")

    def sensor(self, name: str) -> SensorBase:
        return getattr(self, name)
