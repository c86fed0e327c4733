"""A recording that stopped part way (Ctrl-C, a crash) says so, and replays only what it holds."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import runtime.replay as replay_mod
from core.clock import s_to_ns
from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import read
from runtime.logs.recorder import END_KEYS
from runtime.record import EXTRA_TYPES, RunRecorder
from runtime.replay import replay
from sim.scenario import load_scenario


def _read(path: Path):
    return read(path, order="arrival", extra_types=EXTRA_TYPES)


@pytest.fixture(scope="module")
def interrupted_log(tmp_path_factory) -> tuple[Path, int]:
    """A 2 s run interrupted inside the instant of the first plan at or after 1 s: that instant's
    fusion outputs are recorded, its plan, command and status are not (as with a real Ctrl-C)."""
    path = tmp_path_factory.mktemp("incomplete") / "int.mcap"
    loop = ClosedLoop(load_scenario("cut_in"), RunOptions(seed=3, duration_s=2.0))
    stopped = []

    def ctrl_c(t_ns: int, topic: str, _msg) -> None:
        if topic == "/planning/plan" and t_ns >= s_to_ns(1.0):
            stopped.append(t_ns)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with RunRecorder(loop, path) as rec:
            loop.scheduler.add_listener(ctrl_c)  # after the recorder's: the plan itself is recorded
            loop.run()
    assert rec.complete is False and rec.end_ns == stopped[0] - 1
    return path, stopped[0]


def test_interrupted_recording_says_how_far_it_got(interrupted_log):
    path, stopped_ns = interrupted_log
    meta = _read(path).metadata
    assert (meta["complete"], meta["end_ns"]) == ("false", str(stopped_ns - 1))
    assert meta["scenario"] == "cut_in"  # the start record is still there, merged with the end record


def test_interrupted_recording_replays_to_its_last_time_and_checks(interrupted_log, capsys):
    path, stopped_ns = interrupted_log
    contents = _read(path)
    # The interrupted instant is partly recorded: outputs at it exist, past it none.
    assert max(m.arrival_ns for m in contents.messages if m.topic.startswith("/fusion/")) == stopped_ns
    report = replay(contents)
    assert report.end_ns == report.stopped_ns == stopped_ns - 1
    assert report.checked and report.divergence is None and report.outputs_compared > 300
    assert report.outputs_compared == sum(report.outputs.values())
    assert main(["replay", str(path), "--check"]) == 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("incomplete log:") and "of 2 s planned" in err[0]
    assert "incomplete recording: stopped at" in captured.out and "check: bit-exact" in captured.out
    # --from inside the recorded span checks that part only.
    assert replay(contents, from_s=0.5).divergence is None


def test_log_without_end_record_replays_its_planned_duration(interrupted_log):
    # A log recorded before the end record existed: as before, the planned duration is replayed,
    # which on this interrupted log runs past the data and fails the check.
    path, _ = interrupted_log
    contents = _read(path)
    old = dataclasses.replace(contents, metadata={k: v for k, v in contents.metadata.items() if k not in END_KEYS})
    report = replay(old)
    assert report.end_ns == s_to_ns(2.0) and report.stopped_ns is None
    assert report.divergence is not None and report.divergence.recorded == "none recorded"


def test_complete_recording_and_one_closed_between_instants(tmp_path):
    scenario = load_scenario("free_road")
    done = tmp_path / "done.mcap"
    loop = ClosedLoop(scenario, RunOptions(duration_s=0.5))
    with RunRecorder(loop, done):
        loop.run()
    meta = _read(done).metadata
    assert (meta["complete"], meta["end_ns"]) == ("true", str(s_to_ns(0.5)))
    assert replay(_read(done)).stopped_ns is None
    # Closed with no exception, short of the end (a caller that stepped the loop part way).
    part = tmp_path / "part.mcap"
    loop = ClosedLoop(scenario, RunOptions(duration_s=1.0))
    rec = RunRecorder(loop, part)
    loop.advance_to(s_to_ns(0.3))
    rec.close()
    # Whole up to just before the next event that did not run (the next physics tick, 0.31 s).
    assert rec.complete is False and rec.end_ns == loop.scheduler.next_event_ns() - 1 == s_to_ns(0.31) - 1
    report = replay(_read(part))
    assert report.end_ns == s_to_ns(0.31) - 1 and report.divergence is None and report.outputs_compared > 0


def test_ctrl_c_during_sim_is_one_line_exit_130_and_the_log_replays(tmp_path, monkeypatch, capsys):
    def run_then_ctrl_c(self):
        self.advance_to(s_to_ns(0.5))
        raise KeyboardInterrupt

    monkeypatch.setattr(ClosedLoop, "run", run_then_ctrl_c)
    log = tmp_path / "int.mcap"
    rc = main(["sim", "--perception", "oracle", "--scenario", "free_road", "--duration", "2", "--record", str(log)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130
    assert err == [f"rtdrive sim: interrupted at t=0.50 s of 2 s; log {log} closed, incomplete"]
    assert main(["replay", str(log), "--check"]) == 0
    assert "check: bit-exact" in capsys.readouterr().out
    # Without --record the line says where the run was; other commands say they were interrupted.
    assert main(["sim", "--perception", "oracle", "--scenario", "free_road", "--duration", "2"]) == 130
    assert capsys.readouterr().err.strip() == "rtdrive sim: interrupted at t=0.50 s of 2 s"

    def ctrl_c(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(replay_mod, "replay_main", ctrl_c)
    assert main(["replay", str(log)]) == 130
    assert capsys.readouterr().err.strip() == "rtdrive replay: interrupted"


def test_malformed_end_record_is_named(interrupted_log):
    path, _ = interrupted_log
    contents = _read(path)
    for bad in ({"complete": "maybe"}, {"end_ns": "soon"}, {"end_ns": "-5"}):
        broken = dataclasses.replace(contents, metadata={**contents.metadata, **bad})
        with pytest.raises(replay_mod.ConfigError, match=next(iter(bad))):
            replay(broken)


def test_ctrl_c_during_a_delegated_command_is_one_line_exit_130(monkeypatch, capsys):
    import runtime.eval_tracker

    def interrupted(_argv):
        raise KeyboardInterrupt
    monkeypatch.setattr(runtime.eval_tracker, "eval_tracker_main", interrupted)
    assert main(["eval-tracker", "--seeds", "100"]) == 130
    assert capsys.readouterr().err == "rtdrive eval-tracker: interrupted\n"
