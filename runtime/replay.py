"""Deterministic replay of a recorded run: the recorded inputs through the same stack, on the log's clock.

The stack is rebuilt from the log's metadata (scenario, stack config, run options) by the very code
that built it for the recording (``ClosedLoop``), then registered on a scheduler of its own with a
simulated clock: no world runs, no sensor is simulated. Every recorded ``/sensors/*`` message is
posted at its recorded arrival time, in recorded order, so the safety monitor's watchdogs and the
control timeout see the same ages as in the recording.

An incomplete recording (its end record says ``complete = false``: the run was interrupted or
crashed) replays up to its ``end_ns`` only, the last time up to which the log holds everything the
run produced; the planned duration in its run options is what the run meant to do, not what it
did. A log without an end record (recorded before it existed) replays its planned duration.

Compute time: the scheduler's deadline accounting (a planning miss feeds the safety monitor) uses
the recorded ``StageTiming`` durations, replayed in run order, never this machine's timer: a replay
on a slower machine makes the same decisions. Compute times are replayed, never compared.

Memory: ``rtdrive replay`` streams the log (``runtime.logs.stream``). The sensor inputs, nearly all
of a log's bytes (camera images, lidar sweeps), stay in the file until the replay reaches them and
are posted a slice ahead (``runtime.replay_feed.SensorFeed``), so memory does not grow with the log's length; the
recorded outputs, timings and sync decisions that --check compares are held (about 1% of the bytes).

``--check`` compares every stage output (and every synchroniser decision) with the recorded one,
bit for bit (arrays by dtype, shape and bytes, floats by IEEE bits) and reports the first
divergence in time. Bit-exactness is a property of ``ideal`` mode; other modes replay, but their
outputs depended on wall-clock compute times.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from core.clock import SimulatedClock, ns_to_s, s_to_ns
from core.config import ConfigError, from_mapping
from core.messages import Mode, SafetyStatus, StageTiming
from fusion.sync import SyncRecord
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.errors import UsageError
from runtime.heap import long_lived_frozen
from runtime.logs import LogContents, LogMessage, LogStream
from runtime.logs.mcap_frame import HEADER_OFFSET
from runtime.logs.topics import SYNC_DECISIONS
from runtime.record import EXTRA_TYPES, REPLAYED_OPTIONS
from runtime.replay_feed import SensorFeed, split_inputs
from runtime.replay_diff import Divergence, first_difference
from runtime.scheduler import Scheduler
from runtime.stack import FAULT_TARGET_STAGES
from runtime.stack_config import StackConfig
from sim.scenario import ScenarioConfig

_SLICE_NS = 100_000_000  # replay advances in slices so a --check stops soon after a divergence
NOT_OUTPUTS = ("/sensors/", "/truth/", "/timing/", SYNC_DECISIONS)
# Bound on times read from the command line or a log: far past any run, far below where s_to_ns overflows.
_MAX_S = 1e9


@dataclass(frozen=True, slots=True)
class RunSetup:
    """What a replay rebuilds the stack from."""

    scenario: ScenarioConfig
    stack_cfg: StackConfig
    opts: RunOptions
    from_metadata: bool  # False: a log from elsewhere, run with a scenario given on the command line


@dataclass(frozen=True, slots=True)
class ModeChange:
    t_ns: int
    mode: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    setup: RunSetup
    end_ns: int
    inputs_fed: int  # posted to the stack: all up to end_ns, fewer when --check stopped at a divergence
    inputs_ignored: dict[str, int]  # topic -> count, inputs no stack stream takes
    checked: bool  # False when --check was not asked or the log holds no outputs to compare
    outputs_compared: int  # in the --from window
    sync_compared: int  # synchroniser decisions, in the --from window
    divergence: Divergence | None
    recorded_modes: tuple[ModeChange, ...]
    replayed_modes: tuple[ModeChange, ...]
    wall_s: float
    outputs: dict[str, int] = field(default_factory=dict)  # replayed outputs per topic
    stopped_ns: int | None = None  # an incomplete recording: the time up to which it is whole


def setup_from_log(metadata: dict[str, str], scenario: ScenarioConfig | None = None) -> RunSetup:
    """Rebuild the scenario, stack config and run options stored by ``runtime.record``."""
    if "scenario_json" not in metadata:
        if scenario is None:
            raise UsageError("the log carries no rtdrive run metadata (recorded elsewhere?): "
                             "pass --scenario NAME to give the road and sensor setup")
        return RunSetup(scenario, StackConfig(), RunOptions(duration_s=scenario.duration_s), False)
    if scenario is not None:
        # A scenario other than the recorded one would replay other roads and sensors against the
        # recorded inputs: nothing --check could pass, and nothing the log can vouch for.
        raise UsageError(f"--scenario {scenario.name}: this log records its own scenario "
                         f"({metadata.get('scenario', 'in its metadata')}); --scenario is for logs without rtdrive run metadata")
    try:
        sc = from_mapping(ScenarioConfig, _json_object(metadata, "scenario_json", "scenario"),
                                      "<log metadata>", "scenario")
        cfg = from_mapping(StackConfig, _json_object(metadata, "stack_config_json", "stack_config"),
                           "<log metadata>", "stack_config")
        raw = _json_object(metadata, "run_options_json", "run_options")
    except json.JSONDecodeError as exc:
        raise UsageError(f"log metadata does not parse as JSON: {exc}") from exc
    known = {k: v for k, v in raw.items() if k in REPLAYED_OPTIONS and k in RunOptions.__slots__}
    # Checked like the scenario and config above: a hand-edited log is user input, not a bug.
    opts = from_mapping(RunOptions, known, "<log metadata>", "run_options")
    if opts.duration_s is not None and not 0.0 < opts.duration_s <= _MAX_S:
        raise ConfigError("<log metadata>", "run_options.duration_s",
                          f"{opts.duration_s!r} is out of range; allowed (0, {_MAX_S:g}] seconds")
    return RunSetup(sc, cfg, opts, True)


def recorded_stop_ns(metadata: dict[str, str]) -> int | None:
    """Where an incomplete recording stopped (its end record's ``end_ns``); None for a complete run
    and for a log without an end record."""
    complete = metadata.get("complete", "true")
    if complete == "true":
        return None
    if complete != "false":
        raise ConfigError("<log metadata>", "complete", f"{complete!r}; allowed 'true' or 'false'")
    try:
        end_ns = int(metadata.get("end_ns", ""))
    except ValueError:
        raise ConfigError("<log metadata>", "end_ns", f"{metadata.get('end_ns')!r} is not an integer "
                          "number of nanoseconds") from None
    if not -1 <= end_ns <= s_to_ns(_MAX_S):
        raise ConfigError("<log metadata>", "end_ns", f"{end_ns} is out of range; allowed [-1, {s_to_ns(_MAX_S)}]")
    return end_ns


def _json_object(metadata: dict[str, str], key: str, name: str) -> dict:
    value = json.loads(metadata.get(key, "{}"))
    if not isinstance(value, dict):
        raise ConfigError("<log metadata>", name, f"expected a JSON object, found {type(value).__name__}")
    return value


class ReplayedTimer:
    """The scheduler's compute timer during replay: each timed run takes the duration recorded for it.

    The scheduler reads the timer twice per run (before and after). The first read returns 0, the
    second the recorded duration of the next recorded run. A ``slow=K`` stage fault scales the
    measured time by K inside the scheduler, and the recording holds the scaled value; the duration
    is handed back unscaled (+0.5 ns so the scheduler's int() truncation lands on the recorded ns).
    Past the recorded timings (a salvaged or sensor-only log) every run takes 0 ns.
    """

    def __init__(self, timings: list[StageTiming], stack) -> None:
        self._timings = deque(timings)
        self._stack = stack
        self._before_run = True  # the next read is the one before a run

    def __call__(self) -> float:
        if self._before_run or not self._timings:
            self._before_run = not self._before_run
            return 0  # the read before the run (or nothing recorded left)
        self._before_run = True
        timing = self._timings.popleft()
        scale = max((f.value for f in self._stack.stage_faults if f.kind == "slow" and f.active(timing.t_ns)
                     and timing.stage in FAULT_TARGET_STAGES.get(f.target, ())), default=1.0)
        return timing.duration_ns if scale == 1.0 else (timing.duration_ns + 0.5) / scale


class _OutputChecker:
    """Pairs each replayed output with the recorded one of the same topic, in delivery order."""

    def __init__(self, recorded: dict[str, deque[LogMessage]], from_ns: int, damaged: bool, compare: bool) -> None:
        self.recorded, self.from_ns, self.damaged, self.compare = recorded, from_ns, damaged, compare
        self.compared = 0
        self.counts: dict[str, int] = defaultdict(int)
        self.divergence: Divergence | None = None

    def on_message(self, t_ns: int, topic: str, msg: object) -> None:
        if topic.startswith(NOT_OUTPUTS):
            return
        index = self.counts[topic]
        self.counts[topic] += 1
        if not self.compare:
            return
        queue = self.recorded.get(topic)
        if not queue:
            # A salvaged log ends early: outputs past the damage have nothing to compare with.
            if not self.damaged and self.divergence is None and t_ns >= self.from_ns:
                self.divergence = Divergence(topic, t_ns, index, "(message)", "none recorded", "an output")
            return
        want = queue.popleft()
        if self.divergence is not None or t_ns < self.from_ns:
            return
        self.compared += 1
        if want.arrival_ns != t_ns:
            self.divergence = Divergence(topic, t_ns, index, "(delivery time)", want.arrival_ns, t_ns)
            return
        diff = first_difference(want.msg, msg)
        if diff is not None:
            self.divergence = Divergence(topic, t_ns, index, *diff)


def _mode_changes_recorded(statuses: list[LogMessage]) -> tuple[ModeChange, ...]:
    out, mode = [], int(Mode.NOMINAL)
    for m in statuses:
        status: SafetyStatus = m.msg
        if int(status.mode) != mode:
            mode = int(status.mode)
            out.append(ModeChange(status.t_ns, Mode(mode).name, status.reason))
    return tuple(out)


def replay(contents: LogContents | LogStream, *, check: bool = True, from_s: float | None = None,
           to_s: float | None = None, scenario: ScenarioConfig | None = None,
           setup: RunSetup | None = None) -> ReplayReport:
    """Replay ``contents``: ``read`` or ``stream`` with ``order="arrival"`` and ``extra_types=EXTRA_TYPES``
    (a streamed log holds its sensor inputs in the file until the replay reaches them)."""
    setup = setup or setup_from_log(contents.metadata, scenario)
    held, sensors, last_ns = split_inputs(contents)
    end_ns = s_to_ns(setup.opts.duration_s) if setup.opts.duration_s is not None else last_ns
    if contents.damage is not None:
        end_ns = min(end_ns, last_ns)  # nothing past the damage is known
    stopped_ns = recorded_stop_ns(contents.metadata)
    if stopped_ns is not None:
        if stopped_ns < 0:
            raise UsageError("the recording stopped before its first instant: nothing to replay")
        end_ns = min(end_ns, stopped_ns)  # the run stopped there: nothing past it was recorded
    if to_s is not None:
        end_ns = min(end_ns, s_to_ns(to_s))
    from_ns = s_to_ns(from_s) if from_s is not None else 0
    if from_ns > end_ns:
        # Only the options given: "--to None" named one the user never passed.
        given = ", ".join(f"{option} {value}" for option, value in (("--from", from_s), ("--to", to_s))
                          if value is not None) or "--from/--to"
        raise UsageError(f"{given}: the window starts past the end of the replay: [{ns_to_s(from_ns)}, "
                         f"{ns_to_s(end_ns)}] s (the log ends at {ns_to_s(last_ns)} s)")

    wall_start = time.perf_counter()
    try:
        loop = ClosedLoop(setup.scenario, setup.opts, setup.stack_cfg)
    except ValueError as exc:
        raise UsageError(f"cannot rebuild the recorded stack: {exc}") from exc
    stack = loop.stack
    timings = [m.msg for m in held if m.topic.startswith("/timing/")]
    sched = Scheduler(SimulatedClock(), ReplayedTimer(timings, stack), setup.opts.mode)
    stack.register(sched)  # the loop's own scheduler (and its world) never runs

    by_topic: dict[str, deque[LogMessage]] = defaultdict(deque)
    recorded_sync: list[SyncRecord] = []
    for m in held:
        if m.topic == SYNC_DECISIONS:
            recorded_sync.append(m.msg)
        elif not m.topic.startswith(NOT_OUTPUTS):
            by_topic[m.topic].append(m)
    statuses = list(by_topic.get("/safety/status", ()))
    checking = check and bool(by_topic)
    checker = _OutputChecker(by_topic, from_ns, contents.damage is not None, checking)
    sched.add_listener(checker.on_message)

    # +1: the scheduler's int() of a replayed duration may land a nanosecond above the recorded one.
    lead_ns = max((t.duration_ns for t in timings), default=0) + 1
    feed = SensorFeed(sensors, sched, {spec.name for spec in stack.stream_specs}, end_ns, lead_ns)

    sync_divergence, sync_done, sync_compared = None, 0, 0
    t_ns = -1
    with long_lived_frozen():
        while t_ns < end_ns:
            t_ns = min(t_ns + _SLICE_NS, end_ns) if t_ns >= 0 else min(_SLICE_NS - 1, end_ns)
            feed.feed_for(t_ns)
            sched.run_until(t_ns)
            if checking and sync_divergence is None:
                sync_divergence, sync_done, compared = _compare_sync(recorded_sync, stack.sync_records, sync_done,
                                                                     from_ns, contents.damage is not None)
                sync_compared += compared
            if checking and (checker.divergence is not None or sync_divergence is not None):
                break
    divergence = None
    if checking:
        found = [d for d in (checker.divergence, sync_divergence) if d is not None]
        if not found and contents.damage is None and t_ns == end_ns:
            found = [Divergence(topic, q[0].arrival_ns, checker.counts[topic], "(message)", "recorded", "missing")
                     for topic, q in by_topic.items() if q and from_ns <= q[0].arrival_ns <= end_ns]
        divergence = min(found, key=lambda d: (d.t_ns, d.topic)) if found else None
    replayed = tuple(ModeChange(tr.t_ns, Mode(tr.mode).name, tr.reason) for tr in stack.monitor_state.transitions)
    return ReplayReport(setup, end_ns, feed.fed, dict(feed.ignored), checking, checker.compared, sync_compared,
                        divergence, _mode_changes_recorded([s for s in statuses if s.arrival_ns <= end_ns]), replayed,
                        time.perf_counter() - wall_start, dict(checker.counts), stopped_ns)


def _compare_sync(recorded: list[SyncRecord], replayed: list[SyncRecord], start: int, from_ns: int,
                  damaged: bool) -> tuple[Divergence | None, int, int]:
    """Compare the synchroniser decisions made since the last call (from index ``start`` on; those
    made before ``from_ns`` are paired but not compared). Returns (divergence, index to resume
    from, decisions compared by this call)."""
    compared = 0
    for i in range(start, len(replayed)):
        if replayed[i].now_ns < from_ns:
            continue
        if i >= len(recorded):
            if damaged:
                return None, i, compared
            return (Divergence(SYNC_DECISIONS, replayed[i].now_ns, i, "(message)", "none recorded", "a decision"),
                    i, compared)
        diff = first_difference(recorded[i], replayed[i])
        if diff is not None:
            return Divergence(SYNC_DECISIONS, replayed[i].now_ns, i, *diff), i, compared
        compared += 1
    return None, len(replayed), compared


# -- command line --------------------------------------------------------------------------------
def format_report(report: ReplayReport, path: str) -> str:
    s, o = report.setup, report.setup.opts
    incomplete = ""
    if report.stopped_ns is not None:
        planned = f" of {o.duration_s:g} s planned" if o.duration_s is not None else ""
        incomplete = f" (incomplete recording: stopped at {ns_to_s(report.stopped_ns + 1):.2f} s{planned})"
    lines = [f"replay {path}: scenario {s.scenario.name}, seed {o.seed}, mode {o.mode}, "
             f"{ns_to_s(report.end_ns):.2f} s of log{incomplete} in {report.wall_s:.2f} s wall",
             f"  inputs fed: {report.inputs_fed}"
             + (f" (ignored: {', '.join(f'{t} x{n}' for t, n in sorted(report.inputs_ignored.items()))})"
                if report.inputs_ignored else "")]
    outputs = ", ".join(f"{t} {n}" for t, n in sorted(report.outputs.items()))
    if outputs:
        lines.append(f"  outputs replayed: {outputs}")
    for label, changes in (("recorded", report.recorded_modes), ("replayed", report.replayed_modes)):
        text = "; ".join(f"{c.mode} at {ns_to_s(c.t_ns):.2f} s ({c.reason})" for c in changes) or "NOMINAL throughout"
        if label == "replayed" or report.checked:
            lines.append(f"  modes {label}: {text}")
    return "\n".join(lines)


def replay_main(args) -> int:
    """``rtdrive replay``: exit 0 replayed (and matched), 1 diverged, 2 unreadable log or bad usage."""
    import sys

    from runtime.logs import LogCorruptError, stream
    from sim.scenario import load_scenario

    for option, value in (("--from", args.from_s), ("--to", args.to_s)):
        # Log time starts at 0: a negative bound names no instant of it (and "--from -1" reads like
        # "the last second", which it would not be).
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= _MAX_S):
            raise UsageError(f"{option}: {value} is out of range; allowed 0 to {_MAX_S:g} seconds of log time")
    try:
        contents = stream(args.log, salvage=args.salvage, order="arrival", extra_types=EXTRA_TYPES)
    except FileNotFoundError as exc:
        raise UsageError(f"no such log: {args.log}") from exc
    except OSError as exc:  # a folder, no permission: the user's path, not a bug
        raise UsageError(f"cannot read log {args.log}: {exc.strerror or exc}") from None
    except LogCorruptError as exc:
        raise UsageError(f"{exc}\n  (--salvage replays the intact messages before the damage)") from exc
    if contents.damage is not None and not contents.recovered:
        raise UsageError(f"{contents.damage}\n  nothing intact precedes the damage: no message to replay")
    if contents.damage is not None:
        where = ("after the damaged Header record" if contents.damage_offset == HEADER_OFFSET
                 else f"before byte {contents.damage_offset}")
        print(f"damaged log: {contents.damage}\n  salvaged {contents.recovered} intact messages {where}; "
              "replaying those", file=sys.stderr)
    scenario = load_scenario(args.scenario) if args.scenario else None
    try:
        setup = setup_from_log(contents.metadata, scenario)
        stopped_ns = recorded_stop_ns(contents.metadata)
    except ConfigError as exc:  # the log's own metadata: name the log, not just "<log metadata>"
        raise UsageError(f"{args.log}: {exc}") from None
    if stopped_ns is not None:
        planned = f" of {setup.opts.duration_s:g} s planned" if setup.opts.duration_s is not None else ""
        print(f"incomplete log: the recorded run stopped at {ns_to_s(stopped_ns + 1):.2f} s{planned} "
              "(interrupted or failed); replaying up to there", file=sys.stderr)
    from runtime.record import git_revision
    recorded_rev, current_rev = contents.metadata.get("git_revision", ""), git_revision()
    if args.check and recorded_rev and current_rev and recorded_rev != current_rev:
        print(f"note: recorded at git revision {recorded_rev[:12]}, replaying at {current_rev[:12]}: "
              "a code change shows as a divergence", file=sys.stderr)
    report = replay(contents, check=args.check, from_s=args.from_s, to_s=args.to_s, setup=setup)
    print(format_report(report, args.log))
    if not args.check:
        return 0
    if not report.checked:
        print("  check: not possible, the log holds no stage outputs (sensor inputs only)")
        return 0
    if report.setup.opts.mode != "ideal":
        print(f"  note: recorded in {report.setup.opts.mode} mode: outputs depended on wall-clock compute "
              "times, so only ideal-mode logs are guaranteed to match bit for bit")
    if report.divergence is not None:
        print(f"  check: FAILED, {report.divergence.describe()}")
        return 1
    print(f"  check: bit-exact, {report.outputs_compared} outputs and {report.sync_compared} sync decisions "
          "match the recording")
    return 0
