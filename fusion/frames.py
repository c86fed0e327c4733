"""Ego-motion compensation: vehicle-frame detections -> map-frame measurements with covariance.

A detection is taken at its own ``t_ns``, the ego estimate at another. The ego pose is moved to the
detection time with its own speed and yaw rate (constant turn rate and velocity), then each
detection is placed in the map. The uncertainty of the ego pose (x, y, yaw) enters every
measurement's covariance through the Jacobian of that placement, so a detection 50 m ahead of an
ego with 1 degree of yaw doubt carries the ~0.9 m lateral error it really has.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.messages import EgoState

# Below this |yaw rate| the CTRV arc is replaced by its straight-line limit, which it equals to
# within the float64 resolution of the sin/cos terms.
_STRAIGHT_YAW_RATE_RPS = 1e-6


def ego_pose_at(ego: EgoState, t_ns: int) -> np.ndarray:
    """The ego pose (x, y, yaw) extrapolated from ``ego.t_ns`` to ``t_ns`` (either direction)."""
    dt = (t_ns - ego.t_ns) * 1e-9
    x, y, yaw = (float(v) for v in ego.pose)
    v, w = float(ego.speed_mps), float(ego.yaw_rate_rps)
    if abs(w) < _STRAIGHT_YAW_RATE_RPS:
        return np.array([x + v * dt * np.cos(yaw), y + v * dt * np.sin(yaw), yaw + w * dt])
    yaw_new = yaw + w * dt
    return np.array([x + v / w * (np.sin(yaw_new) - np.sin(yaw)),
                     y - v / w * (np.cos(yaw_new) - np.cos(yaw)), yaw_new])


@dataclass(frozen=True, slots=True)
class MapMeasurements:
    z: np.ndarray  # (M, 4) x, y, vx, vy in the map frame; vx, vy are 0 where not valid
    r: np.ndarray  # (M, 4, 4) covariance of z
    velocity_valid: np.ndarray  # (M,) bool
    yaw: np.ndarray  # (M,) box yaw in the map frame


def to_map(pose: np.ndarray, pose_cov: np.ndarray, xy_vehicle: np.ndarray, v_vehicle: np.ndarray,
           velocity_valid: np.ndarray, yaw_vehicle: np.ndarray, pos_sigma_m: float,
           vel_sigma_mps: float) -> MapMeasurements:
    """Place M detections (vehicle frame) in the map frame at ego ``pose`` with (3, 3) ``pose_cov``."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    m = xy_vehicle.shape[0]
    # Vehicle-frame (x, y, vx, vy) rows of width 4: one rotation serves position and velocity, and
    # its derivative by yaw is the same rotation turned a further quarter turn.
    zv = np.zeros((m, 4))
    zv[:, :2] = xy_vehicle
    if velocity_valid.all():
        zv[:, 2:] = v_vehicle
    elif velocity_valid.any():
        zv[:, 2:] = np.where(velocity_valid[:, None], v_vehicle, 0.0)
    z = (zv.reshape(-1, 2) @ np.array([[c, s], [-s, c]])).reshape(m, 4)
    # Jacobian of z with respect to the ego pose (x, y, yaw) is [E | g]: E = [I2; 0] and g (M, 4) the
    # derivative by yaw, g = (-z_y, z_x) for each 2-vector of z before the translation.
    g = np.empty((m, 4))
    np.negative(z[:, 1::2], out=g[:, 0::2])
    g[:, 1::2] = z[:, 0::2]
    z[:, :2] += pose[:2]
    # J P J^T = var_yaw g g^T + g c^T + c g^T + E P_xy E^T, with c the ego position-yaw covariance
    # padded to z's size. The first three terms are [g c] [h g]^T with h = var_yaw g + c: one
    # batched (4, 2) @ (2, 4) product instead of three broadcast outer products.
    (pxx, pxy, _), (_, pyy, _), (_, _, pww) = pose_cov[:3, :3].tolist()
    left = np.empty((m, 4, 2))
    left[:, :, 0] = g
    left[:, :2, 1] = pose_cov[:2, 2]
    left[:, 2:, 1] = 0.0
    right = np.empty((m, 2, 4))
    np.multiply(g, pww, out=right[:, 0])
    right[:, 0, :2] += pose_cov[:2, 2]
    right[:, 1] = g
    r = left @ right
    # Sensor noise is isotropic in the plane, so rotating it into the map leaves it unchanged.
    pos_var, vel_var = pos_sigma_m**2, vel_sigma_mps**2
    r += np.array([[pxx + pos_var, pxy, 0.0, 0.0], [pxy, pyy + pos_var, 0.0, 0.0],
                   [0.0, 0.0, vel_var, 0.0], [0.0, 0.0, 0.0, vel_var]])
    return MapMeasurements(z=z, r=r, velocity_valid=velocity_valid.copy(), yaw=yaw_vehicle + pose[2])
