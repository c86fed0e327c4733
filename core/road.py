"""Road geometry: a reference line built from straight and constant-curvature segments, with lanes.

The road is map knowledge (an HD-map prior) shared by sim/ and the stages; it holds no ground truth
about actors. Frenet coordinates: s along the reference line [m], d to its left [m].
Lane i (0 = rightmost) has its centre at d = (i - (num_lanes - 1) / 2) * lane_width_m.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

from core.road_kernels import (curved_point_frenet, curved_to_frenet, frenet_to_map, line_to_frenet,
                               nearest_samples, newton_frenet)

SAMPLE_SPACING_M = 0.5
# Arcs are split into pieces turning at most this much, so that "nearest point of the piece" is the
# angular clamp of the foot point (the distance to an arc point is monotone in the angle only within
# half a turn).
_PIECE_MAX_TURN_RAD = 0.5 * math.pi
# Samples examined either side of a piece's foot point; the foot is exact to rounding, so the nearest
# sample is within one index of it, and two leave margin for the sampled arcs' integration error.
_CANDIDATE_OFFSETS = np.arange(-2, 3)


@dataclass(frozen=True, slots=True)
class RoadSegment:
    length_m: float
    curvature_1pm: float = 0.0  # > 0 turns left


class Road:
    """Reference line sampled evenly, at most SAMPLE_SPACING_M apart (length / (n - 1)), with exact
    arcs between samples."""

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
        # Sample index per metre of s: lookups index with this, not 1 / SAMPLE_SPACING_M, because the
        # spacing is length / (n - 1), shorter unless the length is a multiple of SAMPLE_SPACING_M;
        # s / SAMPLE_SPACING_M would then pick a sample below s's own, and just past a segment join
        # the previous segment's curvature. For such a multiple this is exactly 2.0, and s * 2.0 has
        # the bits of s / 0.5.
        self.samples_per_m = (n - 1) / total if total > 0.0 else 0.0
        # Exactly zero curvature everywhere: callers may drop curvature terms without changing a bit.
        self.is_straight = bool((kappa == 0.0).all())
        self._build_pieces()

    def _build_pieces(self) -> None:
        """Constant-curvature pieces of the reference line, for the analytic nearest-sample search."""
        s0, s1, k = [], [], []
        start = 0.0
        for seg in self.segments:
            n_sub = max(1, math.ceil(abs(seg.curvature_1pm) * seg.length_m / _PIECE_MAX_TURN_RAD))
            for j in range(n_sub):
                s0.append(start + seg.length_m * j / n_sub)
                s1.append(start + seg.length_m * (j + 1) / n_sub)
                k.append(float(seg.curvature_1pm))
            start += seg.length_m
        s0_a, s1_a, k_a = np.array(s0), np.array(s1), np.array(k)
        s_mid = 0.5 * (s0_a + s1_a)
        mid_xy, mid_h, _ = self.interpolate(s_mid)
        is_arc = np.abs(k_a) > 1e-12
        self._straight = _Pieces.of(~is_arc, s0_a, s1_a, s_mid, mid_xy, mid_h, k_a)
        self._arcs = _Pieces.of(is_arc, s0_a, s1_a, s_mid, mid_xy, mid_h, k_a)
        kinds = [p for p in (self._straight, self._arcs) if p is not None]  # the order feet are built in
        # The same pieces as rows of two tables, for the compiled search (``nearest_samples``).
        self._line_piece_rows = _piece_rows(self._straight, ("s_mid", "mid_x", "mid_y", "cos_h", "sin_h", "s0", "s1"))
        self._arc_piece_rows = _piece_rows(self._arcs, ("s_mid", "centre_x", "centre_y", "rad_x", "rad_y", "inv_k",
                                                        "s0", "s1"))
        self._piece_s0 = np.concatenate([p.s0 for p in kinds], axis=1)
        self._piece_s1 = np.concatenate([p.s1 for p in kinds], axis=1)
        if self._arcs is None:  # sample index along the line as one affine map of xy
            p = self._straight
            self._line_to_index_xy = tuple((np.array([p.cos_h[0, 0], p.sin_h[0, 0]]) * self.samples_per_m).tolist())
            self._line_index0 = float(p.s_mid[0, 0] - p.mid_x[0, 0] * p.cos_h[0, 0]
                                      - p.mid_y[0, 0] * p.sin_h[0, 0]) * self.samples_per_m
        # Per-sample tables so that a projection gathers instead of re-evaluating cos and sin.
        self._cos_h, self._sin_h = np.cos(self.heading_rad), np.sin(self.heading_rad)
        self._line_cos_sin = (float(self._cos_h[0]), float(self._sin_h[0]))
        if self._arcs is None:  # line_frenet_args, built once: the planner asks for them every plan
            self._line_frenet_args = (self._line_to_index_xy[0], self._line_to_index_xy[1], self._line_index0, self.s_m,
                                      self.xy_m) + self._line_cos_sin

    @property
    def line_cos_sin(self) -> tuple[float, float]:
        """Cosine and sine of the first sample's heading (a straight road's one heading): the
        straight-road arguments of the Frenet-to-map kernel."""
        return self._line_cos_sin

    @property
    def line_frenet_args(self) -> tuple:
        """A straight road's (to_index_x, to_index_y, index0, s_table, xy_table, cos_h, sin_h): the
        arguments of the compiled point projection ``line_point_frenet`` after x and y. Only for a
        road without arcs (``is_straight``)."""
        return self._line_frenet_args

    def nearest_sample(self, xy: np.ndarray) -> np.ndarray:
        """Index of the reference-line sample nearest to each point of xy (N, 2) -> (N,) int64.

        Per constant-curvature piece, the foot point of the projection is computed in closed form
        (a line's tangent projection, an arc's angle about its centre) and clamped to the piece; the
        nearest sample is then among a few indices around the foot, compared by exact distance.
        Equivalent to a KD-tree query over the samples at a fraction of its per-call overhead. A
        non-finite point yields an arbitrary index (its Frenet coordinates come out non-finite).
        """
        if self._arcs is not None and xy.ndim == 2:
            # Arcs (a curved road): the search below in one compiled loop (~25 numpy calls on
            # (N, 5 P) candidates were the top cost of a plan on a curve).
            idx = np.empty(xy.shape[0], np.int64)
            nearest_samples(xy, self._line_piece_rows, self._arc_piece_rows, self.samples_per_m, self.xy_m, idx)
            return idx
        if self._arcs is None:
            # A road without arcs is one straight line with evenly spaced samples: the nearest sample
            # is the foot point's rounded index (a tie within rounding may pick either neighbour).
            # Elementwise, not a matmul: BLAS may fuse the multiply-add, which moves exact ties
            # between samples with the machine and away from the one-point path's arithmetic.
            to_index = self._line_to_index_xy
            idx_f = xy[:, 0] * to_index[0] + xy[:, 1] * to_index[1] + self._line_index0
            return np.rint(np.fmin(np.fmax(idx_f, 0.0), self.s_m.shape[0] - 1)).astype(np.int64)
        x, y = xy[:, 0:1], xy[:, 1:2]
        feet = []
        p = self._straight
        if p is not None:
            feet.append(p.s_mid + (x - p.mid_x) * p.cos_h + (y - p.mid_y) * p.sin_h)
        p = self._arcs
        if p is not None:
            bx, by = x - p.centre_x, y - p.centre_y
            phi = np.arctan2(p.rad_x * by - p.rad_y * bx, p.rad_x * bx + p.rad_y * by)
            feet.append(p.s_mid + phi * p.inv_k)
        foot = feet[0] if len(feet) == 1 else np.concatenate(feet, axis=1)
        foot = np.fmin(np.fmax(foot, self._piece_s0), self._piece_s1)  # fmin/fmax: NaN -> a bound
        centre_idx = np.rint(foot * self.samples_per_m).astype(np.int64)
        cand = (centre_idx[:, :, None] + _CANDIDATE_OFFSETS).reshape(xy.shape[0], foot.shape[1] * _CANDIDATE_OFFSETS.shape[0])
        cand = np.minimum(np.maximum(cand, 0), self.s_m.shape[0] - 1)
        ref = self.xy_m[cand]
        dx, dy = ref[..., 0] - x, ref[..., 1] - y
        best = (dx * dx + dy * dy).argmin(axis=1)
        return cand[np.arange(xy.shape[0]), best]

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
        i = np.clip((s * self.samples_per_m).astype(np.int64), 0, len(self.s_m) - 2)
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
        s, d = np.asarray(s, dtype=np.float64), np.asarray(d, dtype=np.float64)
        if s.ndim == 1 and d.shape == s.shape:
            # Points as 1-D arrays (the actors every physics tick, plans, lane markings): one compiled
            # call instead of ~25 small numpy operations, with their arithmetic.
            cos_0, sin_0 = self._line_cos_sin
            return frenet_to_map(s, d, self.s_m, self.xy_m, self.heading_rad, self.curvature_1pm, self.length_m,
                                  self.samples_per_m, self.is_straight, cos_0, sin_0)
        ref, heading, _ = self.interpolate(s)
        normal = np.stack([-np.sin(heading), np.cos(heading)], axis=-1)
        return ref + d[..., None] * normal, heading

    def track_frenet(self, x_m: float, y_m: float, s_guess_m: float) -> tuple[float, float]:
        """Frenet (s, d) of one point near arc length ``s_guess_m``, tracked rather than searched:
        up to three Newton steps on the exact arc geometry from the guess (a point that moved well
        under a metre since its last s reaches micrometres in two). s is clamped to the road; a
        non-finite guess raises as Python's int() does."""
        return newton_frenet(x_m, y_m, s_guess_m, self.s_m, self.xy_m, self.heading_rad, self.curvature_1pm,
                              self.length_m, self.samples_per_m)

    def _line_point_to_frenet(self, x: float, y: float) -> tuple[float, float]:
        """to_frenet of one point on a straight road, operation for operation as the array
        path: the foot point's sample index clamped (a NaN to 0, as fmax does) and rounded half to
        even (as np.rint), then the offset from that sample along and across the line."""
        to_index = self._line_to_index_xy
        idx_f = x * to_index[0] + y * to_index[1] + self._line_index0
        last = self.s_m.shape[0] - 1
        idx_f = idx_f if idx_f >= 0.0 else 0.0
        i = round(idx_f if idx_f <= last else float(last))
        ref_x, ref_y = self.xy_m[i].tolist()
        dx, dy = x - ref_x, y - ref_y
        cos_h, sin_h = self._line_cos_sin
        return float(self.s_m[i]) + (dx * cos_h + dy * sin_h), -dx * sin_h + dy * cos_h

    def point_to_frenet(self, x_m: float, y_m: float) -> tuple[float, float]:
        """to_frenet of one point (x, y) as two floats, its bits, without the array set-up either
        way (the planner places the ego once per plan)."""
        if self.is_straight:
            return self._line_point_to_frenet(x_m, y_m)
        if self._arcs is not None:
            return curved_point_frenet(x_m, y_m, self._line_piece_rows, self._arc_piece_rows, self.samples_per_m,
                                        self.s_m, self.xy_m, self._cos_h, self._sin_h, self.curvature_1pm)
        s, lateral = self.to_frenet(np.array([[x_m, y_m]]))
        return float(s[0]), float(lateral[0])

    def to_frenet(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Map xy (N, 2) -> (s, d), projecting onto the nearest sample's tangent (exact on straights,
        within millimetres on curves of radius >= 50 m at 0.5 m spacing)."""
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape[-1:] != (2,):
            raise ValueError(f"to_frenet expects points of shape (..., 2), got {xy.shape}")
        lead_shape = xy.shape[:-1]
        if self.is_straight and lead_shape == (1,):
            # One point on a straight road (the ego, every planning and sensor step): the same
            # arithmetic on Python floats, without ~20 numpy calls on one-element arrays.
            s, lateral = self._line_point_to_frenet(float(xy[0, 0]), float(xy[0, 1]))
            return np.array([s]), np.array([lateral])
        if self.is_straight and self._arcs is None and len(lead_shape) == 1:
            # Points (N, 2) on a straight road (the tracks and their predictions every plan): one
            # compiled loop with the arithmetic below, instead of ~15 small numpy calls.
            return line_to_frenet(xy, *self.line_frenet_args)
        if self._arcs is not None:
            # A curved road: nearest_sample's search and the projection below in one compiled loop.
            points = xy.reshape(-1, 2)
            s_d = np.empty((2, points.shape[0]))
            curved_to_frenet(points, self._line_piece_rows, self._arc_piece_rows, self.samples_per_m, self.s_m,
                              self.xy_m, self._cos_h, self._sin_h, self.curvature_1pm, s_d)
            s, lateral = s_d[0], s_d[1]
            if lead_shape == ():  # a single point gives scalars, as a KD-tree query would
                return s[0], lateral[0]
            return s.reshape(lead_shape), lateral.reshape(lead_shape)
        i = self.nearest_sample(xy.reshape(-1, 2))
        xy = xy.reshape(-1, 2)
        delta = xy - self.xy_m[i]
        if self.is_straight:  # one heading everywhere: the gathered cos and sin are all this float
            cos_h, sin_h = self._line_cos_sin
        else:
            cos_h, sin_h = self._cos_h[i], self._sin_h[i]
        dx, dy = delta[:, 0], delta[:, 1]
        along = dx * cos_h + dy * sin_h
        lateral = -dx * sin_h + dy * cos_h
        if self._arcs is not None:
            # On an arc, the lateral offset shrinks the arc length covered by the along-track distance.
            along = along / np.maximum(1.0 - self.curvature_1pm[i] * lateral, 1e-3)
        s = self.s_m[i] + along
        if lead_shape == ():  # a single point gives scalars, as a KD-tree query would
            return s[0], lateral[0]
        return s.reshape(lead_shape), lateral.reshape(lead_shape)


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Constant-curvature pieces of one kind (lines or arcs), as (1, P) rows for broadcasting."""

    s0: np.ndarray
    s1: np.ndarray
    s_mid: np.ndarray
    mid_x: np.ndarray
    mid_y: np.ndarray
    cos_h: np.ndarray
    sin_h: np.ndarray
    centre_x: np.ndarray  # arcs: centre of curvature and the radius vector to the mid point
    centre_y: np.ndarray
    rad_x: np.ndarray
    rad_y: np.ndarray
    inv_k: np.ndarray  # arcs: signed radius (an angle about the centre times it is arc length)

    @staticmethod
    def of(mask, s0, s1, s_mid, mid_xy, mid_h, k) -> "_Pieces | None":
        if not mask.any():
            return None
        row = lambda a: np.ascontiguousarray(a[mask])[None, :]  # noqa: E731
        cos_h, sin_h = np.cos(mid_h), np.sin(mid_h)
        with np.errstate(divide="ignore", invalid="ignore"):  # lines have no centre; masked out
            inv_k = np.where(np.abs(k) > 1e-12, 1.0 / np.where(k == 0.0, 1.0, k), np.inf)
            rad_x, rad_y = sin_h * inv_k, -cos_h * inv_k  # mid point minus centre: -normal / k
        return _Pieces(row(s0), row(s1), row(s_mid), row(mid_xy[:, 0]), row(mid_xy[:, 1]), row(cos_h),
                       row(sin_h), row(mid_xy[:, 0] - rad_x), row(mid_xy[:, 1] - rad_y), row(rad_x),
                       row(rad_y), row(inv_k))


def _piece_rows(pieces: "_Pieces | None", fields: tuple[str, ...]) -> np.ndarray:
    """Pieces of one kind as a C-contiguous table (P, len(fields)), one row per piece; (0, F) if none."""
    if pieces is None:
        return np.zeros((0, len(fields)))
    return np.ascontiguousarray(np.stack([getattr(pieces, f)[0] for f in fields], axis=1), dtype=np.float64)
