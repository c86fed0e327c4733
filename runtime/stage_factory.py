"""Build the stage bundle of a run from the stack configuration and the run's input streams."""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Callable

from control.controller import ControllerState, control_step
from core.vehicle import VehicleParams
from fusion.ego_ekf import EgoFilterState
from fusion.sensor_models import CameraModel, RadarModel
from fusion.pipeline import FusionConfig, FusionState, fusion_step
from fusion.sync import StreamConfig, SyncConfig
from planning.acc_planner import AccPlannerState, acc_plan_step
from planning.lattice import LatticeState, lattice_plan_step
from runtime.stack_config import StackConfig
from runtime.stages import PerceptionStep, StageSteps


def build_steps(cfg: StackConfig, vehicle: VehicleParams, sync_streams: dict[str, StreamConfig],
                perception: tuple[PerceptionStep, ...] = (),
                ego_prior: EgoFilterState | None = None,
                planner_timer: Callable[[], int] = lambda: 0,
                camera: CameraModel | None = None, radar: RadarModel | None = None) -> StageSteps:
    """``sync_streams``: every stream fusion takes (ego sensors, perception outputs, oracle), with
    its latency window and clock offset, as the runtime derives them from the sensor setup.
    ``ego_prior``: the start-up localisation the ego EKF begins from (None: the first GNSS fix).
    ``planner_timer``: the compute-time timer of the anytime planner's deadline. The default never
    advances, so the search always completes: outputs then depend on inputs alone, as ideal-mode
    runs and bit-exact replay require; latency and real-time runs pass the real timer."""
    fusion_cfg = FusionConfig(sync=SyncConfig(streams=dict(sync_streams)), tracker=cfg.tracker,
                              camera=camera, radar=radar)
    planner_cfg, controller_cfg = cfg.planner, cfg.controller
    # The lattice checks collisions with the ego's own footprint: take it from the vehicle.
    lattice_cfg = replace(cfg.lattice, ego_length_m=vehicle.length_m, ego_width_m=vehicle.width_m,
                          rear_axle_to_center_m=vehicle.rear_axle_to_center_m)

    if cfg.planner_kind == "lattice":
        planner_init = LatticeState

        def planner_step(state, ego, tracks, limits, road, t_ns):
            return lattice_plan_step(state, ego, tracks, limits, road, t_ns, lattice_cfg, planner_timer)
    else:
        planner_init = AccPlannerState

        def planner_step(state, ego, tracks, limits, road, t_ns):
            return acc_plan_step(state, ego, tracks, limits, road, t_ns, planner_cfg)

    def controller_step(state, plan, ego, t_ns):
        return control_step(state, plan, ego, t_ns, vehicle, controller_cfg)

    return StageSteps(
        perception=perception,
        fusion_init=(FusionState if ego_prior is None else partial(FusionState, ego_filter=ego_prior)),
        fusion_step=partial(fusion_step, cfg=fusion_cfg),
        planner_init=planner_init,
        planner_step=planner_step,
        controller_init=ControllerState,
        controller_step=controller_step,
        safety_cfg=cfg.safety,
    )
