"""Traffic: IDM car following and MOBIL lane changes, vectorised over all vehicles.

Vehicles live in Frenet coordinates (s along the road, d to its left) as a struct of arrays. A
vehicle occupies every lane its footprint touches, so a car halfway through a lane change blocks
both lanes, and the ego (appended as the last row by the world) is a vehicle like any other for
the cars around it. Neighbour search is an all-pairs comparison: with tens of vehicles an (M, M)
boolean mask is far cheaper in numpy than any sorted per-lane bookkeeping in Python.

References: Treiber, Hennecke, Helbing, "Congested traffic states..." (IDM, 2000); Kesting, Treiber,
Helbing, "General lane-changing model MOBIL for car-following models" (2007).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core.road import Road
from sim.scenario import TrafficConfig
from sim.traffic_kernels import (IDM_ACCEL, IDM_MAX_DECEL, IDM_MIN_GAP, IDM_TERMS, IDM_TIME_GAP, IDM_TWO_SQRT_AB, ROW_A,
                                 ROW_D, ROW_LC_T0, ROW_S, ROW_V, along_heading, integrate_rows, mobil_lanes)


@dataclass(frozen=True, slots=True)
class IdmParams:
    accel_mps2: float  # a
    decel_mps2: float  # b
    time_gap_s: float  # T
    min_gap_m: float  # s0
    delta: float
    max_decel_mps2: float  # IDM can demand any deceleration near a collision; tyres cannot

    @staticmethod
    def from_config(cfg: TrafficConfig) -> "IdmParams":
        return IdmParams(cfg.idm_accel_mps2, cfg.idm_decel_mps2, cfg.idm_time_gap_s,
                         cfg.idm_min_gap_m, cfg.idm_delta, cfg.max_decel_mps2)


def idm_terms(p: IdmParams) -> np.ndarray:
    """The constants of traffic_kernels.follow_accel (its IDM_* slots), derived once per run with
    idm_accel's arithmetic (2 sqrt(a b) as it divides by it)."""
    terms = np.empty(IDM_TERMS)
    terms[IDM_ACCEL], terms[IDM_TWO_SQRT_AB] = p.accel_mps2, 2.0 * math.sqrt(p.accel_mps2 * p.decel_mps2)
    terms[IDM_TIME_GAP], terms[IDM_MIN_GAP], terms[IDM_MAX_DECEL] = p.time_gap_s, p.min_gap_m, p.max_decel_mps2
    return terms


@dataclass(frozen=True, slots=True)
class MobilParams:
    politeness: float
    threshold_mps2: float
    safe_decel_mps2: float

    @staticmethod
    def from_config(cfg: TrafficConfig) -> "MobilParams":
        return MobilParams(cfg.mobil_politeness, cfg.mobil_threshold_mps2, cfg.mobil_safe_decel_mps2)


def idm_accel(v_mps, v0_mps, gap_m, approach_mps, p: IdmParams) -> np.ndarray:
    """IDM: a [1 - (v/v0)^delta - (s*/s)^2], s* = s0 + max(0, vT + v dv / (2 sqrt(ab))).

    ``approach_mps`` is v - v_leader; a gap of +inf means a free road. Gaps at or below zero (an
    overlap) saturate at the physical braking limit instead of diverging.
    """
    # Augmented operations where the formula allows (they work in place on arrays and rebind on
    # scalars): this runs every physics step, and at tens of vehicles numpy's allocations cost as
    # much as the arithmetic. The order of operations is the formula's, so results are bit-identical.
    v = np.asarray(v_mps, dtype=np.float64)
    s_star = v * np.asarray(approach_mps)
    s_star /= 2.0 * math.sqrt(p.accel_mps2 * p.decel_mps2)
    s_star += v * p.time_gap_s
    s_star = np.maximum(s_star, 0.0)
    s_star += p.min_gap_m
    s_star = s_star / np.maximum(gap_m, 1e-3)  # not in place: the gap may broadcast wider
    s_star *= s_star  # now the interaction term (s*/s)^2
    acc = v / v0_mps
    acc **= p.delta
    acc = 1.0 - acc
    acc -= s_star
    acc *= p.accel_mps2
    return np.maximum(acc, -p.max_decel_mps2)


def lane_span(road: Road, d_m, width_m) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest lane index touched by each footprint (lane 0 = rightmost).

    Same rule as Road.lane_of, written with minimum/maximum: np.clip's overhead dominates at this
    size and this runs every physics step.
    """
    top = road.num_lanes - 1
    base = np.asarray(d_m) / road.lane_width_m + 0.5 * road.num_lanes
    half = 0.5 * np.asarray(width_m) / road.lane_width_m
    lo = np.minimum(np.maximum(np.floor(base - half), 0), top).astype(np.int64)
    hi = np.minimum(np.maximum(np.floor(base + half), 0), top).astype(np.int64)
    return lo, hi


def nearest(s_q, lo_q, hi_q, s, lo, hi, active):
    """For each query (s_q, lanes [lo_q, hi_q]) the nearest vehicle ahead and behind sharing a lane.

    Returns (lead_idx, lead_dist_m, follower_idx, follower_dist_m): centre distances along s, +inf
    (and an arbitrary index) where there is none. A query never finds a vehicle at its own s, so a
    vehicle is not its own neighbour.
    """
    ds = s[None, :] - s_q[:, None]
    share = (lo[None, :] <= hi_q[:, None]) & (hi[None, :] >= lo_q[:, None]) & active[None, :]
    ahead = np.where(share & (ds > 0.0), ds, np.inf)
    behind = np.where(share & (ds < 0.0), -ds, np.inf)
    rows = np.arange(s_q.shape[0])
    lead = ahead.argmin(axis=1)
    foll = behind.argmin(axis=1)
    return lead, ahead[rows, lead], foll, behind[rows, foll]


def signed_half_widths(road: Road, width_m: np.ndarray) -> np.ndarray:
    """(2, N) -/+ half footprint widths in lanes, the per-run constant of ``lane_span``."""
    half = 0.5 * np.asarray(width_m) / road.lane_width_m
    return np.stack([-half, half])


def follow_gap(dist_m, length_q, length_other):
    """Bumper-to-bumper gap from a centre distance (inf stays inf)."""
    return dist_m - 0.5 * (length_q + length_other)


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """Everything MOBIL needs about all M vehicles; the last row may be the ego."""

    s_m: np.ndarray
    v_mps: np.ndarray
    v0_mps: np.ndarray
    length_m: np.ndarray
    lane: np.ndarray  # current (or target) lane
    lo: np.ndarray  # lane span of the footprint
    hi: np.ndarray
    active: np.ndarray


def mobil_targets(nb: Neighbourhood, eligible: np.ndarray, num_lanes: int, idm: IdmParams,
                  mobil: MobilParams) -> np.ndarray:
    """Lane each eligible vehicle should change to, -1 to stay (MOBIL, one compiled call:
    traffic_kernels.mobil_lanes).

    Incentive: a_self_new - a_self + p (a_newfollower_new - a_newfollower + a_oldfollower_new -
    a_oldfollower) > threshold. Safety: the new follower brakes no harder than b_safe and both new
    gaps are positive. When both sides qualify the larger incentive wins.
    """
    free_term = nb.v_mps / nb.v0_mps
    free_term **= idm.delta  # numpy's power: the kernel's pow may differ in the last bit
    return mobil_lanes(nb.s_m, nb.v_mps, free_term, nb.length_m, nb.lane, nb.lo, nb.hi, nb.active, eligible,
                       num_lanes, idm_terms(idm), mobil.politeness, mobil.threshold_mps2, mobil.safe_decel_mps2)


def smoothstep5(tau):
    """Quintic 0 -> 1 with zero slope and curvature at both ends (no lateral jerk spike)."""
    return tau * tau * tau * (10.0 + tau * (-15.0 + 6.0 * tau))


def smoothstep5_rate(tau):
    return 30.0 * tau * tau * (1.0 - tau) ** 2


@dataclass(frozen=True, slots=True)
class Fleet:
    """Per-vehicle constants (traffic and scripted actors together), N rows."""

    ids: np.ndarray  # (N,) int64
    kind: np.ndarray  # (N,) int8, sim.actors.KIND_*
    v0_mps: np.ndarray  # desired speed (> 0)
    length_m: np.ndarray
    width_m: np.ndarray
    height_m: np.ndarray
    labels: np.ndarray  # int16
    trigger_t_s: np.ndarray  # inf for unscripted vehicles
    decel_mps2: np.ndarray
    target_lane: np.ndarray  # int64, -1 where unused
    lane_change_s: np.ndarray  # duration of this vehicle's lane changes
    trigger_ttc_s: np.ndarray  # the ego's time to collision a cut-in waits for; NaN: time only
    may_change: np.ndarray  # bool: MOBIL decides this vehicle's lane changes
    colors_bgr: np.ndarray  # (N, 3) uint8

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class TrafficState(NamedTuple):
    """The traffic's per-step state, N rows. A NamedTuple rather than a frozen dataclass: one is
    built every physics step, and a tuple's construction costs a quarter of the dataclass's
    per-field frozen setattr."""

    s_m: np.ndarray
    d_m: np.ndarray
    v_mps: np.ndarray  # speed along the lane
    a_mps2: np.ndarray
    lane: np.ndarray  # int64: lane followed, the target lane during a change
    lc_from_d_m: np.ndarray  # lateral offset where the current lane change started
    lc_t0_s: np.ndarray  # start of the current lane change, nan when none
    active: np.ndarray  # False once past the road end
    triggered: np.ndarray  # scripted behaviour started


def start_lane_changes(state: TrafficState, mask: np.ndarray, target_lane: np.ndarray,
                       t_s: float) -> TrafficState:
    if not mask.any():
        return state
    return state._replace(lane=np.where(mask, target_lane, state.lane),
                   lc_from_d_m=np.where(mask, state.d_m, state.lc_from_d_m),
                   lc_t0_s=np.where(mask, t_s, state.lc_t0_s))


def motion_along_heading(fleet: Fleet, state: TrafficState, road: Road, t_s: float,
                         rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """(lateral rate d' [m/s] of the lane-change profile at t_s, 0 when keeping the lane; speed
    along the heading, hypot(v, d') [m/s]) of the given rows, and whether anyone changes lanes:
    one compiled call (traffic_kernels.along_heading)."""
    return along_heading(state.v_mps, state.lc_t0_s, state.lane, state.lc_from_d_m, fleet.lane_change_s, rows,
                         road.lane_width_m, 0.5 * (road.num_lanes - 1), t_s)


def integrate(fleet: Fleet, state: TrafficState, accel_mps2: np.ndarray, road: Road, t_s: float,
              dt_s: float) -> TrafficState:
    """Advance from t_s to t_s + dt_s holding accel; speeds stop at zero, no reversing.

    Away from the reference line the lane is longer or shorter than the line, so the distance
    covered is stretched by 1 / (1 - kappa d); lane changes follow smoothstep5 from their start.
    Arrays that do not change (d and the lane-change starts off lane changes, the active set while
    nobody leaves) are passed on as the same objects. The arithmetic is one compiled call
    (traffic_kernels.integrate_rows).
    """
    rows, active1, any_leaving, any_changing = integrate_rows(
        state.s_m, state.d_m, state.v_mps, accel_mps2, state.active, state.lane, state.lc_from_d_m,
        state.lc_t0_s, fleet.lane_change_s, road.curvature_1pm, road.samples_per_m, road.is_straight, road.length_m,
        road.lane_width_m, 0.5 * (road.num_lanes - 1), t_s, dt_s)
    return integrated_state(state, rows, active1, any_leaving, any_changing)


def integrated_state(state: TrafficState, rows: np.ndarray, active1: np.ndarray, any_leaving: bool,
                     any_changing: bool) -> TrafficState:
    """The state after one step from ``state`` out of traffic_kernels.integrate_into's results
    (the ROW_* block, active', whether anyone left the road, whether a lane change runs)."""
    active = active1 if any_leaving else state.active
    # Rows by index, not by unpacking: unpacking iterates the array, which ends in a formatted IndexError.
    if any_changing:
        d1, lc_t0 = rows[ROW_D], rows[ROW_LC_T0]
    else:  # everyone sits on a lane centre: d does not move
        d1, lc_t0 = state.d_m, state.lc_t0_s
    return TrafficState(rows[ROW_S], d1, rows[ROW_V], rows[ROW_A], state.lane, state.lc_from_d_m, lc_t0, active,
                        state.triggered)


def spawn_positions(cfg: TrafficConfig, road: Road, ego_s_m: float, ego_lane: int,
                    keep_clear: list[tuple[int, float, float]], rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Traffic centres s, lanes and desired speeds from the seed.

    Per lane, spacings are a minimum (car plus standstill gap) plus an exponential, giving the
    configured mean density. The ego's lane around the ego and every (lane, s_lo, s_hi) in
    ``keep_clear`` stay empty. A fixed number of draws per lane keeps the random stream, and so the
    rest of the run, independent of which vehicles the filters remove.
    """
    empty = (np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))
    if cfg.vehicles_per_km_per_lane <= 0.0:
        return empty
    lo_s = max(ego_s_m - cfg.spawn_behind_m, 0.0)
    hi_s = min(ego_s_m + cfg.spawn_ahead_m, road.length_m - 2.0 * cfg.length_m)
    if hi_s <= lo_s:
        return empty
    mean = 1000.0 / cfg.vehicles_per_km_per_lane
    min_spacing = cfg.length_m + cfg.idm_min_gap_m + 4.0
    draws = int(math.ceil((hi_s - lo_s) / max(mean, min_spacing))) * 2 + 4
    s_all, lane_all = [], []
    for lane in range(road.num_lanes):  # at most six lanes, at start-up only
        offset = rng.uniform(0.0, max(mean, min_spacing))
        gaps = min_spacing + rng.exponential(max(mean - min_spacing, 1.0), draws)
        s = lo_s + offset + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
        s_all.append(s)
        lane_all.append(np.full(draws, lane, dtype=np.int64))
    s, lane = np.concatenate(s_all), np.concatenate(lane_all)
    std_draw = rng.standard_normal(s.shape[0])
    keep = s < hi_s
    zones = [(ego_lane, ego_s_m - cfg.clear_behind_m, ego_s_m + cfg.clear_ahead_m)] + list(keep_clear)
    for zone_lane, z_lo, z_hi in zones:
        keep &= ~((lane == zone_lane) & (s > z_lo - min_spacing) & (s < z_hi + min_spacing))
    rel = cfg.desired_speed_mean_rel + cfg.desired_speed_std_rel * std_draw
    v0 = np.maximum(np.clip(rel, 0.3, 2.0) * road.speed_limit_mps, 1.0)
    return s[keep], lane[keep], v0[keep]
