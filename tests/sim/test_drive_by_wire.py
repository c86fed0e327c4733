"""The drive-by-wire command watchdog: pass commands through while they come in time, brake on
its own (latched) when they stop."""
import pytest

from core.messages import ControlCommand
from core.vehicle import VehicleParams
from sim.drive_by_wire import DriveByWireState, actuator_command

MS = 1_000_000
VEHICLE = VehicleParams(command_timeout_s=0.1, fallback_decel_mps2=6.0)


def _cmd(t_ms: int, accel: float = 1.5, steer: float = 0.05) -> ControlCommand:
    return ControlCommand(t_ms * MS, accel, steer, -1)


def test_fresh_commands_pass_through_unchanged():
    state = DriveByWireState()
    for t_ms in range(0, 500, 10):
        state, accel, steer = actuator_command(state, _cmd(t_ms, 0.1 * t_ms, -0.001 * t_ms), t_ms * MS + 5 * MS, VEHICLE)
        assert (accel, steer) == (0.1 * t_ms, -0.001 * t_ms)
    assert state.tripped_at_ns == -1


def test_a_command_exactly_timeout_old_still_counts_one_older_trips():
    state, accel, _ = actuator_command(DriveByWireState(), _cmd(1000), 1100 * MS, VEHICLE)
    assert state.tripped_at_ns == -1 and accel == 1.5
    state, accel, steer = actuator_command(state, _cmd(1000), 1101 * MS, VEHICLE)
    assert state.tripped_at_ns == 1101 * MS
    assert (accel, steer) == (-6.0, 0.05)  # brakes, holding the last steering angle


def test_the_trip_is_latched_when_commands_come_back():
    state, *_ = actuator_command(DriveByWireState(), _cmd(0), 200 * MS, VEHICLE)
    for t_ms in range(210, 400, 10):
        state, accel, steer = actuator_command(state, _cmd(t_ms, accel=2.0, steer=0.3), t_ms * MS, VEHICLE)
        assert (accel, steer) == (-6.0, 0.05)
    assert state.tripped_at_ns == 200 * MS


def test_no_command_at_all_trips_a_timeout_after_the_start():
    state, accel, steer = actuator_command(DriveByWireState(start_ns=0), None, 100 * MS, VEHICLE)
    assert (state.tripped_at_ns, accel, steer) == (-1, 0.0, 0.0)  # coasting while the stack starts
    state, accel, steer = actuator_command(state, None, 110 * MS, VEHICLE)
    assert (state.tripped_at_ns, accel, steer) == (110 * MS, -6.0, 0.0)


@pytest.mark.parametrize("key, value", [("command_timeout_s", 0.0), ("fallback_decel_mps2", -1.0),
                                        ("command_timeout_s", float("nan"))])
def test_watchdog_parameters_are_range_checked(key, value):
    from core.config import ConfigError, from_mapping
    with pytest.raises(ConfigError, match=key):
        from_mapping(VehicleParams, {key: value}, "vehicle.toml")
