"""``rtdrive timing --log`` says what part of a log it timed: an interrupted recording's inputs end
where the run stopped, a --duration past the log's end times what the log holds; and the report
lists the safety monitor's mode changes for a log as it does for a scenario."""
from __future__ import annotations

import json

import pytest

from core.clock import s_to_ns
from runtime.cli import main
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.record import RunRecorder
from sim.scenario import load_scenario


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A complete 1 s oracle recording and one interrupted at its first plan at or after 0.5 s."""
    folder = tmp_path_factory.mktemp("timing_notes")
    complete = folder / "complete.mcap"
    assert main(["sim", "--scenario", "free_road", "--perception", "oracle", "--duration", "1",
                 "--record", str(complete)]) == 0
    interrupted = folder / "interrupted.mcap"
    loop = ClosedLoop(load_scenario("free_road"), RunOptions(duration_s=1.0, perception="oracle"))

    def ctrl_c(t_ns: int, topic: str, _msg) -> None:
        if topic == "/planning/plan" and t_ns >= s_to_ns(0.5):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with RunRecorder(loop, interrupted):
            loop.scheduler.add_listener(ctrl_c)
            loop.run()
    return complete, interrupted


def _timing(log, tmp_path, capsys, *extra: str) -> tuple[dict, str, list[str]]:
    out = tmp_path / "t.json"
    capsys.readouterr()
    rc = main(["timing", "--log", str(log), "--json", str(out), *extra])
    captured = capsys.readouterr()
    assert rc in (0, 1), captured.err  # 1: a budget broken on this loaded host, not what is tested here
    err = [line for line in captured.err.splitlines() if "BUDGET BROKEN" not in line]
    return json.loads(out.read_text()), captured.out, err


def test_an_interrupted_log_is_said_to_be_incomplete_and_timed_up_to_its_stop(logs, tmp_path, capsys):
    _, interrupted = logs
    report, _, err = _timing(interrupted, tmp_path, capsys)
    assert report["log_complete"] is False
    assert len(err) == 1 and err[0].startswith("incomplete log: the recorded run stopped at 0.5"), err
    assert 0.45 <= report["duration_s"] <= 0.55


def test_a_duration_past_the_logs_end_is_said_and_the_log_is_timed_to_its_end(logs, tmp_path, capsys):
    complete, _ = logs
    report, _, err = _timing(complete, tmp_path, capsys, "--duration", "30")
    assert report["log_complete"] is True
    assert err == [f"--duration 30 s is past the log's end at {report['duration_s']:.2f} s: timing the "
                   f"{report['duration_s']:.2f} s it holds"], err
    assert 0.95 <= report["duration_s"] <= 1.0
    report, _, err = _timing(complete, tmp_path, capsys, "--duration", "0.5")
    assert err == [] and report["duration_s"] == 0.5


def test_a_log_report_lists_the_safety_modes(logs, tmp_path, capsys):
    complete, _ = logs
    report, out, _ = _timing(complete, tmp_path, capsys)
    assert report["final_mode"] == "NOMINAL" and report["mode_changes"] == []
    assert "safety modes: final NOMINAL" in out
