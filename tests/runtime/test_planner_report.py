"""What the planner did reaches the run's JSON (a "planner" object) and its readable summary."""
import dataclasses
import json
from collections import Counter

import pytest

from core.messages import Plan
from planning.acc_planner import AccPlannerState
from planning.lattice_config import LatticeState
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.plan_tally import PlanTally, tally_plan
from runtime.stack_config import StackConfig
from runtime.summary import format_summary
from sim.scenario import load_scenario

LATTICE_COUNTERS = ("infeasible", "deadline_hits", "stale_egos", "rejected_egos", "ignored_tracks", "dropped_tracks")
ACC_COUNTERS = ("stale_egos", "rejected_egos", "ignored_tracks")


def _plan(behaviour: str, emergency: bool = False) -> Plan:
    return Plan(0, *([None] * 6), emergency=emergency, behaviour=behaviour)


def _run(scenario: str, duration_s: float, stack_cfg: StackConfig | None = None) -> tuple[dict, list[Plan], ClosedLoop]:
    loop = ClosedLoop(load_scenario(scenario), RunOptions(seed=0, duration_s=duration_s, perception="oracle"), stack_cfg)
    published: list[Plan] = []
    loop.scheduler.add_listener(lambda t, topic, msg: published.append(msg) if topic == "/planning/plan" else None)
    return json.loads(json.dumps(loop.run(), sort_keys=True)), published, loop  # what --json prints


@pytest.fixture(scope="module")
def lead_brake():
    # The lead brakes at t = 5 s: the ego's emergency plans follow within the next two seconds.
    return _run("lead_brake", 7.0)


def test_tally_counts_lane_change_starts_not_lane_change_plans():
    tally = PlanTally()
    for label in ("cruise", "lane_change_left", "lane_change_left", "follow", "lane_change_right"):
        tally = tally_plan(tally, _plan(label, emergency=label == "follow"))
    assert tally.plans == 5 and tally.emergency_plans == 1
    assert tally.lane_change_starts == 2
    assert tally.report()["behaviours"] == {"cruise": 1, "follow": 1, "lane_change_left": 2, "lane_change_right": 1}
    # A switch straight from one lane change to the other is no new start; a first plan may be one.
    tally = PlanTally()
    for label in ("lane_change_left", "lane_change_right", "cruise"):
        tally = tally_plan(tally, _plan(label))
    assert tally.lane_change_starts == 1


def test_lead_brake_report_matches_the_published_plans(lead_brake):
    s, published, loop = lead_brake
    p = s["planner"]
    labels = [plan.behaviour for plan in published]
    assert p["kind"] == "lattice"
    assert p["plans"] == len(published) == 71  # 10 Hz over [0, 7] s
    assert p["emergency_plans"] == sum(plan.emergency for plan in published)
    assert p["emergency_plans"] > 0 and all(plan.t_ns >= 5_000_000_000 for plan in published if plan.emergency)
    assert p["behaviours"] == dict(Counter(labels)) and list(p["behaviours"]) == sorted(p["behaviours"])
    assert p["lane_change_starts"] == sum(
        label.startswith("lane_change_") and (i == 0 or not labels[i - 1].startswith("lane_change_"))
        for i, label in enumerate(labels))
    assert p["counters"] == loop.stack.planner_state.counters()
    assert tuple(sorted(p["counters"])) == tuple(sorted(LATTICE_COUNTERS))


def test_the_table_has_one_planner_line(lead_brake):
    s, published, _ = lead_brake
    p = s["planner"]
    emergency = sum(plan.emergency for plan in published)
    lines = [line.strip() for line in format_summary(s).splitlines() if line.strip().startswith("planner:")]
    starts = p["lane_change_starts"]
    assert lines == [f"planner: {len(published)} plans ({emergency} emergency), "
                     f"{starts} lane change{'' if starts == 1 else 's'} started"]  # every counter zero here
    # Non-zero counters follow, each under its own name; zero ones stay out.
    s = dict(s, planner=dict(p, counters=dict(p["counters"], infeasible=2, deadline_hits=0, dropped_tracks=5)))
    line = next(line.strip() for line in format_summary(s).splitlines() if line.strip().startswith("planner:"))
    assert line.endswith("started; dropped_tracks 5, infeasible 2")


def test_the_acc_planner_reports_its_own_counters():
    s, published, loop = _run("cut_in", 1.0, dataclasses.replace(StackConfig(), planner_kind="acc"))
    p = s["planner"]
    assert p["kind"] == "acc" and p["plans"] == len(published) > 0
    assert isinstance(loop.stack.planner_state, AccPlannerState)
    assert tuple(sorted(p["counters"])) == tuple(sorted(ACC_COUNTERS))


@pytest.mark.parametrize("state_cls, names", [(LatticeState, LATTICE_COUNTERS), (AccPlannerState, ACC_COUNTERS)])
def test_every_planner_counter_is_reported_under_its_own_name(state_cls, names):
    # Each a different value, so no field can stand in for another.
    values = {name: k + 1 for k, name in enumerate(names)}
    assert state_cls(**values).counters() == values
