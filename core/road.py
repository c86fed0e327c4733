"""Road geometry: a reference line built from straight and constant-curvature segments, with lanes.

The road is map knowledge (an HD-map prior) shared by sim/ and the stages; it holds no ground truth
about actors. Frenet coordinates: s along the reference line [m], d to its left [m].
Lane i (0 = rightmost) has its centre at d = (i - (num_lanes - 1) / 2) * lane_width_m.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

SAMPLE_SPACING_M = 0.5


@dataclass(frozen=True, slots=True)
class RoadSegment:
    length_m: float
    curvature_1pm: float = 0.0  # > 0 turns left


class Road:
    """Reference line sampled every SAMPLE_SPACING_M, with exact arcs between samples."""

    def __init__(self, segments: tuple[RoadSegment, ...], num_lanes: int, lane_width_m: float,
                 speed_limit_mps: float, start_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)):
        if not segments:
            raise ValueError("a road needs at least one segment")
        self.segments = tuple(segments)
        self.num_lanes = int(num_lanes)
        self.lane_width_m = float(lane_width_m)
        self.speed_limit_mps = float(speed_limit_mps)
        total = float(sum(seg.length_m for seg in segments))
        n = int(np.ceil(total / SAMPLE_SPACING_M)) + 1
        s = np.linspace(0.0, total, n)
        # Curvature per sample from the segment it lies in; heading and position by integration of
        # the exact arc between samples (the curvature is constant inside each step).
        bounds = np.cumsum([0.0] + [seg.length_m for seg in segments])
        seg_idx = np.clip(np.searchsorted(bounds, s, side="right") - 1, 0, len(segments) - 1)
        kappa = np.array([seg.curvature_1pm for seg in segments])[seg_idx]
        ds = np.diff(s)
        k_step = kappa[:-1]
        heading = np.empty(n)
        heading[0] = start_pose[2]
        heading[1:] = start_pose[2] + np.cumsum(k_step * ds)
        h0 = heading[:-1]
        mid = h0 + 0.5 * k_step * ds
        chord = np.where(np.abs(k_step) > 1e-12,
                         2.0 * np.sin(0.5 * k_step * ds) / np.where(k_step == 0, 1.0, k_step), ds)
        xy = np.empty((n, 2))
        xy[0] = start_pose[:2]
        xy[1:, 0] = start_pose[0] + np.cumsum(chord * np.cos(mid))
        xy[1:, 1] = start_pose[1] + np.cumsum(chord * np.sin(mid))
        self.s_m = s
        self.xy_m = xy
        self.heading_rad = heading
        self.curvature_1pm = kappa
        self.length_m = total
        self._tree = cKDTree(xy)

    # -- lanes -----------------------------------------------------------------------------------
    def lane_center_d(self, lane) -> np.ndarray:
        return (np.asarray(lane, dtype=np.float64) - 0.5 * (self.num_lanes - 1)) * self.lane_width_m

    def lane_of(self, d) -> np.ndarray:
        """Lane index of a lateral offset, clipped to the road's lanes."""
        idx = np.floor(np.asarray(d) / self.lane_width_m + 0.5 * self.num_lanes).astype(np.int64)
        return np.clip(idx, 0, self.num_lanes - 1)

    @property
    def half_width_m(self) -> float:
        return 0.5 * self.num_lanes * self.lane_width_m

    # -- frames ----------------------------------------------------------------------------------
    def interpolate(self, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference point (…, 2), heading and curvature at arc length s (clamped to the road)."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length_m)
        i = np.clip((s / SAMPLE_SPACING_M).astype(np.int64), 0, len(self.s_m) - 2)
        u = s - self.s_m[i]
        k = self.curvature_1pm[i]
        h0 = self.heading_rad[i]
        heading = h0 + k * u
        mid = h0 + 0.5 * k * u
        chord = np.where(np.abs(k) > 1e-12, 2.0 * np.sin(0.5 * k * u) / np.where(k == 0, 1.0, k), u)
        xy = self.xy_m[i] + np.stack([chord * np.cos(mid), chord * np.sin(mid)], axis=-1)
        return xy, heading, k

    def to_cartesian(self, s, d) -> tuple[np.ndarray, np.ndarray]:
        """Frenet (s, d) -> map xy (…, 2) and the reference heading there."""
        ref, heading, _ = self.interpolate(s)
        d = np.asarray(d, dtype=np.float64)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        return ref + d[..., None] * normal, heading

    def to_frenet(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Map xy (N, 2) -> (s, d), projecting onto the nearest sample's tangent (exact on straights,
        within millimetres on curves of radius >= 50 m at 0.5 m spacing)."""
        xy = np.asarray(xy, dtype=np.float64)
        _, i = self._tree.query(xy)
        delta = xy - self.xy_m[i]
        h = self.heading_rad[i]
        along = delta[..., 0] * np.cos(h) + delta[..., 1] * np.sin(h)
        lateral = -delta[..., 0] * np.sin(h) + delta[..., 1] * np.cos(h)
        k = self.curvature_1pm[i]
        # On an arc, the lateral offset shrinks the arc length covered by the along-track distance.
        s = self.s_m[i] + along / np.maximum(1.0 - k * lateral, 1e-3)
        return s, lateral
