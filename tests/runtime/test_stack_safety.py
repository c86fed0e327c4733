"""The stack's own watchdogs, closed loop on oracle perception: every periodic stage's deadline
misses, a monitor that stops publishing, exceptions under a hold shorter than the monitor's
period, and the config cross-checks they rely on."""
from dataclasses import replace

import pytest

import runtime.stack as stack_mod
from core.config import ConfigError, from_mapping
from core.messages import Mode
from runtime.closed_loop import ClosedLoop, RunOptions
from runtime.stack_config import LivenessConfig, StackConfig
from sim.scenario import load_scenario


def _run(faults=(), duration_s=1.5, stack_cfg=None, scenario="free_road"):
    loop = ClosedLoop(load_scenario(scenario), RunOptions(seed=0, duration_s=duration_s, faults=faults), stack_cfg)
    commands = []
    loop.scheduler.add_listener(lambda t, topic, msg: commands.append(msg) if topic == "/control/command" else None)
    return loop, loop.run(), commands


def test_hung_control_leads_to_minimal_risk_in_ideal_mode():
    # Only planning had a consecutive-miss watchdog in ideal mode: a control hang stayed NOMINAL
    # with no command for as long as it lasted.
    _, s, _ = _run(("control:hang@1-3",))
    assert s["modes"][0] == {"t_s": 1.03, "mode": "MINIMAL_RISK", "reason": "control missed 3 deadlines in a row"}


@pytest.mark.parametrize("kind", ["hang", "exception"])
def test_dead_control_is_caught_by_the_vehicle_and_the_car_stops_short_of_the_cut_in(kind):
    # The monitor's MINIMAL_RISK cannot act through a dead control stage: the car kept its last
    # command and hit the cut-in vehicle at 25 m/s (collisions 1, final speed 26.4 m/s). The
    # drive-by-wire watchdog brakes on its own 0.1 s after the last command.
    loop, s, _ = _run((f"control:{kind}@1",), duration_s=8.0, scenario="cut_in")
    assert s["collisions"] == 0
    assert s["drive_by_wire"]["tripped_at_s"] == pytest.approx(1.1, abs=0.011)
    assert s["final_speed_mps"] == 0.0
    assert abs(loop.trajectory[-1][2]) < 0.5  # y: stopped in its lane (the straight road's centre lane)


def test_slow_fusion_leads_to_minimal_risk_in_ideal_mode():
    # slow=3 still publishes (so no stale input), but misses every deadline.
    _, s, _ = _run(("fusion:slow=3@1-3",))
    assert s["modes"][0] == {"t_s": 1.05, "mode": "MINIMAL_RISK", "reason": "fusion missed 3 deadlines in a row"}


def test_a_monitor_that_raises_leaves_control_braking_as_in_emergency_stop(monkeypatch):
    # The monitor itself raising: no /safety/status after 0.99 s. Control used to obey the last
    # (NOMINAL) status for the rest of the run.
    real = stack_mod.safety_step

    def flaky(state, *args):
        if args[4] >= 1_000_000_000:
            raise RuntimeError("monitor bug")
        return real(state, *args)

    monkeypatch.setattr(stack_mod, "safety_step", flaky)
    loop, s, commands = _run(duration_s=2.0, scenario="cut_in")
    assert s["stage_errors"]["safety"]["exceptions"] == 101  # 1.00 to 2.00 s
    heartbeat_ns = loop.stack.steps.safety_cfg.heartbeat_timeout_s * 1e9
    for c in commands:
        stale = c.t_ns - 990_000_000 > heartbeat_ns
        assert c.hazard == stale, c.t_ns  # hazard lights: NOMINAL until the status goes stale
    assert commands[-1].accel_mps2 == -6.0  # EMERGENCY_STOP's deceleration, reached at the jerk limit


def test_control_without_any_status_brakes(monkeypatch):
    def broken(state, *args):
        raise RuntimeError("monitor bug")

    monkeypatch.setattr(stack_mod, "safety_step", broken)  # no /safety/status at all
    _, _, commands = _run(duration_s=0.8)  # the jerk-limited brake reaches -6 m/s^2 within it
    # The start counts as vouched for one heartbeat timeout (0.1 s: control may run before the
    # monitor's first status); after it every command brakes.
    late = [c for c in commands if c.t_ns > 100_000_000]
    early = [c for c in commands if c.t_ns <= 100_000_000]
    assert early and not any(c.hazard for c in early)
    assert late and all(c.hazard for c in late) and late[-1].accel_mps2 == -6.0


def test_an_exception_is_flagged_with_a_hold_shorter_than_the_monitor_period():
    # The monitor runs before the planner at the same instant: with exception_hold_s = 0 the
    # planner's exception at 1.0 s was already 10 ms old at the monitor's next run, never flagged.
    cfg = replace(StackConfig(), liveness=LivenessConfig(exception_hold_s=0.0))
    loop, s, _ = _run(("planner:exception@1-1.05",), stack_cfg=cfg)
    assert s["stage_errors"]["planning"]["exceptions"] == 1
    assert s["modes"][0] == {"t_s": 1.01, "mode": "MINIMAL_RISK", "reason": "a stage raised an exception"}


def test_fault_free_run_sees_no_flag_and_no_emergency_override():
    _, s, commands = _run()
    assert s["modes"] == [] and s["stage_errors"] == {}
    assert not any(c.hazard for c in commands)


@pytest.mark.parametrize("data, message", [
    ({"rates_hz": {"fusion": 5.0}},  # 200 ms between estimates against a 100 ms timeout
     r"liveness\.control_input_timeout_s \(0\.1 s\) must be above the fusion period, 1 / rates_hz\.fusion \(0\.2 s\)"),
    ({"liveness": {"control_input_timeout_s": 0.02}},
     r"liveness\.control_input_timeout_s \(0\.02 s\) must be above the fusion period"),
    ({"rates_hz": {"safety": 10.0}, "safety": {"heartbeat_timeout_s": 0.05}},
     r"safety\.heartbeat_timeout_s \(0\.05 s\) must be at least the monitor's period, 1 / rates_hz\.safety \(0\.1 s\)"),
    ({"safety": {"stages": {"window_runs": 10}}},
     r"safety\.stages: max_misses_in_window \(15\) must be <= window_runs \(10\)"),
    ({"rates_hz": {"planning": 2.0}},  # 500 ms between plans against a 300 ms plan timeout
     r"controller\.plan_timeout_s \(0\.3 s\) must be above the planning period, 1 / rates_hz\.planning \(0\.5 s\)"),
    ({"controller": {"plan_timeout_s": 0.1}},  # a period equal to the timeout: stale as the next plan lands
     r"controller\.plan_timeout_s \(0\.1 s\) must be above the planning period"),
], ids=["fusion_rate", "control_timeout", "heartbeat", "stage_window", "planning_rate", "plan_timeout"])
def test_stack_config_cross_checks_name_the_file_and_the_keys(data, message):
    with pytest.raises(ConfigError, match=r"^stack\.toml: .*" + message):
        from_mapping(StackConfig, data, "stack.toml")


def test_stack_config_cross_checks_accept_the_defaults_and_the_edges():
    from_mapping(StackConfig, {"rates_hz": {"fusion": 11.0}}, "stack.toml")  # 91 ms < 100 ms
    from_mapping(StackConfig, {"rates_hz": {"safety": 10.0}}, "stack.toml")  # period == the 100 ms heartbeat
    from_mapping(StackConfig, {"rates_hz": {"planning": 3.4}}, "stack.toml")  # 294 ms < 300 ms
