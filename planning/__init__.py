"""Planning: trajectory planners producing core.messages.Plan from ego, tracks, road and limits."""
from planning.acc_planner import AccPlannerConfig, AccPlannerState, acc_plan_step

__all__ = ["AccPlannerConfig", "AccPlannerState", "acc_plan_step"]
