"""Ground truth of the simulated world at one instant (sim/ only: stages never see this).

Both types are frozen dataclasses built every physics tick. The __init__ that dataclass generates
for a frozen class sets each field through object.__setattr__ (a global lookup and a call per
field, about 0.1 us each); these write each slot through its descriptor instead, the same fields
in the same order, about half the cost. Everything else (frozen, slots, fields(), replace(),
pickling, repr, eq) is dataclass's own.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


def _slot_setters(cls: type) -> tuple:
    """The slot descriptors' __set__ of ``cls``'s fields, in field order (they bypass the frozen
    __setattr__: for __init__ only)."""
    return tuple(getattr(cls, f.name).__set__ for f in dataclasses.fields(cls))


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, t_ns: int, pose: np.ndarray, center_xy_m: np.ndarray, speed_mps: float, accel_mps2: float,
                 yaw_rate_rps: float, steer_rad: float, length_m: float, width_m: float, height_m: float):
        s_t, s_pose, s_centre, s_speed, s_accel, s_yaw_rate, s_steer, s_length, s_width, s_height = _EGO_SETTERS
        s_t(self, t_ns)
        s_pose(self, pose)
        s_centre(self, center_xy_m)
        s_speed(self, speed_mps)
        s_accel(self, accel_mps2)
        s_yaw_rate(self, yaw_rate_rps)
        s_steer(self, steer_rad)
        s_length(self, length_m)
        s_width(self, width_m)
        s_height(self, height_m)


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(self, t_ns: int, ids: np.ndarray, xy_m: np.ndarray, yaw_rad: np.ndarray, speed_mps: np.ndarray,
                 accel_mps2: np.ndarray, length_m: np.ndarray, width_m: np.ndarray, height_m: np.ndarray,
                 labels: np.ndarray, colors_bgr: np.ndarray):
        (s_t, s_ids, s_xy, s_yaw, s_speed, s_accel, s_length, s_width, s_height, s_labels,
         s_colors) = _ACTORS_SETTERS
        s_t(self, t_ns)
        s_ids(self, ids)
        s_xy(self, xy_m)
        s_yaw(self, yaw_rad)
        s_speed(self, speed_mps)
        s_accel(self, accel_mps2)
        s_length(self, length_m)
        s_width(self, width_m)
        s_height(self, height_m)
        s_labels(self, labels)
        s_colors(self, colors_bgr)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def velocity_mps(self) -> np.ndarray:
        return self.speed_mps[:, None] * np.stack([np.cos(self.yaw_rad), np.sin(self.yaw_rad)], axis=-1)


_EGO_SETTERS = _slot_setters(EgoTruth)
_ACTORS_SETTERS = _slot_setters(ActorsTruth)
