"""Closed-loop checks of the plan-tracking controller against a small kinematic bicycle."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from control import ControllerConfig, ControllerState, control_step
from core.messages import EgoState, Plan
from core.vehicle import VehicleParams

VEH = VehicleParams()
CFG = ControllerConfig()
DT_NS = 10_000_000


def _ego(t_ns: int, x: float, y: float, yaw: float, v: float, a: float = 0.0) -> EgoState:
    return EgoState(t_ns, np.array([x, y, yaw]), v, a, 0.0, np.eye(5))


def _line_plan(t_ns: int, y_m: float, speed_mps: float, x0_m: float) -> Plan:
    t = np.arange(51) * 0.1
    x = x0_m + speed_mps * t
    k = t.shape[0]
    return Plan(t_ns, t, np.stack([x, np.full(k, y_m)], 1), np.zeros(k), np.full(k, speed_mps),
                np.zeros(k), np.zeros(k))


def _circle_plan(t_ns: int, radius_m: float, speed_mps: float, phase0_rad: float) -> Plan:
    t = np.arange(51) * 0.1
    phase = phase0_rad + speed_mps * t / radius_m
    xy = np.stack([radius_m * np.sin(phase), radius_m * (1.0 - np.cos(phase))], 1)
    k = t.shape[0]
    return Plan(t_ns, t, xy, phase, np.full(k, speed_mps), np.zeros(k), np.full(k, 1.0 / radius_m))


def _simulate(plan_fn, x, y, yaw, v, seconds: float):
    """Kinematic bicycle about the rear axle with first-order actuator lags; replans at 10 Hz."""
    state = ControllerState()
    accel, steer = 0.0, 0.0
    log = []
    plan = None
    for i in range(int(seconds * 100)):
        t_ns = i * DT_NS
        if i % 10 == 0:
            plan = plan_fn(t_ns, x, y, yaw, v)
        state, cmd = control_step(state, plan, _ego(t_ns, x, y, yaw, v, accel), t_ns, VEH, CFG)
        log.append((cmd.accel_mps2, cmd.steer_rad, x, y, yaw, v))
        accel += (cmd.accel_mps2 - accel) * min(0.01 / VEH.accel_lag_s, 1.0)
        steer += (cmd.steer_rad - steer) * min(0.01 / VEH.steer_lag_s, 1.0)
        x += v * math.cos(yaw) * 0.01
        y += v * math.sin(yaw) * 0.01
        yaw += v * math.tan(steer) / VEH.wheelbase_m * 0.01
        v = max(v + accel * 0.01, 0.0)
    return state, np.array(log)


def test_converges_onto_offset_straight_path_and_speed():
    state, log = _simulate(lambda t, x, y, yaw, v: _line_plan(t, 1.5, 20.0, x), 0.0, 0.0, 0.0, 15.0, 12.0)
    assert abs(log[-1, 3] - 1.5) < 0.05
    assert abs(log[-1, 5] - 20.0) < 0.2
    assert abs(state.lateral_error_m) < 0.05
    # Converging does not overshoot the offset by more than a few centimetres.
    assert log[:, 3].max() < 1.5 + 0.15


def test_tracks_circle():
    radius = 60.0

    def plan_fn(t, x, y, yaw, v):
        return _circle_plan(t, radius, 12.0, math.atan2(x, radius - y))

    _, log = _simulate(plan_fn, 0.0, 0.5, 0.0, 12.0, 15.0)
    r = np.hypot(log[-300:, 2], log[-300:, 3] - radius)
    assert np.all(np.abs(r - radius) < 0.15)


def test_respects_actuator_limits():
    # A huge step in reference speed and lateral offset forces saturation.
    _, log = _simulate(lambda t, x, y, yaw, v: _line_plan(t, 8.0, 30.0, x), 0.0, 0.0, 0.0, 5.0, 4.0)
    accel, steer = log[:, 0], log[:, 1]
    assert accel.max() <= VEH.max_accel_mps2 + 1e-9 and accel.min() >= -VEH.max_decel_mps2 - 1e-9
    assert np.all(np.abs(np.diff(accel)) <= VEH.max_jerk_mps3 * 0.01 + 1e-9)
    assert np.all(np.abs(steer) <= VEH.max_steer_rad + 1e-9)
    assert np.all(np.abs(np.diff(steer)) <= VEH.max_steer_rate_rps * 0.01 + 1e-9)
    assert np.abs(np.diff(steer)).max() > 0.5 * VEH.max_steer_rate_rps * 0.01  # the limit was active


def test_stale_plan_is_not_followed():
    plan = _line_plan(0, 0.0, 30.0, 0.0)
    state = replace(ControllerState(), t_ns=0, steer_cmd_rad=0.02)
    accel = []
    for i in range(1, 80):
        t_ns = int(0.3e9) + i * DT_NS
        state, cmd = control_step(state, plan, _ego(t_ns, 0.0, 0.0, 0.0, 20.0), t_ns, VEH, CFG)
        accel.append(cmd.accel_mps2)
        assert cmd.plan_t_ns == -1 and cmd.hazard
        assert cmd.steer_rad == pytest.approx(0.02)  # steering held
    assert accel[-1] == pytest.approx(-CFG.fallback_decel_mps2)
    assert np.all(np.abs(np.diff(accel)) <= VEH.max_jerk_mps3 * 0.01 + 1e-9)
    assert state.stale_plans == 79
    _, cmd = control_step(ControllerState(), None, _ego(0, 0, 0, 0, 10.0), 0, VEH, CFG)
    assert cmd.plan_t_ns == -1 and cmd.accel_mps2 < 0


def test_fresh_plan_is_followed():
    plan = _line_plan(0, 0.0, 20.0, 0.0)
    _, cmd = control_step(ControllerState(), plan, _ego(int(0.29e9), 0, 0, 0, 20.0), int(0.29e9), VEH, CFG)
    assert cmd.plan_t_ns == 0 and not cmd.hazard


@pytest.mark.parametrize("bad", ["ego", "plan", "empty"])
def test_non_finite_inputs_refused_and_counted(bad):
    plan = _line_plan(0, 0.0, 20.0, 0.0)
    ego = _ego(0, 0.0, 0.0, 0.0, 20.0)
    if bad == "ego":
        ego = _ego(0, float("nan"), 0.0, 0.0, 20.0)
    elif bad == "plan":
        xy = plan.xy_m.copy()
        xy[3, 1] = np.inf
        plan = replace(plan, xy_m=xy)
    else:
        plan = Plan(0, np.zeros(0), np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    state, cmd = control_step(ControllerState(), plan, ego, 0, VEH, CFG)
    assert state.rejected_inputs == 1 and cmd.plan_t_ns == -1 and cmd.accel_mps2 < 0
    assert math.isfinite(cmd.accel_mps2) and math.isfinite(cmd.steer_rad)


def test_standstill_hold_and_determinism():
    plan = _line_plan(0, 0.0, 0.0, 0.0)
    s1, c1 = control_step(ControllerState(), plan, _ego(0, 0, 0, 0, 0.0), 0, VEH, CFG)
    s2, c2 = control_step(ControllerState(), plan, _ego(0, 0, 0, 0, 0.0), 0, VEH, CFG)
    assert c1 == c2 and s1 == s2
    assert c1.accel_mps2 < 0.0  # holds the brake rather than creeping


def test_comfort_jerk_outside_emergencies_actuator_jerk_in_them():
    """A plan braking hard from the start: the command ramps at the comfort jerk unless the plan is
    flagged an emergency, when the actuator's own jerk limit applies."""
    t = np.arange(51) * 0.1
    k = t.shape[0]
    xy = np.stack([100.0 + 20.0 * t, np.zeros(k)], 1)

    def ramp(emergency: bool) -> float:
        plan = Plan(0, t, xy, np.zeros(k), np.maximum(20.0 - 6.0 * t, 0.0), np.full(k, -6.0), np.zeros(k),
                    emergency=emergency)
        state, rates = ControllerState(), []
        for i in range(5):
            t_ns = i * DT_NS
            prev = state.accel_cmd_mps2
            state, cmd = control_step(state, plan, _ego(t_ns, 100.0 + 0.2 * i, 0.0, 0.0, 20.0), t_ns, VEH, CFG)
            rates.append(abs(cmd.accel_mps2 - prev) / 0.01)
        return max(rates)

    assert ramp(False) == pytest.approx(CFG.comfort_jerk_mps3)
    assert ramp(True) == pytest.approx(VEH.max_jerk_mps3)


def _pull_away_plan(t_ns: int, x0_m: float, v0_mps: float, accel_mps2: float) -> Plan:
    """From (x0_m, v0_mps), accelerating at accel_mps2 (closed form)."""
    t = np.arange(51) * 0.1
    k = t.shape[0]
    xy = np.stack([x0_m + v0_mps * t + 0.5 * accel_mps2 * t * t, np.zeros(k)], 1)
    return Plan(t_ns, t, xy, np.zeros(k), v0_mps + accel_mps2 * t, np.full(k, accel_mps2), np.zeros(k))


def test_pulls_away_from_standstill_on_an_accelerating_plan():
    """A plan starting at 0 m/s is under the standstill threshold now; accelerating, it must not be
    held on the brake (the ego would never reach the speed that releases the hold)."""
    state, cmd = control_step(ControllerState(), _pull_away_plan(0, 0.0, 0.0, 1.0), _ego(0, 0, 0, 0, 0.0), 0, VEH, CFG)
    assert cmd.accel_mps2 > 0.0 and state.speed_integral_mps == 0.0
    # Replanned every 0.1 s from where the car is: it gets going.
    _, log = _simulate(lambda t, x, y, yaw, v: _pull_away_plan(t, x, v, 1.0), 0.0, 0.0, 0.0, 0.0, 5.0)
    assert log[-1, 5] > 3.0 and log[-1, 2] > 5.0


def test_standstill_hold_only_while_the_plan_stays_still():
    """Under the threshold now but speeding past it within the preview, or with a positive
    feedforward: no hold. A plan still over the preview and not accelerating: hold."""
    t = np.arange(51) * 0.1
    k = t.shape[0]
    ego = _ego(0, 0, 0, 0, 0.0)

    def accel_cmd(speed, accel):
        plan = Plan(0, t, np.stack([np.cumsum(speed) * 0.1, np.zeros(k)], 1), np.zeros(k), speed, accel, np.zeros(k))
        return control_step(ControllerState(), plan, ego, 0, VEH, CFG)[1].accel_mps2

    speeding_up = np.where(t >= CFG.accel_preview_s, 1.0, 0.0)
    assert accel_cmd(speeding_up, np.zeros(k)) >= 0.0
    assert accel_cmd(np.zeros(k), np.full(k, 0.5)) > 0.0
    assert accel_cmd(np.full(k, 0.1), np.full(k, -0.1)) < 0.0  # creeping to a stop: held
