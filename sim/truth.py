"""Ground truth of the simulated world at one instant (sim/ only: stages never see this).

Both types are frozen dataclasses built every physics tick, so they construct through their slots'
descriptors (core/records.fast_frozen_init), as the core messages do: about half the cost of the
generated __init__.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.records import fast_frozen_init


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class EgoTruth:
    t_ns: int
    pose: np.ndarray  # (3,) x, y, yaw of the rear-axle centre (vehicle frame origin) in the map frame
    center_xy_m: np.ndarray  # (2,) box centre in the map frame
    speed_mps: float
    accel_mps2: float  # actual longitudinal acceleration (after actuator lag)
    yaw_rate_rps: float
    steer_rad: float  # actual front-wheel angle
    length_m: float
    width_m: float
    height_m: float


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ActorsTruth:
    """All other road users, struct of arrays, N actors, map frame."""

    t_ns: int
    ids: np.ndarray  # (N,) int64, stable for the run
    xy_m: np.ndarray  # (N, 2) box centre
    yaw_rad: np.ndarray  # (N,)
    speed_mps: np.ndarray  # (N,) along the heading
    accel_mps2: np.ndarray  # (N,)
    length_m: np.ndarray  # (N,)
    width_m: np.ndarray  # (N,)
    height_m: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int16 (core.messages.LABEL_*)
    colors_bgr: np.ndarray  # (N, 3) uint8, for the camera renderer

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def velocity_mps(self) -> np.ndarray:
        return self.speed_mps[:, None] * np.stack([np.cos(self.yaw_rad), np.sin(self.yaw_rad)], axis=-1)

