"""What the planner published over a run: a tally of the plans on /planning/plan, for the run's report.

Pure step: ``tally_plan(tally, plan) -> tally``. The closed loop feeds it from a scheduler listener,
so it sees exactly the plans delivered on the bus (a plan the stack dropped as non-finite was never
published) and the planner's own step is untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.messages import Plan

LANE_CHANGE_PREFIX = "lane_change_"  # the planners' lane-change labels: lane_change_left, lane_change_right


@dataclass(frozen=True, slots=True)
class PlanTally:
    plans: int = 0
    emergency_plans: int = 0  # plans flagged ``emergency``
    behaviours: tuple[tuple[str, int], ...] = ()  # (label, plans), sorted by label
    # Plans whose behaviour is a lane change where the previous plan's (or, for the first plan,
    # none) was not: a switch from one lane-change label straight to the other is no new start.
    lane_change_starts: int = 0
    last_behaviour: str = ""

    def report(self) -> dict:
        """The run report's figures (JSON-ready)."""
        return {"plans": self.plans, "emergency_plans": self.emergency_plans,
                "behaviours": dict(self.behaviours), "lane_change_starts": self.lane_change_starts}


def is_lane_change(behaviour: str) -> bool:
    return behaviour.startswith(LANE_CHANGE_PREFIX)


def tally_plan(tally: PlanTally, plan: Plan) -> PlanTally:
    label = plan.behaviour
    counts = dict(tally.behaviours)
    counts[label] = counts.get(label, 0) + 1
    starts = is_lane_change(label) and not is_lane_change(tally.last_behaviour)
    return PlanTally(plans=tally.plans + 1, emergency_plans=tally.emergency_plans + int(bool(plan.emergency)),
                     behaviours=tuple(sorted(counts.items())),
                     lane_change_starts=tally.lane_change_starts + int(starts), last_behaviour=label)
