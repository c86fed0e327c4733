"""Simulator benchmarks: one physics step of the world, one truth snapshot (what the closed loop
reads after every step: the ego's and the actors' ground truth) and one metrics update, per 10 ms tick.

Both run on `free_road` (the busiest built-in scenario, about 8 to 25 actors in range) after a 2 s
warm-up, so traffic has settled and lane changes are under way; the ego cruises on its lane.
"""
from __future__ import annotations

from core.clock import s_to_ns
from sim.metrics import MetricsRecorder
from sim.scenario import load_scenario
from sim.world import World

TICK_NS = s_to_ns(0.01)
WARMUP_S = 2.0
SCENARIO = "free_road"
METRICS_FRAMES = 500  # truth snapshots replayed by the metrics benchmark, then a fresh recorder


def _warm_world() -> World:
    world = World(load_scenario(SCENARIO), seed=0)
    for _ in range(int(round(WARMUP_S * 1e9 / TICK_NS))):
        world.step(0.0, 0.0, TICK_NS)
    return world


def make_world_step():
    world = _warm_world()

    def step() -> None:
        world.step(0.0, 0.0, TICK_NS)

    step.extra = {"actors": len(world.actors_truth())}
    return step


def make_world_truth():
    """Ego and actor truth after a step: the world steps outside the timed call, and each timed call
    reads a fresh step's truth (the world keeps one snapshot per step)."""
    world = _warm_world()

    def truth() -> None:
        world.t_ns += 1  # a new instant without stepping the physics: the snapshot is rebuilt
        world.ego_truth()
        world.actors_truth()

    truth.extra = {"actors": len(world.actors_truth())}
    return truth


def make_metrics_update():
    """Metrics over recorded truth: the world steps outside the timed call."""
    world = _warm_world()
    frames = []
    for _ in range(METRICS_FRAMES):
        world.step(0.0, 0.0, TICK_NS)
        frames.append((world.ego_truth(), world.actors_truth()))
    state = {"i": 0, "rec": MetricsRecorder(world.road, world.vehicle)}

    def update() -> None:
        i = state["i"]
        if i == METRICS_FRAMES:  # time must move forward: start over with a fresh recorder
            i, state["rec"] = 0, MetricsRecorder(world.road, world.vehicle)
        state["rec"].update(*frames[i])
        state["i"] = i + 1

    update.extra = {"actors": len(frames[0][1])}
    return update


BENCHMARKS = {"world_step": make_world_step, "world_truth": make_world_truth, "metrics_update": make_metrics_update}
