"""The stage functions of one run, bound to their configs: the stack calls these, and a run swaps
implementations (oracle or network perception, spine or lattice planner) by building another bundle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from safety.monitor import SafetyConfig


@dataclass(frozen=True, slots=True)
class StageSteps:
    tracker_init: Callable[[], Any]
    tracker_step: Callable[..., tuple[Any, Any]]  # (state, detections, ego, t_ns) -> (state, tracks)
    tracker_predict: Callable[..., Any]  # (state, t_ns) -> tracks
    planner_init: Callable[[], Any]
    planner_step: Callable[..., tuple[Any, Any]]  # (state, ego, tracks, limits, road, t_ns) -> (state, plan)
    controller_init: Callable[[], Any]
    controller_step: Callable[..., tuple[Any, Any]]  # (state, plan, ego, t_ns) -> (state, command)
    safety_cfg: SafetyConfig
