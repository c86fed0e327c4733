"""Message types passed between sim/, the stages and runtime/.

Every message is a frozen, slotted dataclass holding numpy arrays, one array per field (struct of
arrays), built by ``fast_frozen_init``'s constructor (core/records.py: the stack builds thousands a
second). Every message carries ``t_ns``: the time the data is about (capture or measurement) in
integer monotonic nanoseconds on the stack's clock. Frames follow REP 103: vehicle frame x forward,
y left, z up; map frame ENU. Units are SI, angles radians.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from core.records import fast_frozen_init

# Object classes shared by ground truth, detectors and the tracker.
LABEL_VEHICLE = 0
LABEL_PEDESTRIAN = 1
LABEL_NAMES = ("vehicle", "pedestrian")


def _empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Raw sensor data
# ----------------------------------------------------------------------------------------------
@fast_frozen_init
@dataclass(frozen=True, slots=True)
class CameraImage:
    t_ns: int
    sensor: str
    image: np.ndarray  # (H, W, 3) uint8 BGR; empty (0, 0, 3) when `jpeg` carries the payload
    jpeg: bytes = b""  # JPEG-encoded payload when the camera is configured to compress


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class LidarScan:
    t_ns: int  # start of the sweep
    sensor: str
    points: np.ndarray  # (N, 3) float32 x, y, z in the vehicle frame [m]
    intensity: np.ndarray  # (N,) float32 in [0, 1]
    time_offset_ns: np.ndarray  # (N,) int32 per-point offset from t_ns


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class RadarScan:
    t_ns: int
    sensor: str
    range_m: np.ndarray  # (N,) float32, from the vehicle frame origin (mount offset already applied)
    azimuth_rad: np.ndarray  # (N,) float32 about the vehicle frame origin, positive to the left
    # (N,) float32 along the radar's own line of sight from its mount; negative when approaching
    # (Doppler, ego motion included)
    range_rate_mps: np.ndarray
    rcs_dbsm: np.ndarray  # (N,) float32


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ImuSample:
    t_ns: int
    accel_mps2: np.ndarray  # (3,) float64 specific force in the vehicle frame
    yaw_rate_rps: float


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class WheelSpeed:
    t_ns: int
    speed_mps: float


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class GnssFix:
    t_ns: int
    position_m: np.ndarray  # (2,) float64 x (east), y (north) in the map frame
    sigma_m: float  # reported 1-sigma horizontal accuracy


# ----------------------------------------------------------------------------------------------
# Stage outputs
# ----------------------------------------------------------------------------------------------
@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Detections3D:
    """3D objects in the vehicle frame (lidar detector, oracle sensor, radar clusters)."""

    t_ns: int
    source: str  # e.g. "oracle", "lidar", "radar"
    boxes: np.ndarray  # (N, 7) float32: x, y, z, length, width, height, yaw [m, rad]
    velocities_mps: np.ndarray  # (N, 2) float32 vx, vy in the vehicle frame (relative to ground)
    velocity_valid: np.ndarray  # (N,) bool: False where the sensor cannot measure velocity
    labels: np.ndarray  # (N,) int16
    scores: np.ndarray  # (N,) float32

    @staticmethod
    def empty(t_ns: int, source: str) -> "Detections3D":
        return Detections3D(t_ns, source, _empty((0, 7), np.float32), _empty((0, 2), np.float32),
                            _empty((0,), bool), _empty((0,), np.int16), _empty((0,), np.float32))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Detections2D:
    """Camera detections in pixels, with a range estimate from the ground plane."""

    t_ns: int
    source: str
    boxes_px: np.ndarray  # (N, 4) float32: u_min, v_min, u_max, v_max
    labels: np.ndarray  # (N,) int16
    scores: np.ndarray  # (N,) float32
    range_m: np.ndarray  # (N,) float32 from the box bottom and the ground plane
    range_sigma_m: np.ndarray  # (N,) float32

    def __len__(self) -> int:
        return int(self.boxes_px.shape[0])


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class EgoState:
    t_ns: int
    pose: np.ndarray  # (3,) float64 x, y [m], yaw [rad] of the vehicle frame origin (rear axle) in the map frame
    speed_mps: float
    accel_mps2: float
    yaw_rate_rps: float
    covariance: np.ndarray  # (5, 5) float64 over x, y, yaw, speed, yaw_rate


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Tracks:
    """Fused object tracks in the map frame."""

    t_ns: int
    ids: np.ndarray  # (N,) int64, stable across time
    states: np.ndarray  # (N, 4) float64 x, y, vx, vy [m, m/s]
    covariances: np.ndarray  # (N, 4, 4) float64
    yaws: np.ndarray  # (N,) float64 [rad]
    sizes: np.ndarray  # (N, 3) float64 length, width, height [m]
    labels: np.ndarray  # (N,) int16
    existence: np.ndarray  # (N,) float64 probability in [0, 1]

    @staticmethod
    def empty(t_ns: int) -> "Tracks":
        return Tracks(t_ns, _empty((0,), np.int64), _empty((0, 4), np.float64),
                      _empty((0, 4, 4), np.float64), _empty((0,), np.float64),
                      _empty((0, 3), np.float64), _empty((0,), np.int16), _empty((0,), np.float64))

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Plan:
    """A time-parameterised trajectory in the map frame, starting at ``t_ns``."""

    t_ns: int
    t_s: np.ndarray  # (K,) float64 offsets from t_ns
    xy_m: np.ndarray  # (K, 2) float64
    yaw_rad: np.ndarray  # (K,)
    speed_mps: np.ndarray  # (K,)
    accel_mps2: np.ndarray  # (K,)
    curvature_1pm: np.ndarray  # (K,)
    emergency: bool = False  # True for an emergency braking profile
    behaviour: str = ""  # short label for logs: "cruise", "follow", "stop", "mrm", ...


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ControlCommand:
    t_ns: int
    accel_mps2: float  # requested longitudinal acceleration
    steer_rad: float  # requested front-wheel steering angle, positive left
    plan_t_ns: int  # t_ns of the plan followed; -1 when no plan was followed
    hazard: bool = False


class Mode(IntEnum):
    NOMINAL = 0
    DEGRADED = 1
    MINIMAL_RISK = 2
    EMERGENCY_STOP = 3


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ModeLimits:
    """What the safety layer allows the planner and controller to do."""

    speed_cap_mps: float = float("inf")
    time_gap_s: float = 1.5
    lane_change_allowed: bool = True
    stop_decel_mps2: float = 0.0  # > 0: bring the vehicle to a stop at this deceleration
    hazard: bool = False


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class SafetyStatus:
    t_ns: int
    mode: Mode
    reason: str
    limits: ModeLimits
    stream_alive: dict[str, bool] = field(default_factory=dict)


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StageTiming:
    """One run of a scheduled task."""

    stage: str
    t_ns: int  # logical time the run was scheduled for
    ready_ns: int  # logical time its inputs were ready (queueing delay = t_ns - ready_ns)
    duration_ns: int  # compute time measured by the injected timer
    budget_ns: int
    missed: bool


# The dtype and number of dimensions of every array field, as documented above (where the shapes
# and units are): what the compiled finiteness check of safety/message_finite.py is built for. A message
# whose arrays differ is still checked, the general way (message_finite).
ARRAY_FIELDS: dict[type, dict[str, tuple[type, int]]] = {
    CameraImage: {"image": (np.uint8, 3)},
    LidarScan: {"points": (np.float32, 2), "intensity": (np.float32, 1), "time_offset_ns": (np.int32, 1)},
    RadarScan: {"range_m": (np.float32, 1), "azimuth_rad": (np.float32, 1), "range_rate_mps": (np.float32, 1),
                "rcs_dbsm": (np.float32, 1)},
    ImuSample: {"accel_mps2": (np.float64, 1)},
    GnssFix: {"position_m": (np.float64, 1)},
    Detections3D: {"boxes": (np.float32, 2), "velocities_mps": (np.float32, 2), "velocity_valid": (np.bool_, 1),
                   "labels": (np.int16, 1), "scores": (np.float32, 1)},
    Detections2D: {"boxes_px": (np.float32, 2), "labels": (np.int16, 1), "scores": (np.float32, 1),
                   "range_m": (np.float32, 1), "range_sigma_m": (np.float32, 1)},
    EgoState: {"pose": (np.float64, 1), "covariance": (np.float64, 2)},
    Tracks: {"ids": (np.int64, 1), "states": (np.float64, 2), "covariances": (np.float64, 3),
             "yaws": (np.float64, 1), "sizes": (np.float64, 2), "labels": (np.int16, 1), "existence": (np.float64, 1)},
    Plan: {"t_s": (np.float64, 1), "xy_m": (np.float64, 2), "yaw_rad": (np.float64, 1), "speed_mps": (np.float64, 1),
           "accel_mps2": (np.float64, 1), "curvature_1pm": (np.float64, 1)},
}
