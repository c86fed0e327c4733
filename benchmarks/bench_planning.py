"""Planning and control micro-benchmarks.

``BENCHMARKS`` maps a name to a factory returning a zero-argument callable to time; ``rtdrive bench``
imports it. Run this file directly for median and p99 of each: ``python -m benchmarks.bench_planning``.
Setting: straight 3-lane road, ego at 25 m/s in the middle lane, 8 tracked vehicles around it,
5 s horizon at 0.1 s. Targets (p99): planner_375 2 ms, planner_2187 10 ms, control_step 0.3 ms.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from control import ControllerConfig, ControllerState, control_step
from core.messages import EgoState, ModeLimits, Tracks
from core.road import Road, RoadSegment
from core.vehicle import VehicleParams
from planning.lattice import LatticeConfig, LatticeState, lattice_plan_step


def _scene() -> tuple[Road, EgoState, Tracks]:
    road = Road((RoadSegment(2000.0),), num_lanes=3, lane_width_m=3.5, speed_limit_mps=30.0)
    ego = EgoState(0, np.array([200.0, 0.0, 0.0]), 25.0, 0.0, 0.0, np.eye(5))
    xy = np.array([[240.0, 0.0], [260.0, 3.5], [190.0, -3.5], [300.0, 0.0], [350.0, 3.5], [160.0, 0.0],
                   [400.0, -3.5], [230.0, -3.5]])
    vel = np.column_stack([np.array([20.0, 24.0, 26.0, 22.0, 27.0, 25.0, 21.0, 23.0]), np.zeros(8)])
    n = xy.shape[0]
    tracks = Tracks(0, np.arange(n, dtype=np.int64), np.hstack([xy, vel]), np.tile(np.eye(4), (n, 1, 1)),
                    np.zeros(n), np.tile([4.6, 1.9, 1.5], (n, 1)), np.zeros(n, np.int16), np.ones(n))
    return road, ego, tracks


def _planner(cfg: LatticeConfig) -> Callable[[], object]:
    road, ego, tracks = _scene()
    limits = ModeLimits()
    # A warm state (previous plan, track memories) as in steady operation.
    state, _ = lattice_plan_step(LatticeState(), ego, tracks, limits, road, 0, cfg, time.perf_counter_ns)
    # An unlimited budget: the benchmark measures the full search, not the deadline.
    return lambda: lattice_plan_step(state, ego, tracks, limits, road, 0, cfg, lambda: 0)


def make_planner_375() -> Callable[[], object]:
    # 3 lanes x 1 offset x 25 speed levels x 5 horizons.
    return _planner(LatticeConfig(num_accel_levels=25, horizons_s=(2.0, 2.75, 3.5, 4.25, 5.0),
                                  lateral_offsets_m=(0.0,), budget_ns=10**12))


def make_planner_2187() -> Callable[[], object]:
    # 3 lanes x 3 offsets x 27 speed levels x 9 horizons.
    return _planner(LatticeConfig(num_accel_levels=27, horizons_s=tuple(np.linspace(1.0, 5.0, 9)),
                                  lateral_offsets_m=(-0.5, 0.0, 0.5), budget_ns=10**12))


def make_control_step() -> Callable[[], object]:
    road, ego, tracks = _scene()
    cfg = LatticeConfig()
    _, plan = lattice_plan_step(LatticeState(), ego, tracks, ModeLimits(), road, 0, cfg, lambda: 0)
    state, vehicle, ccfg = ControllerState(), VehicleParams(), ControllerConfig()
    ego_c = EgoState(50_000_000, np.array([201.2, 0.1, 0.01]), 25.0, 0.0, 0.0, np.eye(5))
    state, _ = control_step(state, plan, ego_c, 40_000_000, vehicle, ccfg)
    return lambda: control_step(state, plan, ego_c, 50_000_000, vehicle, ccfg)


BENCHMARKS: dict[str, Callable[[], Callable[[], object]]] = {
    "planner_375": make_planner_375,
    "planner_2187": make_planner_2187,
    "control_step": make_control_step,
}


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and p99 in milliseconds over ``runs`` calls after a short warm-up."""
    for _ in range(min(20, runs)):
        fn()
    samples = np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - t0
    return float(np.median(samples)) * 1e-6, float(np.percentile(samples, 99)) * 1e-6


def main() -> None:
    for name, make in BENCHMARKS.items():
        runs = 2000 if name == "control_step" else 300
        med, p99 = measure(make(), runs)
        print(f"{name:14s} median {med:7.3f} ms   p99 {p99:7.3f} ms   ({runs} runs)")


if __name__ == "__main__":
    main()
