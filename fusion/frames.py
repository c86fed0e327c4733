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
from numba import types

from core.jit import kernel
from core.messages import EgoState

# Below this |yaw rate| the CTRV arc is replaced by its straight-line limit, which it equals to
# within the float64 resolution of the sin/cos terms.
_STRAIGHT_YAW_RATE_RPS = 1e-6


def ego_pose_at(ego: EgoState, t_ns: int) -> np.ndarray:
    """The ego pose (x, y, yaw) extrapolated from ``ego.t_ns`` to ``t_ns`` (either direction)."""
    dt = (t_ns - ego.t_ns) * 1e-9
    x, y, yaw = ego.pose.tolist()  # Python floats, as float() of each element gives
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


@kernel(types.void(types.float64[:, ::1], *[types.float64] * 10, types.float64[:, :, ::1],
                   types.Array(types.float64, 1, "A", readonly=True), types.float64, types.float64[::1]))
def _place_with_covariance(z, pose_x, pose_y, pxx, pxy, pyy, pxw, pyw, pww, pos_var, vel_var, r,
                           yaw_vehicle, pose_yaw, yaw_map):
    """Translate rotated measurements z (M, 4) (x, y, vx, vy) by the ego position, in place; write
    their map covariance into ``r`` (4, 4, M), component-major, and their box yaw in the map
    frame, ``yaw_vehicle + pose_yaw`` [rad], into ``yaw_map`` (M,). The caller allocates both:
    a returned array costs numba about a microsecond to box, np.empty a fifth of that.

    The Jacobian of z by the ego pose (x, y, yaw) is [E | g]: E = [I2; 0] and g the derivative by
    yaw, g = (-z_y, z_x, -v_y, v_x) of z before the translation (each 2-vector a quarter turn left,
    signed by multiplying by -1 and 1 as the numpy form did, so a NaN keeps its bits). With c the
    ego position-yaw covariance (pxw, pyw) padded to z's size and h = pww g + c,
    J P J^T = g h^T + c g^T + E P_xy E^T; the sensor noise (pos_var [m^2], vel_var [m^2/s^2]) is
    isotropic in the plane, so rotating it into the map leaves it unchanged, and every entry of
    that constant matrix is added, zeros included.
    """
    m = z.shape[0]
    g = np.empty(4)
    h = np.empty(4)
    noise = np.array([[pxx + pos_var, pxy, 0.0, 0.0], [pxy, pyy + pos_var, 0.0, 0.0],
                      [0.0, 0.0, vel_var, 0.0], [0.0, 0.0, 0.0, vel_var]])
    for i in range(m):
        g[0], g[1], g[2], g[3] = z[i, 1] * -1.0, z[i, 0] * 1.0, z[i, 3] * -1.0, z[i, 2] * 1.0
        z[i, 0] += pose_x
        z[i, 1] += pose_y
        for b in range(4):
            h[b] = g[b] * pww
        h[0] += pxw
        h[1] += pyw
        for a in range(4):
            for b in range(4):
                r[a, b, i] = g[a] * h[b]
        for b in range(4):
            r[0, b, i] += pxw * g[b]
            r[1, b, i] += pyw * g[b]
        for a in range(4):
            for b in range(4):
                r[a, b, i] += noise[a, b]
        yaw_map[i] = yaw_vehicle[i] + pose_yaw


def to_map(pose: np.ndarray, pose_cov: np.ndarray, xy_vehicle: np.ndarray, v_vehicle: np.ndarray,
           velocity_valid: np.ndarray, yaw_vehicle: np.ndarray, pos_sigma_m: float,
           vel_sigma_mps: float) -> MapMeasurements:
    """Place M detections (vehicle frame) in the map frame at ego ``pose`` with (3, 3) ``pose_cov``."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    m = xy_vehicle.shape[0]
    # Vehicle-frame (x, y, vx, vy) rows of width 4: one rotation serves position and velocity, and
    # its derivative by yaw is the same rotation turned a further quarter turn.
    if np.logical_and.reduce(velocity_valid):  # .all() without its Python-level wrapper
        zv = np.concatenate([xy_vehicle, v_vehicle], axis=1, dtype=np.float64)
    else:
        zv = np.zeros((m, 4))
        zv[:, :2] = xy_vehicle
        if velocity_valid.any():
            zv[:, 2:] = np.where(velocity_valid[:, None], v_vehicle, 0.0)
    # The rotation stays numpy's matmul: BLAS may fuse its multiply-adds, whose bits a kernel
    # compiled without contraction would not reproduce.
    z = (zv.reshape(-1, 2) @ np.array([[c, s], [-s, c]])).reshape(m, 4)
    (pxx, pxy, pxw), (_, pyy, pyw), (_, _, pww) = pose_cov[:3, :3].tolist()
    pose_x, pose_y, pose_yaw = pose[:3].tolist()
    r, yaw = np.empty((4, 4, m)), np.empty(m)
    _place_with_covariance(z, pose_x, pose_y, pxx, pxy, pyy, pxw, pyw, pww, pos_sigma_m**2, vel_sigma_mps**2,
                           r, np.asarray(yaw_vehicle, dtype=np.float64), pose_yaw, yaw)
    r = r.transpose(2, 0, 1)  # (M, 4, 4): an N-major view, as the tracker's covariances are
    return MapMeasurements(z=z, r=r, velocity_valid=velocity_valid.copy(), yaw=yaw)
