"""The ego's drive-by-wire interface: what reaches the actuators each physics tick.

It applies the stack's latest control command while commands keep coming. When the newest command
is older than ``VehicleParams.command_timeout_s`` (the control stage hangs, throws, or the stack
stops), it stops trusting the stack: it brakes at ``fallback_decel_mps2`` to a standstill, holding
the last commanded steering angle, and stays latched so until the run ends. A real vehicle's
drive-by-wire unit does the same with its command heartbeat. This cannot live in the stack's own
safety monitor or arbitration: both run inside the stack's tasks, and a stack whose control stage
is dead can no longer act on any decision it takes (the monitor would report MINIMAL_RISK while
the car kept its last command, at speed, into the vehicle ahead).

Before the first command, the run's start stands in for it: the watchdog trips if no command has
come ``command_timeout_s`` after the start.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.messages import ControlCommand
from core.vehicle import VehicleParams


@dataclass(frozen=True, slots=True)
class DriveByWireState:
    start_ns: int = 0  # the run's start: the age of "no command yet"
    tripped_at_ns: int = -1  # when the command timeout tripped; -1 while commands come in time
    held_steer_rad: float = 0.0  # steering held while braking after a trip


def actuator_command(state: DriveByWireState, cmd: ControlCommand | None, now_ns: int,
                     vehicle: VehicleParams) -> tuple[DriveByWireState, float, float]:
    """(state, accel [m/s^2], steer [rad]) to apply at ``now_ns`` given the newest command."""
    if state.tripped_at_ns < 0:
        last_ns = cmd.t_ns if cmd is not None else state.start_ns
        if (now_ns - last_ns) * 1e-9 <= vehicle.command_timeout_s:
            if cmd is None:
                return state, 0.0, 0.0
            return state, cmd.accel_mps2, cmd.steer_rad
        state = DriveByWireState(state.start_ns, now_ns, cmd.steer_rad if cmd is not None else 0.0)
    return state, -vehicle.fallback_decel_mps2, state.held_steer_rad
