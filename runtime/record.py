"""Record a closed-loop run to MCAP: every delivered message, the stage timings, the synchroniser's
decisions and the simulator's ground truth, plus what a replay needs to rebuild the same stack.

What lands where (log time = publish time = when the stack saw it, on the stack clock; the message's
own ``t_ns`` stays in its payload, and a faulted clock may put it before 0 or far from the arrival):
- every message the scheduler delivers, on the stack's own topic (``/sensors/<stream>`` inputs with
  their arrival time, ``/perception/*``, ``/fusion/*``, ``/planning/plan``, ``/control/command``,
  ``/safety/status`` outputs with their delivery time). Keeping the stack's topic names means a
  replay posts each input back on exactly the topic it came in on;
- ``/timing/<stage>``: every ``StageTiming`` of the scheduler, in run order;
- ``/sync/decisions``: every ``SyncRecord``, log time = the decision's ``now_ns`` (a RESET record
  carries ``t_ns = -1``, which is no log time);
- ``/truth/ego`` and ``/truth/actors`` once per physics tick, after the world has stepped.

Metadata (the "rtdrive" record): the scenario name, seed, the original ``--config`` TOML text (empty
for the defaults), the rtdrive version and git revision, and as JSON the full scenario, stack
config and run options, so replay rebuilds the road, the sensor setup and the stages exactly.
At close, the end record says how far the run got: ``complete`` and ``end_ns`` (see ``RunRecorder``),
so a run interrupted at 8 s of a planned 200 s replays 8 s, not 200.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType

from core.clock import ns_to_s, s_to_ns
from core.messages import StageTiming
from fusion.sync import SyncRecord
from runtime.closed_loop import ClosedLoop
from runtime.logs import Recorder, run_metadata
from runtime.logs.recorder import end_metadata
from runtime.logs.topics import SYNC_DECISIONS
from runtime.scheduler import TaskSpec
from runtime.stack import PRIORITY

EXTRA_TYPES = (SyncRecord,)  # types beyond core.messages that a rtdrive run log carries
TRUTH_TOPICS = ("/truth/ego", "/truth/actors")
# Chunks are the unit a damaged log is salvaged in (a chunk past its CRC is lost whole): small
# enough that a truncated oracle-mode run keeps most of its seconds, large enough that zstd still
# sees whole camera frames and lidar sweeps (one message may exceed it and gets a chunk alone).
RUN_CHUNK_BYTES = 256 * 1024
# RunOptions fields that shape the stack's outputs (progress is a terminal stream, not part of a run).
REPLAYED_OPTIONS = ("seed", "duration_s", "mode", "perception", "sensors", "faults", "provider", "threads")


def git_revision(cwd: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of ``cwd`` (default: this checkout); empty when git or the repo is absent."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=5.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def loop_metadata(loop: ClosedLoop, config_toml: str = "", revision: str = "") -> dict[str, str]:
    opts = {name: getattr(loop.opts, name) for name in REPLAYED_OPTIONS if hasattr(loop.opts, name)}
    opts["duration_s"] = loop.duration_s  # resolved: a replay runs exactly as long as the recording
    meta = run_metadata(loop.scenario.name, loop.opts.seed, config_toml, revision)
    meta["scenario_json"] = json.dumps(dataclasses.asdict(loop.scenario))
    meta["stack_config_json"] = json.dumps(dataclasses.asdict(loop.stack_cfg))
    meta["run_options_json"] = json.dumps(opts)
    return meta


class RunRecorder(AbstractContextManager):
    """Attach to a ClosedLoop before it runs; closes the file on exit (also after an exception,
    so the recording of a failing run is readable without salvage).

    At close it writes how far the run got (``complete``, ``end_ns``). The run is complete when no
    event up to its duration is left on the scheduler and no exception ended it. Otherwise the log
    is whole up to the last instant before the one being processed: an interrupt lands inside an
    instant, after some of that instant's outputs were recorded and before others were, so that
    instant is left out (``end_ns`` = its time - 1) and a replay stops before it."""

    def __init__(self, loop: ClosedLoop, path: str | Path, *, config_toml: str = "", revision: str = "",
                 record_truth: bool = True) -> None:
        self._loop = loop
        self.path = Path(path)
        self._rec = Recorder(str(path), loop_metadata(loop, config_toml, revision), extra_types=EXTRA_TYPES,
                             chunk_size=RUN_CHUNK_BYTES)
        self._timings_done = 0
        self._sync_done = 0
        self.messages = 0
        self.complete: bool | None = None  # set at close
        self.end_ns: int | None = None
        loop.scheduler.add_listener(self._on_message)
        if record_truth:
            # Same priority as the world and registered after it, so at every tick it runs right
            # after the world step (the scheduler breaks ties by registration sequence).
            loop.scheduler.add_task(TaskSpec("sim.record_truth", PRIORITY["sim"], budget_ns=0,
                                             period_ns=s_to_ns(1.0 / loop.stack_cfg.rates_hz.physics), timed=False), self._truth)

    def _on_message(self, t_ns: int, topic: str, msg: object) -> None:
        self._flush_side_records()
        # Log time is the delivery time, not msg.t_ns: a sensor clock skewed or jumped back (the fault
        # grammar allows -60 s and -3600 s) stamps data before the run's start, which MCAP cannot hold.
        self._rec.write(topic, msg, t_ns, arrival_ns=t_ns)
        self.messages += 1

    def _truth(self, t_ns: int, _trigger) -> list:
        world = self._loop.world
        self._rec.write(TRUTH_TOPICS[0], world.ego_truth(), arrival_ns=t_ns)
        self._rec.write(TRUTH_TOPICS[1], world.actors_truth(), arrival_ns=t_ns)
        self._flush_side_records()
        return []

    def _flush_side_records(self) -> None:
        timings: list[StageTiming] = self._loop.scheduler.timings
        for timing in timings[self._timings_done:]:
            self._rec.write(f"/timing/{timing.stage}", timing, arrival_ns=timing.t_ns)
        self._timings_done = len(timings)
        records: list[SyncRecord] = self._loop.stack.sync_records
        for record in records[self._sync_done:]:
            self._rec.write(SYNC_DECISIONS, record, record.now_ns, arrival_ns=record.now_ns)
        self._sync_done = len(records)

    @property
    def bytes_in(self) -> int:
        return self._rec.bytes_in

    def close(self, failed: bool = False) -> None:
        """Flush and close; ``failed``: an exception (an interrupt) ended the run."""
        if self.complete is not None:
            return
        self.complete, self.end_ns = self._span(failed)
        # One held section: a second Ctrl-C does not stop the flush of the last timings and sync
        # decisions part way, so the log holds every record the stack produced up to the stop.
        with self._rec.interrupts_held():
            try:
                self._flush_side_records()
            finally:
                self._rec.close(end=end_metadata(self.complete, self.end_ns))

    def _span(self, failed: bool) -> tuple[bool, int]:
        sched = self._loop.scheduler
        duration_ns = s_to_ns(self._loop.duration_s)
        pending = sched.next_event_ns()
        if failed:  # stopped inside the instant sched.now_ns: everything before it is whole
            stop_ns = sched.now_ns if pending is None else min(sched.now_ns, pending)
            return False, min(stop_ns - 1, duration_ns)
        if pending is None or pending > duration_ns:
            return True, duration_ns
        return False, pending - 1  # closed part way (advance_to short of the end), between instants

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=exc_type is not None)


def recording(loop: ClosedLoop, path: Path | None, config_path: Path | None = None) -> AbstractContextManager:
    """What ``rtdrive sim`` wraps its run in: a RunRecorder when ``--record`` was given, else nothing."""
    if path is None:
        return nullcontext()
    config_toml = Path(config_path).read_text() if config_path is not None else ""
    return RunRecorder(loop, path, config_toml=config_toml, revision=git_revision())


def interrupted(loop: ClosedLoop, recorder: AbstractContextManager) -> str:
    """After Ctrl-C ended ``rtdrive sim``: end the progress line, return the one line to print."""
    progress = getattr(loop, "_progress", None)  # its line on stderr lacks a newline until done()
    if progress is not None:
        progress.done()
    line = f"interrupted at t={ns_to_s(loop.scheduler.now_ns):.2f} s of {loop.duration_s:g} s"
    if isinstance(recorder, RunRecorder):
        line += f"; log {recorder.path} closed, {'complete' if recorder.complete else 'incomplete'}"
    return line
