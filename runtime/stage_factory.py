"""Build the stage bundle of a run from the stack configuration."""
from __future__ import annotations

from functools import partial

from control.controller import ControllerState, control_step
from core.vehicle import VehicleParams
from fusion.tracker import tracker_predict, tracker_step
from fusion.tracker_state import TrackerState
from planning.acc_planner import AccPlannerState, acc_plan_step
from runtime.stack_config import StackConfig
from runtime.stages import StageSteps


def build_steps(cfg: StackConfig, vehicle: VehicleParams) -> StageSteps:
    tracker_cfg, planner_cfg, controller_cfg = cfg.tracker, cfg.planner, cfg.controller

    def planner_step(state, ego, tracks, limits, road, t_ns):
        return acc_plan_step(state, ego, tracks, limits, road, t_ns, planner_cfg)

    def controller_step(state, plan, ego, t_ns):
        return control_step(state, plan, ego, t_ns, vehicle, controller_cfg)

    return StageSteps(
        tracker_init=TrackerState.empty,
        tracker_step=partial(tracker_step, cfg=tracker_cfg),
        tracker_predict=partial(tracker_predict, cfg=tracker_cfg),
        planner_init=AccPlannerState,
        planner_step=planner_step,
        controller_init=ControllerState,
        controller_step=controller_step,
        safety_cfg=cfg.safety,
    )

