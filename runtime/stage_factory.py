"""Build the stage bundle of a run from the stack configuration and the run's input streams."""
from __future__ import annotations

from functools import partial

from control.controller import ControllerState, control_step
from core.vehicle import VehicleParams
from fusion.ego_ekf import EgoFilterState
from fusion.pipeline import FusionConfig, FusionState, fusion_step
from fusion.sync import StreamConfig, SyncConfig
from planning.acc_planner import AccPlannerState, acc_plan_step
from runtime.stack_config import StackConfig
from runtime.stages import PerceptionStep, StageSteps


def build_steps(cfg: StackConfig, vehicle: VehicleParams, sync_streams: dict[str, StreamConfig],
                perception: tuple[PerceptionStep, ...] = (),
                ego_prior: EgoFilterState | None = None) -> StageSteps:
    """``sync_streams``: every stream fusion takes (ego sensors, perception outputs, oracle), with
    its latency window and clock offset, as the runtime derives them from the sensor setup.
    ``ego_prior``: the start-up localisation the ego EKF begins from (None: the first GNSS fix)."""
    fusion_cfg = FusionConfig(sync=SyncConfig(streams=dict(sync_streams)), tracker=cfg.tracker)
    planner_cfg, controller_cfg = cfg.planner, cfg.controller

    def planner_step(state, ego, tracks, limits, road, t_ns):
        return acc_plan_step(state, ego, tracks, limits, road, t_ns, planner_cfg)

    def controller_step(state, plan, ego, t_ns):
        return control_step(state, plan, ego, t_ns, vehicle, controller_cfg)

    return StageSteps(
        perception=perception,
        fusion_init=(FusionState if ego_prior is None else partial(FusionState, ego_filter=ego_prior)),
        fusion_step=partial(fusion_step, cfg=fusion_cfg),
        planner_init=AccPlannerState,
        planner_step=planner_step,
        controller_init=ControllerState,
        controller_step=controller_step,
        safety_cfg=cfg.safety,
    )
