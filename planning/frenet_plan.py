"""Frenet profile -> map-frame Plan (positions, yaw and curvature from the road's geometry)."""
from __future__ import annotations

import math

import numpy as np

from core.jit import kernel
from core.messages import Plan
from core.road import Road
from core.road_kernels import clipped_sample, frenet_to_map_into


# 1 - k d is the length of a lane at offset d per metre of reference line; past the centre of
# curvature it would vanish or turn negative, so every conversion floors it here.
ONE_KD_FLOOR = 1e-3


def lane_stretch(kappa_1pm: float, d_m: float) -> float:
    """1 - k d for one offset, floored at ONE_KD_FLOOR (as the array forms in this module do)."""
    return max(1.0 - kappa_1pm * d_m, ONE_KD_FLOOR)


def frenet_to_plan(road: Road, t_ns: int, t_s: np.ndarray, s_m: np.ndarray, d_m: np.ndarray,
                   dd_ds: np.ndarray, d2d_ds2: np.ndarray, speed_mps: np.ndarray,
                   accel_mps2: np.ndarray, emergency: bool, behaviour: str) -> Plan:
    """Map a path d(s) with its derivatives onto the reference line.

    Yaw and curvature use the exact Frenet relations for a reference line of piecewise-constant
    curvature (k' = 0 inside a segment): with one_kd = 1 - k d and delta = atan(d' / one_kd),
    kappa = ((d'' + k d' tan delta) cos^2 delta / one_kd + k) cos delta / one_kd.

    ``speed_mps`` and ``accel_mps2`` are rates along the reference line (s', s''); the plan carries
    the speed along its own lane, s' one_kd, and its time derivative s'' one_kd - k d' s'^2 (k' = 0).
    The planners convert the ego's speed the other way, v cos(dpsi) / one_kd, so on a curve a plan
    starts at the ego's speed along the lane (left as s', a plan on the inside of a curve asked for
    more than its positions move at, and the next plan, starting from v0 = v / one_kd, for more
    again: 21 m/s after 12 s on a 20 m/s road). The lateral part of the path speed, the factor
    1 / cos(delta), is left out on purpose: at walking pace a lane change's d' is large and the
    path speed of a lateral polynomial in time is no speed a car can drive (it stalled a stopped
    car that tried to change lanes, lead_brake seed 11); at traffic speeds it is below 0.2 %.
    On a straight road the rates pass through unchanged, bit for bit.
    """
    # As float64 arrays up front: what the formula's promotion did anyway, so a float32 profile
    # takes the shortcut below with the general branch's values and dtype.
    d_m, dd_ds, d2d_ds2 = np.asarray(d_m, np.float64), np.asarray(dd_ds, np.float64), np.asarray(d2d_ds2, np.float64)
    s_m = np.asarray(s_m, dtype=np.float64)
    if (road.is_straight and s_m.ndim == 1 and d_m.shape == s_m.shape == dd_ds.shape == d2d_ds2.shape
            and math.isfinite(float(np.dot(d_m, dd_ds)))):
        # The branch below for a straight road and finite d, d' (every lattice plan there), in one
        # compiled call: one buffer back instead of five arrays (each costs ~1 us to hand over).
        n = s_m.shape[0]
        cos_0, sin_0 = road.line_cos_sin
        geometry = _straight_plan_geometry(s_m, d_m, dd_ds, d2d_ds2, road.s_m, road.xy_m, road.heading_rad,
                                           road.curvature_1pm, road.length_m, road.samples_per_m, cos_0, sin_0)
        return Plan(t_ns=int(t_ns), t_s=np.asarray(t_s, dtype=np.float64), xy_m=geometry[:2 * n].reshape(n, 2),
                    yaw_rad=geometry[2 * n:3 * n], speed_mps=np.asarray(speed_mps, dtype=np.float64),
                    accel_mps2=np.asarray(accel_mps2, dtype=np.float64), curvature_1pm=geometry[3 * n:],
                    emergency=bool(emergency), behaviour=behaviour)
    if (not road.is_straight and s_m.ndim == 1 and d_m.shape == s_m.shape == dd_ds.shape == d2d_ds2.shape
            and np.shape(speed_mps) == s_m.shape and np.shape(accel_mps2) == s_m.shape):
        # The general branch below for 1-D profiles (every plan on a curved road), in one compiled
        # call: it was ~40 numpy calls (Road.interpolate, the normal, yaw_curvature, the rates).
        n = s_m.shape[0]
        out = _curved_plan_geometry(s_m, d_m, dd_ds, d2d_ds2, np.asarray(speed_mps, dtype=np.float64),
                                    np.asarray(accel_mps2, dtype=np.float64), road.s_m, road.xy_m, road.heading_rad,
                                    road.curvature_1pm, road.length_m, road.samples_per_m)
        return Plan(t_ns=int(t_ns), t_s=np.asarray(t_s, dtype=np.float64), xy_m=out[:2 * n].reshape(n, 2),
                    yaw_rad=out[2 * n:3 * n], speed_mps=out[4 * n:5 * n], accel_mps2=out[5 * n:],
                    curvature_1pm=out[3 * n:4 * n], emergency=bool(emergency), behaviour=behaviour)
    return numpy_frenet_to_plan(road, t_ns, t_s, s_m, d_m, dd_ds, d2d_ds2, speed_mps, accel_mps2, emergency,
                                behaviour)


def numpy_frenet_to_plan(road: Road, t_ns: int, t_s: np.ndarray, s_m: np.ndarray, d_m: np.ndarray,
                         dd_ds: np.ndarray, d2d_ds2: np.ndarray, speed_mps: np.ndarray,
                         accel_mps2: np.ndarray, emergency: bool, behaviour: str) -> Plan:
    """frenet_to_plan in numpy, for any shapes (float64 s, d, d', d''): what the compiled branches
    replace for 1-D profiles, kept as their bit-exact reference (tests/planning/test_frenet_plan.py)."""
    if road.is_straight:
        # Road.to_cartesian's line path: the same values as the general branch with k == 0 (the
        # chord is u, the heading the sample's), without the arc terms' dozen array operations.
        xy, heading = road.to_cartesian(s_m, d_m)
        # An inf or NaN in d or d' makes the dot non-finite.
        if math.isfinite(float(np.dot(d_m, dd_ds))):
            delta, curvature = _straight_yaw_curvature(dd_ds, d2d_ds2)
        else:
            delta, curvature = yaw_curvature(0.0, d_m, dd_ds, d2d_ds2)
    else:
        ref, heading, k = road.interpolate(s_m)
        xy = ref + d_m[:, None] * np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        delta, curvature = yaw_curvature(k, d_m, dd_ds, d2d_ds2)
        one_kd = np.maximum(1.0 - k * d_m, ONE_KD_FLOOR)
    # Reference-line rates -> rates along the plan's lane (docstring).
    speed = np.asarray(speed_mps, dtype=np.float64)
    accel = np.asarray(accel_mps2, dtype=np.float64)
    if not road.is_straight:
        accel = accel * one_kd - k * dd_ds * speed * speed
        speed = speed * one_kd
    return Plan(t_ns=int(t_ns), t_s=np.asarray(t_s, dtype=np.float64), xy_m=xy,
                yaw_rad=heading + delta, speed_mps=speed, accel_mps2=accel, curvature_1pm=curvature,
                emergency=bool(emergency), behaviour=behaviour)


def yaw_curvature(k, d_m: np.ndarray, dd_ds: np.ndarray, d2d_ds2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heading of the path relative to the reference line, delta, and the path's curvature, for
    reference curvature ``k`` (a float or per sample)."""
    one_kd = np.maximum(1.0 - k * d_m, ONE_KD_FLOOR)
    delta = np.arctan2(dd_ds, one_kd)
    cos_d = np.cos(delta)
    return delta, ((d2d_ds2 + k * dd_ds * np.tan(delta)) * cos_d * cos_d / one_kd + k) * cos_d / one_kd


_PROFILE = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"UniTuple(float64[::1], 2)({_PROFILE}, {_PROFILE})")
def _straight_yaw_curvature(dd_ds, d2d_ds2):
    """yaw_curvature(0.0, ...) for finite d and d', to the bit, in one loop instead of 15 array
    operations: one_kd is 1 (dividing by it is exact), and k d' tan(delta) is a signed zero (tan is
    finite for finite d'), which can change only the sign of a zero sum, and "+ k" (+0.0) then clears
    that sign. atan2 and cos are libm's, as numpy's float64 loops call them on this baseline
    (core/road_kernels.py's kernels rely on the same)."""
    n = dd_ds.shape[0]
    delta = np.empty(n)
    curvature = np.empty(n)
    for k in range(n):
        dlt = math.atan2(dd_ds[k], 1.0)
        cos_d = math.cos(dlt)
        delta[k] = dlt
        curvature[k] = (d2d_ds2[k] * cos_d * cos_d + 0.0) * cos_d
    return delta, curvature


@kernel(f"float64[::1]({_PROFILE}, {_PROFILE}, {_PROFILE}, {_PROFILE}, float64[::1], float64[:, ::1], float64[::1],"
        " float64[::1], float64, float64, float64, float64)")
def _straight_plan_geometry(s_m, d_m, dd_ds, d2d_ds2, s_table, xy_table, heading_table, curvature_table, length_m,
                            samples_per_m, cos_0, sin_0):
    """frenet_to_plan's geometry on a straight road for finite d and d', packed in one buffer (4N,):
    xy (N, 2) row-major, then yaw (N,), then curvature (N,). The general branch's kernels in its
    order: Road.to_cartesian (frenet_to_map_into, line case), _straight_yaw_curvature's delta and
    curvature, and yaw = heading + delta."""
    n = s_m.shape[0]
    out = np.empty(4 * n)
    xy = out[:2 * n].reshape((n, 2))
    heading = np.empty(n)
    frenet_to_map_into(s_m, d_m, s_table, xy_table, heading_table, curvature_table, length_m, samples_per_m, True,
                       cos_0, sin_0, xy, heading)
    for k in range(n):
        dlt = math.atan2(dd_ds[k], 1.0)
        cos_d = math.cos(dlt)
        out[2 * n + k] = heading[k] + dlt
        out[3 * n + k] = (d2d_ds2[k] * cos_d * cos_d + 0.0) * cos_d
    return out


@kernel(f"float64[::1]({_PROFILE}, {_PROFILE}, {_PROFILE}, {_PROFILE}, {_PROFILE}, {_PROFILE}, float64[::1],"
        " float64[:, ::1], float64[::1], float64[::1], float64, float64)")
def _curved_plan_geometry(s_m, d_m, dd_ds, d2d_ds2, speed_mps, accel_mps2, s_table, xy_table, heading_table,
                          curvature_table, length_m, samples_per_m):
    """frenet_to_plan's general branch for N samples, packed in one buffer (6N,): xy (N, 2)
    row-major, yaw, curvature, speed and acceleration (N,) each. The numpy form's element
    operations in its order (tests/planning/test_frenet_plan.py keeps it as the reference):
    Road.interpolate (s and its sample as core.road_kernels.clipped_sample takes them; the exact arc from
    that sample), the point d along the
    normal (-sin h, cos h), yaw_curvature with the sample's k, and the rates times 1 - k d.
    sin, cos, tan and atan2 are libm's, as numpy's float64 loops call them on this baseline."""
    n = s_m.shape[0]
    out = np.empty(6 * n)
    last = s_table.shape[0] - 2
    for j in range(n):
        d, dd = d_m[j], dd_ds[j]
        s, i = clipped_sample(s_m[j], length_m, samples_per_m, last)
        u = s - s_table[i]
        k, h0 = curvature_table[i], heading_table[i]
        heading = h0 + k * u
        mid = h0 + 0.5 * k * u
        chord = 2.0 * math.sin(0.5 * k * u) / k if abs(k) > 1e-12 else u
        out[2 * j] = (xy_table[i, 0] + chord * math.cos(mid)) + d * -math.sin(heading)
        out[2 * j + 1] = (xy_table[i, 1] + chord * math.sin(mid)) + d * math.cos(heading)
        one_kd = 1.0 - k * d
        one_kd = one_kd if (one_kd > ONE_KD_FLOOR or one_kd != one_kd) else ONE_KD_FLOOR  # np.maximum
        delta = math.atan2(dd, one_kd)
        cos_d = math.cos(delta)
        out[2 * n + j] = heading + delta
        out[3 * n + j] = ((d2d_ds2[j] + k * dd * math.tan(delta)) * cos_d * cos_d / one_kd + k) * cos_d / one_kd
        v = speed_mps[j]
        out[5 * n + j] = accel_mps2[j] * one_kd - k * dd * v * v
        out[4 * n + j] = v * one_kd
    return out
