"""Configuration and state of the anytime Frenet lattice planner (planning/lattice.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.config import rng
from core.messages import Plan
from core.records import fast_frozen_init
from planning.acc_planner import AccPlannerConfig
from planning.lattice_tables import LatticeTables
from planning.prediction import PredictionParams


@dataclass(frozen=True, slots=True)
class LatticeConfig:
    acc: AccPlannerConfig = field(default_factory=AccPlannerConfig)  # horizon, step, ACC references
    prediction: PredictionParams = field(default_factory=PredictionParams)
    horizons_s: tuple[float, ...] = (2.0, 2.75, 3.5, 4.25, 5.0)
    lateral_offsets_m: tuple[float, ...] = (0.0,)  # around each reachable lane centre
    num_accel_levels: int = field(default=25, metadata=rng(2, 200))
    min_accel_level_mps2: float = field(default=-8.0, metadata=rng(-12.0, 0.0))
    max_accel_level_mps2: float = field(default=2.0, metadata=rng(0.0, 5.0))
    max_accel_mps2: float = field(default=3.0, metadata=rng(0.1, 10.0))
    max_decel_mps2: float = field(default=8.0, metadata=rng(0.1, 12.0))
    max_jerk_mps3: float = field(default=15.0, metadata=rng(0.5, 100.0))
    # Beyond these a candidate is an emergency manoeuvre: allowed, flagged, and chosen only when no
    # comfortable candidate is free (emergency_cost dominates every comfort term).
    comfort_jerk_mps3: float = field(default=3.0, metadata=rng(0.5, 100.0))
    emergency_cost: float = field(default=1.0e4, metadata=rng(0.0, 1.0e9))
    max_lat_accel_mps2: float = field(default=3.5, metadata=rng(0.5, 10.0))
    max_curvature_1pm: float = field(default=0.2, metadata=rng(0.01, 1.0))
    ego_length_m: float = field(default=4.6, metadata=rng(1.0, 20.0))
    ego_width_m: float = field(default=1.9, metadata=rng(0.5, 3.5))
    rear_axle_to_center_m: float = field(default=1.4, metadata=rng(0.0, 10.0))
    inflation_sigmas: float = field(default=1.0, metadata=rng(0.0, 5.0))
    lat_margin_m: float = field(default=0.2, metadata=rng(0.0, 2.0))
    lon_margin_m: float = field(default=1.0, metadata=rng(0.0, 10.0))
    # Low-pass weight of a new finite-difference acceleration per track. Lower than the ACC planner's
    # lead_accel_smoothing: the lattice keeps the estimate for every track from first sight, and a
    # track's speed noise differenced at the plan rate (~3 m/s^2 per step) otherwise reads as a car
    # braking beyond the prediction's threshold just as it cuts in, forcing an emergency plan.
    track_accel_smoothing: float = field(default=0.2, metadata=rng(0.01, 1.0))
    # A lane-change candidate must keep the RSS safe distance to every object ahead that it still
    # overlaps laterally (the lead it leaves, the one it joins): a lead that brakes hard mid-change
    # must not find the ego accelerating at it half a lane away. Reaction covers perception and
    # actuator lag; the ego's braking stays below max_decel_mps2, the object's is a hard stop.
    rss_reaction_s: float = field(default=0.5, metadata=rng(0.0, 5.0))
    rss_ego_brake_mps2: float = field(default=6.0, metadata=rng(0.5, 12.0))
    rss_object_brake_mps2: float = field(default=8.0, metadata=rng(0.5, 12.0))
    w_lat_jerk: float = field(default=0.05, metadata=rng(0.0, 100.0))
    w_lon_jerk: float = field(default=0.02, metadata=rng(0.0, 100.0))
    w_lat_dev: float = field(default=0.05, metadata=rng(0.0, 100.0))  # d(t) away from its target
    w_offset: float = field(default=1.0, metadata=rng(0.0, 100.0))  # target off the lane centre
    w_speed: float = field(default=1.0, metadata=rng(0.0, 100.0))  # speed vs the lane's ACC profile
    w_progress: float = field(default=0.1, metadata=rng(0.0, 100.0))  # lane slower than desired
    lane_change_cost: float = field(default=15.0, metadata=rng(0.0, 1000.0))
    w_consistency: float = field(default=0.5, metadata=rng(0.0, 100.0))  # lateral, vs previous plan
    w_proximity: float = field(default=2.0, metadata=rng(0.0, 1000.0))
    reference_step_s: float = field(default=0.25, metadata=rng(0.01, 1.0))  # lane ACC roll-outs
    batch_size: int = field(default=64, metadata=rng(1, 100000))  # the largest batch
    # Batches start this small and double up to batch_size: the best candidate is usually among the
    # first few by bound, and a short first batch then ends the search at a fraction of the work,
    # while a hard scene still reaches full batches after a few doublings.
    first_batch_size: int = field(default=8, metadata=rng(1, 100000))
    budget_ns: int = field(default=2_000_000, metadata=rng(1, 10_000_000_000))
    # No lane change starts below this speed (one under way carries on): at walking pace the search
    # does not check path curvature (batch_terms: lateral motion there is the controller's
    # business), so it cannot tell a lane change the car can steer from a sideways slide it cannot.
    lane_change_min_speed_mps: float = field(default=2.0, metadata=rng(0.0, 50.0))

    def __post_init__(self) -> None:
        if not self.horizons_s or min(self.horizons_s) <= 0.0 or max(self.horizons_s) > self.acc.horizon_s:
            raise ValueError(f"horizons_s must be non-empty, in (0, acc.horizon_s = {self.acc.horizon_s}]")
        if not self.lateral_offsets_m or max(abs(o) for o in self.lateral_offsets_m) > 2.0:
            raise ValueError("lateral_offsets_m must be non-empty, each within [-2, 2] m of the lane centre")


@fast_frozen_init  # built every plan (core/records.py)
@dataclass(frozen=True, slots=True)
class LatticeState:
    last_plan: Plan | None = None
    last_d_m: np.ndarray = field(default_factory=lambda: np.zeros(0))  # Frenet d of the last plan
    last_dd_mps2: np.ndarray = field(default_factory=lambda: np.zeros(0))  # and its d acceleration
    target_lane: int = -1  # lane of the last plan's lateral target: a started lane change is kept
    tables: LatticeTables | None = None  # per-config constants, built on the first step
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # memory for rates
    track_yaws: np.ndarray = field(default_factory=lambda: np.zeros(0))
    track_vs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # FrenetTracks.s_rate_mps [m/s of s]
    track_accel: np.ndarray = field(default_factory=lambda: np.zeros(0))  # its rate [m/s^2 of s]
    track_t_ns: int = -1
    ignored_tracks: int = 0
    dropped_tracks: int = 0  # valid tracks beyond the MAX_OBJECTS nearest
    stale_egos: int = 0
    rejected_egos: int = 0
    deadline_hits: int = 0
    infeasible: int = 0
    evaluated: int = 0  # candidates fully evaluated in the last step

    def counters(self) -> dict[str, int]:
        """The cumulative counters a run report shows (``evaluated`` is the last step's, not a count
        over the run): steps with no feasible candidate, searches cut by the deadline, egos refused
        as stale or non-finite, tracks ignored as non-finite or dropped beyond the nearest."""
        return {"infeasible": self.infeasible, "deadline_hits": self.deadline_hits, "stale_egos": self.stale_egos,
                "rejected_egos": self.rejected_egos, "ignored_tracks": self.ignored_tracks,
                "dropped_tracks": self.dropped_tracks}
