"""Timing harness: e2e arithmetic, miss counting, no catch-up bursts (fake clock and timer), the off-loop
worker, the budget gate and the CLI exit code."""
import threading
import time

import numpy as np
import pytest

from core.messages import StageTiming
from runtime.errors import UsageError
from runtime.scheduler import Scheduler, TaskSpec
from runtime.stack_config import StackConfig
from runtime.timing import RunClock, TimingBudgets, with_budgets
from runtime.timing_analysis import Deliveries, e2e_latency_ns, e2e_report, gate, period_jitter, stage_report
from runtime.timing_load import BusyLoad

MS = 1_000_000


class FakeTime:
    """Monotonic time that only moves when slept on or when a task 'computes'."""

    def __init__(self):
        self.t_ns = 0

    def monotonic_ns(self):
        return self.t_ns

    def sleep_s(self, s):
        self.t_ns += int(round(s * 1e9))


def test_e2e_latency_follows_fusion_then_planning_then_control():
    # Fusion ran at 20 ms (output delivered at 23 ms) and at 40 ms (delivered 42 ms).
    fusion = Deliveries.of([(23 * MS, 20 * MS), (42 * MS, 40 * MS)])
    # Planning runs started at 0 and 100 ms; each plan delivered 5 ms after its start.
    plan = Deliveries.of([(5 * MS, 0), (105 * MS, 100 * MS)])
    # Control every 10 ms, each command delivered 1 ms after its start.
    command = Deliveries.of([(t + 1 * MS, t) for t in range(0, 200 * MS, 10 * MS)])
    # A lidar scan captured at 2 ms applied by fusion at 20 ms; one captured at 30 ms applied at 40 ms;
    # one applied by a fusion run that never delivered (unresolved).
    latency, ok = e2e_latency_ns(np.array([20 * MS, 40 * MS, 60 * MS]), np.array([2 * MS, 30 * MS, 50 * MS]),
                                 fusion, plan, command)
    # Both used by the plan started at 100 ms (delivered 105), then control at 110 -> delivered 111 ms.
    assert ok.tolist() == [True, True, False]
    assert latency[:2].tolist() == [109 * MS, 81 * MS]
    rep = e2e_report([(20 * MS, "lidar", 2 * MS), (40 * MS, "lidar", 30 * MS), (60 * MS, "imu", 50 * MS)],
                     fusion, plan, command)
    assert rep["lidar"] == {"messages": 2, "resolved": 2, "p50_ms": 95.0, "p99_ms": 108.72, "max_ms": 109.0}
    assert rep["imu"]["resolved"] == 0


def test_e2e_same_instant_delivery_counts_as_used():
    # Ideal mode: fusion, planning and control at one instant, outputs visible at once.
    d = Deliveries.of([(100 * MS, 100 * MS)])
    latency, ok = e2e_latency_ns(np.array([100 * MS]), np.array([90 * MS]), d, d, d)
    assert ok.tolist() == [True] and latency.tolist() == [10 * MS]


def test_stage_report_counts_misses_rate_and_queueing_apart_from_compute():
    recs = [StageTiming("planning", t_ns=100 * MS * i + q, ready_ns=100 * MS * i, duration_ns=d,
                        budget_ns=20 * MS, missed=d > 20 * MS)
            for i, (q, d) in enumerate([(0, 5 * MS), (2 * MS, 25 * MS), (0, 20 * MS), (4 * MS, 30 * MS)])]
    rep = stage_report(recs, {"planning": 3})["planning"]
    assert rep["runs"] == 4 and rep["misses"] == 2 and rep["miss_rate"] == 0.5
    assert rep["max_ms"] == 30.0 and rep["budget_ms"] == 20.0 and rep["superseded"] == 3
    assert rep["queue_max_ms"] == 4.0 and rep["queue_p50_ms"] == 1.0


def test_period_jitter_is_interval_minus_nominal():
    starts = np.array([0, 10, 21, 30, 50]) * MS  # +0, +1, -1, +10 (a skipped period)
    j = period_jitter(starts, 10 * MS)
    assert j["intervals"] == 4 and j["max_abs_ms"] == 10.0 and j["p50_abs_ms"] == 1.0
    assert period_jitter(np.array([5]), 10 * MS)["intervals"] == 0


def test_realtime_late_task_runs_late_and_skips_missed_periods_no_burst():
    ft = FakeTime()
    clock = RunClock(ft.monotonic_ns, ft.sleep_s)
    clock.start()
    durations = iter([35 * MS] + [1 * MS] * 20)
    sched = Scheduler(clock, lambda: ft.t_ns, "realtime")

    def run(t_ns, _trigger):
        ft.t_ns += next(durations)  # the run takes this much wall time
        return ()

    sched.add_task(TaskSpec("control", 1, budget_ns=2 * MS, period_ns=10 * MS), run)
    sched.run_until(100 * MS)
    starts = [r.t_ns for r in sched.timings]
    ready = [r.ready_ns for r in sched.timings]
    # The first run overran to 35 ms: the run due at 10 runs once, late (25 ms queued, counted);
    # 20 and 30 are skipped, not replayed; the loop is back on the grid at 40.
    assert starts[:4] == [0, 35 * MS, 40 * MS, 50 * MS] and ready[:4] == [0, 10 * MS, 40 * MS, 50 * MS]
    assert 20 * MS not in ready and 30 * MS not in ready
    assert len(starts) == 9  # 0, 35 and the grid 40..100: no burst of the three missed periods
    assert sched.timings[0].missed and not sched.timings[1].missed


def test_realtime_queueing_delay_is_recorded_separately():
    ft = FakeTime()
    clock = RunClock(ft.monotonic_ns, ft.sleep_s)
    clock.start()
    sched = Scheduler(clock, lambda: ft.t_ns, "realtime")
    sched.add_task(TaskSpec("a", 0, budget_ns=5 * MS, period_ns=50 * MS),
                   lambda t, tr: (setattr(ft, "t_ns", ft.t_ns + 7 * MS), ())[1])
    sched.add_task(TaskSpec("b", 1, budget_ns=5 * MS, period_ns=50 * MS), lambda t, tr: ())
    sched.run_until(0)
    a, b = sched.timings
    assert a.missed and a.duration_ns == 7 * MS
    assert (b.ready_ns, b.t_ns, b.missed) == (0, 7 * MS, False)  # 7 ms queued behind a, 0 compute


def test_off_loop_worker_keeps_the_loop_period_and_supersedes_stale_inputs():
    clock = RunClock()
    sched = Scheduler(clock, time.perf_counter_ns, "realtime")
    seen = []
    sched.add_task(TaskSpec("perception.lidar", 2, budget_ns=40 * MS),
                   lambda t, tr: (time.sleep(0.06), [("/perception/lidar", tr[1])])[1], triggers=["/sensors/lidar"])
    sched.add_task(TaskSpec("control", 1, budget_ns=2 * MS, period_ns=5 * MS), lambda t, tr: ())
    sched.add_listener(lambda t, topic, msg: seen.append((t, topic, msg)))
    sched.run_off_loop(["perception.lidar"])
    for i, t in enumerate((0, 10 * MS, 20 * MS)):  # the 2nd scan is superseded by the 3rd while busy
        sched.post(t, "/sensors/lidar", i)
    clock.start()
    try:
        sched.run_until(200 * MS)
    finally:
        sched.close()
    starts = np.array([r.t_ns for r in sched.timings if r.stage == "control"])
    assert np.diff(starts).max() < 40 * MS  # a 60 ms inference inline would stall the loop >= 60 ms
    lidar = [r for r in sched.timings if r.stage == "perception.lidar"]
    assert [r.ready_ns for r in lidar] == [0, 20 * MS] and sched.superseded == {"perception.lidar": 1}
    assert all(r.missed for r in lidar)
    out = [(t, m) for t, topic, m in seen if topic == "/perception/lidar"]
    assert [m for _, m in out] == [0, 2]
    assert out[0][0] >= lidar[0].t_ns + 60 * MS  # delivered at its completion time
    assert not any(th.name.startswith("rtdrive-") for th in threading.enumerate())


def test_off_loop_is_refused_outside_realtime():
    sched = Scheduler(RunClock(), time.perf_counter_ns, "latency")
    sched.add_task(TaskSpec("perception.lidar", 2, budget_ns=MS), lambda t, tr: (), triggers=["/x"])
    with pytest.raises(ValueError, match="deterministic"):
        sched.run_off_loop(["perception.lidar"])


def test_gate_names_the_stage_and_the_e2e_stream():
    stages = {"planning": {"p99_ms": 0.9, "budget_ms": 0.001}, "control": {"p99_ms": 0.2, "budget_ms": 1.0}}
    e2e = {"lidar": {"resolved": 3, "p99_ms": 400.0}, "imu": {"resolved": 0, "p99_ms": 0.0}}
    broken = gate(stages, e2e, 350.0)
    assert len(broken) == 2 and broken[0].startswith("planning:") and "end-to-end lidar" in broken[1]
    assert gate({"control": stages["control"]}, {}, 350.0) == []


def test_budget_overrides_and_unknown_stage_is_a_usage_error():
    cfg = with_budgets(StackConfig(), TimingBudgets(budgets_ms={"planning": 0.001}), "b.toml")
    assert cfg.budget_ns("planning") == 1000 and cfg.budget_ns("control") == 1 * MS
    with pytest.raises(UsageError, match="b.toml.*plannning"):
        with_budgets(StackConfig(), TimingBudgets(budgets_ms={"plannning": 1.0}), "b.toml")


def test_busy_load_is_bounded_and_always_stopped():
    with pytest.raises(ValueError, match="allowed"):
        BusyLoad(10_000, 1.0)
    load = BusyLoad(1, 30.0)
    with pytest.raises(KeyboardInterrupt):
        with load:
            assert load.alive() == 1
            raise KeyboardInterrupt  # Ctrl-C inside the run
    assert load.alive() == 0 and load.procs == []


def test_cli_timing_gate_exit_code_names_planning(tmp_path, capsys):
    from runtime.cli import main

    budgets = tmp_path / "b.toml"
    budgets.write_text("[budgets_ms]\nplanning = 0.001\n")
    out_json = tmp_path / "t.json"
    rc = main(["timing", "--scenario", "cut_in", "--perception", "oracle", "--duration", "1.0",
               "--budgets", str(budgets), "--json", str(out_json), "--plot", str(tmp_path / "plots"),
               "--no-latency-loop"])
    captured = capsys.readouterr()
    assert rc == 1 and "planning: p99" in captured.err
    assert "control period jitter" in captured.out
    assert (tmp_path / "plots" / "timeline.png").stat().st_size > 0
    assert (tmp_path / "plots" / "hist_planning.png").exists()
    import json
    rep = json.loads(out_json.read_text())
    assert rep["stages"]["planning"]["budget_ms"] == 0.001 and rep["stages"]["planning"]["misses"] > 0
    # The vehicle's command watchdog is reported from the world's process (it never tripped here).
    assert "drive_by_wire_tripped_at_s" in rep["closed_loop"] and rep["closed_loop"]["drive_by_wire_tripped_at_s"] is None
    assert rep["closed_loop"]["off_road_s"] == 0.0 and rep["closed_loop"]["max_off_road_m"] == 0.0
    assert main(["timing", "--load", "-1", "--no-latency-loop"]) == 2


def test_latency_mode_overrunning_periodic_task_keeps_one_chain_and_sim_time_is_not_delayed():
    ft = FakeTime()
    sched = Scheduler(RunClock(ft.monotonic_ns, ft.sleep_s), lambda: ft.t_ns, "latency")
    sched.add_task(TaskSpec("fusion", 1, budget_ns=5 * MS, period_ns=10 * MS),
                   lambda t, tr: (setattr(ft, "t_ns", ft.t_ns + 25 * MS), ())[1])
    world_times = []
    sched.add_task(TaskSpec("sim.world", 0, budget_ns=0, period_ns=10 * MS, timed=False),
                   lambda t, tr: (world_times.append(t), setattr(ft, "t_ns", ft.t_ns + 30 * MS), ())[2])
    sched.run_until(100 * MS)
    starts = [r.t_ns for r in sched.timings]
    # Each 25 ms run queues the next behind it: one run per 25 ms, never duplicated chains.
    assert starts == [0, 25 * MS, 50 * MS, 75 * MS, 100 * MS]
    assert world_times == list(range(0, 101 * MS, 10 * MS))  # the simulator's compute delays nothing


def test_config_is_laid_over_a_logs_recorded_stack_config(tmp_path):
    from dataclasses import replace

    from core.config import ConfigError
    from runtime.timing import overlay_config

    recorded = replace(StackConfig(), budgets_ms={**StackConfig().budgets_ms, "control": 2.0})
    assert overlay_config(recorded, None) is recorded
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[budgets_ms]\nplanning = 0.01\n[rates_hz]\nplanning = 5.0\n")
    out = overlay_config(recorded, cfg)
    # What the file says changes; the recording keeps the rest (budgets merged key by key).
    assert out.budgets_ms == {**recorded.budgets_ms, "planning": 0.01} and out.budget_ns("control") == 2 * MS
    assert out.rates_hz == replace(recorded.rates_hz, planning=5.0)
    assert replace(out, budgets_ms=recorded.budgets_ms, rates_hz=recorded.rates_hz) == recorded
    cfg.write_text("[budgets_ms]\nplanning = 0.01\n[rates_hz]\nplaning = 5.0\n")
    with pytest.raises(ConfigError, match="cfg.toml.*rates_hz.planing"):
        overlay_config(recorded, cfg)


def test_cli_timing_log_applies_config_and_refuses_seed(tmp_path, capsys):
    import json

    from runtime.cli import main

    log = tmp_path / "run.mcap"
    assert main(["sim", "--scenario", "free_road", "--perception", "oracle", "--duration", "1", "--record",
                 str(log)]) == 0
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[budgets_ms]\nplanning = 0.01\n")
    capsys.readouterr()
    # --seed means nothing for recorded inputs: refused before the run, one line, exit 2.
    assert main(["timing", "--log", str(log), "--seed", "5", "--no-latency-loop"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed" in err[0] and "--log" in err[0]
    out_json = tmp_path / "t.json"
    rc = main(["timing", "--log", str(log), "--config", str(cfg), "--no-latency-loop", "--json", str(out_json)])
    captured = capsys.readouterr()
    rep = json.loads(out_json.read_text())
    assert rep["stages"]["planning"]["budget_ms"] == 0.01 and rep["stages"]["planning"]["misses"] > 0
    assert rep["stages"]["control"]["budget_ms"] == 1.0  # the recorded budget, not replaced by the file
    assert rc == 1 and "planning: p99" in captured.err and "gate: FAIL" in captured.out


def test_cli_timing_report_names_the_configured_control_period_and_the_realtime_run(tmp_path, capsys):
    # The header said |interval - 10 ms| whatever the control rate, and the wall-clock run's column
    # read closed_loop where README and --help call it realtime.
    from runtime.cli import main

    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[rates_hz]\ncontrol = 50.0\n")
    rc = main(["timing", "--scenario", "free_road", "--perception", "oracle", "--duration", "1.0",
               "--config", str(cfg), "--no-latency-loop"])
    out = capsys.readouterr().out
    assert rc in (0, 1)  # the gate depends on this host's timing; the report's wording does not
    assert "control period jitter |interval - 20 ms|" in out
    assert "realtime" in out.split("closed loop", 1)[1].splitlines()[0]
