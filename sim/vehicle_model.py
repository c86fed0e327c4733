"""Ego vehicle dynamics: kinematic bicycle about the rear axle, with actuator lag and limits.

The reference point is the rear-axle centre (the vehicle frame origin), where the kinematic bicycle
has no side slip: x' = v cos(yaw), y' = v sin(yaw), yaw' = v tan(steer) / wheelbase. Within a step
the steering angle is constant, so the path is an exact circular arc whatever the speed profile;
the step integrates it in closed form rather than with Euler, so no drift accumulates at 100 Hz.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from core.vehicle import VehicleParams


class BicycleState(NamedTuple):
    """The ego's dynamic state (a NamedTuple: one is built every physics step, and a tuple's
    construction costs a quarter of a frozen dataclass's)."""

    x_m: float
    y_m: float
    yaw_rad: float
    v_mps: float  # >= 0: the model never reverses
    a_mps2: float  # actual longitudinal acceleration (after lag, jerk limit and standstill)
    steer_rad: float  # actual front-wheel angle


def path_curvature(state: BicycleState, params: VehicleParams) -> float:
    return math.tan(state.steer_rad) / params.wheelbase_m


def _lag(current: float, target: float, tau_s: float, dt_s: float) -> float:
    """First-order lag, exact for a command held over the step."""
    if tau_s <= 0.0:
        return target
    return target + (current - target) * math.exp(-dt_s / tau_s)


def step_bicycle(state: BicycleState, accel_cmd_mps2: float, steer_cmd_rad: float, dt_s: float,
                 params: VehicleParams) -> BicycleState:
    """Advance by dt_s holding the commands. Raises ValueError on non-finite input or dt_s <= 0."""
    if not (math.isfinite(accel_cmd_mps2) and math.isfinite(steer_cmd_rad)):
        raise ValueError(f"non-finite command: accel {accel_cmd_mps2}, steer {steer_cmd_rad}")
    if not (math.isfinite(dt_s) and dt_s > 0.0):
        raise ValueError(f"dt_s must be positive and finite, got {dt_s}")

    # Longitudinal actuator: saturate the request, lag it, then bound the change by the jerk limit.
    # (Clips are written inline: this runs every physics step and a call costs more than the test.)
    a0, max_steer = state.a_mps2, params.max_steer_rad
    a_cmd = accel_cmd_mps2
    a_cmd = -params.max_decel_mps2 if a_cmd < -params.max_decel_mps2 else (
        params.max_accel_mps2 if a_cmd > params.max_accel_mps2 else a_cmd)
    a_lagged = _lag(a0, a_cmd, params.accel_lag_s, dt_s)
    max_da = params.max_jerk_mps3 * dt_s
    a = a0 - max_da if a_lagged < a0 - max_da else (a0 + max_da if a_lagged > a0 + max_da else a_lagged)

    # Steering actuator: same pattern with the rate limit, then the mechanical stop.
    steer0 = state.steer_rad
    steer_cmd = -max_steer if steer_cmd_rad < -max_steer else (max_steer if steer_cmd_rad > max_steer else steer_cmd_rad)
    steer_lagged = _lag(steer0, steer_cmd, params.steer_lag_s, dt_s)
    max_dsteer = params.max_steer_rate_rps * dt_s
    steer = steer0 - max_dsteer if steer_lagged < steer0 - max_dsteer else (
        steer0 + max_dsteer if steer_lagged > steer0 + max_dsteer else steer_lagged)
    steer = -max_steer if steer < -max_steer else (max_steer if steer > max_steer else steer)

    # Speed and distance with the acceleration held; braking stops at zero instead of reversing.
    v0 = state.v_mps
    v1 = v0 + a * dt_s
    if v1 >= 0.0:
        dist = 0.5 * (v0 + v1) * dt_s
    else:
        dist = 0.5 * v0 * v0 / -a if a < 0.0 else 0.0
        v1 = 0.0
    if v1 == 0.0 and a < 0.0:
        # Standing still: the brakes hold, the body does not decelerate any more.
        a = 0.0

    # Exact arc for constant curvature: chord length and mid-heading.
    kappa = math.tan(steer) / params.wheelbase_m
    dyaw = kappa * dist
    chord = 2.0 * math.sin(0.5 * dyaw) / kappa if abs(dyaw) > 1e-9 else dist
    mid = state.yaw_rad + 0.5 * dyaw
    yaw = math.remainder(state.yaw_rad + dyaw, 2.0 * math.pi)
    return BicycleState(state.x_m + chord * math.cos(mid), state.y_m + chord * math.sin(mid),
                        yaw, v1, a, steer)
