"""Compiled EKF update of the tracker's polar sensors (core/jit.py): the camera's (range, bearing)
and the radar's (range, bearing, range rate) measurement model, its Jacobians and the Joseph-form
update of every matched track, in one call.

The numpy form was ~40 calls on arrays of a few tracks (polar_predict, the pose-noise product, the
update's matmuls, two LAPACK solves, the NIS einsum), whose per-call overhead, not the arithmetic,
was the cost. The kernel performs the same operations in the same order per track, but its small
matrix products add in plain index order and its solve is its own LU, where numpy's go through
BLAS and LAPACK (which may fuse multiply-adds or block differently): it agrees with the numpy form
to round-off, not to the bit (tests/fusion/test_fusion_polar_kernel.py keeps that form as the
reference and bounds the difference).

Inputs are read-only arrays in any layout (numba's ``A`` arrays): the predicted state comes as
N-major views of component-major arrays, and the ego pose and its covariance may be a replayed
message's read-only arrays. Outputs are fresh C-ordered arrays.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from core.jit import kernel
from fusion.small_matrix import mul_into

_F1 = types.Array(types.float64, 1, "A", readonly=True)
_F2 = types.Array(types.float64, 2, "A", readonly=True)
_F3 = types.Array(types.float64, 3, "A", readonly=True)
_I1 = types.Array(types.int64, 1, "A", readonly=True)
_OUT = types.Tuple((types.float64[:, ::1], types.float64[:, :, ::1], types.float64[::1]))

PI = np.pi  # core.geometry.wrap_angle's constants, evaluated as it evaluates them
TWO_PI = 2.0 * np.pi


@kernel(_OUT(_F2, _F3, _I1, _F2, _F3, _F1, _F2, _F1, _F1))
def polar_update_at(x, p, track_idx, z, r, pose, pose_cov, mount_xy, range_offset_m):
    """Copies of x (N, n), P (N, n, n), n >= 4 with (x, y, vx, vy) [m, m/s] leading, in which track
    ``track_idx[k]`` is updated by the polar measurement z[k] (m = 2: range [m], bearing [rad] in
    the vehicle frame; m = 3: and range rate [m/s]) of noise R[k] (m, m); and the NIS (K,).

    Per track, with d the track position minus the sensor mount (map frame, ``pose`` (3,) = ego
    x [m], y [m], yaw [rad], ``mount_xy`` (2,) [m] in the vehicle frame) and rho = |d| (|d|^2
    floored at 1e-12, so a track on the sensor stays finite):

    - h = (rho - range_offset_m[k], wrap(atan2(d) - yaw)[, v . d / rho]); H = dh/dx, whose
      position columns are dh/dd, the rate row's velocity columns d / rho; H_e = dh/d(ego x, y,
      yaw) = (-dh/dd, -dh/dd . dmount/dyaw), minus 1 more in the bearing's yaw entry (the bearing
      is relative to the heading). The range offset (near face to centre) is taken as fixed.
    - y = z - h, its bearing wrapped to [-pi, pi) as ``wrap_angle`` does: (a + pi) % 2pi - pi.
    - R_eff = R + (H_e P_e) H_e^T, P_e = ``pose_cov`` (3, 3): the ego's doubt as measurement noise.
    - S = H (P H^T) + R_eff, LU-factored with partial pivoting (LAPACK's gesv); K^T = S^-1 (P H^T)^T
      and S^-1 y from it.
    - x' = x + K y; P' = ((I - K H) P) (I - K H)^T + (K R_eff) K^T (Joseph form); NIS = y . S^-1 y.

    Each matrix product adds its terms in index order from 0. A NaN in z or the range offset gives
    a NaN x' and NIS, as the numpy form does; P' does not depend on z.
    """
    n_trk, n = x.shape
    n_upd, m = z.shape
    x_out = np.empty((n_trk, n))
    p_out = np.empty((n_trk, n, n))
    for i in range(n_trk):
        for a in range(n):
            x_out[i, a] = x[i, a]
            for b in range(n):
                p_out[i, a, b] = p[i, a, b]
    nis = np.empty(n_upd)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    mount_x = pose[0] + (c * mount_xy[0] - s * mount_xy[1])
    mount_y = pose[1] + (s * mount_xy[0] + c * mount_xy[1])
    dmount_x = -s * mount_xy[0] - c * mount_xy[1]  # d mount_map / d yaw
    dmount_y = c * mount_xy[0] - s * mount_xy[1]
    dd = np.empty((m, 2))  # dh / d(track position - mount position)
    h_x = np.zeros((m, n))  # H; the columns beyond the position and the rate row's velocity stay 0
    h_e = np.empty((m, 3))
    y = np.empty(m)
    he_pe = np.empty((m, 3))
    r_eff = np.empty((m, m))
    ph_t = np.empty((n, m))
    # [S | (P H^T)^T | y], reduced in place to [U | K^T | S^-1 y]
    aug = np.empty((m, m + n + 1))
    k = np.empty((n, m))
    i_kh = np.empty((n, n))
    tmp = np.empty((n, n))
    joseph = np.empty((n, n))
    k_r = np.empty((n, m))
    krk = np.empty((n, n))
    s_mat = np.empty((m, m))
    for j in range(n_upd):
        t = track_idx[j]
        d0, d1 = x[t, 0] - mount_x, x[t, 1] - mount_y
        r2 = d0**2 + d1**2
        if r2 < 1e-12:  # not max(): a NaN distance stays NaN, as np.maximum keeps it
            r2 = 1e-12
        rng_m = math.sqrt(r2)
        y[0] = z[j, 0] - (rng_m - range_offset_m[j])
        bearing = (math.atan2(d1, d0) - pose[2] + PI) % TWO_PI - PI
        y[1] = (z[j, 1] - bearing + PI) % TWO_PI - PI
        dd[0, 0], dd[0, 1] = d0 / rng_m, d1 / rng_m
        dd[1, 0], dd[1, 1] = -d1 / r2, d0 / r2
        if m == 3:
            v0, v1 = x[t, 2], x[t, 3]
            rate = (v0 * d0 + v1 * d1) / rng_m
            y[2] = z[j, 2] - rate
            dd[2, 0] = (v0 - rate * d0 / rng_m) / rng_m
            dd[2, 1] = (v1 - rate * d1 / rng_m) / rng_m
            h_x[2, 2], h_x[2, 3] = d0 / rng_m, d1 / rng_m
        for a in range(m):
            h_x[a, 0], h_x[a, 1] = dd[a, 0], dd[a, 1]
            h_e[a, 0], h_e[a, 1] = -dd[a, 0], -dd[a, 1]
            h_e[a, 2] = -(dd[a, 0] * dmount_x + dd[a, 1] * dmount_y)
        h_e[1, 2] -= 1.0
        mul_into(h_e, pose_cov, he_pe)
        mul_into(he_pe, h_e.T, r_eff)
        for a in range(m):
            for b in range(m):
                r_eff[a, b] = r[j, a, b] + r_eff[a, b]
        mul_into(p[t], h_x.T, ph_t)
        mul_into(h_x, ph_t, s_mat)
        for a in range(m):
            for b in range(m):
                aug[a, b] = s_mat[a, b] + r_eff[a, b]
            for b in range(n):
                aug[a, m + b] = ph_t[b, a]
            aug[a, m + n] = y[a]
        for col in range(m):
            piv, best = col, abs(aug[col, col])
            for row in range(col + 1, m):
                if abs(aug[row, col]) > best:
                    piv, best = row, abs(aug[row, col])
            if piv != col:
                for b in range(col, m + n + 1):
                    aug[col, b], aug[piv, b] = aug[piv, b], aug[col, b]
            for row in range(col + 1, m):
                f = aug[row, col] / aug[col, col]
                for b in range(col + 1, m + n + 1):
                    aug[row, b] -= f * aug[col, b]
        for row in range(m - 1, -1, -1):
            for b in range(m, m + n + 1):
                acc = aug[row, b]
                for q in range(row + 1, m):
                    acc -= aug[row, q] * aug[q, b]
                aug[row, b] = acc / aug[row, row]
        for a in range(n):
            for b in range(m):
                k[a, b] = aug[b, m + a]
        acc_nis = 0.0
        for a in range(m):
            acc_nis += y[a] * aug[a, m + n]
        nis[j] = acc_nis
        for a in range(n):
            acc = 0.0
            for b in range(m):
                acc += k[a, b] * y[b]
            x_out[t, a] = x[t, a] + acc
        mul_into(k, h_x, i_kh)
        for a in range(n):
            for b in range(n):
                i_kh[a, b] = (1.0 if a == b else 0.0) - i_kh[a, b]
        mul_into(i_kh, p[t], tmp)
        mul_into(tmp, i_kh.T, joseph)
        mul_into(k, r_eff, k_r)
        mul_into(k_r, k.T, krk)
        for a in range(n):
            for b in range(n):
                p_out[t, a, b] = joseph[a, b] + krk[a, b]
    return x_out, p_out, nis


@kernel(types.Tuple((types.float64[:, ::1], types.float64[:, :, ::1]))(_F2, _F3, _F1, _F1, _F2, _F1))
def polar_to_map_rows(z, r, mount_xy, pose, pose_cov, range_offset_m):
    """Map positions (M, 2) [m] of polar measurements z (M, >= 2) (range [m], bearing [rad] about
    the mount ``mount_xy`` (2,) [m] in the vehicle frame), each moved ``range_offset_m`` (M,) [m]
    beyond the measured range, and their linearised covariance (M, 2, 2) from the leading 2x2 of
    R (M, m, m) and the ego pose covariance ``pose_cov`` (3, 3) (``sensor_models.polar_to_map``).

    Per row, with rho the range plus offset and J = d xy_vehicle / d(range, bearing)
    = [[cos b, -rho sin b], [sin b, rho cos b]]: xy_v = mount + rho (cos b, sin b), C_v = (J R) J^T;
    with Rot the ego's rotation and g = dRot/dyaw xy_v: xy = Rot xy_v + pose_xy and
    C = (Rot C_v) Rot^T + P_e[:2, :2] + g P_e[:2, 2]^T + P_e[:2, 2] g^T + P_e[2, 2] g g^T, added in
    that order (the pose's position-yaw terms are the cross terms).
    """
    n_rows = z.shape[0]
    xy = np.empty((n_rows, 2))
    cov = np.empty((n_rows, 2, 2))
    c, s = math.cos(pose[2]), math.sin(pose[2])
    rot = np.array([[c, -s], [s, c]])
    drot = np.array([[-s, -c], [c, -s]])
    jac = np.empty((2, 2))
    jr = np.empty((2, 2))
    cov_v = np.empty((2, 2))
    rc = np.empty((2, 2))
    rcr = np.empty((2, 2))
    xy_v = np.empty(2)
    g = np.empty(2)
    for i in range(n_rows):
        rng_m = z[i, 0] + range_offset_m[i]
        cb, sb = math.cos(z[i, 1]), math.sin(z[i, 1])
        xy_v[0], xy_v[1] = mount_xy[0] + rng_m * cb, mount_xy[1] + rng_m * sb
        jac[0, 0], jac[0, 1], jac[1, 0], jac[1, 1] = cb, -rng_m * sb, sb, rng_m * cb
        mul_into(jac, r[i, :2, :2], jr)
        mul_into(jr, jac.T, cov_v)
        mul_into(rot, cov_v, rc)
        mul_into(rc, rot.T, rcr)
        for a in range(2):
            xy[i, a] = (0.0 + xy_v[0] * rot[a, 0] + xy_v[1] * rot[a, 1]) + pose[a]
            g[a] = 0.0 + xy_v[0] * drot[a, 0] + xy_v[1] * drot[a, 1]
        for a in range(2):
            for b in range(2):
                cov[i, a, b] = (((rcr[a, b] + pose_cov[a, b]) + g[a] * pose_cov[b, 2]) + g[b] * pose_cov[a, 2]) \
                    + pose_cov[2, 2] * (g[a] * g[b])
    return xy, cov
