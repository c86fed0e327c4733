"""Scenario configuration: road, ego, traffic, scripted actors, oracle sensor and fault specs.

Every table is a frozen dataclass read with core.config, so an unknown key, a wrong type or an
out-of-range value names the file and the dotted key. Built-in scenarios live in sim/scenarios/.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.config import ConfigError, load_toml, rng
from core.road import Road, RoadSegment
from core.vehicle import VehicleParams
from sim.sensors.config import SensorRigConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
ACTOR_KINDS = ("cut_in", "hard_brake", "stopped", "vehicle")
ACTOR_LABELS = ("vehicle", "pedestrian")


@dataclass(frozen=True, slots=True)
class SegmentConfig:
    length_m: float = field(default=1000.0, metadata=rng(1.0, 100_000.0))
    curvature_1pm: float = field(default=0.0, metadata=rng(-0.1, 0.1))  # > 0 turns left; |R| >= 10 m


@dataclass(frozen=True, slots=True)
class RoadConfig:
    segments: tuple[SegmentConfig, ...] = (SegmentConfig(),)
    num_lanes: int = field(default=3, metadata=rng(1, 6))
    lane_width_m: float = field(default=3.5, metadata=rng(2.5, 5.0))
    speed_limit_mps: float = field(default=25.0, metadata=rng(1.0, 60.0))

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("segments: a road needs at least one segment")
        half_width = 0.5 * self.num_lanes * self.lane_width_m
        for i, seg in enumerate(self.segments):
            # The road's inner edge must stay outside the bend's centre: at |k| half_width >= 1 the
            # inner lanes would pass through it (their length, 1 - k d per metre, vanishes).
            if abs(seg.curvature_1pm) * half_width >= 1.0:
                raise ValueError(
                    f"segments[{i}].curvature_1pm: a radius of {1.0 / abs(seg.curvature_1pm):g} m is within the "
                    f"road's half width of {half_width:g} m ({self.num_lanes} lanes of {self.lane_width_m:g} m); "
                    f"allowed |curvature_1pm| < {1.0 / half_width:.4g}")

    @property
    def length_m(self) -> float:
        return float(sum(seg.length_m for seg in self.segments))


@dataclass(frozen=True, slots=True)
class EgoConfig:
    lane: int = field(default=1, metadata=rng(0, 5))
    s_m: float = field(default=50.0, metadata=rng(0.0, 100_000.0))  # rear axle along the road
    speed_mps: float = field(default=20.0, metadata=rng(0.0, 60.0))
    vehicle: VehicleParams = field(default_factory=VehicleParams)


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    vehicles_per_km_per_lane: float = field(default=6.0, metadata=rng(0.0, 120.0))
    # Traffic is spawned in [ego s - spawn_behind_m, ego s + spawn_ahead_m]: far vehicles never meet
    # the ego inside a scenario and would only cost simulation time.
    spawn_behind_m: float = field(default=150.0, metadata=rng(0.0, 10_000.0))
    spawn_ahead_m: float = field(default=600.0, metadata=rng(0.0, 10_000.0))
    clear_behind_m: float = field(default=30.0, metadata=rng(0.0, 10_000.0))  # ego lane kept empty
    clear_ahead_m: float = field(default=60.0, metadata=rng(0.0, 10_000.0))
    desired_speed_mean_rel: float = field(default=1.0, metadata=rng(0.1, 2.0))  # x speed limit
    desired_speed_std_rel: float = field(default=0.08, metadata=rng(0.0, 0.5))
    length_m: float = field(default=4.6, metadata=rng(1.0, 20.0))
    width_m: float = field(default=1.85, metadata=rng(0.5, 3.5))
    height_m: float = field(default=1.5, metadata=rng(0.5, 5.0))
    idm_accel_mps2: float = field(default=1.5, metadata=rng(0.1, 10.0))  # a
    idm_decel_mps2: float = field(default=2.0, metadata=rng(0.1, 10.0))  # b, comfortable
    idm_time_gap_s: float = field(default=1.5, metadata=rng(0.1, 5.0))  # T
    idm_min_gap_m: float = field(default=2.0, metadata=rng(0.0, 20.0))  # s0
    idm_delta: float = field(default=4.0, metadata=rng(1.0, 10.0))
    max_decel_mps2: float = field(default=9.0, metadata=rng(1.0, 15.0))  # physical braking limit
    mobil_politeness: float = field(default=0.3, metadata=rng(0.0, 2.0))
    mobil_threshold_mps2: float = field(default=0.2, metadata=rng(0.0, 5.0))
    mobil_safe_decel_mps2: float = field(default=4.0, metadata=rng(0.1, 15.0))  # b_safe
    mobil_period_s: float = field(default=0.5, metadata=rng(0.01, 10.0))  # decision interval
    lane_change_duration_s: float = field(default=3.0, metadata=rng(0.5, 15.0))


@dataclass(frozen=True, slots=True)
class ActorConfig:
    kind: str = field(default="vehicle", metadata=rng(choices=ACTOR_KINDS))
    lane: int = field(default=1, metadata=rng(0, 5))
    s_m: float = field(default=100.0, metadata=rng(0.0, 100_000.0))  # box centre along the road
    speed_mps: float = field(default=20.0, metadata=rng(0.0, 60.0))  # initial and desired speed
    trigger_t_s: float = field(default=0.0, metadata=rng(0.0, 3600.0))
    target_lane: int | None = field(default=None, metadata=rng(0, 5))  # cut_in only
    decel_mps2: float = field(default=6.0, metadata=rng(0.1, 12.0))  # hard_brake only
    lane_change_duration_s: float = field(default=2.5, metadata=rng(0.5, 15.0))  # cut_in only
    # cut_in only: from trigger_t_s on, the cut-in waits until the ego's time to close the bumper gap
    # to the actor (gap / closing speed, the actor ahead) has fallen to this, as cut-in tests are
    # specified (Euro NCAP): how hard the cut-in is then does not depend on what the seeded traffic
    # did to the actor's speed. None: at trigger_t_s, wherever the ego is.
    trigger_ttc_s: float | None = field(default=None, metadata=rng(0.0, 100.0))
    length_m: float = field(default=4.6, metadata=rng(0.2, 20.0))
    width_m: float = field(default=1.9, metadata=rng(0.2, 3.5))
    height_m: float = field(default=1.5, metadata=rng(0.2, 5.0))
    label: str = field(default="vehicle", metadata=rng(choices=ACTOR_LABELS))

    def __post_init__(self) -> None:
        if self.kind == "cut_in" and (self.target_lane is None or self.target_lane == self.lane):
            raise ValueError("target_lane: a cut_in actor needs a target_lane different from its lane")
        if self.trigger_ttc_s is not None and self.kind != "cut_in":
            raise ValueError("trigger_ttc_s: only a cut_in actor waits for a time to collision")


@dataclass(frozen=True, slots=True)
class OracleConfig:
    rate_hz: float = field(default=10.0, metadata=rng(0.1, 1000.0))
    range_m: float = field(default=200.0, metadata=rng(1.0, 2000.0))
    position_sigma_m: float = field(default=0.1, metadata=rng(0.0, 10.0))
    velocity_sigma_mps: float = field(default=0.2, metadata=rng(0.0, 10.0))
    yaw_sigma_rad: float = field(default=0.01, metadata=rng(0.0, 3.2))
    dropout_prob: float = field(default=0.0, metadata=rng(0.0, 1.0))
    ego_position_sigma_m: float = field(default=0.05, metadata=rng(0.0, 10.0))
    ego_yaw_sigma_rad: float = field(default=0.002, metadata=rng(0.0, 3.2))
    ego_speed_sigma_mps: float = field(default=0.05, metadata=rng(0.0, 10.0))
    ego_yaw_rate_sigma_rps: float = field(default=0.002, metadata=rng(0.0, 10.0))
    ego_accel_sigma_mps2: float = field(default=0.05, metadata=rng(0.0, 10.0))


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    name: str
    description: str = ""
    duration_s: float = field(default=25.0, metadata=rng(0.1, 3600.0))
    road: RoadConfig = field(default_factory=RoadConfig)
    ego: EgoConfig = field(default_factory=EgoConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    actors: tuple[ActorConfig, ...] = ()
    oracle: OracleConfig = field(default_factory=OracleConfig)
    sensors: SensorRigConfig = field(default_factory=SensorRigConfig)  # used when the sensors are on
    faults: tuple[str, ...] = ()  # e.g. "lidar:dropout@5"; parsed by the fault injector, not here

    def __post_init__(self) -> None:
        # Cross-table checks: the message names the key that is wrong.
        lanes, length = self.road.num_lanes, self.road.length_m
        if self.ego.lane >= lanes:
            raise ValueError(f"ego.lane: {self.ego.lane} is not a lane of a {lanes}-lane road")
        if self.ego.s_m >= length:
            raise ValueError(f"ego.s_m: {self.ego.s_m} is beyond the road end at {length} m")
        for i, actor in enumerate(self.actors):
            if actor.lane >= lanes:
                raise ValueError(f"actors[{i}].lane: {actor.lane} is not a lane of a {lanes}-lane road")
            if actor.target_lane is not None and actor.target_lane >= lanes:
                raise ValueError(f"actors[{i}].target_lane: {actor.target_lane} is not a lane of a "
                                 f"{lanes}-lane road")
            if actor.s_m >= length:
                raise ValueError(f"actors[{i}].s_m: {actor.s_m} is beyond the road end at {length} m")
        # Nothing may start inside anything else: a run would begin with a collision. Boxes along
        # the road, per start lane (the ego's s_m is its rear axle, an actor's its box centre).
        vehicle = self.ego.vehicle
        boxes = [("the ego", self.ego.lane, self.ego.s_m + vehicle.rear_axle_to_center_m, vehicle.length_m)]
        boxes += [(f"actors[{i}]", a.lane, a.s_m, a.length_m) for i, a in enumerate(self.actors)]
        for name, _, centre, box_len in boxes:
            # A box reaching past either end starts partly off the map (the road end is a standing
            # obstacle for the planner, and actors leave the world there).
            if centre - 0.5 * box_len < 0.0 or centre + 0.5 * box_len > length:
                raise ValueError(f"{name}.s_m: its {box_len:g} m box (centre at {centre:g} m) reaches past the "
                                 f"road, which runs from 0 to {length:g} m")
        for j, (name, lane, centre, box_len) in enumerate(boxes[1:], start=1):
            for other, other_lane, other_centre, other_len in boxes[:j]:
                apart, need = abs(centre - other_centre), 0.5 * (box_len + other_len)
                if lane == other_lane and apart < need:
                    raise ValueError(f"{name}.s_m: starts overlapping {other} in lane {lane} "
                                     f"(centres {apart:g} m apart; at least {need:g} m needed)")


def build_road(cfg: RoadConfig) -> Road:
    segments = tuple(RoadSegment(seg.length_m, seg.curvature_1pm) for seg in cfg.segments)
    return Road(segments, cfg.num_lanes, cfg.lane_width_m, cfg.speed_limit_mps)


def _builtin_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def find_scenario(name_or_path: str | Path) -> Path:
    """A built-in scenario name (sim/scenarios/NAME.toml) or a path to a TOML file."""
    text = str(name_or_path)
    builtin = SCENARIO_DIR / f"{text}.toml"
    if "/" not in text and "\\" not in text and not text.endswith(".toml") and builtin.is_file():
        return builtin
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise ConfigError("", "scenario", f"{text!r} is neither a built-in scenario ({', '.join(_builtin_names())}) "
                      "nor a TOML file")


def load_scenario(name_or_path: str | Path) -> ScenarioConfig:
    return load_toml(ScenarioConfig, find_scenario(name_or_path))


def list_scenarios() -> list[tuple[str, str]]:
    """(name, description) of every built-in scenario, sorted by name."""
    return [(name, load_scenario(name).description) for name in _builtin_names()]
