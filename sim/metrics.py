"""Run metrics from ground truth: safety (collisions, time to collision, gaps), comfort, progress.

Conventions (all values plain floats or ints, JSON-safe):
- collisions: ego/actor footprint overlaps (touching counts), once per actor per contact episode;
- min_ttc_s / min_distance_m: over actors ahead of the ego whose footprint overlaps the ego's
  lateral corridor in Frenet coordinates (so curves are handled); gaps are bumper to bumper along s,
  0 while overlapping. None when no actor was ever ahead (TTC: never closing) - never inf;
- max_abs_jerk_mps3: from the ego's actual acceleration, only while moving (speed above
  jerk_min_speed_mps at both samples): the brake-hold step at standstill is not a comfort event;
- max_abs_lat_accel_mps2: v * yaw_rate = v^2 kappa;
- lane_center_rmse_m: lateral offset of the vehicle frame origin (rear axle, the point plans
  refer to) from the nearest lane centre;
- progress_m: distance along the road covered by the box centre;
- max_off_road_m / off_road_s: road departure of the ego's footprint (the same oriented box as for
  collisions): the largest distance any corner was outside the paved road, past an edge or past
  either end of the road (sim/road_departure.py defines it), 0.0 if never; and the sum, over the
  ticks where any corner was off, of the interval since the previous tick (the run's first tick
  covers no time, so it never exceeds the run's duration). Without them a run that leaves the road
  reads as clean: nothing is there to collide with.

Cost model: the recorder is fed every physics tick, where a handful of numpy calls on a few actors
costs far more in call overhead than in arithmetic. So ``update`` does only the scalar ego
bookkeeping and copies the ego row and the actor columns into a block of preallocated rows, all in
one compiled call (sim/metrics_kernels.py); the actors' finiteness
and the geometric metrics (Frenet projection, footprint overlaps, gaps and TTC) are computed for a
whole block of ticks at once when it fills, when the set of actors changes, or when the summary is
asked for. Every element is computed with the same operations as a per-tick evaluation would, and
the order-dependent sums are still accumulated tick by tick, so the summary does not depend on the
block size.
"""
from __future__ import annotations

import math

import numpy as np

from core.clock import ns_to_s
from core.geometry import box_corners_2d, boxes_overlap
from core.road import Road
from core.vehicle import VehicleParams
from sim.metrics_kernels import (BLOCK_MISMATCH, COUNT_PREV_T_NS, COUNT_STEPS, EGO_ROW, FLOAT_TALLIES, INT_TALLIES,
                                  NON_FINITE_EGO, RECORDED, TALLY_MAX_JERK, TALLY_MAX_LAT, TALLY_SPEED_SUM,
                                  block_columns, record_tick)
from sim.road_departure import footprint_off_road, points_off_road
from sim.truth import ActorsTruth, EgoTruth

_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_IDS.flags.writeable = False  # shared empty contact set: nobody may write into it in place
_BROAD_PHASE_MARGIN_M = 1e-6  # keeps exactly touching corners (which count) inside the broad phase
BLOCK_TICKS = 512  # ticks evaluated together: amortises numpy's per-call cost over five seconds of 100 Hz


class MetricsRecorder:
    def __init__(self, road: Road, vehicle: VehicleParams, jerk_min_speed_mps: float = 0.5,
                 block_ticks: int = BLOCK_TICKS):
        if block_ticks < 1:
            raise ValueError(f"block_ticks must be >= 1, got {block_ticks}")
        self._road, self._vehicle = road, vehicle
        self._jerk_min_speed_mps = jerk_min_speed_mps
        self._block_ticks = block_ticks
        self._invalid_actor_samples = 0
        self._collisions = 0
        self._contact_ids = _NO_IDS  # actors touching the ego at the last evaluated tick
        self._min_ttc_s = math.inf
        self._min_gap_m = math.inf
        # The per-tick ego tallies, updated in place by record_tick (metrics_kernels' TALLY_* and
        # COUNT_* layouts): steps, speed sum, peak lateral acceleration and jerk, the previous tick.
        self._tallies = np.zeros(FLOAT_TALLIES)
        self._counts = np.zeros(INT_TALLIES, dtype=np.int64)
        self._s_start: float | None = None
        self._s_last = 0.0
        self._lane_sq_sum = 0.0
        self._max_off_road_m = 0.0
        self._off_road_ns = 0
        # The open block: its first ``_filled`` rows hold, per tick, the ego's row (metrics_kernels'
        # EGO_ROW: x, y, yaw, centre x, centre y, length, width, speed, and the interval since the
        # previous tick [ns]) and the actors' per-tick columns, side by side in one array (record_tick
        # writes a tick's row in one call); the per-run columns (ids and footprint sizes) are the
        # block's, held by reference.
        self._filled = 0
        self._ids: np.ndarray | None = None
        self._length: np.ndarray | None = None
        self._width: np.ndarray | None = None
        self._allocate_block(0)

    def update(self, ego: EgoTruth, actors: ActorsTruth) -> None:
        # The identity test first, inline (nearly every tick: see _same_actors), without the call.
        # A block is evaluated before the tick's checks: evaluating it earlier or later gives the same
        # metrics (the block size never shows in them), so a rejected tick changes nothing either way.
        same_columns = actors.ids is self._ids and actors.length_m is self._length and actors.width_m is self._width
        if not (same_columns or self._same_actors(actors)) or self._filled == self._block_ticks:
            self._flush()
            self._open_block(actors)
        # One compiled call (metrics_kernels.record_tick): the checks, the tallies and the block's rows.
        outcome = record_tick(ego.pose, ego.center_xy_m, ego.t_ns, ego.speed_mps, ego.accel_mps2, ego.yaw_rate_rps,
                              ego.length_m, ego.width_m, actors.xy_m, actors.yaw_rad, actors.speed_mps,
                              self._jerk_min_speed_mps, self._filled, self._block, self._tallies, self._counts)
        if outcome != RECORDED:
            if outcome == NON_FINITE_EGO:
                raise ValueError(f"non-finite ego truth at t_ns={ego.t_ns}")
            if outcome == BLOCK_MISMATCH:
                raise ValueError(f"actor columns of inconsistent lengths at t_ns={ego.t_ns}: ids {actors.ids.shape}, "
                                 f"xy {actors.xy_m.shape}, yaw {actors.yaw_rad.shape}, speed {actors.speed_mps.shape}")
            raise ValueError(f"metrics updates must move forward in time: {ego.t_ns} after "
                             f"{int(self._counts[COUNT_PREV_T_NS])}")
        # Actor samples are stored as they come: non-finite rows are found, counted and zeroed for
        # the whole block at once when it is evaluated (_flush), not with per-tick reductions.
        self._filled += 1

    # -- blocks ------------------------------------------------------------------------------------
    def _same_actors(self, actors: ActorsTruth) -> bool:
        """True if the actors are the open block's (same ids and footprints, in the same order).
        The world hands out the very same column objects while its active set is unchanged, so the
        identity test settles almost every tick."""
        ids = self._ids
        if ids is None:
            return False
        if actors.ids is ids and actors.length_m is self._length and actors.width_m is self._width:
            return True
        return (np.array_equal(actors.ids, ids) and np.array_equal(actors.length_m, self._length)
                and np.array_equal(actors.width_m, self._width))

    def _open_block(self, actors: ActorsTruth) -> None:
        n = len(actors)
        self._ids, self._length, self._width = actors.ids, actors.length_m, actors.width_m
        if self._block.shape[1] != block_columns(n):
            self._allocate_block(n)

    def _allocate_block(self, n: int) -> None:
        """A block for ``n`` actors (block_columns), and its parts as views: the ego rows (K, EGO_ROW),
        the actors' xy (K, N, 2), yaw (K, N) and speed (K, N)."""
        k = self._block_ticks
        self._block = block = np.empty((k, block_columns(n)))
        self._ego_rows = block[:, :EGO_ROW]
        self._xy = block[:, EGO_ROW:EGO_ROW + 2 * n].reshape(k, n, 2)  # splits the last axis: a view
        self._yaw = block[:, EGO_ROW + 2 * n:EGO_ROW + 3 * n]
        self._speed = block[:, EGO_ROW + 3 * n:]

    def _flush(self) -> None:
        """Evaluate the open block's ticks and empty it."""
        k = self._filled
        if not k:
            return
        ego = self._ego_rows[:k]  # (K, EGO_ROW): x, y, yaw, centre x, centre y, length, width, speed, dt_ns
        n = self._ids.shape[0]
        pts = np.empty((k, n + 2, 2))  # one projection for the ego's rear axle, its centre and every actor
        pts[:, 0] = ego[:, 0:2]
        pts[:, 1] = ego[:, 3:5]
        pts[:, 2:] = self._xy[:k]
        s, d = self._road.to_frenet(pts)
        ego_d_axle, ego_s, ego_d = d[:, 0], s[:, 1], d[:, 1]
        self._road_departure(ego, ego_s)
        road = self._road
        # Road.lane_center_d(Road.lane_of(d)), written out so that it stays elementwise float maths.
        lane = np.minimum(np.maximum(np.floor(ego_d_axle / road.lane_width_m + 0.5 * road.num_lanes), 0),
                          road.num_lanes - 1)
        lane_err = ego_d_axle - (lane - 0.5 * (road.num_lanes - 1)) * road.lane_width_m
        for e in lane_err.tolist():  # in tick order: the sum does not depend on the block size
            self._lane_sq_sum += e * e
        if self._s_start is None:
            self._s_start = float(ego_s[0])
        self._s_last = float(ego_s[-1])
        if n:
            valid = self._block_validity(k)
            self._contacts(ego, valid)
            self._gaps(ego, valid, s[:, 2:], d[:, 2:], ego_s, ego_d)
        else:
            self._contact_ids = _NO_IDS
        self._filled = 0

    def _road_departure(self, ego: np.ndarray, centre_s_m: np.ndarray) -> None:
        """The block's footprint departure (sim/road_departure.py): corners that look off the road
        from the centre's foot point are projected again from their nearest sample, which on the
        road (nearly every tick) costs nothing."""
        road = self._road
        tables = (road.s_m, road.xy_m, road.heading_rad, road.curvature_1pm, road.length_m, road.samples_per_m,
                  road.half_width_m)
        off_m, corners = footprint_off_road(ego, centre_s_m, *tables)
        looks_off = off_m > 0.0
        if not looks_off.any():
            return
        xy = corners[looks_off]
        off_m[looks_off] = np.minimum(off_m[looks_off],
                                      points_off_road(xy, road.s_m[road.nearest_sample(xy)], *tables))
        tick_m = off_m.max(axis=1)
        off = tick_m > 0.0
        if off.any():
            self._max_off_road_m = max(self._max_off_road_m, float(tick_m.max()))
            # Whole nanoseconds, exact in float64: the sum is exact in any order, whatever the block size.
            self._off_road_ns += int(ego[off, 8].sum())

    def _block_validity(self, k: int) -> np.ndarray:
        """(K, N) True where the actor's sample of that tick is finite. Non-finite samples are
        counted and their position, yaw and speed zeroed, so the block arithmetic raises no warnings
        on them (a finite block, nearly always, costs a few calls for the whole block)."""
        xy, yaw, speed = self._xy[:k], self._yaw[:k], self._speed[:k]
        finite = np.isfinite(xy).all(axis=2) & np.isfinite(yaw) & np.isfinite(speed)
        if not finite.all():
            invalid = ~finite
            self._invalid_actor_samples += int(invalid.sum())
            xy[invalid] = 0.0
            yaw[invalid] = 0.0
            speed[invalid] = 0.0
        return finite

    def _contacts(self, ego: np.ndarray, valid: np.ndarray) -> None:
        """Footprint overlaps of the block; a contact episode starts where an actor touches the ego
        and did not at the tick before."""
        k, ids = ego.shape[0], self._ids
        length, width = self._length, self._width
        centre = ego[:, 3:5]
        # Broad phase: two rectangles can only touch if their centres are within the sum of their
        # half-diagonals; only those few pairs get the exact separating-axis test.
        ego_radius = 0.5 * np.hypot(ego[:, 5], ego[:, 6])
        rel = self._xy[:k] - centre[:, None, :]
        reach = np.hypot(length, width) * 0.5 + (ego_radius[:, None] + _BROAD_PHASE_MARGIN_M)
        near_k, near_j = np.nonzero(((rel * rel).sum(axis=2) <= reach * reach) & valid)
        touching = np.zeros((k, ids.shape[0]), dtype=bool)
        if near_k.shape[0]:
            ego_boxes = box_corners_2d(centre[near_k], ego[near_k, 5], ego[near_k, 6], ego[near_k, 2])
            boxes = box_corners_2d(self._xy[near_k, near_j], length[near_j], width[near_j],
                                   self._yaw[near_k, near_j])
            touching[near_k, near_j] = boxes_overlap(ego_boxes, boxes)
        # Nearly always nobody touched the ego before the block: then no isin (a sort and a search).
        touching_before_block = (np.isin(ids, self._contact_ids) if self._contact_ids.shape[0]
                                 else np.zeros(ids.shape[0], dtype=bool))
        if not valid.all():
            # A non-finite sample says nothing about contact: it carries the last known state on,
            # so one bad sample inside a contact does not split it into two collisions.
            last_valid = np.where(valid, np.arange(k)[:, None], -1)
            np.maximum.accumulate(last_valid, axis=0, out=last_valid)
            carried = touching[np.maximum(last_valid, 0), np.arange(ids.shape[0])]
            touching = np.where(last_valid >= 0, carried, touching_before_block)
        before = np.empty_like(touching)
        before[0] = touching_before_block
        before[1:] = touching[:-1]
        self._collisions += int((touching & ~before).sum())
        self._contact_ids = ids[touching[-1]]

    def _gaps(self, ego: np.ndarray, valid: np.ndarray, s_a: np.ndarray, d_a: np.ndarray,
              ego_s: np.ndarray, ego_d: np.ndarray) -> None:
        """Bumper gaps and TTC to the actors ahead in the ego's corridor, over the block."""
        k = ego.shape[0]
        length, width = self._length, self._width
        ahead = valid & (s_a > ego_s[:, None]) & (np.abs(d_a - ego_d[:, None]) < 0.5 * (width + ego[:, 6:7]))
        rk, rj = np.nonzero(ahead)
        if not rk.shape[0]:
            return
        gap = np.maximum(s_a[rk, rj] - ego_s[rk] - 0.5 * (length[rj] + ego[rk, 5]), 0.0)
        yaw_a, speed_a = self._yaw[:k][rk, rj], self._speed[:k][rk, rj]
        ego_yaw = ego[rk, 2]
        # The actor's velocity along the ego's heading, product by product as v @ heading.
        closing = ego[rk, 7] - ((speed_a * np.cos(yaw_a)) * np.cos(ego_yaw)
                                + (speed_a * np.sin(yaw_a)) * np.sin(ego_yaw))
        self._min_gap_m = min(self._min_gap_m, float(gap.min()))
        approaching = closing > 0.0
        if approaching.any():
            self._min_ttc_s = min(self._min_ttc_s, float((gap[approaching] / closing[approaching]).min()))

    def summary(self) -> dict:
        self._flush()
        steps = int(self._counts[COUNT_STEPS])
        n = max(steps, 1)
        speed_sum, max_lat, max_jerk = self._tallies[[TALLY_SPEED_SUM, TALLY_MAX_LAT, TALLY_MAX_JERK]].tolist()
        return {
            "collisions": self._collisions,
            "min_ttc_s": None if math.isinf(self._min_ttc_s) else self._min_ttc_s,
            "min_distance_m": None if math.isinf(self._min_gap_m) else self._min_gap_m,
            "mean_speed_mps": speed_sum / n,
            "progress_m": 0.0 if self._s_start is None else self._s_last - self._s_start,
            "max_abs_jerk_mps3": max_jerk,
            "max_abs_lat_accel_mps2": max_lat,
            "lane_center_rmse_m": math.sqrt(self._lane_sq_sum / n),
            "max_off_road_m": self._max_off_road_m,
            "off_road_s": ns_to_s(self._off_road_ns),
            "steps": steps,
            "invalid_actor_samples": self._invalid_actor_samples,
        }
