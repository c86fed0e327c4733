"""The driving stack wired onto a scheduler: the only place that knows the whole pipeline.

The stages are pure steps; this object only keeps their states between runs, collects the inputs
each task needs from the bus, guards every stage run (exceptions and non-finite outputs are caught,
counted and reported to the safety monitor) and publishes the outputs.

Topics: inputs arrive on /sensors/<name>; outputs are /fusion/ego, /fusion/tracks, /planning/plan,
/control/command and /safety/status.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from core.clock import s_to_ns
from core.messages import EgoState, Mode, Plan, SafetyStatus, Tracks
from core.road import Road
from core.validation import well_formed
from core.vehicle import VehicleParams
from runtime.errors import UsageError
from runtime.scheduler import Scheduler, TaskOutcome, TaskSpec
from runtime.stack_config import STAGES, StackConfig
from runtime.stages import StageSteps
from safety.arbitration import arbitrate
from safety.ego_streams import EgoStreamWatch, judge_ego_streams
from sim.faults import FaultSpec
from safety.health import HealthState, StreamSpec, observe, repeats_previous, stream_frozen, sync_dropped
from safety.message_finite import message_finite
from safety.monitor import DEFAULT_RULES, MonitorState, safety_step
from safety.picture import picture_flags
from safety.stage_health import NO_FLAGS, StageCounts, StageWatch, watch_step
from safety.policy import MODE_LIMITS

# Which scheduled stages a stage-fault target addresses.
FAULT_TARGET_STAGES = {
    "detector": ("perception.lidar", "perception.camera", "perception.radar"),
    "fusion": ("fusion",), "tracker": ("fusion",), "planner": ("planning",), "control": ("control",),
}
PRIORITY = {"sim": 0, "safety": 1, "perception": 2, "fusion": 3, "planning": 4, "control": 5}
# Every periodic stage raises "<stage>.missed_3" after this many deadline misses in a row (a hang
# misses every run); the policy table maps each flag to a mode.
MISSES_IN_A_ROW = 3
MISSED_FLAGS = tuple((stage, f"{stage}.missed_{MISSES_IN_A_ROW}") for stage in STAGES)


@dataclass(slots=True)
class StageCounters:
    exceptions: int = 0
    nonfinite_outputs: int = 0
    unhealthy_frames: int = 0  # a detector's own verdict: exception, non-finite output or overrun
    last_exception_ns: int = -(2**62)
    last_error: str = ""


# Raw sensor streams that go to a perception stage rather than straight to fusion.
PERCEIVED_SENSORS = ("camera", "lidar", "radar")
# Topics the stack does more with than keep the latest: sensor inputs and perception outputs.
_INPUT_PREFIXES = ("/sensors/", "/perception/")


@dataclass(slots=True)
class Bus:
    """The latest message per topic, and the fusion inputs that arrived since fusion last ran."""

    latest: dict[str, Any] = field(default_factory=dict)
    fusion_inbox: list[tuple[str, Any]] = field(default_factory=list)  # (stream, message)


class DrivingStack:
    def __init__(self, cfg: StackConfig, steps: StageSteps, road: Road, vehicle: VehicleParams,
                 input_streams: dict[str, float], stage_faults: tuple[FaultSpec, ...] = ()) -> None:
        """``input_streams``: sensor name -> nominal rate [Hz], as configured for this run.
        ``stage_faults``: injected stage failures (exception, slow=K, hang) by fault target."""
        self.stage_faults = tuple(f for f in stage_faults if f.is_stage)
        self.cfg, self.steps, self.road, self.vehicle = cfg, steps, road, vehicle
        self.bus = Bus()
        self.health = HealthState()
        freeze = steps.safety_cfg.freeze
        self.stream_specs = tuple(
            StreamSpec(name, s_to_ns(1.0 / rate_hz), cfg.liveness.max_missed_periods,
                       max_repeats=freeze.max_repeats(name, rate_hz))
            for name, rate_hz in sorted(input_streams.items()))
        self._spec_of = {s.name: s for s in self.stream_specs}
        # Per sensor stream, the last message health accepted (well formed, finite, fresh): what the
        # freeze rule compares with. bus.latest holds any last message, a corrupt one included, and
        # one NaN in a frozen stream then reset its repeat count for good.
        self._last_accepted: dict[str, Any] = {}
        # Per sensor stream, the messages kept from every stage because the stream was frozen when
        # they arrived, and those of them whose perception run (triggered by the scheduler, which
        # holds the message) has not come yet: recognised by identity when it does. A detector with
        # a backlog has several queued; a run on a later message supersedes the older ones.
        self.withheld_frozen: dict[str, int] = {}
        self._withheld_pending: dict[str, list[Any]] = {}
        # The ego sensors whose data the ego filter keeps refusing or finds inconsistent with their
        # noise, judged from fusion's verdicts: quarantined for good (safety/ego_streams.py).
        self.ego_streams = EgoStreamWatch.start(steps.safety_cfg)
        self.counters: dict[str, StageCounters] = {}
        self.perception_states = {p.sensor: p.init() for p in steps.perception}
        # Every stage watched for misses in a row: the periodic ones and this stack's detectors. A
        # detector that hangs or overruns run after run publishes nothing while its sensor's
        # stream stays fresh; the monitor counts that sensor lost (safety/monitor.py). Without it
        # a hung detector in ideal mode stayed NOMINAL and the car ran into the lead.
        self._missed_flags = dict(MISSED_FLAGS + tuple(
            (f"perception.{p.sensor}", f"perception.{p.sensor}.missed_{MISSES_IN_A_ROW}") for p in steps.perception))
        self.fusion_state = steps.fusion_init()
        self.sync_records: list = []  # every synchroniser decision of the run, in order
        self.planner_state = steps.planner_init()
        self.controller_state = steps.controller_init()
        self.monitor_state = MonitorState()
        self.stage_watch = StageWatch()
        self.scheduler: Scheduler | None = None
        liveness = cfg.liveness
        self._exception_hold_ns = s_to_ns(liveness.exception_hold_s)
        self._last_exception_ns = StageCounters().last_exception_ns  # none yet
        self._control_timeout_ns = s_to_ns(liveness.control_input_timeout_s)
        self._control_period_s = 1.0 / cfg.rates_hz.control  # the arbiter's rate limits step by it
        # A /safety/status older than the monitor's heartbeat timeout means the monitor stopped
        # (e.g. it raises): control then brakes as in EMERGENCY_STOP instead of obeying a stale mode.
        self._status_timeout_ns = s_to_ns(steps.safety_cfg.heartbeat_timeout_s)
        self._first_control_ns: int | None = None
        # The picture flags are a function of the latest ego estimate and tracks, which fusion
        # publishes at half the monitor's rate: they are recomputed only when either message changes.
        self._picture_inputs: tuple[Any, Any] = (None, None)
        self._picture_flags: frozenset[str] = frozenset()
        # A counter moved since the stage watch last saw the counts (it is then handed them).
        self._counts_changed = True

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, sched: Scheduler) -> None:
        self.scheduler = sched
        rates = self.cfg.rates_hz

        def periodic(name: str, rate_hz: float, run: Callable[[int], list]) -> None:
            spec = TaskSpec(name, PRIORITY[name], self.cfg.budget_ns(name), period_ns=s_to_ns(1.0 / rate_hz))
            sched.add_task(spec, self._periodic_task(name, run))

        for p in self.steps.perception:
            name = f"perception.{p.sensor}"
            spec = TaskSpec(name, PRIORITY["perception"], self.cfg.budget_ns(name))
            sched.add_task(spec, lambda t_ns, trigger, p=p, name=name:
                           self._guarded(name, t_ns, lambda t: self._perceive(p, t, trigger[1])),
                           triggers=[f"/sensors/{p.sensor}"])
        periodic("safety", rates.safety, self._safety)
        periodic("fusion", rates.fusion, self._fusion)
        periodic("planning", rates.planning, self._planning)
        periodic("control", rates.control, self._control)
        sched.add_listener(self._on_message)
        for f in self.stage_faults:
            if not any(sched.has_task(name) for name in FAULT_TARGET_STAGES[f.target]):
                raise UsageError(f"fault '{f}' addresses {f.target}, which this run does not have "
                                 f"(stages: {', '.join(sched.task_names())})")

    def _on_message(self, arrival_ns: int, topic: str, msg: Any) -> None:
        self.bus.latest[topic] = msg
        if not topic.startswith(_INPUT_PREFIXES):
            return  # a stage's output (most deliveries): the latest per topic is all the bus keeps
        if topic.startswith("/sensors/"):
            stream = topic[len("/sensors/"):]
            ok_shape = well_formed(msg)
            finite = ok_shape and message_finite(msg)
            # A sensor repeating its last data (content, not identity) is frozen after max_repeats.
            spec = self._spec_of.get(stream)
            max_repeats = spec.max_repeats if spec is not None else 0
            # observe decides what is accepted (and ignores ``repeated`` for anything it does not
            # accept): the last accepted message is whatever raised the stream's accepted count.
            before = self.health.streams.get(stream)
            repeated = max_repeats > 0 and finite and repeats_previous(self._last_accepted.get(stream), msg)
            self.health = observe(self.health, stream, msg.t_ns, arrival_ns, finite, ok_shape, repeated, max_repeats)
            if self.health.streams[stream].accepted > (before.accepted if before is not None else 0):
                self._last_accepted[stream] = msg
            if not ok_shape:
                return  # never handed to a stage: counted as malformed above
            if spec is not None and max_repeats > 0 and stream_frozen(self.health, spec):
                # Stale data with a fresh stamp: fused, a frozen yaw rate holds the heading on a
                # straight line through a curve, confidently (the covariance stays small, so no
                # localisation rule fires, and the GNSS fixes are gated out as outliers). Kept
                # out, the stream is as good as lost for the filters too, as it is for the monitor.
                self.withheld_frozen[stream] = self.withheld_frozen.get(stream, 0) + 1
                if stream in PERCEIVED_SENSORS:
                    self._withheld_pending.setdefault(stream, []).append(msg)
                return
            if stream not in PERCEIVED_SENSORS and finite:
                self.bus.fusion_inbox.append((stream, msg))
        elif topic.startswith("/perception/"):
            self.bus.fusion_inbox.append((topic[len("/perception/"):], msg))

    def _periodic_task(self, stage: str, run: Callable[[int], list]) -> Callable[[int, Any], list | TaskOutcome]:
        """``run`` as the scheduler task of the periodic ``stage``, guarded as ``_guarded`` guards it.
        Which faults aim at the stage is known here, once: a stage that none aims at (every stage
        of a fault-free run, ~5,000 runs a run) gets ``_guarded``'s fault-free path as one call,
        without a fault filter per run or a wrapper around ``_guarded``."""
        if any(stage in FAULT_TARGET_STAGES.get(f.target, ()) for f in self.stage_faults):
            return lambda t_ns, _trigger: self._guarded(stage, t_ns, run)
        counters_of, finite = self.counters, message_finite

        def run_stage(t_ns: int, _trigger) -> list:
            counters = counters_of.get(stage)
            if counters is None:
                counters = counters_of[stage] = StageCounters()
                self._counts_changed = True
            try:
                outputs = run(t_ns)
            except Exception as exc:  # a failing stage must not take the loop down: count and report
                self._count_exception(counters, t_ns, exc)
                return []
            if type(outputs) is list:
                for _, msg in outputs:
                    if not finite(msg):
                        break
                else:
                    return outputs  # every output finite (nearly always): published as the stage made them
            return self._finite_outputs(counters, outputs)

        return run_stage

    def _guarded(self, stage: str, t_ns: int, run: Callable[[int], list]) -> list | TaskOutcome:
        counters = self.counters.get(stage)
        if counters is None:
            counters = self.counters[stage] = StageCounters()
            self._counts_changed = True
        faults = [f for f in self.stage_faults if stage in FAULT_TARGET_STAGES.get(f.target, ()) and f.active(t_ns)
                  ] if self.stage_faults else ()
        if faults and any(f.kind == "hang" for f in faults):
            return TaskOutcome(hung=True)  # the stage never returns: no output, its state stays put
        try:
            if faults and any(f.kind == "exception" for f in faults):
                raise RuntimeError(f"injected fault {next(f for f in faults if f.kind == 'exception')}")
            outputs = run(t_ns)
        except Exception as exc:  # a failing stage must not take the loop down: count and report
            self._count_exception(counters, t_ns, exc)
            return []
        if not faults and type(outputs) is list:
            for _, msg in outputs:
                if not message_finite(msg):
                    break
            else:
                return outputs  # every output finite (nearly always): published as the stage made them
        kept = self._finite_outputs(counters, outputs)
        if not faults:
            return kept
        slow = [f.value for f in faults if f.kind == "slow"]
        return TaskOutcome(tuple(kept), compute_scale=max(slow)) if slow else kept

    def _count_exception(self, counters: StageCounters, t_ns: int, exc: Exception) -> None:
        counters.exceptions += 1
        counters.last_exception_ns = t_ns
        # The latest exception of any stage: the one the hold is measured from (stage_flags).
        self._last_exception_ns = max(self._last_exception_ns, t_ns)
        counters.last_error = f"{type(exc).__name__}: {exc}"

    def _finite_outputs(self, counters: StageCounters, outputs) -> list:
        """The outputs whose messages are finite; each other one is counted and dropped."""
        kept = []
        for topic, msg in outputs:
            if message_finite(msg):
                kept.append((topic, msg))
            else:
                counters.nonfinite_outputs += 1
                self._counts_changed = True
        return kept

    # -- stages ----------------------------------------------------------------------------------
    def _ego(self) -> EgoState | None:
        return self.bus.latest.get("/fusion/ego")

    def _perceive(self, p, t_ns: int, message) -> list:
        if not well_formed(message):
            return []  # counted as malformed by the health monitor when it arrived
        pending = self._withheld_pending.get(p.sensor)
        if pending:
            # Runs come in arrival order: withheld messages up to this one are done or superseded.
            withheld = any(m is message for m in pending)
            pending[:] = [m for m in pending if m.t_ns > message.t_ns]
            if withheld:
                return []  # a frozen stream's message, counted as withheld when it arrived
        state, detections = p.step(self.perception_states[p.sensor], message, t_ns, self._ego())
        self.perception_states[p.sensor] = state
        if not p.output_healthy(state):
            self.counters.setdefault(f"perception.{p.sensor}", StageCounters()).unhealthy_frames += 1
            self._counts_changed = True
        if detections is None:
            return []
        if isinstance(detections, dict):
            return [(f"/perception/{name}", d) for name, d in detections.items()]
        return [(f"/perception/{p.sensor}", detections)]

    def _fusion(self, t_ns: int) -> list:
        inbox, self.bus.fusion_inbox = self.bus.fusion_inbox, []
        # A stream the ego filter kept refusing, or found inconsistent with its noise, is judged but
        # never applied again (quarantined).
        self.fusion_state, out = self.steps.fusion_step(self.fusion_state, inbox, t_ns,
                                                        quarantined=self.ego_streams.quarantined)
        self.sync_records.extend(out.records)
        # A message the synchroniser dropped (late, from the future) was of no use to the stack:
        # its stream's health must not count it (safety/health.py).
        for stream, msg_t_ns in out.dropped:
            spec = self._spec_of.get(stream)
            if spec is not None:
                self.health = sync_dropped(self.health, spec, msg_t_ns, t_ns)
        if out.ego_verdicts:
            self.ego_streams = judge_ego_streams(self.ego_streams, out.ego_verdicts, self.steps.safety_cfg)
        outputs = [("/fusion/tracks", out.tracks)]
        if out.ego is not None:
            outputs.append(("/fusion/ego", out.ego))
        return outputs

    def _limits(self):
        status: SafetyStatus | None = self.bus.latest.get("/safety/status")
        return status.limits if status is not None else MODE_LIMITS[Mode.NOMINAL]

    def _planning(self, t_ns: int) -> list:
        ego = self._ego()
        if ego is None:
            return []
        tracks: Tracks = self.bus.latest.get("/fusion/tracks") or Tracks.empty(t_ns)
        self.planner_state, plan = self.steps.planner_step(self.planner_state, ego, tracks, self._limits(),
                                                           self.road, t_ns)
        return [("/planning/plan", plan)]

    def _control(self, t_ns: int) -> list:
        latest = self.bus.latest
        ego = latest.get("/fusion/ego")
        if ego is None:
            return []
        plan: Plan | None = latest.get("/planning/plan")
        self.controller_state, command = self.steps.controller_step(self.controller_state, plan, ego, t_ns)
        status: SafetyStatus | None = latest.get("/safety/status")
        if self._first_control_ns is None:
            self._first_control_ns = t_ns
        # The monitor's word counts for its heartbeat timeout; before its first status the stack's
        # start does (in the timing harness control runs first at its instants, so the very first
        # command precedes any status and goes out as the controller made it).
        vouched_ns = status.t_ns if status is not None else self._first_control_ns
        if t_ns - vouched_ns > self._status_timeout_ns:
            # No word from the monitor within its heartbeat: nothing vouches for any milder mode.
            status = SafetyStatus(t_ns, Mode.EMERGENCY_STOP, "safety status missing or stale",
                                  MODE_LIMITS[Mode.EMERGENCY_STOP])
        if status is not None:
            command = arbitrate(command, status, latest.get("/control/command"), self._control_period_s,
                                self.vehicle)
        return [("/control/command", command)]

    def stage_flags(self, t_ns: int) -> frozenset[str]:
        # Runs at 100 Hz and nearly always raises no flag but the picture's: a set is built only
        # once some other flag is raised, else the picture's own frozenset goes out as it is.
        raised: list[str] = []
        sched = self.scheduler
        if sched is not None:
            for stage in sched.missing(self._missed_flags, MISSES_IN_A_ROW):
                raised.append(self._missed_flags[stage])
        # The monitor runs first at its instants (PRIORITY), so an exception at or after its previous
        # run is one it has not seen yet: flagged whatever the hold, which may be shorter than a
        # monitor period (0 is allowed).
        last_exception_ns = self._last_exception_ns
        if (t_ns - last_exception_ns <= self._exception_hold_ns
                or last_exception_ns >= self.monitor_state.last_step_ns >= 0):
            raised.append("stage.exception")
        latest = self.bus.latest
        ego = latest.get("/fusion/ego")
        if ego is not None and t_ns - ego.t_ns > self._control_timeout_ns:
            raised.append("control.stale_input")
        # The picture flags, recomputed only when fusion published a new ego estimate or new tracks.
        tracks = latest.get("/fusion/tracks")
        if self._picture_inputs[0] is not ego or self._picture_inputs[1] is not tracks:
            self._picture_inputs = (ego, tracks)
            self._picture_flags = picture_flags(ego, tracks, self.steps.safety_cfg.picture)
        picture = self._picture_flags
        watched = NO_FLAGS
        if sched is not None:
            # The watch compares counts only when a counter moved (None: none did since the last run).
            counts = None
            if self._counts_changed:
                counts = {name: StageCounts(c.nonfinite_outputs, c.unhealthy_frames)
                          for name, c in self.counters.items()}
                self._counts_changed = False
            # In ideal mode compute time delays no output, so an overrun is no hazard there (and the
            # mode must not depend on the machine's load); injected slow/hang faults still show via
            # the <stage>.missed_3 flags above.
            timings = sched.timings if sched.mode != "ideal" else ()
            self.stage_watch, watched = watch_step(self.stage_watch, timings, counts, t_ns,
                                                   self.steps.safety_cfg.stages)
        if not raised and not watched:
            return picture if picture else NO_FLAGS
        return frozenset((*raised, *picture, *watched))

    def _safety(self, t_ns: int) -> list:
        ego_streams = self.ego_streams
        self.monitor_state, status = safety_step(self.monitor_state, self.health, self.stream_specs,
                                                 self.stage_flags(t_ns), DEFAULT_RULES, t_ns,
                                                 self.steps.safety_cfg, ego_streams.refused,
                                                 ego_streams.inconsistent)
        return [("/safety/status", status)]
