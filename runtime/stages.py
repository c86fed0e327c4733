"""The stage functions of one run, bound to their configs: the stack calls these, and a run swaps
implementations (oracle or network perception, spine or lattice planner) by building another bundle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from safety.monitor import SafetyConfig


@dataclass(frozen=True, slots=True)
class PerceptionStep:
    sensor: str  # the stage is named perception.<sensor>; it runs on each /sensors/<sensor> message
    init: Callable[[], Any]
    # (state, message, t_ns, ego or None) -> (state, detections | {topic suffix: detections} | None)
    step: Callable[..., tuple[Any, Any]]
    output_healthy: Callable[[Any], bool] = lambda state: True  # the detector's own health verdict


@dataclass(frozen=True, slots=True)
class StageSteps:
    perception: tuple[PerceptionStep, ...]
    fusion_init: Callable[[], Any]
    fusion_step: Callable[..., tuple[Any, Any]]  # (state, arrivals, t_ns) -> (state, FusionOutput)
    planner_init: Callable[[], Any]
    planner_step: Callable[..., tuple[Any, Any]]  # (state, ego, tracks, limits, road, t_ns) -> (state, plan)
    controller_init: Callable[[], Any]
    controller_step: Callable[..., tuple[Any, Any]]  # (state, plan, ego, t_ns) -> (state, command)
    safety_cfg: SafetyConfig
