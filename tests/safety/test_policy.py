"""The policy table decides every sensor combination; the FTTI table holds for every fault."""
import itertools

import pytest

from core.messages import Mode
from runtime.stack_config import StackConfig
from safety.ftti import FTTI_TABLE, LoopTiming, StreamTiming, ftti_budget
from safety.health import HealthState, StreamSpec, observe
from safety.monitor import MonitorState, SafetyConfig, safety_step
from safety.policy import PolicyRule, evaluate
from safety.rules import DEFAULT_RULES, EGO_SENSORS, OBJECT_SENSORS
from sim.sensors.config import SensorRigConfig

MS = 1_000_000
SENSORS = OBJECT_SENSORS + EGO_SENSORS
PERIOD_MS = {"camera": 50, "lidar": 100, "radar": 50, "imu": 10, "wheel": 20, "gnss": 100}
SPECS = tuple(StreamSpec(n, PERIOD_MS[n] * MS) for n in SENSORS)
NOW_MS = 3000


def _history(name: str, up: bool):
    """A stream that delivered at its rate until now (up) or stopped a second ago (down)."""
    end_ms = NOW_MS if up else NOW_MS - 1000
    h = HealthState()
    for t in range(0, end_ms + 1, PERIOD_MS[name]):
        h = observe(h, name, t * MS, t * MS + 1)
    return h.streams[name]


HISTORY = {(n, up): _history(n, up) for n in SENSORS for up in (True, False)}


def table_mode(lost: frozenset[str], flags: frozenset[str] = frozenset()) -> Mode:
    """The mode the table's rules demand, read rule by rule from the table's data."""
    mode = Mode.NOMINAL
    for rule in DEFAULT_RULES:
        streams_hold = not rule.streams or len(lost & set(rule.streams)) >= rule.min_lost
        flag_holds = not rule.flag or rule.flag in flags
        if streams_hold and flag_holds:
            mode = max(mode, rule.mode)
    return Mode(mode)


def _step(lost: frozenset[str], flags=frozenset(), state=MonitorState(), t_ms=NOW_MS):
    health = HealthState({n: HISTORY[(n, n not in lost)] for n in SENSORS})
    return safety_step(state, health, SPECS, flags, DEFAULT_RULES, t_ms * MS, SafetyConfig())


COMBOS = [frozenset(c) for k in range(len(SENSORS) + 1) for c in itertools.combinations(SENSORS, k)]


def test_all_64_sensor_combinations_reach_the_mode_the_table_says():
    assert len(COMBOS) == 64
    for lost in COMBOS:
        _, status = _step(lost)
        assert status.mode == table_mode(lost), sorted(lost)
        assert {n for n, ok in status.stream_alive.items() if not ok} == lost
        if lost:
            assert status.reason, sorted(lost)  # every non-nominal mode names its reason


def test_all_64_combinations_with_an_obstacle_close_ahead_in_the_last_picture():
    flags = frozenset({"picture.obstacle_close_ahead"})
    seen_estop = 0
    for lost in COMBOS:
        state, _ = _step(frozenset(), flags, t_ms=NOW_MS - 10)  # a fresh picture with the obstacle
        _, status = _step(lost, frozenset(), state)  # tracks gone since: the held picture decides
        expected = table_mode(lost, flags)
        assert status.mode == expected, sorted(lost)
        seen_estop += expected == Mode.EMERGENCY_STOP
    assert seen_estop == 8  # the 8 combinations with camera, lidar and radar all lost


@pytest.mark.parametrize("lost, mode", [
    ((), Mode.NOMINAL),
    (("lidar",), Mode.DEGRADED),
    (("camera",), Mode.DEGRADED),
    (("gnss",), Mode.DEGRADED),
    (("camera", "lidar"), Mode.MINIMAL_RISK),
    (("lidar", "radar"), Mode.MINIMAL_RISK),
    (("camera", "lidar", "radar"), Mode.MINIMAL_RISK),
    (("imu", "wheel"), Mode.MINIMAL_RISK),
    (("gnss", "imu"), Mode.MINIMAL_RISK),
    (SENSORS, Mode.MINIMAL_RISK),
])
def test_the_issue_defaults(lost, mode):
    _, status = _step(frozenset(lost))
    assert status.mode == mode


def test_a_held_picture_only_changes_while_some_object_stream_is_fresh():
    everything = frozenset(OBJECT_SENSORS)
    state, _ = _step(frozenset(), frozenset(), t_ms=NOW_MS - 10)  # fresh picture: nothing ahead
    # All object sensors lost; a coasting track ahead now is not a fresh picture: MINIMAL_RISK.
    _, status = _step(everything, frozenset({"picture.obstacle_close_ahead"}), state)
    assert status.mode == Mode.MINIMAL_RISK and "all object sensors lost" in status.reason


def test_policy_rule_without_condition_or_impossible_count_is_rejected():
    with pytest.raises(ValueError, match="no condition"):
        PolicyRule(Mode.DEGRADED, "nothing")
    with pytest.raises(ValueError, match="min_lost"):
        PolicyRule(Mode.DEGRADED, "four of three", streams=OBJECT_SENSORS, min_lost=4)


def test_a_rule_with_streams_and_flag_needs_both():
    rule = (PolicyRule(Mode.EMERGENCY_STOP, "both", streams=("lidar",), flag="f"),)
    assert evaluate(rule, frozenset({"lidar"}), frozenset())[0] == Mode.NOMINAL
    assert evaluate(rule, frozenset(), frozenset({"f"}))[0] == Mode.NOMINAL
    assert evaluate(rule, frozenset({"lidar"}), frozenset({"f"}))[0] == Mode.EMERGENCY_STOP


def default_timings() -> tuple[dict[str, StreamTiming], LoopTiming]:
    """The FTTI inputs of a default run: the sensor suite's timing and the stack's rates."""
    suite, cfg = SensorRigConfig(), StackConfig()
    streams = {}
    for name in SENSORS:
        sc = suite.sensor(name)
        streams[name] = StreamTiming(1.0 / sc.rate_hz, sc.latency_s, sc.jitter_s,
                                     cfg.safety.freeze.max_repeats(name, sc.rate_hz))
    r = cfg.rates_hz
    loop = LoopTiming(1.0 / r.safety, 1.0 / r.fusion, 1.0 / r.planning, 1.0 / r.control,
                      cfg.liveness.max_missed_periods, cfg.liveness.control_input_timeout_s,
                      cfg.safety.heartbeat_timeout_s)
    return streams, loop


@pytest.mark.parametrize("entry", FTTI_TABLE, ids=lambda e: e.fault)
def test_detection_plus_reaction_fits_the_ftti(entry):
    streams, loop = default_timings()
    detect_s, react_s = ftti_budget(entry, streams, loop)
    assert 0 < detect_s and 0 < react_s
    assert detect_s + react_s <= entry.ftti_s, (entry.fault, detect_s, react_s)


def test_ftti_table_modes_agree_with_the_policy_table():
    for entry in FTTI_TABLE:
        if entry.detection in ("streams", "frozen"):  # a frozen stream counts as lost
            assert table_mode(frozenset(entry.streams)) == entry.mode, entry.fault
    flag_of = {"localisation": "localisation.lost", "planner_misses": "planning.missed_3",
               "stage_event": "stage.exception", "heartbeat": "loop.heartbeat_late",
               "stale_input": "control.stale_input"}
    for entry in FTTI_TABLE:
        if entry.detection in flag_of:
            assert table_mode(frozenset(), frozenset({flag_of[entry.detection]})) == entry.mode, entry.fault


def test_a_car_that_lost_its_position_stops_firmer_than_minimal_risk_asks():
    from safety.policy import MODE_LIMITS
    from safety.rules import LOCALISATION_LOST_STOP_DECEL_MPS2
    comfortable = MODE_LIMITS[Mode.MINIMAL_RISK].stop_decel_mps2
    assert comfortable < LOCALISATION_LOST_STOP_DECEL_MPS2 <= 4.0  # UN R157's aim for an MRM
    _, gnss_gone = _step(frozenset(), frozenset({"localisation.lost"}))
    _, two_ego = _step(frozenset({"gnss", "wheel"}))
    _, two_objects = _step(frozenset({"lidar", "radar"}))
    _, heading_only = _step(frozenset(), frozenset({"localisation.heading_lost"}))
    assert gnss_gone.mode == two_ego.mode == two_objects.mode == heading_only.mode == Mode.MINIMAL_RISK
    assert gnss_gone.limits.stop_decel_mps2 == two_ego.limits.stop_decel_mps2 == LOCALISATION_LOST_STOP_DECEL_MPS2
    # Every other limit is the mode's own.
    assert gnss_gone.limits.speed_cap_mps == MODE_LIMITS[Mode.MINIMAL_RISK].speed_cap_mps and gnss_gone.limits.hazard
    assert two_objects.limits == heading_only.limits == MODE_LIMITS[Mode.MINIMAL_RISK]
    # An emergency stop stays as firm as it is.
    from safety.policy import stop_limits
    estop = stop_limits(Mode.EMERGENCY_STOP, DEFAULT_RULES, frozenset(), frozenset({"localisation.lost"}))
    assert estop == MODE_LIMITS[Mode.EMERGENCY_STOP] and estop.stop_decel_mps2 > LOCALISATION_LOST_STOP_DECEL_MPS2


def test_a_firmer_stop_is_only_for_rules_of_a_stopping_mode():
    with pytest.raises(ValueError, match="needs a stopping mode"):
        PolicyRule(Mode.DEGRADED, "x lost", streams=("x",), stop_decel_mps2=3.0)
    with pytest.raises(ValueError, match="needs a stopping mode"):
        PolicyRule(Mode.MINIMAL_RISK, "x lost", streams=("x",), stop_decel_mps2=-1.0)
    # A held MINIMAL_RISK whose rules went quiet stops at the mode's own deceleration.
    from safety.policy import MODE_LIMITS, stop_limits
    rule = PolicyRule(Mode.MINIMAL_RISK, "x lost", streams=("x",), stop_decel_mps2=3.0)
    assert stop_limits(Mode.MINIMAL_RISK, (rule,), frozenset({"x"}), frozenset()).stop_decel_mps2 == 3.0
    assert stop_limits(Mode.MINIMAL_RISK, (rule,), frozenset(), frozenset()) == MODE_LIMITS[Mode.MINIMAL_RISK]
    assert stop_limits(Mode.DEGRADED, (rule,), frozenset({"x"}), frozenset()) == MODE_LIMITS[Mode.DEGRADED]
