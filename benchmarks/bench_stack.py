"""Whole-stack benchmarks: one tick of the closed loop."""
from __future__ import annotations

from core.clock import s_to_ns
from runtime.closed_loop import ClosedLoop, RunOptions
from sim.scenario import load_scenario

TICK_NS = s_to_ns(0.01)  # one physics/control period
WARMUP_S = 1.0


def make_tick_oracle():
    """One 10 ms tick of the full stack with oracle perception on `free_road`: world step, sensors,
    safety and control every tick, fusion every other, planning every tenth (so the p99 holds the
    planning ticks)."""
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(seed=0, duration_s=3600.0))
    loop.advance_to(s_to_ns(WARMUP_S))
    state = {"t_ns": s_to_ns(WARMUP_S)}

    def tick() -> None:
        state["t_ns"] += TICK_NS
        loop.advance_to(state["t_ns"])

    return tick


BENCHMARKS = {"tick_oracle": make_tick_oracle}
