"""Quintic and quartic boundary-value polynomials in time, vectorised over many end conditions.

Coefficients are (M, 6) for x(t) = sum c_i t^i (a quartic has c_5 = 0). Beyond its horizon T a
profile is extended at its end state: constant position for a quintic that ends at rest laterally,
constant velocity for a quartic that ends at zero acceleration.
"""
from __future__ import annotations

import numpy as np


def quintic_coeffs(x0: float, v0: float, a0: float, x1: np.ndarray, v1: np.ndarray, a1: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Minimum-jerk quintic from (x0, v0, a0) at t = 0 to (x1, v1, a1) at t = T, all (M,)."""
    x1, v1, a1, T = np.broadcast_arrays(*(np.asarray(z, dtype=np.float64) for z in (x1, v1, a1, T)))
    dx = x1 - x0
    c = np.zeros(x1.shape + (6,))
    c[:, 0], c[:, 1], c[:, 2] = x0, v0, 0.5 * a0
    c[:, 3] = (20.0 * dx - (8.0 * v1 + 12.0 * v0) * T - (3.0 * a0 - a1) * T**2) / (2.0 * T**3)
    c[:, 4] = (-30.0 * dx + (14.0 * v1 + 16.0 * v0) * T + (3.0 * a0 - 2.0 * a1) * T**2) / (2.0 * T**4)
    c[:, 5] = (12.0 * dx - 6.0 * (v1 + v0) * T + (a1 - a0) * T**2) / (2.0 * T**5)
    return c


def quartic_coeffs(x0: float, v0: float, a0: float, v1: np.ndarray, a1: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Quartic from (x0, v0, a0) to velocity v1 and acceleration a1 at T (end position free)."""
    v1, a1, T = np.broadcast_arrays(*(np.asarray(z, dtype=np.float64) for z in (v1, a1, T)))
    dv = v1 - v0 - a0 * T
    c = np.zeros(v1.shape + (6,))
    c[:, 0], c[:, 1], c[:, 2] = x0, v0, 0.5 * a0
    c[:, 3] = dv / T**2 - (a1 - a0) / (3.0 * T)
    c[:, 4] = (a1 - a0) / (4.0 * T**2) - dv / (2.0 * T**3)
    return c


def evaluate(c: np.ndarray, T: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Position, velocity, acceleration and jerk (M, K) at times t (K,), extended beyond T at the
    end velocity with zero acceleration (the end conditions both families use)."""
    tc = np.minimum(t[None, :], T[:, None])
    p = [np.ones_like(tc), tc, tc * tc]
    p.append(p[2] * tc)
    p.append(p[3] * tc)
    p.append(p[4] * tc)
    c0, c1, c2, c3, c4, c5 = (c[:, i, None] for i in range(6))
    x = c0 + c1 * p[1] + c2 * p[2] + c3 * p[3] + c4 * p[4] + c5 * p[5]
    v = c1 + 2.0 * c2 * p[1] + 3.0 * c3 * p[2] + 4.0 * c4 * p[3] + 5.0 * c5 * p[4]
    a = 2.0 * c2 + 6.0 * c3 * p[1] + 12.0 * c4 * p[2] + 20.0 * c5 * p[3]
    j = 6.0 * c3 + 24.0 * c4 * p[1] + 60.0 * c5 * p[2]
    beyond = t[None, :] > T[:, None]
    x = x + np.where(beyond, v * (t[None, :] - tc), 0.0)
    a = np.where(beyond, 0.0, a)
    j = np.where(beyond, 0.0, j)
    return x, v, a, j
