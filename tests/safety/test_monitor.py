"""Liveness cannot be faked; the policy table decides; recovery needs a hold time."""
from core.messages import Mode
from safety.health import HealthState, StreamSpec, observe, stream_alive
from safety.monitor import DEFAULT_RULES, MonitorState, SafetyConfig, safety_step
from safety.policy import PolicyRule, evaluate

MS = 1_000_000
LIDAR = StreamSpec("lidar", period_ns=100 * MS, max_missed_periods=3)


def test_stream_alive_within_n_periods_only():
    h = observe(HealthState(), "lidar", t_ns=0, arrival_ns=10 * MS)
    assert stream_alive(h, LIDAR, 310 * MS)
    assert not stream_alive(h, LIDAR, 311 * MS)


def test_duplicates_and_time_going_backwards_do_not_refresh_liveness():
    h = observe(HealthState(), "lidar", t_ns=100 * MS, arrival_ns=100 * MS)
    h = observe(h, "lidar", t_ns=100 * MS, arrival_ns=300 * MS)  # duplicate
    h = observe(h, "lidar", t_ns=50 * MS, arrival_ns=350 * MS)  # backwards
    assert h.streams["lidar"].stale_or_duplicate == 2
    assert h.streams["lidar"].last_arrival_ns == 100 * MS
    assert not stream_alive(h, LIDAR, 450 * MS)


def test_nonfinite_and_malformed_messages_are_counted_and_do_not_count_as_alive():
    h = observe(HealthState(), "lidar", t_ns=0, arrival_ns=0, finite=False)
    h = observe(h, "lidar", t_ns=1, arrival_ns=1, well_formed=False)
    assert h.streams["lidar"].nonfinite == 1 and h.streams["lidar"].malformed == 1
    assert not stream_alive(h, LIDAR, 301 * MS)


def test_a_stream_is_given_its_max_age_from_the_start_before_it_counts_as_lost():
    assert stream_alive(HealthState(start_ns=0), LIDAR, 300 * MS)  # first scan still in flight
    assert not stream_alive(HealthState(start_ns=0), LIDAR, 301 * MS)


def test_policy_table_takes_most_severe_rule():
    rules = (PolicyRule(Mode.DEGRADED, "lidar lost", streams=("lidar",)),
             PolicyRule(Mode.MINIMAL_RISK, "two lost", streams=("camera", "lidar", "radar"), min_lost=2))
    assert evaluate(rules, frozenset({"lidar"}), frozenset()) == (Mode.DEGRADED, "lidar lost")
    mode, reason = evaluate(rules, frozenset({"lidar", "radar"}), frozenset())
    assert mode == Mode.MINIMAL_RISK and "two lost" in reason and "lidar lost" in reason
    assert evaluate(rules, frozenset(), frozenset()) == (Mode.NOMINAL, "")


def test_escalation_immediate_recovery_after_hold():
    cfg = SafetyConfig(recovery_hold_s=1.0)
    state, h = MonitorState(), observe(HealthState(), "lidar", 0, 0)
    modes = {}
    for t in range(10, 1510, 10):  # the monitor at 100 Hz; the lidar silent from 0 to 500 ms
        if t >= 500 and t % 100 == 0:
            h = observe(h, "lidar", t * MS, t * MS)
        state, status = safety_step(state, h, (LIDAR,), frozenset(), DEFAULT_RULES, t * MS, cfg)
        modes[t] = status
    assert modes[300].mode == Mode.NOMINAL and modes[310].mode == Mode.DEGRADED
    assert modes[310].reason == "lidar lost"
    assert modes[310].limits.speed_cap_mps < 1e9 and not modes[310].limits.lane_change_allowed
    # The lidar is back at 500 ms: still DEGRADED until it has been healthy for the hold time.
    assert all(modes[t].mode == Mode.DEGRADED for t in range(500, 1500, 10))
    assert modes[1500].mode == Mode.NOMINAL
    assert [tr.mode for tr in state.transitions] == [Mode.DEGRADED, Mode.NOMINAL]
    assert [tr.t_ns for tr in state.transitions] == [310 * MS, 1500 * MS]


def test_stale_control_input_demands_emergency_stop():
    state, status = safety_step(MonitorState(), HealthState(), (), frozenset({"control.stale_input"}),
                                DEFAULT_RULES, 0, SafetyConfig())
    assert status.mode == Mode.EMERGENCY_STOP and status.limits.stop_decel_mps2 >= 5.0


def test_recovery_from_emergency_stop_steps_down_to_the_worst_demand_of_the_hold():
    # EMERGENCY_STOP at 0; a MINIMAL_RISK demand through the hold, healthy only from 1.95 s. The
    # monitor used to go straight to NOMINAL at 2.01 s, "healthy for 2 s" after 60 ms of health.
    cfg = SafetyConfig(recovery_hold_s=2.0)
    state, modes = MonitorState(), {}
    for t in range(0, 4100, 10):
        flags = ({"control.stale_input"} if t == 0 else {"stage.exception"} if t < 1950 else set())
        state, status = safety_step(state, HealthState(), (), frozenset(flags), DEFAULT_RULES, t * MS, cfg)
        modes[t] = status.mode
    assert [(tr.t_ns // MS, tr.mode, tr.reason) for tr in state.transitions] == [
        (0, Mode.EMERGENCY_STOP, "control input older than its timeout"),
        (2010, Mode.MINIMAL_RISK, "a stage raised an exception"),  # the hold began at 10 ms
        (4010, Mode.NOMINAL, "recovered: healthy for 2 s"),  # a hold of its own from 2.01 s
    ]
    assert modes[2000] == Mode.EMERGENCY_STOP and modes[4000] == Mode.MINIMAL_RISK


def test_recovery_with_a_steady_lower_demand_is_unchanged():
    # One lower demand through the hold: one step, straight to it, as before.
    cfg = SafetyConfig(recovery_hold_s=1.0)
    state = MonitorState()
    for t in range(0, 1100, 10):
        flags = {"control.stale_input"} if t == 0 else {"stage.deadline_window"}
        state, status = safety_step(state, HealthState(), (), frozenset(flags), DEFAULT_RULES, t * MS, cfg)
    assert [(tr.t_ns // MS, tr.mode) for tr in state.transitions] == [(0, Mode.EMERGENCY_STOP), (1010, Mode.DEGRADED)]
    assert state.lower_demand_since_ns == -1
