"""The deadline-timing harness: the stack in real time on the wall clock, measured against budgets.

Design (why control keeps its 10 ms period while perception runs): one scheduler, realtime mode.
The loop thread runs control, safety, fusion and planning; control runs first at its instants
(on a vehicle the actuation loop is the highest-priority task). The perception stages and the
simulated world (the sensors' rendering stands in for hardware, it is not the stack) run off the
loop: perception on worker threads of its own, the world in a child process (runtime.timing_world): onnxruntime, OpenCV and large numpy operations release the GIL, and
the interpreter's switch interval is shortened for the run so the loop thread gets the GIL back
within a fraction of a millisecond when its next event is due. Worker outputs come back to the
scheduler's queue at their completion time, so every delivery instant is a real one.

Ideal and latency modes are untouched: no worker exists outside realtime, runs stay deterministic.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.clock import NS_PER_S, ns_to_s, s_to_ns
from core.config import ConfigError, from_mapping, read_toml, rng
from core.messages import Mode
from fusion.sync import Decision
from perception.onnx_model import SessionOptions
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.errors import UsageError
from runtime.heap import long_lived_frozen
from runtime.scheduler import Scheduler
from runtime.stack_config import StackConfig, models_relative_to
from runtime.timing_analysis import Deliveries, e2e_report, gate, period_jitter, stage_report
from runtime.timing_cli import LOG_PRELOAD_MB
from runtime.timing_load import BusyLoad
from runtime.timing_perception import PerceptionProcesses
from runtime.timing_world import WorldProcess
from sim.scenario import ScenarioConfig

SWITCH_INTERVAL_S = 2e-4  # GIL hand-over: the default 5 ms would show up as control jitter
CONTROL_FIRST_PRIORITY = -1  # control runs before every other task due at the same instant
CAUSAL_TOPICS = ("/fusion/tracks", "/planning/plan", "/control/command")
# Perception stages whose step runs in a process: each does GIL-holding numpy (image and BEV
# encoding, decoding, clustering). Measured on the shared 2-core machine, radar clustering left on
# a thread still took control jitter p99 from ~0.5 ms to ~2.7 ms, so all three go.
PROCESS_SENSORS = ("camera", "lidar", "radar")
LOAD_MARGIN_S = 120.0  # busy processes stop by themselves this long after the run's planned end


@dataclass(frozen=True, slots=True)
class TimingBudgets:
    """A budgets file: ``[budgets_ms]`` keyed by stage name, and the end-to-end p99 limit."""

    budgets_ms: dict[str, float] = field(default_factory=dict, metadata=rng(0.0, 10_000.0))
    e2e_p99_ms: float = field(default=350.0, metadata=rng(0.0, 60_000.0))


class RunClock:
    """Wall-clock time from ``start()`` (0 before): model loading does not eat the first periods."""

    def __init__(self, monotonic_ns: Callable[[], int] = time.monotonic_ns,
                 sleep_s: Callable[[float], None] = time.sleep) -> None:
        self._monotonic_ns, self._sleep_s = monotonic_ns, sleep_s
        self._origin_ns: int | None = None

    def start(self) -> None:
        self._origin_ns = self._monotonic_ns()

    def now_ns(self) -> int:
        return 0 if self._origin_ns is None else self._monotonic_ns() - self._origin_ns

    def wait_until(self, t_ns: int) -> None:
        remaining_ns = t_ns - self.now_ns()
        if remaining_ns > 0:
            self._sleep_s(remaining_ns / NS_PER_S)


class DeliveryLog:
    """A scheduler listener keeping (delivered_ns, msg.t_ns) of the topics the e2e chain follows."""

    def __init__(self) -> None:
        self.by_topic: dict[str, list[tuple[int, int]]] = {t: [] for t in CAUSAL_TOPICS}

    def __call__(self, t_ns: int, topic: str, msg: Any) -> None:
        rows = self.by_topic.get(topic)
        if rows is not None:
            rows.append((t_ns, msg.t_ns))

    def deliveries(self, topic: str) -> Deliveries:
        return Deliveries.of(self.by_topic[topic])


def with_budgets(stack_cfg: StackConfig, budgets: TimingBudgets, source: str) -> StackConfig:
    try:
        return replace(stack_cfg, budgets_ms={**stack_cfg.budgets_ms, **budgets.budgets_ms})
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from exc


def overlay_config(recorded: StackConfig, config: Path | None) -> StackConfig:
    """A log's recorded stack config with the keys of a ``--config`` file laid over it (tables and
    ``budgets_ms`` merged key by key): what the file changes, the recording keeps the rest. The file
    is checked on its own first, so its errors name it and its key as ``--config`` does elsewhere."""
    if config is None:
        return recorded
    overrides = read_toml(config)
    from_mapping(StackConfig, overrides, str(config))  # unknown keys, types, ranges: named like any --config file
    # A relative model_path the file gives is relative to the file (the recording's are absolute).
    return models_relative_to(from_mapping(StackConfig, _merged(asdict(recorded), overrides), str(config)),
                              Path(config).parent)


def _merged(base: dict, overrides: Mapping) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def analyse(sched: Scheduler, sync_records, log: DeliveryLog, control_period_ns: int,
            e2e_limit_ms: float) -> dict:
    """The timing part of a report from what a run recorded (any mode)."""
    stages = stage_report(sched.timings, sched.superseded)
    control_starts = np.array([r.t_ns for r in sched.timings if r.stage == "control"], dtype=np.int64)
    applied = [(r.now_ns, r.stream, r.t_ns) for r in sync_records if r.decision == Decision.APPLIED]
    e2e = e2e_report(applied, *(log.deliveries(t) for t in CAUSAL_TOPICS))
    runs = {name: [[r.ready_ns, r.t_ns, r.duration_ns] for r in sched.timings if r.stage == name] for name in stages}
    return {"stages": stages, "control_jitter": period_jitter(control_starts, control_period_ns), "runs_ns": runs,
            "e2e": e2e, "e2e_p99_limit_ms": e2e_limit_ms, "broken": gate(stages, e2e, e2e_limit_ms)}


class LoopPriority:
    """SCHED_FIFO for the loop thread during the run (Linux, privileged), the usual real-time set-up:
    the loop sleeps most of each period and must get a core the moment its next event is due. The
    worker threads keep the normal policy. ``granted`` says whether the OS allowed it."""

    def __init__(self, priority: int) -> None:
        self.priority, self.granted, self._old = priority, False, None

    def __enter__(self) -> "LoopPriority":
        if self.priority > 0 and hasattr(os, "sched_setscheduler"):
            try:
                self._old = (os.sched_getscheduler(0), os.sched_getparam(0))
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
                self.granted = True
            except (PermissionError, OSError):
                self.granted = False
        return self

    def __exit__(self, *exc) -> None:
        if self.granted:
            os.sched_setscheduler(0, self._old[0], self._old[1])


def _realtime(sched: Scheduler, clock: RunClock, end_ns: int, load: int, run: Callable[[int], None],
              sim_lead_ns: int = 0, rt_priority: int = 0) -> tuple[float, bool]:
    """Run to end_ns on the wall clock with perception off the loop; returns (wall seconds, whether
    the loop thread got its real-time priority)."""
    sched.set_priority("control", CONTROL_FIRST_PRIORITY)
    sched.run_off_loop([n for n in sched.task_names() if n.startswith("perception.")]
                       + (["sim.world"] if sched.has_task("sim.world") else []), sim_lead_ns)
    old_switch = sys.getswitchinterval()
    try:
        with long_lived_frozen(), BusyLoad(load, end_ns / NS_PER_S + LOAD_MARGIN_S):
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            with LoopPriority(rt_priority) as prio:
                wall0 = time.perf_counter()
                clock.start()
                run(end_ns)
                return time.perf_counter() - wall0, prio.granted
    finally:
        sys.setswitchinterval(old_switch)
        sched.close()


def time_scenario(scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig, load: int,
                  e2e_limit_ms: float, rt_priority: int = 0) -> dict:
    """A realtime closed-loop run of ``scenario``: its timing report and its closed-loop metrics."""
    clock = RunClock()
    loop = ClosedLoop(scenario, replace(opts, mode="realtime"), stack_cfg, clock=clock)
    log = DeliveryLog()
    loop.scheduler.add_listener(log)
    # The world steps half a physics period ahead: after the control command it applies was
    # delivered, and early enough that its sensor data exists at its arrival time.
    lead_ns = s_to_ns(0.5 / stack_cfg.rates_hz.physics)
    session = SessionOptions(provider=opts.provider, intra_op_threads=opts.threads)
    with WorldProcess(scenario, opts, stack_cfg) as world, \
            PerceptionProcesses(tuple(p for p in loop.perception.steps if p.sensor in PROCESS_SENSORS),
                                opts.perception, scenario.sensors, session) as procs:
        loop.scheduler.set_run("sim.world", world.tick_for(loop.scheduler, loop.stack.bus))
        remote_perception(loop.scheduler, loop.stack, procs)
        wall_s, rt = _realtime(loop.scheduler, clock, s_to_ns(loop.duration_s), load, loop.advance_to,
                               lead_ns, rt_priority)
        summary = {**world.finish(), "final_mode": Mode(loop.stack.monitor_state.mode).name,
                   "mode_changes": mode_changes(loop.stack.monitor_state)}
    report = analyse(loop.scheduler, loop.stack.sync_records, log,
                     s_to_ns(1.0 / stack_cfg.rates_hz.control), e2e_limit_ms)
    return {"source": f"scenario {scenario.name}", "duration_s": loop.duration_s, "wall_s": round(wall_s, 3),
            "perception": opts.perception, "providers": loop.perception.providers, "load": load,
            "loop_rt_priority": rt_priority if rt else 0, "closed_loop": closed_loop_metrics(summary),
            "mode_changes": summary["mode_changes"], **report}


def mode_changes(monitor_state) -> list[dict]:
    """The safety monitor's transitions of a timing run, as the report lists them."""
    return [{"t_s": tr.t_ns / NS_PER_S, "mode": Mode(tr.mode).name, "reason": tr.reason}
            for tr in monitor_state.transitions]


def time_log(path: str, opts: RunOptions, budgets: TimingBudgets, budgets_source: str, load: int,
             duration_s: float | None, rt_priority: int = 0, config: Path | None = None,
             preload_mb: float = LOG_PRELOAD_MB) -> dict:
    """The recorded inputs of an MCAP log fed at their arrival times on the wall clock, through the
    recorded stack with ``config``'s keys laid over it (``overlay_config``), then ``budgets``.
    Inputs totalling at most ``preload_mb`` MB are decoded and posted before the run; more are
    streamed from the file a window ahead of it, said on stderr (``runtime.timing_feed``)."""
    from runtime.logs import LogCorruptError, stream
    from runtime.record import EXTRA_TYPES
    from runtime.replay import recorded_stop_ns, setup_from_log
    from runtime.timing_feed import MB, LogFeed, input_bytes, preloads, run_fed, streamed_note

    def is_input(topic: str) -> bool:
        return topic.startswith("/sensors/")

    try:
        # Only the sensor inputs are fed: the other topics are never decoded, the inputs stay in the
        # file until fed (all before the run when preloaded). The walk checks the whole file first.
        contents = stream(path, order="arrival", extra_types=EXTRA_TYPES, topics=is_input, streamed=is_input)
    except FileNotFoundError as exc:
        raise UsageError(f"no such log: {path}") from exc
    except OSError as exc:  # a folder, no permission: the user's path, not a bug
        raise UsageError(f"cannot read log {path}: {exc.strerror or exc}") from None
    except LogCorruptError as exc:
        raise UsageError(str(exc)) from exc
    try:
        setup = setup_from_log(contents.metadata)
        stopped_ns = recorded_stop_ns(contents.metadata)
    except ConfigError as exc:  # the log's own metadata: name the log, not just "<log metadata>"
        raise UsageError(f"{path}: {exc}") from None
    if stopped_ns is not None:
        # The inputs end where the recorded run stopped: the timing covers that much, not the plan.
        print(f"incomplete log: the recorded run stopped at {ns_to_s(stopped_ns + 1):.2f} s (interrupted or "
              "failed); timing its inputs up to there", file=sys.stderr)
    stack_cfg = with_budgets(overlay_config(setup.stack_cfg, config), budgets, budgets_source)
    # The recorded perception mode unless one is asked for: the log's sensors fit it.
    run_opts = replace(setup.opts, mode="realtime", perception=opts.perception or setup.opts.perception,
                       provider=opts.provider, threads=opts.threads, progress=None)
    clock = RunClock()
    loop = ClosedLoop(setup.scenario, run_opts, stack_cfg, clock=clock)  # its world never runs
    sched = Scheduler(clock, time.perf_counter_ns, "realtime")
    loop.stack.register(sched)
    log = DeliveryLog()
    sched.add_listener(log)
    last_ns = contents.last_arrival_any_ns  # the recording's end: outputs included, not only the inputs
    end_ns = min(last_ns, s_to_ns(duration_s)) if duration_s is not None else last_ns
    if duration_s is not None and s_to_ns(duration_s) > last_ns:
        print(f"--duration {duration_s:g} s is past the log's end at {ns_to_s(last_ns):.2f} s: timing the "
              f"{ns_to_s(last_ns):.2f} s it holds", file=sys.stderr)
    streams = {spec.name for spec in loop.stack.stream_specs}
    # Decoding during the run competes with the stack for the CPU (on a loaded 2-core host control
    # jitter p99 9-18 -> 23-29 ms for a 3 s camera+lidar log); holding every input costs memory that
    # grows with the log. Small logs get the undisturbed measurement, long ones bounded memory.
    n_bytes = input_bytes(path, is_input)
    preload = preloads(n_bytes, preload_mb)
    with LogFeed(contents.streamed(), streams, end_ns) as feed:
        if feed.first_arrival_ns() is None:
            raise UsageError(f"{path}: no sensor message this stack consumes ({', '.join(sorted(streams))})")
        if preload:
            feed.preload(sched.post)
        else:
            print(streamed_note(n_bytes, preload_mb), file=sys.stderr)
        run = sched.run_until if preload else partial(run_fed, sched, clock, feed)
        session = SessionOptions(provider=run_opts.provider, intra_op_threads=run_opts.threads)
        with PerceptionProcesses(tuple(p for p in loop.perception.steps if p.sensor in PROCESS_SENSORS),
                                 run_opts.perception, setup.scenario.sensors, session) as procs:
            remote_perception(sched, loop.stack, procs)
            wall_s, rt = _realtime(sched, clock, end_ns, load, run, 0, rt_priority)
    report = analyse(sched, loop.stack.sync_records, log, s_to_ns(1.0 / stack_cfg.rates_hz.control),
                     budgets.e2e_p99_ms)
    return {"source": f"log {path}", "duration_s": end_ns / NS_PER_S, "wall_s": round(wall_s, 3),
            "perception": run_opts.perception, "providers": loop.perception.providers, "load": load,
            "loop_rt_priority": rt_priority if rt else 0, "messages_fed": feed.fed,
            "log_feed": "preloaded" if preload else "streamed", "log_feed_wait_s": round(feed.wait_s, 4),
            "log_input_mb": round(n_bytes / MB, 3), "log_preload_mb": preload_mb,
            "log_complete": stopped_ns is None, "final_mode": Mode(loop.stack.monitor_state.mode).name,
            "mode_changes": mode_changes(loop.stack.monitor_state), **report}


def remote_perception(sched: Scheduler, stack, procs: PerceptionProcesses) -> None:
    """Point each perception task at its process: the same guard and output routing as the stack's
    own task (``DrivingStack._guarded`` / ``_perceive``), only the step runs elsewhere."""
    for sensor, step in procs.steps().items():
        name = f"perception.{sensor}"
        sched.set_run(name, lambda t_ns, trigger, step=step, name=name:
                      stack._guarded(name, t_ns, lambda t: stack._perceive(step, t, trigger[1])))


def closed_loop_metrics(summary: dict) -> dict:
    keys = ("collisions", "max_off_road_m", "off_road_s", "min_ttc_s", "min_distance_m", "mean_speed_mps",
            "max_abs_jerk_mps3", "final_mode")
    # A realtime run whose control loop stalls past the vehicle's command timeout stops the car:
    # the report must say so, or a braked run would read as a slow one.
    return {**{k: summary.get(k) for k in keys},
            "drive_by_wire_tripped_at_s": (summary.get("drive_by_wire") or {}).get("tripped_at_s")}


def latency_in_the_loop(scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig) -> dict:
    """The same scenario on the simulated clock, each output delayed by its measured compute time."""
    summary = ClosedLoop(scenario, replace(opts, mode="latency", progress=None), stack_cfg).run()
    return closed_loop_metrics(summary)
