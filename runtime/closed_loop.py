"""Closed-loop simulation: the sim world and its sensors feed the stack on one scheduler.

The world is a task of its own (highest priority, untimed: it is not a stage). At every physics
tick it advances under the latest delivered control command, feeds the metrics, and posts each
sensor message due at its arrival time, so sensor latency and stage latency are both in the loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import TextIO

import numpy as np

from core.clock import Clock, SimulatedClock, Timer, ns_to_s, s_to_ns
from core.messages import ControlCommand, Mode
from core.vehicle import VehicleParams
from runtime.heap import long_lived_frozen
from runtime.scheduler import Scheduler, TaskSpec
from fusion.ego_ekf import EgoFilterState
from fusion.sensor_models import CameraModel, RadarModel
from fusion.sync import Decision, StreamConfig
from runtime.errors import UsageError
from perception.onnx_model import SessionOptions
from runtime.perception_factory import build_perception, tracker_for_rig
from runtime.perception_modes import PERCEPTION_MODES
from runtime.plan_tally import PlanTally, tally_plan
from runtime.stack import PERCEIVED_SENSORS, PRIORITY, DrivingStack
from runtime.stack_config import StackConfig
from runtime.stage_factory import build_steps
from runtime.summary import stage_stats
from sim.metrics import MetricsRecorder
from sim.normal_draws import NormalDraws
from sim.oracle import EgoNoise, oracle_ego, oracle_objects
from sim.drive_by_wire import DriveByWireState, actuator_command
from sim.faults import parse_faults
from sim.scenario import ScenarioConfig
from sim.sensors.config import SensorRigConfig
from sim.sensors.rig import SensorRig
from sim.world import World

EGO_ORACLE_RATE_HZ = 50.0
# Added to each stream's worst-case arrival delay to form its sync window: the least wait in
# fusion's inbox a window allows; a slower fusion rate allows its period (sync_streams).
SYNC_MARGIN_S = 0.02
STARTUP_POSE_SIGMA = (0.3, 0.3, 0.01)  # x [m], y [m], yaw [rad] of the start-up localisation
STARTUP_SPEED_SIGMA_MPS = 0.5  # [m/s] of the start-up localisation's speed
# The ego filter's gate rejections, each charged to the stream whose messages it refused. Its other
# counters (updates refused as non-finite, stale or pre-GNSS messages) are no one stream's: the
# summary's "ego_filter" object carries all of them.
EGO_GATE_REJECTIONS = {"imu": "imu_outliers", "wheel": "wheel_outliers", "gnss": "gnss_outliers"}


@dataclass(frozen=True, slots=True)
class RunOptions:
    seed: int = 0
    duration_s: float | None = None  # None: the scenario's own duration
    mode: str = "ideal"
    perception: str = "oracle"
    sensors: bool | None = None  # None: on exactly when perception needs them (not for oracle)
    faults: tuple[str, ...] = ()  # added to the scenario's own faults
    provider: str = "auto"  # onnxruntime provider preference: auto (CUDA if usable), cuda, cpu
    threads: int = 1  # onnxruntime intra-op threads per model
    progress: TextIO | None = None  # progress lines for long runs (stderr in the CLI)


def sync_streams(scenario: ScenarioConfig, rig: SensorRig | None, stack_cfg: StackConfig,
                 oracle_objects_on: bool = True) -> dict[str, StreamConfig]:
    """Each fusion input with its latency window: the worst arrival delay the setup allows (sensor
    latency and jitter, plus the budget of the perception stage in between) and the wait in
    fusion's inbox (``inbox_wait_s``)."""
    # A message arriving just after a fusion run waits a whole fusion period before the synchroniser
    # sees it: at rates_hz.fusion = 25 the 20 ms margin alone dropped half the IMU samples as late
    # and the rate rule degraded a healthy run.
    inbox_wait_s = max(SYNC_MARGIN_S, 1.0 / stack_cfg.rates_hz.fusion)
    margin_only = StreamConfig(s_to_ns(inbox_wait_s))  # delivered at capture: no latency to wait for
    streams: dict[str, StreamConfig] = {"oracle": margin_only} if oracle_objects_on else {}
    if rig is None:
        streams["ego"] = margin_only
        return streams
    for name in rig.sensors:
        sc = scenario.sensors.sensor(name)
        stage_s = stack_cfg.budget_ns(f"perception.{name}") * 1e-9 if name in PERCEIVED_SENSORS else 0.0
        window_ns = s_to_ns(sc.latency_s + sc.jitter_s + stage_s + inbox_wait_s)
        # The calibrated clock offset moves the sensor's stamps back onto the stack clock.
        streams[name] = StreamConfig(window_ns, -s_to_ns(sc.clock_offset_s))
    return streams


def next_sample_ns(due_ns: int, period_ns: int, t_ns: int) -> int:
    """The first instant of the nominal grid ``due_ns + k * period_ns`` after ``t_ns``: a late
    sample keeps the grid (the mean rate holds), and instants already passed are skipped, never
    sampled in a burst."""
    return due_ns + ((t_ns - due_ns) // period_ns + 1) * period_ns


def startup_localisation(scenario: ScenarioConfig, road) -> EgoFilterState:
    """The pose a vehicle is engaged from: its configured start on the map (lane, arc length,
    speed), with the uncertainty of a map-based localiser, not the simulator's truth."""
    xy, heading = road.to_cartesian(scenario.ego.s_m, road.lane_center_d(scenario.ego.lane))
    pose = np.array([xy[0], xy[1], float(heading)])
    return EgoFilterState.at(0, pose, scenario.ego.speed_mps, STARTUP_POSE_SIGMA, STARTUP_SPEED_SIGMA_MPS)


def fusion_camera_model(rig: SensorRigConfig) -> CameraModel:
    c = rig.camera
    fx = 0.5 * c.width_px / math.tan(math.radians(0.5 * c.hfov_deg))
    return CameraModel(fx, 0.5 * c.width_px, c.x_m, c.y_m, c.yaw_rad, width_px=c.width_px, height_px=c.height_px)


def fusion_radar_model(rig: SensorRigConfig) -> RadarModel:
    return RadarModel(rig.radar.x_m, rig.radar.y_m, rig.radar.yaw_rad)


class ClosedLoop:
    """One closed-loop run, advanced in steps (the CLI runs it to the end; benchmarks tick it)."""

    def __init__(self, scenario: ScenarioConfig, opts: RunOptions, stack_cfg: StackConfig | None = None,
                 timer: Timer = time.perf_counter_ns, clock: Clock | None = None) -> None:
        """``clock``: the scheduler's clock, a ``SimulatedClock`` unless given (the timing harness
        passes a wall clock with ``opts.mode == "realtime"``)."""
        if opts.perception not in PERCEPTION_MODES:
            raise UsageError(f"unknown perception mode {opts.perception!r}; choose one of {', '.join(PERCEPTION_MODES)}")
        self.scenario, self.opts = scenario, opts
        self.stack_cfg = stack_cfg = stack_cfg or StackConfig()
        self.duration_s = opts.duration_s if opts.duration_s is not None else scenario.duration_s
        self.faults = parse_faults(tuple(scenario.faults) + tuple(opts.faults))
        sensors_on = opts.sensors if opts.sensors is not None else opts.perception != "oracle"
        if opts.perception != "oracle" and not sensors_on:
            raise UsageError(f"--perception {opts.perception} perceives the simulated sensors: drop --no-sensors")
        self.oracle_objects_on = opts.perception == "oracle"
        sensor_faults = sorted({f.target for f in self.faults if not f.is_stage})
        if sensor_faults and not sensors_on:
            raise UsageError(f"fault(s) on {', '.join(sensor_faults)} need the simulated sensors: "
                             "add --sensors (or use a perception mode that runs them)")
        self.world = World(scenario, opts.seed)
        self.metrics = MetricsRecorder(self.world.road, self.world.vehicle)
        # One generator per noise source, spawned from the run's seed: adding one shifts no other.
        self._rng_objects, rng_ego = (np.random.default_rng(s) for s in np.random.SeedSequence(opts.seed).spawn(2))
        self._ego_draws = NormalDraws(rng_ego)  # the ego noise's own stream, drawn in blocks
        self.rig = SensorRig(scenario.sensors, self.world.road, opts.seed, self.faults) if sensors_on else None
        streams = {"oracle": scenario.oracle.rate_hz} if self.oracle_objects_on else {}
        if self.rig is None:
            streams["ego"] = EGO_ORACLE_RATE_HZ
        else:
            streams.update({name: scenario.sensors.sensor(name).rate_hz for name in self.rig.sensors})
        self.perception = build_perception(
            opts.perception, scenario.sensors, SessionOptions(provider=opts.provider, intra_op_threads=opts.threads),
            detector_timer=None if opts.mode == "ideal" else timer,
            lidar_cfg=stack_cfg.perception.lidar, camera_cfg=stack_cfg.perception.camera)
        # The tracker counts a miss only where a detector of this rig can see (tracker_for_rig).
        fusion_stack_cfg = stack_cfg if self.rig is None else replace(
            stack_cfg, tracker=tracker_for_rig(stack_cfg.tracker, scenario.sensors, stack_cfg.perception.lidar.grid))
        steps = build_steps(fusion_stack_cfg, self.world.vehicle,
                            sync_streams(scenario, self.rig, stack_cfg, self.oracle_objects_on),
                            perception=self.perception.steps,
                            camera=fusion_camera_model(scenario.sensors), radar=fusion_radar_model(scenario.sensors),
                            ego_prior=startup_localisation(scenario, self.world.road),
                            planner_timer=(lambda: 0) if opts.mode == "ideal" else timer)
        self.stack = DrivingStack(stack_cfg, steps, self.world.road, self.world.vehicle, streams, self.faults)
        self.scheduler = Scheduler(clock if clock is not None else SimulatedClock(), timer, opts.mode)
        self.stack.register(self.scheduler)
        self.plan_tally = PlanTally()  # the plans delivered on /planning/plan (reporting only)
        self.scheduler.add_listener(self._on_message)
        self._physics_dt_ns = s_to_ns(1.0 / stack_cfg.rates_hz.physics)
        self._objects_period_ns = s_to_ns(1.0 / scenario.oracle.rate_hz)
        self._ego_period_ns = s_to_ns(1.0 / EGO_ORACLE_RATE_HZ)
        # The oracle streams sample the truth at physics ticks: one message per tick at most.
        oracle_rates = {"oracle.rate_hz": scenario.oracle.rate_hz} if self.oracle_objects_on else {}
        if self.rig is None:
            oracle_rates["the oracle ego stream's rate"] = EGO_ORACLE_RATE_HZ
        for what, rate_hz in oracle_rates.items():
            if rate_hz > stack_cfg.rates_hz.physics:
                raise UsageError(f"{what} ({rate_hz:g} Hz) is above the physics rate, rates_hz.physics "
                                 f"({stack_cfg.rates_hz.physics:g} Hz): the oracle samples the world at its ticks")
        # The next nominal sample time of each oracle stream: a rate that does not divide the physics
        # rate (30 Hz at 100 Hz), or a physics tick skipped in real time, samples at the first tick
        # at or after it (a modulo test on the tick time never fired for 30 Hz: one message a run).
        self._next_objects_ns = self._next_ego_ns = 0
        self._ego_noise = EgoNoise.from_config(scenario.oracle)
        self.trajectory: list[tuple[float, float, float, float, float]] = []  # t_s, x, y, speed, accel
        self.drive_by_wire = DriveByWireState()  # the physics ticks start at t = 0
        self.scheduler.add_task(TaskSpec("sim.world", PRIORITY["sim"], budget_ns=0,
                                         period_ns=self._physics_dt_ns, timed=False), self._world_tick)
        self._progress: _Progress | None = None

    def _world_tick(self, t_ns: int, _trigger) -> list:
        world, sched = self.world, self.scheduler
        if t_ns > 0:
            cmd: ControlCommand | None = self.stack.bus.latest.get("/control/command")
            self.drive_by_wire, accel, steer = actuator_command(self.drive_by_wire, cmd, t_ns, world.vehicle)
            world.step(accel, steer, self._physics_dt_ns)
        ego, actors = world.ego_truth(), world.actors_truth()
        self.metrics.update(ego, actors)
        self.trajectory.append((ns_to_s(t_ns), ego.pose[0], ego.pose[1], ego.speed_mps, ego.accel_mps2))
        if self.oracle_objects_on and t_ns >= self._next_objects_ns:
            sched.post(t_ns, "/sensors/oracle", oracle_objects(ego, actors, self._rng_objects, self.scenario.oracle))
            self._next_objects_ns = next_sample_ns(self._next_objects_ns, self._objects_period_ns, t_ns)
        if self.rig is None:
            if t_ns >= self._next_ego_ns:
                sched.post(t_ns, "/sensors/ego", oracle_ego(ego, self._ego_draws, self._ego_noise))
                self._next_ego_ns = next_sample_ns(self._next_ego_ns, self._ego_period_ns, t_ns)
        else:
            for name in self.rig.sensors:
                # Captures land on the physics grid: exact for rates dividing the physics rate.
                while self.rig.next_capture_ns(name) <= t_ns:
                    for arrival in self.rig.capture(name, self.rig.next_capture_ns(name), ego, actors):
                        sched.post(arrival.arrival_ns, f"/sensors/{name}", arrival.message)
        progress = self._progress
        if progress is not None and progress.stream is not None:  # no call where nobody reads progress
            progress.update(t_ns)
        return []

    def _on_message(self, _t_ns: int, topic: str, msg) -> None:
        if topic == "/planning/plan":
            self.plan_tally = tally_plan(self.plan_tally, msg)

    def advance_to(self, t_ns: int) -> None:
        self.scheduler.run_until(t_ns)

    def run(self) -> dict:
        with long_lived_frozen():
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
            "providers": self.perception.providers,
            **self.metrics.summary(),
            "real_time_factor": round(duration_s / max(wall_s, 1e-9), 2),
            "wall_time_s": round(wall_s, 3),
            "stages": stage_stats(self.scheduler.timings),
            "modes": [{"t_s": ns_to_s(tr.t_ns), "mode": Mode(tr.mode).name, "reason": tr.reason}
                      for tr in stack.monitor_state.transitions],
            "final_mode": Mode(stack.monitor_state.mode).name,
            "final_speed_mps": round(float(self.trajectory[-1][3]), 3) if self.trajectory else 0.0,
            "sensors": sensor_counters(stack, self.rig),
            "ego_filter": ego_filter_counters(stack),
            "planner": planner_report(self.stack_cfg.planner_kind, self.plan_tally, stack.planner_state),
            "drive_by_wire": drive_by_wire_report(self.drive_by_wire, self.world.vehicle),
            "stage_errors": {name: {"exceptions": c.exceptions, "nonfinite_outputs": c.nonfinite_outputs,
                                    "unhealthy_frames": c.unhealthy_frames, "last_error": c.last_error}
                             for name, c in sorted(stack.counters.items())
                             if c.exceptions or c.nonfinite_outputs or c.unhealthy_frames},
        }


def sensor_counters(stack: DrivingStack, rig: SensorRig | None) -> dict:
    """Per input stream: what the sensor delivered (and what faults did to it), what the health
    monitor saw (``frozen``: how often it found the stream repeating its last data for its
    max_repeats messages in a row; ``withheld_frozen``: the messages kept from every stage while
    it was), what the synchroniser dropped as late or duplicate, and what the ego filter's gates
    refused (``refused``: 1 once they refused enough of its messages for it to be quarantined;
    ``inconsistent``: 1 once its innovations failed the NIS window test, quarantined alike)."""
    sync_late: dict[str, int] = {}
    for rec in stack.sync_records:
        if rec.decision in (Decision.DROPPED_LATE, Decision.DROPPED_DUPLICATE, Decision.DROPPED_FUTURE):
            sync_late[rec.stream] = sync_late.get(rec.stream, 0) + 1
    rig_counts = rig.counters() if rig is not None else {}
    ego = stack.fusion_state.ego_filter.counters
    out = {}
    for spec in stack.stream_specs:
        h = stack.health.streams.get(spec.name)
        seen = {"messages": 0, "dropped": 0, "late": 0, "nonfinite": 0, "faulted": 0}
        if h is not None:
            seen["messages"] = h.accepted + h.stale_or_duplicate + h.nonfinite + h.malformed
            seen["nonfinite"] = h.nonfinite
        seen.update(rig_counts.get(spec.name, {}))
        seen["malformed"] = 0 if h is None else h.malformed
        seen["stale_or_duplicate"] = 0 if h is None else h.stale_or_duplicate
        seen["frozen"] = 0 if h is None else h.frozen_events
        seen["withheld_frozen"] = stack.withheld_frozen.get(spec.name, 0)
        seen["refused"] = int(spec.name in stack.ego_streams.refused)
        seen["inconsistent"] = int(spec.name in stack.ego_streams.inconsistent)
        seen["rejected_by_sync"] = sync_late.get(spec.name, 0)
        gate = EGO_GATE_REJECTIONS.get(spec.name)
        seen["rejected_by_ego_filter"] = getattr(ego, gate) if gate is not None else 0
        out[spec.name] = seen
    return out


def drive_by_wire_report(state: DriveByWireState, vehicle: VehicleParams) -> dict:
    """When the vehicle stopped taking the stack's commands (None: it never did)."""
    tripped = state.tripped_at_ns >= 0
    return {"command_timeout_s": vehicle.command_timeout_s, "fallback_decel_mps2": vehicle.fallback_decel_mps2,
            "tripped_at_s": ns_to_s(state.tripped_at_ns) if tripped else None}


def ego_filter_counters(stack: DrivingStack) -> dict[str, int]:
    """The ego EKF's own counters: what it applied and why it refused the rest. A fusion reset (a
    clock going backwards) restarts the filter and these with it; with the oracle ego (no ego
    sensors) the filter never runs and all are zero."""
    return asdict(stack.fusion_state.ego_filter.counters)


def planner_report(kind: str, tally: PlanTally, planner_state) -> dict:
    """What the planner published (the tally of the delivered plans) and its state's own counters,
    as each planner state declares them (``counters()``: the lattice and the ACC planner differ)."""
    return {"kind": kind, **tally.report(), "counters": planner_state.counters()}


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
