"""Faults on the log's virtual clock: sensor dropouts and deadline misses replay with the same modes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import read
from runtime.record import EXTRA_TYPES, RunRecorder
from runtime.replay import replay
from sim.scenario import load_scenario
from sim.sensors.config import SENSOR_NAMES


def _record(path: Path, opts: RunOptions, scenario=None) -> ClosedLoop:
    loop = ClosedLoop(scenario or load_scenario("cut_in"), opts)
    with RunRecorder(loop, path):
        loop.run()
    return loop


def _read(path: Path):
    return read(path, order="arrival", extra_types=EXTRA_TYPES)


def test_lidar_dropout_replays_the_same_mode_transitions(tmp_path):
    base = load_scenario("cut_in")
    # The camera is left out only to keep the test fast (raw frames dominate the file size).
    scenario = dataclasses.replace(base, sensors=dataclasses.replace(
        base.sensors, enabled=tuple(n for n in SENSOR_NAMES if n != "camera")))
    path = tmp_path / "dropout.mcap"
    loop = _record(path, RunOptions(duration_s=4.0, sensors=True, faults=("lidar:dropout@3",)), scenario)
    report = replay(_read(path))
    sim_modes = [(tr.t_ns, tr.mode.name if hasattr(tr.mode, "name") else tr.mode)
                 for tr in loop.stack.monitor_state.transitions]
    assert sim_modes, "the dropout must change the mode"
    assert [(m.t_ns, m.mode) for m in report.replayed_modes] == [(t, str(m)) for t, m in sim_modes]
    assert report.recorded_modes == report.replayed_modes
    assert report.divergence is None and report.outputs_compared > 0
    assert report.replayed_modes[0].t_ns > 3_000_000_000


def test_recorded_deadline_misses_replay(tmp_path):
    # A planner 1000x slower than measured misses every deadline: the safety monitor reacts to the
    # misses, and the replay must reproduce them from the recorded compute times, not its own.
    path = tmp_path / "slow.mcap"
    loop = _record(path, RunOptions(duration_s=2.0, faults=("planner:slow=1000@0.5",)))
    assert loop.stack.monitor_state.transitions
    report = replay(_read(path))
    assert report.divergence is None
    assert [m.t_ns for m in report.replayed_modes] == [tr.t_ns for tr in loop.stack.monitor_state.transitions]


def test_clock_faults_that_stamp_before_zero_record_and_replay(tmp_path):
    # A GNSS clock 2 s behind stamps every fix before the run's start, and a radar clock jumped
    # 5 s back stamps its scans negative from 0.5 s on. The log records each message at the time the
    # stack saw it (never negative) and keeps the stamp in the payload; before, the recorder raised on
    # the negative log time and left a truncated log.
    base = load_scenario("cut_in")
    scenario = dataclasses.replace(base, sensors=dataclasses.replace(
        base.sensors, enabled=tuple(n for n in SENSOR_NAMES if n != "camera")))
    path = tmp_path / "skew.mcap"
    _record(path, RunOptions(duration_s=1.5, sensors=True, faults=("gnss:skew=-2", "radar:jump=-5@0.5")), scenario)
    contents = _read(path)
    gnss = [m for m in contents.messages if m.topic == "/sensors/gnss"]
    radar = [m for m in contents.messages if m.topic == "/sensors/radar"]
    assert gnss and all(m.msg.t_ns < 0 <= m.log_time_ns == m.arrival_ns for m in gnss)
    assert any(m.msg.t_ns < 0 for m in radar)
    # A reader ordering by log time sees the inputs in the order replay feeds them (by arrival).
    by_log_time = read(path, order="log_time", topics={"/sensors/gnss", "/sensors/radar"}, extra_types=EXTRA_TYPES)
    assert [m.sequence for m in by_log_time.messages] == [m.sequence for m in contents.messages
                                                          if m.topic in ("/sensors/gnss", "/sensors/radar")]
    report = replay(contents)
    assert report.checked and report.divergence is None and report.outputs_compared > 0
