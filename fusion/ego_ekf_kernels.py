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
    fp = np.zeros((N_STATE, N_STATE))
    for i in range(N_STATE):
        for k in range(N_STATE):
            for j in range(N_STATE):
                fp[i, j] += f[i, k] * p[k, j]
    p_new = np.empty((N_STATE, N_STATE))
    for i in range(N_STATE):
        for j in range(N_STATE):
            acc = 0.0
            for k in range(N_STATE):
                acc += fp[i, k] * f[j, k]
            p_new[i, j] = acc
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
    pht = np.zeros((n, m))
    for i in range(n):
        for a in range(m):
            for k in range(n):
                pht[i, a] += p[i, k] * h[a, k]
    s = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            acc = 0.0
            for k in range(n):
                acc += h[a, k] * pht[k, b]
            s[a, b] = acc + r[a, b]
    s_inv = np.empty((m, m))
    if m == 1:
        s_inv[0, 0] = 1.0 / s[0, 0]
    else:
        det = s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0]
        s_inv[0, 0], s_inv[0, 1] = s[1, 1] / det, -s[0, 1] / det
        s_inv[1, 0], s_inv[1, 1] = -s[1, 0] / det, s[0, 0] / det
    gain = np.zeros((n, m))
    for i in range(n):
        for b in range(m):
            for a in range(m):
                gain[i, b] += pht[i, a] * s_inv[a, b]
    x_new = np.empty(n)
    for i in range(n):
        acc = x[i]
        for a in range(m):
            acc += gain[i, a] * y[a]
        x_new[i] = acc
    i_kh = np.eye(n)
    for i in range(n):
        for j in range(n):
            for a in range(m):
                i_kh[i, j] -= gain[i, a] * h[a, j]
    t = np.zeros((n, n))  # (I - K H) P
    for i in range(n):
        for k in range(n):
            for j in range(n):
                t[i, j] += i_kh[i, k] * p[k, j]
    kr = np.zeros((n, m))  # K R
    for i in range(n):
        for b in range(m):
            for a in range(m):
                kr[i, b] += gain[i, a] * r[a, b]
    p_new = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            acc = 0.0
            for k in range(n):
                acc += t[i, k] * i_kh[j, k]
            for a in range(m):
                acc += kr[i, a] * gain[j, a]
            p_new[i, j] = acc
    return x_new, p_new
