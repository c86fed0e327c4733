"""Ego-motion compensation: vehicle-frame detections -> map-frame measurements with covariance.

A detection is taken at its own ``t_ns``, the ego estimate at another. The ego pose is moved to the
detection time with its own speed and yaw rate (constant turn rate and velocity), then each
detection is placed in the map. The uncertainty of the ego pose (x, y, yaw) enters every
measurement's covariance through the Jacobian of that placement, so a detection 50 m ahead of an
ego with 1 degree of yaw doubt carries the ~0.9 m lateral error it really has.

The pose extrapolation and the placement are compiled kernels (core/jit.py), so that the
tracker's quiet frame (fusion/quiet_frame.py) runs them inside its own compiled call; the Python
functions here call the same kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from core.jit import kernel
from core.messages import EgoState

# Below this |yaw rate| the CTRV arc is replaced by its straight-line limit, which it equals to
# within the float64 resolution of the sin/cos terms.
_STRAIGHT_YAW_RATE_RPS = 1e-6


@kernel(types.UniTuple(types.float64, 3)(*[types.float64] * 6))
def pose_at(x, y, yaw, speed_mps, yaw_rate_rps, dt_s):
    """The pose (x, y, yaw) moved by ``dt_s`` [s] (either direction) at constant speed and yaw
    rate. sin and cos are the C library's, as numpy's float64 ones are here."""
    if abs(yaw_rate_rps) < _STRAIGHT_YAW_RATE_RPS:
        return (x + speed_mps * dt_s * math.cos(yaw), y + speed_mps * dt_s * math.sin(yaw),
                yaw + yaw_rate_rps * dt_s)
    yaw_new = yaw + yaw_rate_rps * dt_s
    return (x + speed_mps / yaw_rate_rps * (math.sin(yaw_new) - math.sin(yaw)),
            y - speed_mps / yaw_rate_rps * (math.cos(yaw_new) - math.cos(yaw)), yaw_new)


def ego_pose_at(ego: EgoState, t_ns: int) -> np.ndarray:
    """The ego pose (x, y, yaw) extrapolated from ``ego.t_ns`` to ``t_ns`` (either direction)."""
    x, y, yaw = ego.pose.tolist()  # Python floats, as float() of each element gives
    return np.array(pose_at(x, y, yaw, float(ego.speed_mps), float(ego.yaw_rate_rps), (t_ns - ego.t_ns) * 1e-9))


@dataclass(frozen=True, slots=True)
class MapMeasurements:
    z: np.ndarray  # (M, 4) x, y, vx, vy in the map frame; vx, vy are 0 where not valid
    r: np.ndarray  # (M, 4, 4) covariance of z
    velocity_valid: np.ndarray  # (M,) bool
    yaw: np.ndarray  # (M,) box yaw in the map frame


@intrinsic
def _fused_multiply_add(typingctx, a, b, c):
    """a * b + c, rounded once (LLVM's fma: the instruction where the CPU has one, a correctly
    rounded library call elsewhere). The kernels are compiled without contraction (core/jit.py),
    so a plain ``a * b + c`` rounds twice."""
    signature = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, sig, args):
        double = ir.DoubleType()
        fma = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fma, args)

    return signature, codegen


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


_F2 = types.Array(types.float64, 2, "A", readonly=True)
_F1 = types.Array(types.float64, 1, "A", readonly=True)


@kernel(types.void(_F2, _F2, types.Array(types.boolean, 1, "A", readonly=True), _F1, *[types.float64] * 11,
                   types.float64[:, ::1], types.float64[:, :, ::1], types.float64[::1]))
def place_into(xy_vehicle, v_vehicle, velocity_valid, yaw_vehicle, pose_x, pose_y, pose_yaw, pxx, pxy, pyy,
               pxw, pyw, pww, pos_var, vel_var, z, r, yaw_map):
    """``to_map`` into arrays of the caller's: z (M, 4) (x, y, vx, vy), r (4, 4, M)
    component-major, yaw_map (M,). The pose covariance comes as its upper triangle's entries.

    Each vehicle-frame 2-vector (a, b) (position, and velocity where valid, zero elsewhere) is
    rotated by the pose yaw as the row vector times [[c, s], [-s, c]] that numpy's matmul
    computed with BLAS, whose double-precision kernels on x86-64 start each output at 0.0 and
    add its products one by one with fused multiply-adds: fma(b, -s, fma(a, c, 0.0)) and
    fma(b, c, fma(a, s, 0.0)), zero signs and NaNs included
    (tests/fusion/test_fusion_placement_merge_kernels.py compares the bits with numpy's matmul).
    Then ``_place_with_covariance``.
    """
    c, s = math.cos(pose_yaw), math.sin(pose_yaw)
    minus_s = -s
    for i in range(xy_vehicle.shape[0]):
        a, b = xy_vehicle[i, 0], xy_vehicle[i, 1]
        z[i, 0] = _fused_multiply_add(b, minus_s, _fused_multiply_add(a, c, 0.0))
        z[i, 1] = _fused_multiply_add(b, c, _fused_multiply_add(a, s, 0.0))
        a, b = (v_vehicle[i, 0], v_vehicle[i, 1]) if velocity_valid[i] else (0.0, 0.0)
        z[i, 2] = _fused_multiply_add(b, minus_s, _fused_multiply_add(a, c, 0.0))
        z[i, 3] = _fused_multiply_add(b, c, _fused_multiply_add(a, s, 0.0))
    _place_with_covariance(z, pose_x, pose_y, pxx, pxy, pyy, pxw, pyw, pww, pos_var, vel_var, r, yaw_vehicle,
                           pose_yaw, yaw_map)


def to_map(pose: np.ndarray, pose_cov: np.ndarray, xy_vehicle: np.ndarray, v_vehicle: np.ndarray,
           velocity_valid: np.ndarray, yaw_vehicle: np.ndarray, pos_sigma_m: float,
           vel_sigma_mps: float) -> MapMeasurements:
    """Place M detections (vehicle frame) in the map frame at ego ``pose`` with (3, 3) ``pose_cov``."""
    m = xy_vehicle.shape[0]
    (pxx, pxy, pxw), (_, pyy, pyw), (_, _, pww) = pose_cov[:3, :3].tolist()
    pose_x, pose_y, pose_yaw = pose[:3].tolist()
    z, r, yaw = np.empty((m, 4)), np.empty((4, 4, m)), np.empty(m)
    place_into(np.asarray(xy_vehicle, dtype=np.float64), np.asarray(v_vehicle, dtype=np.float64),
               np.asarray(velocity_valid, dtype=bool), np.asarray(yaw_vehicle, dtype=np.float64), pose_x, pose_y,
               pose_yaw, pxx, pxy, pyy, pxw, pyw, pww, pos_sigma_m**2, vel_sigma_mps**2, z, r, yaw)
    r = r.transpose(2, 0, 1)  # (M, 4, 4): an N-major view, as the tracker's covariances are
    return MapMeasurements(z=z, r=r, velocity_valid=velocity_valid.copy(), yaw=yaw)
