"""Tracks in the road's Frenet frame, and selection of the lead vehicle in a lane corridor."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.jit import kernel
from core.messages import Tracks
from core.records import fast_frozen_init
from core.road import Road
from core.road_kernels import clipped_sample, line_point_frenet
from planning.frenet_plan import ONE_KD_FLOOR


def road_heading_curvature(road: Road, s_m: float) -> tuple[float, float]:
    """Reference heading and curvature at one arc length: Road.interpolate's formulas for a single
    float, without its array set-up (the planner asks this once per plan)."""
    s_m = min(max(s_m, 0.0), road.length_m)
    i = min(max(int(s_m * road.samples_per_m), 0), road.s_m.shape[0] - 2)
    k = float(road.curvature_1pm[i])
    return float(road.heading_rad[i]) + k * (s_m - float(road.s_m[i])), k


def lane_centre_of(road: Road, d_m: np.ndarray) -> np.ndarray:
    """Road.lane_center_d(Road.lane_of(d_m)) for finite offsets, to the bit: the lane index stays
    a float (exact for any lane count), sparing the integer cast and np.clip's overhead."""
    lane = np.minimum(np.maximum(np.floor(d_m / road.lane_width_m + 0.5 * road.num_lanes), 0.0), road.num_lanes - 1.0)
    return (lane - 0.5 * (road.num_lanes - 1)) * road.lane_width_m


def curvature_at(road: Road, s_m: np.ndarray) -> np.ndarray:
    """Road.interpolate's curvature (piecewise constant per sample) by direct lookup."""
    i = (np.minimum(np.maximum(s_m, 0.0), road.length_m) * road.samples_per_m).astype(np.int64)
    return road.curvature_1pm[np.minimum(np.maximum(i, 0), road.s_m.shape[0] - 2)]


@fast_frozen_init  # built every plan (core/records.py)
@dataclass(frozen=True, slots=True)
class FrenetTracks:
    """Valid tracks propagated to the planning time, struct of arrays, all (N,)."""

    ids: np.ndarray
    s_m: np.ndarray
    d_m: np.ndarray
    vs_mps: np.ndarray  # velocity along the road heading (a physical speed)
    vd_mps: np.ndarray  # velocity towards the left of the road (= d', the rate of the offset)
    # ds/dt, the rate along the reference line: vs / (1 - k d). Plans, gaps and predictions in s
    # run in these units; at an offset d from a curve's reference line a physical metre is
    # 1 / (1 - k d) metres of s. Equal to vs_mps, bit for bit, on a straight road.
    s_rate_mps: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray
    x_m: np.ndarray  # map-frame state at the planning time, for Cartesian predictors
    y_m: np.ndarray
    vx_mps: np.ndarray
    vy_mps: np.ndarray
    yaw_rad: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def tracks_to_frenet(tracks: Tracks, road: Road, t_ns: int, min_existence: float) -> tuple[FrenetTracks, int]:
    """Drop non-finite tracks (returned as a count) and unlikely ones, propagate the rest at constant
    velocity to ``t_ns`` and project them onto the road."""
    n = len(tracks)
    states = np.asarray(tracks.states, dtype=np.float64).reshape(n, 4)
    sizes = np.asarray(tracks.sizes, dtype=np.float64).reshape(n, 3)
    yaws = np.asarray(tracks.yaws, dtype=np.float64).reshape(n)
    existence = np.asarray(tracks.existence, dtype=np.float64).reshape(n)
    straight = road.is_straight
    if straight:  # one heading everywhere (Road.interpolate's h0 + 0 * u)
        h = float(road.heading_rad[0])
        c, sn = math.cos(h), math.sin(h)
        line = road.line_frenet_args  # the kernel projects the tracks itself (Road.to_frenet's line path)
    else:
        c = sn = 0.0  # unused: the headings come from the road at each track's s
        line = (0.0, 0.0, 0.0, road.s_m, road.xy_m, 0.0, 0.0)  # unused
    xy, cols, keep, n_bad = _kept_tracks(states, sizes, yaws, existence, float(min_existence),
                                         (t_ns - tracks.t_ns) * 1e-9, straight, c, sn, *line)
    vx, vy, length, width, yaw, vs, vd, s, d = cols
    if straight:
        s_rate = vs
    else:
        s, d = road.to_frenet(xy) if xy.shape[0] else (np.zeros(0), np.zeros(0))
        vs, vd, s_rate = _curved_road_rates(s, d, vx, vy, road.s_m, road.heading_rad, road.curvature_1pm,
                                            road.length_m, road.samples_per_m)
    out = FrenetTracks(ids=np.asarray(tracks.ids).take(keep), s_m=s, d_m=d, vs_mps=vs, vd_mps=vd, s_rate_mps=s_rate,
                       length_m=length, width_m=width, x_m=xy[:, 0], y_m=xy[:, 1], vx_mps=vx, vy_mps=vy, yaw_rad=yaw)
    return out, n_bad


def numpy_curved_road_rates(road: Road, s_m: np.ndarray, d_m: np.ndarray, vx_mps: np.ndarray,
                            vy_mps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Velocity along and across a curved road and the rate along its reference line (vs, vd,
    vs / (1 - k d)) at Frenet points, in numpy: the reference of ``_curved_road_rates``."""
    _, heading, k = road.interpolate(s_m)
    c, sn = np.cos(heading), np.sin(heading)
    vs = vx_mps * c + vy_mps * sn
    vd = -vx_mps * sn + vy_mps * c
    return vs, vd, vs / np.maximum(1.0 - k * d_m, ONE_KD_FLOOR)


_MATRIX = "Array(float64, 2, 'A', readonly=True)"
_VECTOR = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"float64[:, ::1]({_VECTOR}, {_VECTOR}, {_VECTOR}, {_VECTOR}, float64[::1], float64[::1], float64[::1],"
        " float64, float64)")
def _curved_road_rates(s_m, d_m, vx_mps, vy_mps, s_table, heading_table, curvature_table, length_m, samples_per_m):
    """numpy_curved_road_rates for N points in one loop (it was ~25 numpy calls), rows (3, N) vs,
    vd and the s rate: Road.interpolate's heading h0 + k u (s and its sample as
    core.road_kernels.clipped_sample takes them), libm's cos and sin as numpy's float64 loops call them,
    and the numpy form's operations in its order."""
    n = s_m.shape[0]
    rows = np.empty((3, n))
    last = s_table.shape[0] - 2
    for j in range(n):
        s, i = clipped_sample(s_m[j], length_m, samples_per_m, last)
        k = curvature_table[i]
        heading = heading_table[i] + k * (s - s_table[i])
        c, sn = math.cos(heading), math.sin(heading)
        vx, vy = vx_mps[j], vy_mps[j]
        vs = vx * c + vy * sn
        rows[0, j] = vs
        rows[1, j] = -vx * sn + vy * c
        one_kd = 1.0 - k * d_m[j]
        rows[2, j] = vs / (one_kd if (one_kd > ONE_KD_FLOOR or one_kd != one_kd) else ONE_KD_FLOOR)
    return rows


@kernel(f"Tuple((float64[:, ::1], float64[:, ::1], int64[::1], int64))({_MATRIX}, {_MATRIX}, {_VECTOR}, {_VECTOR},"
        " float64, float64, boolean, float64, float64, float64, float64, float64, float64[::1], float64[:, ::1], float64,"
        " float64)")
def _kept_tracks(states, sizes, yaws, existence, min_existence, dt_s, straight, cos_h, sin_h, to_index_x, to_index_y,
                 index0, s_table, xy_table, line_cos, line_sin):
    """tracks_to_frenet's selection and propagation in one loop (it was ~25 numpy calls on a few
    tracks): a track is finite if the sum of its states, sizes, yaw and existence is (an
    overflowing sum drops it too, rightly), it has non-negative length and width, and is kept if
    also existence >= min_existence. Returns the kept tracks' positions propagated by ``dt_s`` at
    constant velocity (M, 2), their columns (9, M) vx, vy, length, width, yaw and, on a straight
    road (heading cosine and sine ``cos_h``, ``sin_h``), the velocity along and across it and the
    positions' s and d (Road.to_frenet's line path, core/road_kernels.py line_point_frenet, with the road's
    line_frenet_args after ``sin_h``) (else left for the caller), their indices (M,) and the count of
    non-finite tracks. The numpy form's element operations in its order, so its bits."""
    n = states.shape[0]
    kept = np.empty(n, np.int64)
    m, n_bad = 0, 0
    for i in range(n):
        total = (((states[i, 0] + states[i, 1]) + states[i, 2]) + states[i, 3]) + ((sizes[i, 0] + sizes[i, 1]) + sizes[i, 2])
        finite = np.isfinite((total + yaws[i]) + existence[i]) and sizes[i, 0] >= 0.0 and sizes[i, 1] >= 0.0
        if not finite:
            n_bad += 1
        elif existence[i] >= min_existence:
            kept[m] = i
            m += 1
    xy = np.empty((m, 2))
    cols = np.empty((9, m))
    for j in range(m):
        i = kept[j]
        vx, vy = states[i, 2], states[i, 3]
        xy[j, 0] = states[i, 0] + vx * dt_s
        xy[j, 1] = states[i, 1] + vy * dt_s
        cols[0, j], cols[1, j] = vx, vy
        cols[2, j], cols[3, j], cols[4, j] = sizes[i, 0], sizes[i, 1], yaws[i]
        if straight:
            cols[5, j] = vx * cos_h + vy * sin_h
            cols[6, j] = -vx * sin_h + vy * cos_h
            cols[7, j], cols[8, j] = line_point_frenet(xy[j, 0], xy[j, 1], to_index_x, to_index_y, index0, s_table,
                                                       xy_table, line_cos, line_sin)
    return xy, cols, kept[:m].copy(), n_bad


def select_lead(ft: FrenetTracks, s_ego_m: float, d_lane_m: float, ego_front_m: float,
                ego_half_width_m: float, margin_m: float, cut_in_horizon_s: float) -> tuple[int, float]:
    """Index and bumper-to-bumper gap of the nearest track ahead whose lateral position over the next
    ``cut_in_horizon_s`` (constant lateral velocity) comes within the ego corridor; (-1, inf) if none."""
    if len(ft) == 0:
        return -1, float("inf")
    d_end = ft.d_m + ft.vd_mps * cut_in_horizon_s
    lo, hi = np.minimum(ft.d_m, d_end), np.maximum(ft.d_m, d_end)
    # Distance from the lane centre to the swept lateral interval (zero when it crosses the centre).
    lat = np.maximum(np.maximum(lo - d_lane_m, d_lane_m - hi), 0.0)
    in_corridor = lat < ego_half_width_m + 0.5 * ft.width_m + margin_m
    gap = ft.s_m - 0.5 * ft.length_m - (s_ego_m + ego_front_m)
    ahead = ft.s_m + 0.5 * ft.length_m > s_ego_m + ego_front_m
    cand = np.where(in_corridor & ahead, gap, np.inf)
    i = int(np.argmin(cand))
    return (i, float(cand[i])) if np.isfinite(cand[i]) else (-1, float("inf"))


def select_leads(ft: FrenetTracks, s_ego_m: float, d_lanes_m: np.ndarray, ego_front_m: float,
                 ego_half_width_m: float, margin_m: float, cut_in_horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """``select_lead`` for several lane centres (L,) at once: indices (L,) (-1: none) and gaps (L,)."""
    n_l = d_lanes_m.shape[0]
    if len(ft) == 0:
        return np.full(n_l, -1), np.full(n_l, np.inf)
    return _select_leads(ft.s_m, ft.d_m, ft.vd_mps, ft.length_m, ft.width_m, float(s_ego_m),
                         np.ascontiguousarray(d_lanes_m, dtype=np.float64), float(ego_front_m),
                         float(ego_half_width_m), float(margin_m), float(cut_in_horizon_s))


# Track arrays are read-only views where a track field passes through unchanged (length_m is a
# column of Tracks.sizes, and a Tracks decoded from a log holds read-only arrays).
_TRACK_FIELD = "Array(float64, 1, 'A', readonly=True)"


@kernel(f"Tuple((int64[::1], float64[::1]))({_TRACK_FIELD}, {_TRACK_FIELD}, {_TRACK_FIELD}, {_TRACK_FIELD},"
        f" {_TRACK_FIELD}, float64, float64[::1], float64, float64, float64, float64)")
def _select_leads(s_m, d_m, vd_mps, length_m, width_m, s_ego_m, d_lanes_m, ego_front_m, ego_half_width_m, margin_m,
                  cut_in_horizon_s):
    """The lead search of ``select_leads`` for N > 0 tracks, compiled: per lane and track ~20 numpy
    calls on a few elements each were the cost. The numpy form's operations per element, in its
    order (kept as the reference in tests/planning/test_planner_kernels.py): a track is a
    candidate if its lateral interval swept over the cut-in horizon comes within the corridor
    (a NaN fails the test, as np.minimum/np.maximum propagate it into the comparison) and its
    front is ahead of the ego's; the nearest by gap wins, the first of equals, a NaN gap winning
    as np.argmin's; an infinite or NaN gap means none (-1)."""
    n_l, n = d_lanes_m.shape[0], s_m.shape[0]
    ego_front = s_ego_m + ego_front_m
    leads = np.empty(n_l, np.int64)
    gaps = np.empty(n_l)
    for lane in range(n_l):
        d_lane = d_lanes_m[lane]
        best_i, best = 0, np.inf
        for t in range(n):
            d, d_end = d_m[t], d_m[t] + vd_mps[t] * cut_in_horizon_s
            lo = d if d < d_end else d_end
            hi = d_end if d < d_end else d
            lat = lo - d_lane
            right = d_lane - hi
            lat = right if right > lat else lat
            lat = lat if lat > 0.0 else 0.0
            nan = d != d or d_end != d_end or d_lane != d_lane
            in_corridor = not nan and lat < ego_half_width_m + 0.5 * width_m[t] + margin_m
            half_length = 0.5 * length_m[t]
            gap = s_m[t] - half_length - ego_front
            ahead = s_m[t] + half_length > ego_front
            cand = gap if (in_corridor and ahead) else np.inf
            if t == 0 or cand < best:
                best_i, best = t, cand
            if cand != cand:
                best_i, best = t, cand
                break
        leads[lane] = best_i if np.isfinite(best) else -1
        gaps[lane] = best
    return leads, gaps
