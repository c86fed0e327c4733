"""Closed-loop simulation: the sim world and its sensors feed the stack on one scheduler.

The world is a task of its own (highest priority, untimed: it is not a stage). At every physics
tick it advances under the latest delivered control command, feeds the metrics, and posts each
sensor message due at its arrival time, so sensor latency and stage latency are both in the loop.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from core.clock import SimulatedClock, Timer, ns_to_s, s_to_ns
from core.messages import ControlCommand, Mode
from runtime.scheduler import Scheduler, TaskSpec
from runtime.stack import PRIORITY, DrivingStack
from runtime.stack_config import StackConfig
from runtime.stage_factory import build_steps
from runtime.summary import stage_stats
from sim.metrics import MetricsRecorder
from sim.oracle import oracle_ego, oracle_objects
from sim.scenario import ScenarioConfig
from sim.world import World

EGO_ORACLE_RATE_HZ = 50.0


@dataclass(frozen=True, slots=True)
class RunOptions:
    seed: int = 0
    duration_s: float | None = None  # None: the scenario's own duration
    mode: str = "ideal"
    perception: str = "oracle"
    progress: TextIO | None = None  # progress lines for long runs (stderr in the CLI)


class ClosedLoop:
    """One closed-loop run, advanced in steps (the CLI runs it to the end; benchmarks tick it)."""

    def __init__(self, scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig | None = None,
                 timer: Timer = time.perf_counter_ns) -> None:
        if opts.perception != "oracle":
            raise ValueError(f"perception {opts.perception!r} is not available yet; use 'oracle'")
        self.scenario, self.opts = scenario, opts
        self.stack_cfg = stack_cfg = stack_cfg or StackConfig()
        self.duration_s = opts.duration_s if opts.duration_s is not None else scenario.duration_s
        self.world = World(scenario, opts.seed)
        self.metrics = MetricsRecorder(self.world.road, self.world.vehicle)
        # One generator per noise source, spawned from the run's seed: adding one shifts no other.
        self._rng_objects, self._rng_ego = (np.random.default_rng(s)
                                            for s in np.random.SeedSequence(opts.seed).spawn(2))
        streams = {"oracle": scenario.oracle.rate_hz, "ego": EGO_ORACLE_RATE_HZ}
        self.stack = DrivingStack(stack_cfg, build_steps(stack_cfg, self.world.vehicle), self.world.road,
                                  self.world.vehicle, streams)
        self.scheduler = Scheduler(SimulatedClock(), timer, opts.mode)
        self.stack.register(self.scheduler)
        self._physics_dt_ns = s_to_ns(1.0 / stack_cfg.rates_hz.physics)
        self._objects_period_ns = s_to_ns(1.0 / scenario.oracle.rate_hz)
        self._ego_period_ns = s_to_ns(1.0 / EGO_ORACLE_RATE_HZ)
        self.trajectory: list[tuple[float, float, float, float, float]] = []  # t_s, x, y, speed, accel
        self.scheduler.add_task(TaskSpec("sim.world", PRIORITY["sim"], budget_ns=0,
                                         period_ns=self._physics_dt_ns, timed=False), self._world_tick)
        self._progress: _Progress | None = None

    def _world_tick(self, t_ns: int, _trigger) -> list:
        world, sched = self.world, self.scheduler
        if t_ns > 0:
            cmd: ControlCommand | None = self.stack.bus.latest.get("/control/command")
            accel, steer = (cmd.accel_mps2, cmd.steer_rad) if cmd is not None else (0.0, 0.0)
            world.step(accel, steer, self._physics_dt_ns)
        ego, actors = world.ego_truth(), world.actors_truth()
        self.metrics.update(ego, actors)
        self.trajectory.append((ns_to_s(t_ns), ego.pose[0], ego.pose[1], ego.speed_mps, ego.accel_mps2))
        if t_ns % self._objects_period_ns == 0:
            sched.post(t_ns, "/sensors/oracle", oracle_objects(ego, actors, self._rng_objects, self.scenario.oracle))
        if t_ns % self._ego_period_ns == 0:
            sched.post(t_ns, "/sensors/ego", oracle_ego(ego, self._rng_ego, self.scenario.oracle))
        if self._progress is not None:
            self._progress.update(t_ns)
        return []

    def advance_to(self, t_ns: int) -> None:
        self.scheduler.run_until(t_ns)

    def run(self) -> dict:
        wall_start = time.perf_counter()
        self._progress = _Progress(self.opts.progress, self.duration_s, wall_start)
        self.advance_to(s_to_ns(self.duration_s))
        wall_s = time.perf_counter() - wall_start
        self._progress.done()
        return self.summary(wall_s)

    def summary(self, wall_s: float) -> dict:
        stack, duration_s = self.stack, self.duration_s
        return {
            "scenario": self.scenario.name, "seed": self.opts.seed, "duration_s": duration_s,
            "mode": self.opts.mode, "perception": self.opts.perception,
            **self.metrics.summary(),
            "real_time_factor": round(duration_s / max(wall_s, 1e-9), 2),
            "wall_time_s": round(wall_s, 3),
            "stages": stage_stats(self.scheduler.timings),
            "modes": [{"t_s": ns_to_s(tr.t_ns), "mode": Mode(tr.mode).name, "reason": tr.reason}
                      for tr in stack.monitor_state.transitions],
            "final_mode": Mode(stack.monitor_state.mode).name,
            "sensors": sensor_counters(stack),
            "stage_errors": {name: {"exceptions": c.exceptions, "nonfinite_outputs": c.nonfinite_outputs,
                                    "last_error": c.last_error}
                             for name, c in sorted(stack.counters.items())
                             if c.exceptions or c.nonfinite_outputs},
        }


def sensor_counters(stack: DrivingStack) -> dict:
    out = {}
    for spec in stack.stream_specs:
        h = stack.health.streams.get(spec.name)
        out[spec.name] = {
            "messages": 0 if h is None else h.accepted + h.stale_or_duplicate + h.nonfinite,
            "dropped": 0, "late": 0 if h is None else h.stale_or_duplicate,
            "nonfinite": 0 if h is None else h.nonfinite,
        }
    return out


class _Progress:
    """A progress line on stderr about once a second of wall time, only for runs that take a while."""

    def __init__(self, stream: TextIO | None, duration_s: float, wall_start: float) -> None:
        self.stream, self.duration_s, self.wall_start = stream, duration_s, wall_start
        self.next_report = wall_start + 2.0
        self.reported = False

    def update(self, t_ns: int) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if now >= self.next_report:
            frac = ns_to_s(t_ns) / self.duration_s
            print(f"\r  simulating: {ns_to_s(t_ns):6.1f} / {self.duration_s:.1f} s ({100 * frac:3.0f}%)",
                  end="", file=self.stream, flush=True)
            self.next_report = now + 1.0
            self.reported = True

    def done(self) -> None:
        if self.stream is not None and self.reported:
            print(file=self.stream)
