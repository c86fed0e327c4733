"""Compiled arithmetic of the ego EKF (fusion/ego_ekf.py): one prediction sub-step of the state and
its covariance, and the Joseph-form update by a measurement of a row or two.

The filter takes ~160 messages a second in a full-stack run (IMU, wheel speed, GNSS), and each
spent ~140 us in numpy's per-call overhead on 6x6 arrays: some forty small array operations and
a LAPACK solve per message, for a few hundred multiply-adds. Each kernel here is one call.

Unlike the tracker's kernels these do not give the numpy code's bits: that code's products went
through BLAS, whose fused multiply-adds and summation order a kernel compiled without contraction
cannot follow (DESIGN.md, "Where numpy's per-call overhead..."). The numpy form lives on in
tests/fusion/test_fusion_ego_ekf_kernels.py as the reference the kernels are held to (1e-12), and
a filterpy EKF pins the whole filter (tests/fusion/test_fusion_ego_ekf.py, 1e-9).

Inputs are taken in any layout (a repaired covariance is a view of a component-major array).
"""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel
from fusion.small_matrix import mul_into

N_STATE = 6  # x [m], y [m], yaw [rad], speed [m/s], yaw rate [rad/s], wheel scale [-]


@kernel("Tuple((float64[::1], float64[:, ::1]))(float64[:], float64[:, :], float64, float64, float64[:])")
def motion_step(x, p, accel_mps2, dt_s, q_rate):
    """One mid-point unicycle step of dt_s [s] with the longitudinal specific force accel_mps2
    held: x' = f(x), P' = F P F^T + diag(q_rate) dt, F the Jacobian of f. ``q_rate`` (6,) are the
    process noise variances per second. Returns fresh (x', P')."""
    px, py, yaw, v, w, scale = x[0], x[1], x[2], x[3], x[4], x[5]
    mid = yaw + 0.5 * w * dt_s
    c, s = math.cos(mid), math.sin(mid)
    x_new = np.empty(N_STATE)
    x_new[0] = px + v * dt_s * c
    x_new[1] = py + v * dt_s * s
    x_new[2] = (yaw + w * dt_s + math.pi) % (2.0 * math.pi) - math.pi  # core.geometry.wrap_angle
    x_new[3] = v + accel_mps2 * dt_s
    x_new[4] = w
    x_new[5] = scale
    f = np.eye(N_STATE)
    f[0, 2], f[0, 3], f[0, 4] = -v * dt_s * s, dt_s * c, -0.5 * v * dt_s * dt_s * s
    f[1, 2], f[1, 3], f[1, 4] = v * dt_s * c, dt_s * s, 0.5 * v * dt_s * dt_s * c
    f[2, 4] = dt_s
    fp = np.empty((N_STATE, N_STATE))
    mul_into(f, p, fp)
    p_new = np.empty((N_STATE, N_STATE))
    mul_into(fp, f.T, p_new)
    for i in range(N_STATE):
        p_new[i, i] += q_rate[i] * dt_s
    return x_new, p_new


@kernel("Tuple((float64[::1], float64[:, ::1]))(float64[:], float64[:, :], float64[:], float64[:, :],"
        " float64[:, :])")
def joseph_update(x, p, y, h, r):
    """EKF update of x (n,), P (n, n) by the innovation y (m,) (z - h(x), angles wrapped) with
    Jacobian h (m, n) and noise r (m, m), m = 1 or 2: S = H P H^T + R, K = P H^T S^-1,
    x' = x + K y, P' = (I - K H) P (I - K H)^T + K R K^T (Joseph form, as filterpy's update).
    S is inverted in closed form; a singular S gives inf/NaN, never an exception.
    Returns fresh (x', P')."""
    n, m = x.shape[0], y.shape[0]
    if m < 1 or m > 2:
        raise ValueError("joseph_update: one or two measurement rows")
    pht = np.empty((n, m))  # P H^T
    mul_into(p, h.T, pht)
    s = np.empty((m, m))
    mul_into(h, pht, s)
    for a in range(m):
        for b in range(m):
            s[a, b] += r[a, b]
    s_inv = np.empty((m, m))
    if m == 1:
        s_inv[0, 0] = 1.0 / s[0, 0]
    else:
        det = s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0]
        s_inv[0, 0], s_inv[0, 1] = s[1, 1] / det, -s[0, 1] / det
        s_inv[1, 0], s_inv[1, 1] = -s[1, 0] / det, s[0, 0] / det
    gain = np.empty((n, m))
    mul_into(pht, s_inv, gain)
    x_new = np.empty(n)
    for i in range(n):
        acc = x[i]
        for a in range(m):
            acc += gain[i, a] * y[a]
        x_new[i] = acc
    i_kh = np.empty((n, n))
    mul_into(gain, h, i_kh)
    for i in range(n):
        for j in range(n):
            i_kh[i, j] = (1.0 if i == j else 0.0) - i_kh[i, j]
    t = np.empty((n, n))  # (I - K H) P
    mul_into(i_kh, p, t)
    p_new = np.empty((n, n))
    mul_into(t, i_kh.T, p_new)
    kr = np.empty((n, m))  # K R
    mul_into(gain, r, kr)
    krk = np.empty((n, n))
    mul_into(kr, gain.T, krk)
    for i in range(n):
        for j in range(n):
            p_new[i, j] += krk[i, j]
    return x_new, p_new
