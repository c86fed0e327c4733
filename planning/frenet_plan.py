"""Frenet profile -> map-frame Plan (positions, yaw and curvature from the road's geometry)."""
from __future__ import annotations

import numpy as np

from core.messages import Plan
from core.road import Road


def frenet_to_plan(road: Road, t_ns: int, t_s: np.ndarray, s_m: np.ndarray, d_m: np.ndarray,
                   dd_ds: np.ndarray, d2d_ds2: np.ndarray, speed_mps: np.ndarray,
                   accel_mps2: np.ndarray, emergency: bool, behaviour: str) -> Plan:
    """Map a path d(s) with its derivatives onto the reference line.

    Yaw and curvature use the exact Frenet relations for a reference line of piecewise-constant
    curvature (k' = 0 inside a segment): with one_kd = 1 - k d and delta = atan(d' / one_kd),
    kappa = ((d'' + k d' tan delta) cos^2 delta / one_kd + k) cos delta / one_kd.
    """
    if road.is_straight:
        # Road.to_cartesian's line path: the same values as the general branch with k == 0 (the
        # chord is u, the heading the sample's), without the arc terms' dozen array operations.
        xy, heading = road.to_cartesian(s_m, d_m)
        k = 0.0
    else:
        ref, heading, k = road.interpolate(s_m)
        xy = ref + np.asarray(d_m, dtype=np.float64)[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
    one_kd = np.maximum(1.0 - k * d_m, 1e-3)
    delta = np.arctan2(dd_ds, one_kd)
    cos_d = np.cos(delta)
    curvature = ((d2d_ds2 + k * dd_ds * np.tan(delta)) * cos_d * cos_d / one_kd + k) * cos_d / one_kd
    return Plan(t_ns=int(t_ns), t_s=np.asarray(t_s, dtype=np.float64), xy_m=xy,
                yaw_rad=heading + delta, speed_mps=np.asarray(speed_mps, dtype=np.float64),
                accel_mps2=np.asarray(accel_mps2, dtype=np.float64), curvature_1pm=curvature,
                emergency=bool(emergency), behaviour=behaviour)
