"""Stack configuration: stage rates and budgets, and each stage's own config, in one frozen tree.

The defaults are the dataclass defaults; `rtdrive sim --config FILE` overrides any subset from TOML
(unknown keys, wrong types and out-of-range values are errors naming the file and the key).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from control.controller import ControllerConfig
from core.config import from_mapping, load_toml, rng
from fusion.tracker_state import TrackerConfig
from perception.camera_detector import CameraDetectorConfig
from perception.lidar_detector import LidarDetectorConfig
from planning.acc_planner import AccPlannerConfig
from planning.lattice import LatticeConfig
from safety.monitor import SafetyConfig

STAGES = ("fusion", "planning", "control", "safety")


def _default_budgets() -> dict[str, float]:
    return {"perception.oracle": 1.0, "perception.lidar": 40.0, "perception.camera": 40.0,
            "perception.radar": 5.0, "fusion": 5.0, "planning": 20.0, "control": 1.0, "safety": 1.0}


# The names a [budgets_ms] table may use: exactly those with a default. The perception stages are
# the perceived sensors' (camera, lidar, radar); perception.oracle runs no stage, but the defaults
# have always carried it and every recorded log's config holds it.
BUDGET_STAGES = tuple(_default_budgets())


@dataclass(frozen=True, slots=True)
class RatesHz:
    physics: float = field(default=100.0, metadata=rng(10.0, 1000.0))
    fusion: float = field(default=50.0, metadata=rng(1.0, 1000.0))
    planning: float = field(default=10.0, metadata=rng(1.0, 100.0))
    control: float = field(default=100.0, metadata=rng(10.0, 1000.0))
    safety: float = field(default=100.0, metadata=rng(10.0, 1000.0))


@dataclass(frozen=True, slots=True)
class LivenessConfig:
    max_missed_periods: float = field(default=3.0, metadata=rng(1.0, 100.0))
    control_input_timeout_s: float = field(default=0.1, metadata=rng(0.01, 5.0))
    exception_hold_s: float = field(default=1.0, metadata=rng(0.0, 60.0))


@dataclass(frozen=True, slots=True)
class PerceptionConfig:
    lidar: LidarDetectorConfig = field(default_factory=LidarDetectorConfig)
    camera: CameraDetectorConfig = field(default_factory=CameraDetectorConfig)


@dataclass(frozen=True, slots=True)
class StackConfig:
    rates_hz: RatesHz = field(default_factory=RatesHz)
    budgets_ms: dict[str, float] = field(default_factory=_default_budgets, metadata=rng(0.0, 10_000.0))
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    # "acc": lane keeping + adaptive cruise (the spine planner); "lattice": the anytime Frenet
    # lattice planner (lane changes, obstacle avoidance).
    planner_kind: str = field(default="lattice", metadata=rng(choices=("lattice", "acc")))
    planner: AccPlannerConfig = field(default_factory=AccPlannerConfig)
    lattice: LatticeConfig = field(default_factory=LatticeConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        for name in self.budgets_ms:
            if name not in BUDGET_STAGES:  # a typo ("perception.lidr") would leave the real budget at its default
                raise ValueError(f"budgets_ms.{name}: unknown stage; stages are {', '.join(BUDGET_STAGES)}")
        # A [budgets_ms] table names the budgets it changes: the other stages keep their defaults
        # (replacing the whole table gave every unnamed stage the 10 ms fallback: control's 1 ms
        # budget became 10 ms, the lidar's 40 ms too).
        object.__setattr__(self, "budgets_ms", {**_default_budgets(), **self.budgets_ms})
        # Fusion publishes the ego estimate once per period: a timeout no longer than that period
        # finds every estimate stale between two fusion runs and stops a healthy vehicle.
        fusion_period_s = 1.0 / self.rates_hz.fusion
        if not self.liveness.control_input_timeout_s > fusion_period_s:
            raise ValueError(f"liveness.control_input_timeout_s ({self.liveness.control_input_timeout_s:g} s) "
                             f"must be above the fusion period, 1 / rates_hz.fusion ({fusion_period_s:g} s)")
        # Control brakes on a plan older than its timeout: a planning period at or past it leaves
        # control planless at the end of every period (2 Hz against 0.3 s: 240 of 600 steps braked,
        # 10.7 m/s at 6 s instead of 18.9, with nothing reported).
        planning_period_s = 1.0 / self.rates_hz.planning
        if not planning_period_s < self.controller.plan_timeout_s:
            raise ValueError(f"controller.plan_timeout_s ({self.controller.plan_timeout_s:g} s) must be above "
                             f"the planning period, 1 / rates_hz.planning ({planning_period_s:g} s)")
        # The monitor flags a gap between its runs beyond the heartbeat timeout, and control treats a
        # /safety/status older than it as an emergency stop: a timeout shorter than the monitor's
        # own period would fire between two healthy runs.
        safety_period_s = 1.0 / self.rates_hz.safety
        if not self.safety.heartbeat_timeout_s >= safety_period_s:
            raise ValueError(f"safety.heartbeat_timeout_s ({self.safety.heartbeat_timeout_s:g} s) "
                             f"must be at least the monitor's period, 1 / rates_hz.safety ({safety_period_s:g} s)")

    def budget_ns(self, stage: str) -> int:
        return int(self.budgets_ms.get(stage, 10.0) * 1e6)


def stack_config_from(data: dict, source: str) -> StackConfig:
    return from_mapping(StackConfig, data, source)


def load_stack_config(path: str | Path) -> StackConfig:
    """A ``--config`` file; a relative ``model_path`` in it is relative to the file, not to the
    directory the command happens to run in."""
    return models_relative_to(load_toml(StackConfig, path), Path(path).parent)


def models_relative_to(cfg: StackConfig, base: Path) -> StackConfig:
    """``cfg`` with each relative detector ``model_path`` joined to ``base`` (absolute ones, as the
    defaults are, unchanged)."""
    lidar, camera = cfg.perception.lidar, cfg.perception.camera
    perception = replace(cfg.perception,
                         lidar=replace(lidar, model_path=str(base / lidar.model_path)),
                         camera=replace(camera, model_path=str(base / camera.model_path)))
    return replace(cfg, perception=perception)
