"""Command arbitration: the safety mode has the last word on the actuators.

In EMERGENCY_STOP the controller's command is overridden by a jerk-limited brake at the mode's
deceleration, whatever the planner last said (the planner may be the thing that failed).
"""
from __future__ import annotations

from dataclasses import replace

from core.messages import ControlCommand, Mode, SafetyStatus
from core.vehicle import VehicleParams


def arbitrate(command: ControlCommand, status: SafetyStatus, previous: ControlCommand | None,
              dt_s: float, vehicle: VehicleParams) -> ControlCommand:
    if status.mode != Mode.EMERGENCY_STOP:
        if command.hazard or not status.limits.hazard:
            return command  # messages are immutable: nothing to change, nothing to copy
        return replace(command, hazard=True)
    target = -status.limits.stop_decel_mps2
    prev_accel = previous.accel_mps2 if previous is not None else command.accel_mps2
    # Ramp towards the brake target at the actuator's jerk limit; never less braking than asked.
    accel = max(target, prev_accel - vehicle.max_jerk_mps3 * dt_s)
    return replace(command, accel_mps2=min(accel, command.accel_mps2), hazard=True)
