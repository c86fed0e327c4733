"""Record a short closed-loop run at test time, replay it, and check it bit for bit."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory

import runtime.replay as replay_mod
from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.logs import LogCorruptError, Recorder, read
from runtime.record import EXTRA_TYPES, RunRecorder
from runtime.replay import replay, setup_from_log
from sim.scenario import load_scenario


def _record(path: Path, opts: RunOptions, scenario=None) -> ClosedLoop:
    loop = ClosedLoop(scenario or load_scenario("cut_in"), opts)
    with RunRecorder(loop, path, revision="abc123"):
        loop.run()
    return loop


def _read(path: Path, salvage: bool = False):
    return read(path, salvage=salvage, order="arrival", extra_types=EXTRA_TYPES)


@pytest.fixture(scope="module")
def oracle_log(tmp_path_factory) -> tuple[Path, ClosedLoop]:
    path = tmp_path_factory.mktemp("replay") / "run.mcap"
    return path, _record(path, RunOptions(seed=3, duration_s=2.0))


def test_recorded_run_replays_bit_exact(oracle_log, capsys):
    path, loop = oracle_log
    report = replay(_read(path))
    assert report.checked and report.divergence is None
    # Every stage output of the run was compared, not a sample of them.
    assert report.outputs_compared == sum(report.outputs.values()) > 500
    assert set(report.outputs) == {"/fusion/ego", "/fusion/tracks", "/planning/plan", "/control/command",
                                   "/safety/status"}
    assert report.sync_compared == len(loop.stack.sync_records) > 0
    assert main(["replay", str(path), "--check"]) == 0
    assert "check: bit-exact" in capsys.readouterr().out


def test_metadata_rebuilds_the_run(oracle_log):
    path, loop = oracle_log
    contents = _read(path)
    assert contents.metadata["git_revision"] == "abc123" and contents.metadata["seed"] == "3"
    setup = setup_from_log(contents.metadata)
    assert setup.scenario == loop.scenario and setup.stack_cfg == loop.stack_cfg
    assert (setup.opts.seed, setup.opts.duration_s, setup.opts.mode) == (3, 2.0, "ideal")
    topics = {m.topic for m in contents.messages}
    assert {"/truth/ego", "/truth/actors", "/sync/decisions", "/timing/planning", "/sensors/oracle"} <= topics


def test_planted_change_names_the_first_divergence(oracle_log, monkeypatch, capsys):
    path, _ = oracle_log
    contents = _read(path)
    setup = setup_from_log(contents.metadata)
    cfg = setup.stack_cfg
    # Plant the change in the speed law both planners use (the lattice's lane roll-outs run it too).
    planted = dataclasses.replace(setup, stack_cfg=dataclasses.replace(
        cfg, planner=dataclasses.replace(cfg.planner, k_speed_1ps=1.0),
        lattice=dataclasses.replace(cfg.lattice, acc=dataclasses.replace(cfg.lattice.acc, k_speed_1ps=1.0))))
    report = replay(contents, setup=planted)
    d = report.divergence
    assert d is not None and d.topic == "/planning/plan" and d.index == 0
    assert d.recorded != d.replayed and d.field != "(message)"
    monkeypatch.setattr(replay_mod, "setup_from_log", lambda metadata, scenario=None: planted)
    assert main(["replay", str(path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "check: FAILED" in out and "/planning/plan" in out and d.field in out


def test_window_checks_from_and_stops_at(oracle_log):
    path, loop = oracle_log
    report = replay(_read(path), from_s=1.0, to_s=1.5)
    assert report.divergence is None and report.end_ns == 1_500_000_000
    assert 0 < report.outputs_compared < sum(report.outputs.values())
    # The synchroniser's decisions are counted in the window too, not from the start.
    in_window = [r for r in loop.stack.sync_records if 1_000_000_000 <= r.now_ns <= 1_500_000_000]
    assert report.sync_compared == len(in_window) > 0
    with pytest.raises(replay_mod.UsageError, match="past the end"):
        replay(_read(path), from_s=1.8, to_s=1.5)


def test_sensor_only_log_replays_without_check(oracle_log, tmp_path, capsys):
    path, _ = oracle_log
    contents = _read(path)
    inputs_only = tmp_path / "inputs.mcap"
    with Recorder(str(inputs_only), contents.metadata) as rec:
        for m in contents.messages:
            if m.topic.startswith("/sensors/"):
                rec.write(m.topic, m.msg, m.log_time_ns, arrival_ns=m.arrival_ns)
    report = replay(_read(inputs_only))
    assert not report.checked and report.inputs_fed > 0 and report.outputs["/planning/plan"] == 21
    assert main(["replay", str(inputs_only), "--check"]) == 0
    assert "not possible" in capsys.readouterr().out


def test_foreign_log_needs_a_scenario(oracle_log, tmp_path, capsys):
    path, _ = oracle_log
    foreign = tmp_path / "foreign.mcap"
    with Recorder(str(foreign), {"scenario": "", "seed": 0, "config_toml": ""}) as rec:
        for m in _read(path).messages:
            if m.topic.startswith("/sensors/"):
                rec.write(m.topic, m.msg, m.log_time_ns, arrival_ns=m.arrival_ns)
    assert main(["replay", str(foreign)]) == 2
    assert "--scenario" in capsys.readouterr().err
    assert main(["replay", str(foreign), "--scenario", "cut_in"]) == 0


def test_a_scenario_is_refused_for_a_log_that_records_its_own(oracle_log, capsys):
    # It silently replaced the recorded scenario: other roads and sensors against recorded inputs.
    path, _ = oracle_log
    capsys.readouterr()
    assert main(["replay", str(path), "--scenario", "free_road"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "this log records its own scenario" in err and "--scenario free_road" in err


def test_truncated_log(oracle_log, tmp_path, capsys):
    path, _ = oracle_log
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LogCorruptError):
        _read(cut)
    assert main(["replay", str(cut), "--check"]) == 2
    err = capsys.readouterr().err
    assert "byte" in err and "--salvage" in err
    assert main(["replay", str(cut), "--check", "--salvage"]) == 0
    captured = capsys.readouterr()
    salvaged = _read(cut, salvage=True)
    assert f"salvaged {salvaged.recovered} intact messages" in captured.err and salvaged.recovered > 100
    assert "check: bit-exact" in captured.out


def test_flipped_byte(oracle_log, tmp_path, capsys):
    path, _ = oracle_log
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "flipped.mcap"
    bad.write_bytes(bytes(data))
    assert main(["replay", str(bad)]) == 2
    assert "byte" in capsys.readouterr().err
    report = replay(_read(bad, salvage=True))
    assert report.divergence is None and report.outputs_compared > 0


def test_plain_mcap_reader_lists_foxglove_schemas(oracle_log):
    path, _ = oracle_log
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        names = {s.name for s in reader.get_summary().schemas.values()}
        decoded = [(channel.topic, proto) for _, channel, _, proto in reader.iter_decoded_messages(topics=["/viz/fusion/tracks"])]
    assert {"foxglove.SceneUpdate", "foxglove.FrameTransform"} <= names
    assert {"rtdrive.Plan", "rtdrive.SyncRecord", "rtdrive.StageTiming"} <= names
    assert len(decoded) == 101 and type(decoded[0][1]).__name__ == "SceneUpdate"
